/* killable-interrupt.c: the EINTR path and abandoned threads
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n-lib.h>

#include "killable-error.h"
#include "killable-task-private.h"

/* interrupt() on a task with interrupt-syscalls sends its worker thread a
 * signal whose handler does nothing and is installed without SA_RESTART:
 * read(), accept(), poll(), nanosleep() and friends then fail with EINTR.
 * A signal that arrives just before the worker blocks is lost, so it is
 * sent again, with a growing delay, until the task ends or leaves run().
 * Signals go to a worker only while it is inside run() (checked under the
 * task lock), so a cached idle thread or another task's work never gets one.
 */

#define REPEAT_FIRST_USEC  (1 * G_TIME_SPAN_MILLISECOND)
#define REPEAT_MAX_USEC    (50 * G_TIME_SPAN_MILLISECOND)

static GMutex signal_lock;
static int interrupt_signal;     /* protected by signal_lock; 0 until chosen */
static gboolean handler_installed;
static int abandoned_threads;    /* (atomic) */

static void
interrupt_handler (int signum)
{
  /* Nothing: being delivered is the point. */
}

static int
default_signal (void)
{
  const char *env = g_getenv ("KILLABLE_INTERRUPT_SIGNAL");

  if (env != NULL)
    {
      gint64 v = g_ascii_strtoll (env, NULL, 10);

      if (v >= SIGRTMIN && v <= SIGRTMAX)
        return (int) v;
      g_warning ("KILLABLE_INTERRUPT_SIGNAL=%s is not a real-time signal (%d..%d); ignored",
                 env, SIGRTMIN, SIGRTMAX);
    }

  /* Above the few that applications usually take (SIGRTMIN, +1, ...), far
   * from SIGRTMAX that debuggers and valgrind use. */
  return SIGRTMIN + 6;
}

static int
ensure_handler (void)
{
  int signum;

  g_mutex_lock (&signal_lock);

  if (interrupt_signal == 0)
    interrupt_signal = default_signal ();

  if (!handler_installed)
    {
      struct sigaction sa;

      memset (&sa, 0, sizeof sa);
      sa.sa_handler = interrupt_handler;
      sigemptyset (&sa.sa_mask);
      sa.sa_flags = 0;   /* no SA_RESTART: the whole point */
      if (sigaction (interrupt_signal, &sa, NULL) == 0)
        handler_installed = TRUE;
      else
        g_warning ("Could not install the interrupt handler for signal %d: %s",
                   interrupt_signal, g_strerror (errno));
    }

  signum = handler_installed ? interrupt_signal : 0;

  g_mutex_unlock (&signal_lock);

  return signum;
}

/**
 * killable_get_interrupt_signal:
 *
 * Gets the signal sent to worker threads by
 * [method@Killable.Task.interrupt] for tasks with
 * [property@Killable.Task:interrupt-syscalls]. It defaults to
 * `SIGRTMIN + 6`, or to the number in the `KILLABLE_INTERRUPT_SIGNAL`
 * environment variable.
 *
 * This function is thread-safe.
 *
 * Returns: the signal number
 *
 * Since: 1.0
 */
int
killable_get_interrupt_signal (void)
{
  int ret;

  g_mutex_lock (&signal_lock);
  if (interrupt_signal == 0)
    interrupt_signal = default_signal ();
  ret = interrupt_signal;
  g_mutex_unlock (&signal_lock);

  return ret;
}

/**
 * killable_set_interrupt_signal:
 * @signum: a real-time signal number, from `SIGRTMIN` to `SIGRTMAX`
 * @error: return location for a #GError
 *
 * Chooses the signal used to interrupt system calls, when the default
 * collides with one the application uses. Call it before the first
 * interrupt; libkillable installs its handler (which does nothing) on the
 * first interrupt of a task with [property@Killable.Task:interrupt-syscalls].
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE on success; %FALSE with @error set if @signum is not a
 *   real-time signal or the handler of another signal is already installed
 *
 * Since: 1.0
 */
gboolean
killable_set_interrupt_signal (int      signum,
                               GError **error)
{
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* May run before any task type exists: bind the text domain here too. */
  killable_i18n_init ();

  if (signum < SIGRTMIN || signum > SIGRTMAX)
    {
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("Signal %d is not a real-time signal (%d to %d)"),
                   signum, SIGRTMIN, SIGRTMAX);
      return FALSE;
    }

  g_mutex_lock (&signal_lock);
  if (handler_installed && interrupt_signal != signum)
    {
      int current = interrupt_signal;

      g_mutex_unlock (&signal_lock);
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("The interrupt signal is already in use (signal %d); "
                     "set it before the first interrupt"),
                   current);
      return FALSE;
    }
  interrupt_signal = signum;
  g_mutex_unlock (&signal_lock);

  return TRUE;
}

