/* killable.h: the libkillable umbrella header
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib-object.h>
#include <gio/gio.h>

#define KILLABLE_INSIDE
# include "killable-version.h"
# include "killable-version-macros.h"
# include "killable-error.h"
# include "killable-limiter.h"
# include "killable-task.h"
# include "killable-process-task.h"
# include "killable-enums.h"
#undef KILLABLE_INSIDE
