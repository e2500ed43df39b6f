/* killable-signal.c: the interrupt signal
 *
 * Owns: the process-wide choice of the signal that makes a worker's
 * blocking system call fail with EINTR, its handler (which does nothing and
 * is installed without SA_RESTART) and sending it to a thread.
 * Locks: signal_lock guards the choice and the installed flag; a leaf lock.
 * Called by: killable-task.c (arming a worker, re-sending with backoff
 * through killable-escalation.c stay on the task side) and the public
 * functions below. Calls: killable-error.c (the text domain) only.
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

#include "killable-error-private.h"
#include "killable-signal-private.h"
#include "killable-task.h"

/* interrupt() on a task with interrupt-syscalls sends its worker thread a
 * signal whose handler does nothing and is installed without SA_RESTART:
 * read(), accept(), poll(), nanosleep() and friends then fail with EINTR.
 */

static GMutex signal_lock;
static int interrupt_signal;     /* protected by signal_lock; 0 until chosen */
static gboolean handler_installed;

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

int
killable_signal_ensure_handler (void)
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
killable_signal_send (pthread_t thread,
                      int       signum)
{
  pthread_kill (thread, signum);
}
