/* killable-error-private.h: the error builder and the text domain
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "killable-error.h"

G_BEGIN_DECLS

/* Binds the gettext domain, once. */
void      killable_i18n_init          (void);

/* The translated error @code about the task called @name. */
GError   *killable_error_new_for_task (KillableError  code,
                                       const char    *name);

G_END_DECLS
