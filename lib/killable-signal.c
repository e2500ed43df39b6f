/* killable-signal.c: the interrupt signal
 *
 * Owns: the process-wide choice of the signal that makes a worker's
 * blocking system call fail with EINTR, its handler (which does nothing and
 * is installed without SA_RESTART) and sending it to a thread.
 * Locks: signal_lock guards the choice (also read atomically without it)
 * and the installed flag; a leaf lock.
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
 *
 * A good citizen of its host process:
 * - an application's handler is never replaced: before installing ours,
 *   sigaction() tells whether the chosen signal is free (SIG_DFL, no
 *   handler); if not, the next free real-time signal is taken (a message
 *   says so, once); with none free, interrupts do nothing (a warning says
 *   so, once) and killable_set_interrupt_signal() reports a taken signal;
 * - an application that installs its own handler later (with SA_RESTART,
 *   say) is noticed at the next interrupt or repeat (sigaction() again):
 *   the library moves to another free signal and never sends into the
 *   application's handler;
 * - the worker unblocks the signal while it runs a task's work and
 *   restores its mask after (killable_signal_unblock()/_restore()), so an
 *   application that blocks every signal before creating threads, or a
 *   previous task on the same thread, does not silently disable interrupts.
 */

static GMutex signal_lock;
static int interrupt_signal;     /* (atomic) written under signal_lock; 0 until chosen */
static gboolean handler_installed;   /* protected by signal_lock: ours is on interrupt_signal */
static gboolean none_free_warned;    /* protected by signal_lock */

static void
interrupt_handler (int signum)
{
  /* Nothing: being delivered is the point. */
}

/* Strict: the whole string is a number in SIGRTMIN..SIGRTMAX. */
static int
default_signal (void)
{
  const char *env = g_getenv ("KILLABLE_INTERRUPT_SIGNAL");

  if (env != NULL)
    {
      guint64 v = 0;

      if (g_ascii_string_to_unsigned (env, 10, SIGRTMIN, SIGRTMAX, &v, NULL))
        return (int) v;
      g_warning ("KILLABLE_INTERRUPT_SIGNAL=%s is not a real-time signal number (%d to %d); "
                 "using the default, %d",
                 env, SIGRTMIN, SIGRTMAX, SIGRTMIN + 6);
    }

  /* Above the few that applications usually take (SIGRTMIN, +1, ...), far
   * from SIGRTMAX that debuggers and valgrind use. */
  return SIGRTMIN + 6;
}

/* Called with signal_lock held. */
static int
chosen_locked (void)
{
  if (interrupt_signal == 0)
    g_atomic_int_set (&interrupt_signal, default_signal ());
  return interrupt_signal;
}

static gboolean
is_ours (const struct sigaction *sa)
{
  return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == interrupt_handler &&
         !(sa->sa_flags & SA_RESTART);
}

static gboolean
is_free (const struct sigaction *sa)
{
  return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_DFL;
}

/* Called with signal_lock held: installs ours on @signum if it is free. */
static gboolean
try_install_locked (int signum)
{
  struct sigaction sa, old;

  if (sigaction (signum, NULL, &old) != 0 || !is_free (&old))
    return FALSE;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = interrupt_handler;
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = 0;   /* no SA_RESTART: the whole point */

  return sigaction (signum, &sa, NULL) == 0;
}

/* Called with signal_lock held and no handler of ours in place: the chosen
 * signal if free, else the next free real-time one (upwards, then from
 * SIGRTMIN). Returns 0 if none is free. */
static int
install_locked (void)
{
  int first = chosen_locked ();
  int n = SIGRTMAX - SIGRTMIN + 1;

  for (int i = 0; i < n; i++)
    {
      int signum = SIGRTMIN + (first - SIGRTMIN + i) % n;

      if (!try_install_locked (signum))
        continue;

      if (signum != first)
        g_message ("libkillable: signal %d already has a handler; system calls are "
                   "interrupted with signal %d instead",
                   first, signum);
      g_atomic_int_set (&interrupt_signal, signum);
      handler_installed = TRUE;
      none_free_warned = FALSE;
      return signum;
    }

  if (!none_free_warned)
    {
      none_free_warned = TRUE;
      g_warning ("libkillable: every real-time signal has a handler of the application; "
                 "interrupt-syscalls cannot interrupt system calls (see "
                 "killable_set_interrupt_signal())");
    }
  return 0;
}

