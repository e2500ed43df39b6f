/* killable-stop-state.c: the stop flag, its reason, stop callbacks
 *
 * Owns: a KillableStopState per task: the atomic flag, the reason, the
 * stop-callback list with its exact semantics, and the wake-up of blocked
 * waits (sleep, wait_fd).
 * Locks: KillableStopState.lock guards everything but the atomic flag; no
 * user code runs under it (callbacks run outside it, one at a time).
 * Called by: killable-task.c and killable-tree.c. Calls nothing of the
 * library: a leaf.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <gio/gio.h>

#include "killable-stop-state-private.h"

/* How often wait_fd() looks at the stop flag when it has no wake-up fd. */
#define WAIT_FD_SLICE_MS 50

struct _KillableStopCallback
{
  gulong            id;
  KillableStopFunc  func;
  gpointer          user_data;
  GDestroyNotify    notify;
};

/* GLib's g_cond_broadcast() makes a futex system call even when nobody
 * waits, and a stop of a large tree broadcasts several times per task: only
 * wake when a thread waits (@n_waiters, protected by the same lock). */
static void
wake_waiters_locked (KillableStopState *state)
{
  if (state->n_waiters > 0)
    g_cond_broadcast (&state->cond);
}

static void
wait_locked (KillableStopState *state)
{
  state->n_waiters++;
  g_cond_wait (&state->cond, &state->lock);
  state->n_waiters--;
}

static gboolean
wait_until_locked (KillableStopState *state,
                   gint64             end_time)
{
  gboolean ret;

  state->n_waiters++;
  ret = g_cond_wait_until (&state->cond, &state->lock, end_time);
  state->n_waiters--;

  return ret;
}

static void
stop_callback_free (KillableStopCallback *cb)
{
  if (cb->notify != NULL)
    cb->notify (cb->user_data);
  g_free (cb);
}

void
killable_stop_state_init (KillableStopState *state)
{
  g_mutex_init (&state->lock);
  g_cond_init (&state->cond);
  g_queue_init (&state->callbacks);
  state->n_waiters = 0;
  state->wake_fd = -1;
}

void
killable_stop_state_clear (KillableStopState *state)
{
  KillableStopCallback *cb;

  /* Nobody else can reach the state any more: callbacks that were never
   * fired are only released. */
  while ((cb = g_queue_pop_head (&state->callbacks)) != NULL)
    stop_callback_free (cb);

  g_clear_error (&state->reason);
  if (state->wake_fd >= 0)
    close (state->wake_fd);
  g_cond_clear (&state->cond);
  g_mutex_clear (&state->lock);
}

/* Publishes the request: the reason first, then the flag, then wakes every
 * sleeper. Runs no user code, so it may be called under the tree lock.
 * Returns TRUE for the one call that made the request. */
