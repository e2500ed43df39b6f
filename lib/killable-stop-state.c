/* killable-stop-state.c: the stop flag, its reason, stop callbacks
 *
 * Owns: a KillableStopState per task: the atomic flag, the reason, the
 * stop-callback list with its exact semantics, the wake-up of blocked
 * waits (sleep, wait_fd), and the pause of thread tasks (check, sleep and
 * wait_fd block while KILLABLE_STOP_FLAG_PAUSED is set; a stop clears it).
 * Locks: KillableStopState.lock (a GMutex) guards the reason, the wake-up
 * fd (and its counter: a pause writes it, a resume drains it), `firing`, the
 * changes of the paused bit and the condition variable's waits; KillableStopState.cb_lock
 * (a spin lock held for a few instructions: list links, ids) guards the
 * callback list and which callback runs. The flag is atomic. No user code
 * runs under either (callbacks run outside both, one at a time); cb_lock is
 * never held while taking lock (remove_callback() drops it first).
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

/* A registered callback: a node of an intrusive doubly linked list (one
 * allocation per callback, none for the list), like the nodes of
 * std::stop_callback. remove_callback() searches from the tail: callbacks
 * are usually removed in the reverse order of their adding (scopes). */
struct _KillableStopCallback
{
  KillableStopCallback *prev;
  KillableStopCallback *next;
  gulong                id;
  KillableStopFunc      func;
  gpointer              user_data;
  GDestroyNotify        notify;
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

static G_GNUC_NO_INLINE void
cb_lock_contended (KillableStopState *state)
{
  for (guint spins = 0;; spins++)
    {
      if (__atomic_load_n (&state->cb_lock, __ATOMIC_RELAXED) == 0 &&
          __atomic_exchange_n (&state->cb_lock, 1, __ATOMIC_ACQUIRE) == 0)
        return;
      /* The holder runs a few instructions; if it was preempted, let it
       * run. */
      if (spins < 64)
        {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause ();
#endif
        }
      else
        g_thread_yield ();
    }
}

static inline void
cb_lock (KillableStopState *state)
{
  if (G_UNLIKELY (__atomic_exchange_n (&state->cb_lock, 1, __ATOMIC_ACQUIRE) != 0))
    cb_lock_contended (state);
}

static inline void
cb_unlock (KillableStopState *state)
{
  __atomic_store_n (&state->cb_lock, 0, __ATOMIC_RELEASE);
}

/* Nodes come from blocks owned by the state (each twice the size of the
 * one before, from 1 to 1024 nodes): firing N callbacks then frees a few
 * blocks, not N nodes (the frees were most of a fired callback's cost). A
 * removed node goes to the @spare list for the next add; the blocks are
 * freed once the callbacks have fired, or with the state. */
typedef struct _NodeChunk NodeChunk;
struct _NodeChunk
{
  NodeChunk            *next;
  guint                 used;
  guint                 size;
  KillableStopCallback  nodes[];
};

#define CHUNK_MAX_NODES 1024

static void
stop_callback_notify (KillableStopCallback *cb)
{
  if (cb->notify != NULL)
    cb->notify (cb->user_data);
}

static void
chunks_free (NodeChunk *chunk)
{
  while (chunk != NULL)
    {
      NodeChunk *next = chunk->next;

      g_free (chunk);
      chunk = next;
    }
}

/* Called with cb_lock held; allocates (no user code) when the blocks are
 * full. */
static G_GNUC_NO_INLINE KillableStopCallback *
stop_callback_new_slow (KillableStopState *state)
{
  NodeChunk *chunk = state->chunks;

  if (chunk == NULL || chunk->used == chunk->size)
    {
      guint size = chunk == NULL ? 1 : MIN (chunk->size * 2, CHUNK_MAX_NODES);
      NodeChunk *fresh = g_malloc (sizeof (NodeChunk) + size * sizeof (KillableStopCallback));

      fresh->next = chunk;
      fresh->used = 0;
      fresh->size = size;
      state->chunks = chunk = fresh;
    }

  return &chunk->nodes[chunk->used++];
}

static void
unlink_locked (KillableStopState    *state,
               KillableStopCallback *cb)
{
  if (cb->prev != NULL)
    cb->prev->next = cb->next;
  else
    state->head = cb->next;
  if (cb->next != NULL)
    cb->next->prev = cb->prev;
  else
    state->tail = cb->prev;
}

void
killable_stop_state_init (KillableStopState *state)
{
  g_mutex_init (&state->lock);
  g_cond_init (&state->cond);
  state->cb_lock = 0;
  state->n_cb_waiters = 0;
  state->head = state->tail = state->spare = NULL;
  state->n_waiters = 0;
  state->wake_fd = -1;
}

void
killable_stop_state_clear (KillableStopState *state)
{
  KillableStopCallback *cb;

  /* Nobody else can reach the state any more: callbacks that were never
   * fired are only released. */
  for (cb = state->head; cb != NULL; cb = cb->next)
    stop_callback_notify (cb);
  state->head = state->tail = state->spare = NULL;
  chunks_free (state->chunks);
  state->chunks = NULL;

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
   * not end the task while the callbacks of this stop still run. Only
   * callbacks registered before the flag is set fire (an add that takes
   * cb_lock later runs its own): with none, nothing is to be waited for,
   * and fire() takes no lock. */
  cb_lock (state);
  state->firing = state->head != NULL;
  g_atomic_int_or ((guint *) &state->requested, KILLABLE_STOP_FLAG_REQUESTED);
  cb_unlock (state);
  /* A stop lifts a pause (the word stays non-zero in between); the
   * wake-up fd stays readable, now for the stop. */
  g_atomic_int_and ((guint *) &state->requested, ~(guint) KILLABLE_STOP_FLAG_PAUSED);
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

/* Wakes remove_callback() calls waiting for the callback that just
 * returned. */
static G_GNUC_NO_INLINE void
wake_cb_waiters (KillableStopState *state)
{
  g_mutex_lock (&state->lock);
  wake_waiters_locked (state);
  g_mutex_unlock (&state->lock);
}

/* Runs the stop callbacks, each once, in the calling thread, oldest first.
 * Only the caller whose killable_stop_state_request() returned TRUE calls
 * this, exactly once (after the flag is set: an add_callback() that takes
 * cb_lock later sees it and runs its callback itself). One cb_lock hold per
 * callback: the hold that marks one callback done also takes the next. */
void
killable_stop_state_fire (KillableStopState *state,
                          KillableTask      *task)
{
  GThread *self = g_thread_self ();
  KillableStopCallback *cb;
  NodeChunk *chunks;
  gboolean wake = FALSE;

  cb_lock (state);

  while ((cb = state->head) != NULL)
    {
      state->head = cb->next;
      if (state->head != NULL)
        state->head->prev = NULL;
      else
        state->tail = NULL;
      state->running_id = cb->id;
      state->running_thread = self;
      cb_unlock (state);

      if (wake)
        wake_cb_waiters (state);

      /* @reason is immutable once requested: no lock needed to read it. */
      cb->func (task, state->reason, cb->user_data);
      stop_callback_notify (cb);

      cb_lock (state);
      state->running_id = 0;
      state->running_thread = NULL;
      /* Read under cb_lock: a waiter counts itself before it takes cb_lock
       * to look at running_id. */
      wake = g_atomic_int_get (&state->n_cb_waiters) > 0;
    }

  /* Every node has fired or was removed, and no add allocates any more
   * (the flag is set): the blocks go. */
  chunks = state->chunks;
  state->chunks = NULL;
  state->spare = NULL;
  cb_unlock (state);

  chunks_free (chunks);

  /* Written only by request() and here, both in the requesting thread:
   * read without the lock. */
  if (!state->firing)
    return;

  g_mutex_lock (&state->lock);
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

/* The cold path of add_callback, out of line. */
static G_GNUC_NO_INLINE void
run_at_once (KillableStopState *state,
             KillableTask      *task,
             KillableStopFunc   func,
             gpointer           user_data,
             GDestroyNotify     notify)
{
  /* Already stopped: run at once, here, as std::stop_callback does. */
  func (task, state->reason, user_data);
  if (notify != NULL)
    notify (user_data);
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

  cb_lock (state);

  if (G_UNLIKELY (killable_stop_state_is_requested (state)))
    {
      cb_unlock (state);
      run_at_once (state, task, func, user_data, notify);
      return 0;
    }

  /* The node a remove left behind, if any: add + remove pairs in a loop
   * then cost no allocation. Allocating under the lock otherwise runs no
   * user code. */
  cb = state->spare;
  if (G_LIKELY (cb != NULL))
    state->spare = cb->next;
  else
    cb = stop_callback_new_slow (state);

  cb->id = id = ++state->last_id;
  cb->func = func;
  cb->user_data = user_data;
  cb->notify = notify;
  cb->next = NULL;
  cb->prev = state->tail;
  if (state->tail != NULL)
    state->tail->next = cb;
  else
    state->head = cb;
  state->tail = cb;

  cb_unlock (state);

  return id;
}

void
killable_stop_state_remove_callback (KillableStopState *state,
                                     gulong             id)
{
  KillableStopCallback *found = NULL;
  KillableStopCallback *cb;
  GDestroyNotify notify = NULL;
  gpointer user_data = NULL;

  if (id == 0)
    return;

  cb_lock (state);

  /* Newest first: scoped callbacks are removed in reverse order. */
  for (cb = state->tail; cb != NULL; cb = cb->prev)
    {
      if (cb->id == id)
        {
          found = cb;
          unlink_locked (state, cb);
          break;
        }
      if (cb->id < id)
        break;    /* ids grow along the list: not there */
    }

  if (found != NULL)
    {
      notify = found->notify;
      user_data = found->user_data;
      found->next = state->spare;
      state->spare = found;
      cb_unlock (state);
    }
  else if (state->running_id == id && state->running_thread != g_thread_self ())
    {
      /* Running in another thread: wait until it returned, so the caller
       * may free what the callback uses. From inside the callback itself:
       * do not wait (that would deadlock); it is released once it
       * returns. Counted in n_cb_waiters before looking again under
       * cb_lock, so that fire() sees the count when it clears running_id;
       * the GMutex closes the gap between that look and the wait. */
      gboolean running;

      cb_unlock (state);
      g_mutex_lock (&state->lock);
      g_atomic_int_inc (&state->n_cb_waiters);
      for (;;)
        {
          cb_lock (state);
          running = state->running_id == id;
          cb_unlock (state);
          if (!running)
            break;
          wait_locked (state);
        }
      g_atomic_int_dec_and_test (&state->n_cb_waiters);
      g_mutex_unlock (&state->lock);
    }
  else
    cb_unlock (state);

  if (notify != NULL)
    notify (user_data);
}

/* Blocks until @end_time (monotonic) or a stop request, whichever comes
 * first. Returns FALSE when woken by the stop request. */
gboolean
killable_stop_state_sleep (KillableStopState *state,
                           gint64             end_time)
{
  gboolean stopped;

  g_mutex_lock (&state->lock);

  /* The deadline keeps running while paused: a sleep whose time passed
   * while paused returns as soon as the task is resumed. */
  for (;;)
    {
      int word = g_atomic_int_get (&state->requested);

      if (word & KILLABLE_STOP_FLAG_REQUESTED)
        break;
      if (word & KILLABLE_STOP_FLAG_PAUSED)
        wait_locked (state);
      else if (g_get_monotonic_time () >= end_time)
        break;
      else
        (void) wait_until_locked (state, end_time);
    }

  stopped = killable_stop_state_is_requested (state);

  g_mutex_unlock (&state->lock);

  return !stopped;
}

/* Sets (@paused TRUE) or clears KILLABLE_STOP_FLAG_PAUSED and wakes the
 * waits: the inline check() then calls the function, which blocks in
 * killable_stop_state_wait_paused(). A pause is refused once a stop was
 * requested (returns FALSE); otherwise returns TRUE. */
gboolean
killable_stop_state_set_paused (KillableStopState *state,
                                gboolean           paused)
{
  g_mutex_lock (&state->lock);

  if (killable_stop_state_is_requested (state))
    {
      g_mutex_unlock (&state->lock);
      return !paused;
    }

  if (paused && !killable_stop_state_is_paused (state))
    {
      g_atomic_int_or ((guint *) &state->requested, KILLABLE_STOP_FLAG_PAUSED);
      /* wait_fd()'s poll wakes and blocks on the condition instead. */
      if (state->wake_fd >= 0)
        {
          guint64 one = 1;

          while (write (state->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        }
    }
  else if (!paused && killable_stop_state_is_paused (state))
    {
      g_atomic_int_and ((guint *) &state->requested, ~(guint) KILLABLE_STOP_FLAG_PAUSED);
      if (state->wake_fd >= 0)
        {
          guint64 count;

          while (read (state->wake_fd, &count, sizeof count) < 0 && errno == EINTR)
            ;
        }
      wake_waiters_locked (state);
    }

  g_mutex_unlock (&state->lock);

  return TRUE;
}

/* Blocks while the task is paused and no stop is requested. Returns FALSE
 * if a stop was requested. */
gboolean
killable_stop_state_wait_paused (KillableStopState *state)
{
  if (G_UNLIKELY (killable_stop_state_is_paused (state)))
    {
      g_mutex_lock (&state->lock);
      while ((g_atomic_int_get (&state->requested) &
              (KILLABLE_STOP_FLAG_PAUSED | KILLABLE_STOP_FLAG_REQUESTED)) == KILLABLE_STOP_FLAG_PAUSED)
        wait_locked (state);
      g_mutex_unlock (&state->lock);
    }

  return !killable_stop_state_is_requested (state);
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
      state->wake_fd = eventfd (g_atomic_int_get (&state->requested) != 0 ? 1 : 0,
                               EFD_CLOEXEC | EFD_NONBLOCK);
    }
  fd = state->wake_fd;

  g_mutex_unlock (&state->lock);

  return fd;
}

/* Waits until @fd reports @condition, @end_time (monotonic; -1 = none)
 * passes, or a stop is requested; while paused it blocks on the condition
 * (a readiness seen while paused is looked at again after the resume; the
 * deadline keeps running). Returns FALSE on a stop request (nothing
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

      if (!killable_stop_state_wait_paused (state))
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

      /* Paused while in poll(): wait, then poll again. */
      if (killable_stop_state_is_paused (state))
        continue;

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