/* Called with signal_lock held: is ours still the handler? (The
 * application may have installed its own since.) */
static gboolean
still_ours_locked (void)
{
  struct sigaction cur;

  if (!handler_installed)
    return FALSE;
  if (sigaction (interrupt_signal, NULL, &cur) == 0 && is_ours (&cur))
    return TRUE;

  g_message ("libkillable: the application installed its own handler for signal %d; "
             "libkillable no longer sends it",
             interrupt_signal);
  handler_installed = FALSE;
  return FALSE;
}

int
killable_signal_ensure_handler (void)
{
  int signum;

  g_mutex_lock (&signal_lock);
  if (still_ours_locked ())
    signum = interrupt_signal;
  else
    {
      /* Start the search after a signal the application took over. */
      signum = install_locked ();
    }
  g_mutex_unlock (&signal_lock);

  return signum;
}

int
killable_signal_get_current (void)
{
  int signum = g_atomic_int_get (&interrupt_signal);

  if (G_LIKELY (signum != 0))
    return signum;

  g_mutex_lock (&signal_lock);
  signum = chosen_locked ();
  g_mutex_unlock (&signal_lock);

  return signum;
}

gboolean
killable_signal_unblock (int       signum,
                         sigset_t *old)
{
  sigset_t set;

  sigemptyset (&set);
  sigaddset (&set, signum);
  if (pthread_sigmask (SIG_UNBLOCK, &set, old) != 0)
    return FALSE;

  /* Only a mask that had it blocked needs restoring. */
  return sigismember (old, signum) == 1;
}

void
killable_signal_restore (const sigset_t *old)
{
  pthread_sigmask (SIG_SETMASK, old, NULL);
}

/**
 * killable_get_interrupt_signal:
 *
 * Gets the signal sent to worker threads by
 * [method@Killable.Task.interrupt] for tasks with
 * [property@Killable.Task:interrupt-syscalls]. It defaults to
 * `SIGRTMIN + 6`, or to the number in the `KILLABLE_INTERRUPT_SIGNAL`
 * environment variable (a decimal number from `SIGRTMIN` to `SIGRTMAX`;
 * anything else is ignored with a warning).
 *
 * libkillable never replaces a handler of the application: if the chosen
 * signal has one when libkillable installs its own (at the first
 * interrupt), or gets one later, the next real-time signal that has none is
 * used instead (a message says so) and this function returns it from then
 * on. If every real-time signal has a handler, interrupts do not interrupt
 * system calls (a warning says so, once).
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
  ret = chosen_locked ();
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
 *   real-time signal, if the application has a handler for it (libkillable
 *   never replaces one), or if the handler of another signal is already
 *   installed
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
  if (!(handler_installed && interrupt_signal == signum))
    {
      struct sigaction cur;

      if (sigaction (signum, NULL, &cur) == 0 && !is_free (&cur) && !is_ours (&cur))
        {
          g_mutex_unlock (&signal_lock);
          g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                       _("Signal %d already has a handler of the application"),
                       signum);
          return FALSE;
        }
    }
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
  g_atomic_int_set (&interrupt_signal, signum);
  g_mutex_unlock (&signal_lock);

  return TRUE;
}

/* Sends @signum to @thread unless the application took the signal over
 * since (then nothing is sent and FALSE is returned). */
gboolean
killable_signal_send (pthread_t thread,
                      int       signum)
{
  gboolean ours;

  g_mutex_lock (&signal_lock);
  ours = signum == interrupt_signal && still_ours_locked ();
  g_mutex_unlock (&signal_lock);

  if (ours)
    pthread_kill (thread, signum);

  return ours;
}

/* For killable-fork.c: signal_lock is held across fork(). */
void
killable_signal_fork_lock (gboolean lock)
{
  if (lock)
    g_mutex_lock (&signal_lock);
  else
    g_mutex_unlock (&signal_lock);
}
