/* killable-task-pause.c: pausing and resuming a task
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A process task freezes its program (cgroup.freeze, or SIGSTOP to every
 * process it holds). For other tasks the flag is only recorded for now:
 * blocking check(), sleep() and wait_fd() while paused belongs to
 * killable-task.c.
 */

#include "config.h"

#include "killable-process-task-private.h"
#include "killable-task.h"

static GQuark
paused_quark (void)
{
  return g_quark_from_static_string ("killable-task-paused");
}

static void
set_paused (KillableTask *self,
            gboolean      paused)
{
  GParamSpec *pspec;

  if (KILLABLE_IS_PROCESS_TASK (self))
    {
      killable_process_task_set_paused_internal (KILLABLE_PROCESS_TASK (self), paused);
      return;
    }

  if (!paused == !GPOINTER_TO_INT (g_object_get_qdata (G_OBJECT (self), paused_quark ())))
    return;
  g_object_set_qdata (G_OBJECT (self), paused_quark (), GINT_TO_POINTER (paused));

  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (self), "paused");
  if (pspec != NULL)
    g_object_notify_by_pspec (G_OBJECT (self), pspec);
}

/**
 * killable_task_pause:
 * @self: a task
 *
 * Pauses the task. A [class@Killable.ProcessTask] is frozen: with
 * %KILLABLE_CONTAINMENT_CGROUP its cgroup is frozen (`cgroup.freeze`),
 * otherwise every process it holds gets `SIGSTOP`. A task paused before its
 * program started is frozen as soon as it starts. Pausing a paused task does
 * nothing.
 *
 * A stop, an interrupt or a kill of a paused task resumes it first, so that
 * its signals are delivered.
 *
 * This function is thread-safe; the [property@Killable.ProcessTask:paused]
 * notification is emitted in the calling thread.
 *
 * Since: 1.2
 */
void
killable_task_pause (KillableTask *self)
{
  g_return_if_fail (KILLABLE_IS_TASK (self));

  set_paused (self, TRUE);
}

/**
 * killable_task_resume:
 * @self: a task
 *
 * Resumes a task paused with [method@Killable.Task.pause]: a process task's
 * processes are thawed (or get `SIGCONT`). Resuming a task that is not
 * paused does nothing.
 *
 * This function is thread-safe; the [property@Killable.ProcessTask:paused]
 * notification is emitted in the calling thread.
 *
 * Since: 1.2
 */
void
killable_task_resume (KillableTask *self)
{
  g_return_if_fail (KILLABLE_IS_TASK (self));

  set_paused (self, FALSE);
}

/**
 * killable_task_is_paused:
 * @self: a task
 *
 * Whether the task is paused: [method@Killable.Task.pause] was called, and
 * neither [method@Killable.Task.resume] nor a stop came after it.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE if the task is paused
 *
 * Since: 1.2
 */
gboolean
killable_task_is_paused (KillableTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  if (KILLABLE_IS_PROCESS_TASK (self))
    return killable_process_task_get_paused_internal (KILLABLE_PROCESS_TASK (self));

  return GPOINTER_TO_INT (g_object_get_qdata (G_OBJECT (self), paused_quark ()));
}