void
killable_interrupt_worker_enter (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_private_data (self);

  g_mutex_lock (&priv->lock);
  priv->worker = (gpointer) pthread_self ();
  priv->worker_active = TRUE;
  g_mutex_unlock (&priv->lock);
}

void
killable_interrupt_worker_leave (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_private_data (self);

  g_mutex_lock (&priv->lock);
  priv->worker_active = FALSE;
  priv->interrupt_armed = FALSE;
  g_mutex_unlock (&priv->lock);
}

/* Called with priv->lock held. */
static void
send_signal_locked (KillableTaskPrivate *priv,
                    int                  signum)
{
  if (priv->worker_active && priv->interrupt_armed)
    pthread_kill ((pthread_t) priv->worker, signum);
}

static gboolean
repeat_cb (gpointer data)
{
  KillableTask *self = data;
  KillableTaskPrivate *priv = killable_task_get_private_data (self);
  GSource *source = g_main_current_source ();
  int signum = killable_get_interrupt_signal ();
  gint64 delay = 0;
  gboolean again;

  g_mutex_lock (&priv->lock);
  again = priv->interrupt_source == source && priv->interrupt_armed &&
          g_atomic_int_get (&priv->abandon) != KILLABLE_ABANDON_DONE;
  if (again)
    {
      send_signal_locked (priv, signum);
      priv->interrupt_delay = MIN (priv->interrupt_delay * 2, REPEAT_MAX_USEC);
      delay = priv->interrupt_delay;
    }
  g_mutex_unlock (&priv->lock);

  if (!again)
    return G_SOURCE_REMOVE;

  g_source_set_ready_time (source, g_get_monotonic_time () + delay);
  return G_SOURCE_CONTINUE;
}

void
killable_interrupt_syscalls (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_private_data (self);
  int signum;

  if (!g_atomic_int_get (&priv->interrupt_syscalls))
    return;

  signum = ensure_handler ();
  if (signum == 0)
    return;

  g_mutex_lock (&priv->lock);
  if (!KILLABLE_TASK_STATE_IS_TERMINAL (g_atomic_int_get (&priv->state)) &&
      priv->worker_active)
    {
      priv->interrupt_armed = TRUE;
      send_signal_locked (priv, signum);
      priv->interrupt_delay = REPEAT_FIRST_USEC;
      if (priv->interrupt_source == NULL)
        priv->interrupt_source =
          killable_timer_add (g_get_monotonic_time () + REPEAT_FIRST_USEC,
                              repeat_cb, g_object_ref (self), g_object_unref);
    }
  g_mutex_unlock (&priv->lock);
}

/* The default kill: abandon the worker. Returns FALSE if the worker is in a
 * section that must not be abandoned; it is interrupted instead, and
 * abandoned when it leaves the section. */
gboolean
killable_task_abandon (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_private_data (self);

  /* No thread to abandon: a pending task just ends (after its children). */
  if (killable_task_complete_pending (self))
    return TRUE;

  /* A parent is released after its children: with children still live
   * (one in a section that must not be abandoned), it is abandoned when
   * the last of them ends (killable_tree_child_ended()). */
  if (killable_tree_has_live_children (self))
    return FALSE;

  if (!g_atomic_int_compare_and_exchange (&priv->abandon, KILLABLE_ABANDON_ALLOWED,
                                          KILLABLE_ABANDON_DONE))
    {
      if (g_atomic_int_get (&priv->abandon) == KILLABLE_ABANDON_COMMITTED)
        KILLABLE_TASK_GET_CLASS (self)->interrupt (self);
      return FALSE;
    }

  /* Counted before the state changes, so that a worker returning at this
   * very moment (its complete() then fails) never takes the count below 0. */
  g_atomic_int_inc (&abandoned_threads);
  if (!killable_task_complete_killed (self))
    g_atomic_int_dec_and_test (&abandoned_threads);

  return TRUE;
}

void
killable_interrupt_abandoned_returned (void)
{
  g_atomic_int_dec_and_test (&abandoned_threads);
}

/**
 * killable_get_abandoned_thread_count:
 *
 * Gets how many threads of killed tasks are still running their work. Each
 * goes back to the thread cache when its work returns, after running the
 * task's cleanups.
 *
 * This function is thread-safe.
 *
 * Returns: the number of abandoned threads still running
 *
 * Since: 1.0
 */
guint
killable_get_abandoned_thread_count (void)
{
  return (guint) g_atomic_int_get (&abandoned_threads);
}
