/* killable-limiter.h: a limit on how many tasks run at once
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined(KILLABLE_INSIDE) && !defined(KILLABLE_COMPILATION)
# error "Only <killable.h> can be included directly."
#endif

#include <glib-object.h>

#include "killable-version-macros.h"

G_BEGIN_DECLS

#define KILLABLE_TYPE_LIMITER (killable_limiter_get_type ())

KILLABLE_AVAILABLE_IN_1_2
G_DECLARE_FINAL_TYPE (KillableLimiter, killable_limiter, KILLABLE, LIMITER, GObject)

KILLABLE_AVAILABLE_IN_1_2
KillableLimiter *killable_limiter_new             (guint            max_running);
KILLABLE_AVAILABLE_IN_1_2
guint            killable_limiter_get_max_running (KillableLimiter *self);
KILLABLE_AVAILABLE_IN_1_2
guint            killable_limiter_get_n_running   (KillableLimiter *self);
KILLABLE_AVAILABLE_IN_1_2
guint            killable_limiter_get_n_waiting   (KillableLimiter *self);

G_END_DECLS