gboolean
killable_stop_state_request (KillableStopState *state,
                             const GError      *reason)
{
  g_mutex_lock (&state->lock);

  if (killable_stop_state_is_requested (state))
    {
      g_mutex_unlock (&state->lock);
      return FALSE;
    }

  state->reason = reason != NULL ? g_error_copy (reason) : NULL;
  /* Set before the flag is visible: the worker may wake at once, and must
   * not end the task while the callbacks of this stop still run. */
  state->firing = TRUE;
  g_atomic_int_or ((guint *) &state->requested, KILLABLE_STOP_FLAG_REQUESTED);
  wake_waiters_locked (state);
  if (state->wake_fd >= 0)
    {
      guint64 one = 1;

      while (write (state->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
    }

  g_mutex_unlock (&state->lock);

  return TRUE;
}

/* Runs the stop callbacks, each once, in the calling thread. Only the caller
 * whose killable_stop_state_request() returned TRUE calls this, exactly once. */
void
killable_stop_state_fire (KillableStopState *state,
                          KillableTask      *task)
{
  KillableStopCallback *cb;

  g_mutex_lock (&state->lock);

  while ((cb = g_queue_pop_head (&state->callbacks)) != NULL)
    {
      state->running = cb;
      state->running_thread = g_thread_self ();
      g_mutex_unlock (&state->lock);

      /* @reason is immutable once requested: no lock needed to read it. */
      cb->func (task, state->reason, cb->user_data);

      g_mutex_lock (&state->lock);
      state->running = NULL;
      state->running_thread = NULL;
      wake_waiters_locked (state);
      g_mutex_unlock (&state->lock);

      stop_callback_free (cb);

      g_mutex_lock (&state->lock);
    }

  state->firing = FALSE;
  wake_waiters_locked (state);

  g_mutex_unlock (&state->lock);
}

/* Waits until the callbacks of the stop request, if any, have all returned:
 * a task does not end (cleanups, terminal state) while a stop callback may
 * still use what the cleanups free. */
void
killable_stop_state_wait_fired (KillableStopState *state)
{
  g_mutex_lock (&state->lock);
  while (state->firing)
    wait_locked (state);
  g_mutex_unlock (&state->lock);
}

GError *
killable_stop_state_dup_reason (KillableStopState *state)
{
  GError *ret = NULL;

  g_mutex_lock (&state->lock);
  if (state->reason != NULL)
    ret = g_error_copy (state->reason);
  g_mutex_unlock (&state->lock);

  return ret;
}

gboolean
killable_stop_state_reason_matches (KillableStopState *state,
                                    GQuark             domain,
                                    int                code)
{
  gboolean ret;

  g_mutex_lock (&state->lock);
  ret = g_error_matches (state->reason, domain, code);
  g_mutex_unlock (&state->lock);

  return ret;
}

gulong
killable_stop_state_add_callback (KillableStopState *state,
                                  KillableTask      *task,
                                  KillableStopFunc   func,
                                  gpointer           user_data,
                                  GDestroyNotify     notify)
{
  KillableStopCallback *cb;
  gulong id;

  g_mutex_lock (&state->lock);

  if (killable_stop_state_is_requested (state))
    {
      g_mutex_unlock (&state->lock);

      /* Already stopped: run at once, here, as std::stop_callback does. */
      func (task, state->reason, user_data);
      if (notify != NULL)
        notify (user_data);

      return 0;
    }

  cb = g_new0 (KillableStopCallback, 1);
  cb->id = id = ++state->last_id;
  cb->func = func;
  cb->user_data = user_data;
  cb->notify = notify;
  g_queue_push_tail (&state->callbacks, cb);

  g_mutex_unlock (&state->lock);

  return id;
}

void
killable_stop_state_remove_callback (KillableStopState *state,
                                     gulong             id)
{
  KillableStopCallback *found = NULL;
  GList *l;

  g_mutex_lock (&state->lock);

  for (l = state->callbacks.head; l != NULL; l = l->next)
    {
      KillableStopCallback *cb = l->data;

      if (cb->id == id)
        {
          found = cb;
          g_queue_delete_link (&state->callbacks, l);
          break;
        }
    }

  /* Running in another thread: wait until it returned, so the caller may
   * free what the callback uses. From inside the callback itself: do not
   * wait (that would deadlock); it is released once it returns. */
  if (found == NULL && state->running_thread != g_thread_self ())
    {
      while (state->running != NULL && state->running->id == id)
        wait_locked (state);
    }

  g_mutex_unlock (&state->lock);

  if (found != NULL)
    stop_callback_free (found);
}

/* Blocks until @end_time (monotonic) or a stop request, whichever comes
 * first. Returns FALSE when woken by the stop request. */
gboolean
killable_stop_state_sleep (KillableStopState *state,
                           gint64             end_time)
{
  gboolean stopped;

  g_mutex_lock (&state->lock);

  while (!killable_stop_state_is_requested (state))
    {
      if (!wait_until_locked (state, end_time))
        break;
    }

  stopped = killable_stop_state_is_requested (state);

  g_mutex_unlock (&state->lock);

  return !stopped;
}

/* An eventfd that becomes readable on the stop request, for poll(); created
 * on first use. Returns -1 if it cannot be created (no fd left): the
 * caller then polls in slices and checks the flag in between. Unlike
 * g_cancellable_make_pollfd(), running out of fds is not fatal. */
int
killable_stop_state_get_wake_fd (KillableStopState *state)
{
  int fd;

  g_mutex_lock (&state->lock);

  if (state->wake_fd < 0)
    {
      state->wake_fd = eventfd (killable_stop_state_is_requested (state) ? 1 : 0,
                               EFD_CLOEXEC | EFD_NONBLOCK);
    }
  fd = state->wake_fd;

  g_mutex_unlock (&state->lock);

  return fd;
}

/* Waits until @fd reports @condition, @end_time (monotonic; -1 = none)
 * passes, or a stop is requested. Returns FALSE on a stop request (nothing
 * set); otherwise TRUE with *@out the condition seen (0 on timeout), or 0
 * and @error set if the wait itself failed. */
gboolean
killable_stop_state_wait_fd (KillableStopState  *state,
                             int                 fd,
                             GIOCondition        condition,
                             gint64              end_time,
                             GIOCondition       *out,
                             GError            **error)
{
  GPollFD pfds[2];
  int n_fds = 1;
  int wake_fd;

  *out = 0;

  pfds[0].fd = fd;
  pfds[0].events = condition;
  pfds[0].revents = 0;

  /* Without a wake-up fd (none left), poll in slices and look at the flag
   * in between: slower to notice a stop, but never stuck. */
  wake_fd = killable_stop_state_get_wake_fd (state);
  if (wake_fd >= 0)
    {
      pfds[1].fd = wake_fd;
      pfds[1].events = G_IO_IN;
      pfds[1].revents = 0;
      n_fds = 2;
    }

  for (;;)
    {
      int timeout_ms = -1;
      int ret;

      if (killable_stop_state_is_requested (state))
        return FALSE;

      if (end_time >= 0)
        {
          gint64 left = end_time - g_get_monotonic_time ();

          timeout_ms = left <= 0 ? 0 : (int) MIN ((left + 999) / 1000, G_MAXINT);
        }
      if (n_fds == 1 && (timeout_ms < 0 || timeout_ms > WAIT_FD_SLICE_MS))
        timeout_ms = WAIT_FD_SLICE_MS;

      ret = g_poll (pfds, n_fds, timeout_ms);
      if (ret < 0)
        {
          int errsv = errno;

          if (errsv == EINTR)
            continue;

          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       _("Could not wait for file descriptor %d: %s"),
                       fd, g_strerror (errsv));
          return TRUE;
        }

      if (pfds[0].revents != 0)
        {
          if (pfds[0].revents & G_IO_NVAL)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           _("File descriptor %d is not open"), fd);
              return TRUE;
            }
          *out = pfds[0].revents;
          return TRUE;
        }

      if (end_time >= 0 && g_get_monotonic_time () >= end_time)
        return TRUE;
    }
}
