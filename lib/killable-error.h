/* killable-error.h: the KILLABLE_ERROR domain
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined(KILLABLE_INSIDE) && !defined(KILLABLE_COMPILATION)
# error "Only <killable.h> can be included directly."
#endif

#include <glib.h>

#include "killable-version-macros.h"

G_BEGIN_DECLS

/**
 * KILLABLE_ERROR:
 *
 * The error domain of libkillable: errors in it carry a [enum@Killable.Error]
 * code.
 *
 * Since: 1.0
 */
#define KILLABLE_ERROR (killable_error_quark ())

/**
 * KillableError:
 * @KILLABLE_ERROR_STOPPED: the task was asked to stop with
 *   [method@Killable.Task.stop].
 * @KILLABLE_ERROR_INTERRUPTED: the task was interrupted with
 *   [method@Killable.Task.interrupt].
 * @KILLABLE_ERROR_TIMED_OUT: the task's deadline (its own or an
 *   ancestor's) passed; see [method@Killable.Task.set_timeout].
 * @KILLABLE_ERROR_KILLED: the task was killed with
 *   [method@Killable.Task.kill]: its thread was abandoned or its process
 *   group received `SIGKILL`.
 * @KILLABLE_ERROR_CHILD_FAILED: a child task failed and the parent's
 *   [property@Killable.Task:child-policy] is
 *   %KILLABLE_CHILD_POLICY_FAIL_FAST.
 * @KILLABLE_ERROR_FAILED: the task failed for another reason: misuse
 *   (starting a task twice, adding a child under its own descendant), a
 *   `run` implementation that returned %FALSE without setting an error, or
 *   a process task whose program exited with a non-zero status or was killed
 *   by a signal it did not get from libkillable.
 *
 * Error codes of the %KILLABLE_ERROR domain. The first five describe how a
 * task was cancelled: [func@Killable.Error.is_cancellation] is %TRUE for
 * them.
 *
 * Since: 1.0
 */
typedef enum
{
  KILLABLE_ERROR_STOPPED,
  KILLABLE_ERROR_INTERRUPTED,
  KILLABLE_ERROR_TIMED_OUT,
  KILLABLE_ERROR_KILLED,
  KILLABLE_ERROR_CHILD_FAILED,
  KILLABLE_ERROR_FAILED,
} KillableError;

KILLABLE_AVAILABLE_IN_1_0
GQuark   killable_error_quark            (void);

KILLABLE_AVAILABLE_IN_1_0
gboolean killable_error_is_cancellation  (const GError *error);

G_END_DECLS
