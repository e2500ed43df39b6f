/* killable-escalation.c: the timer thread, timeouts, grace periods
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "killable-error.h"
#include "killable-task-private.h"

/* Timeouts, grace periods and interrupt repeats are sources on one private
 * main context, run by one lazily started thread. A source holds a
 * reference on its task and is destroyed when the task becomes terminal. */

static GMainContext *timer_context;

static gpointer
timer_thread_main (gpointer data)
{
  GMainLoop *loop = g_main_loop_new (timer_context, FALSE);

  g_main_context_push_thread_default (timer_context);
  g_main_loop_run (loop);

  g_assert_not_reached ();
  return NULL;
}

static GMainContext *
get_timer_context (void)
{
  static gsize initialized;

  if (g_once_init_enter (&initialized))
    {
      timer_context = g_main_context_new ();
      g_thread_unref (g_thread_new ("killable-timer", timer_thread_main, NULL));
      g_once_init_leave (&initialized, 1);
    }

  return timer_context;
}

static gboolean
ready_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs ready_funcs = {
  .dispatch = ready_dispatch,
};

/* A source dispatched at @ready_time (monotonic µs) on the timer thread.
 * To run again, @func sets a new ready time and returns G_SOURCE_CONTINUE. */
GSource *
killable_timer_add (gint64         ready_time,
                    GSourceFunc    func,
                    gpointer       data,
                    GDestroyNotify notify)
{
  GSource *source = g_source_new (&ready_funcs, sizeof (GSource));

  g_source_set_static_name (source, "[killable] timer");
  g_source_set_callback (source, func, data, notify);
  g_source_set_ready_time (source, MAX (ready_time, 0));
  g_source_attach (source, get_timer_context ());

  return source;
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

static gboolean
timeout_cb (gpointer data)
{
  KillableTask *self = data;
  g_autoptr(GError) reason = killable_task_make_error (self, KILLABLE_ERROR_TIMED_OUT);

  killable_task_stop_with_error (self, reason);

  return G_SOURCE_REMOVE;
}

/* (Re)arms the timeout from start_time + timeout; called at start and by
 * set_timeout(). */
void
killable_escalation_arm_timeout (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_private_data (self);
  GSource *old;

  g_mutex_lock (&priv->lock);

  old = g_steal_pointer (&priv->timeout_source);
  if (priv->timeout >= 0 && priv->start_time != 0 &&
      !KILLABLE_TASK_STATE_IS_TERMINAL (g_atomic_int_get (&priv->state)))
    {
      gint64 deadline = priv->timeout > G_MAXINT64 - priv->start_time
                          ? G_MAXINT64 : priv->start_time + priv->timeout;

      priv->timeout_source = killable_timer_add (deadline, timeout_cb,
                                                 g_object_ref (self), g_object_unref);
    }

  g_mutex_unlock (&priv->lock);

  clear_source (&old);
}

static gboolean
escalate_cb (gpointer data)
{
  KillableTask *self = data;
  KillableTaskPrivate *priv = killable_task_get_private_data (self);
  GSource *source = g_main_current_source ();
  int step;
  gint64 grace;

  g_mutex_lock (&priv->lock);
  if (priv->escalation_source != source)
    {
      g_mutex_unlock (&priv->lock);
      return G_SOURCE_REMOVE;
    }
  step = ++priv->escalation_step;
  grace = priv->grace_period;
  g_mutex_unlock (&priv->lock);

  if (KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (self)))
    return G_SOURCE_REMOVE;

  if (step == 1 && !priv->escalation_direct_kill)
    {
      killable_task_interrupt (self);

      if (grace >= 0)
        {
          g_source_set_ready_time (source, g_get_monotonic_time () + grace);
          return G_SOURCE_CONTINUE;
        }
      return G_SOURCE_REMOVE;
    }

  killable_task_kill (self);

  return G_SOURCE_REMOVE;
}

/* After a stop request: escalate to interrupt, then to kill, each after one
 * grace period, while the task has not ended. */
void
killable_escalation_start (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_private_data (self);

  g_mutex_lock (&priv->lock);

  if (priv->grace_period >= 0 && priv->escalation_source == NULL &&
      priv->start_time != 0 &&
      !KILLABLE_TASK_STATE_IS_TERMINAL (g_atomic_int_get (&priv->state)))
    {
      priv->escalation_source =
        killable_timer_add (g_get_monotonic_time () + priv->grace_period,
                            escalate_cb, g_object_ref (self), g_object_unref);
    }

  g_mutex_unlock (&priv->lock);
}

/* The task is terminal: no timer may touch it any more. */
void
killable_escalation_cancel (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_private_data (self);
  GSource *timeout, *escalation, *interrupt;

  g_mutex_lock (&priv->lock);
  timeout = g_steal_pointer (&priv->timeout_source);
  escalation = g_steal_pointer (&priv->escalation_source);
  interrupt = g_steal_pointer (&priv->interrupt_source);
  priv->interrupt_armed = FALSE;
  g_mutex_unlock (&priv->lock);

  clear_source (&timeout);
  clear_source (&escalation);
  clear_source (&interrupt);
}
