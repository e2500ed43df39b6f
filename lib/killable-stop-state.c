/* killable-stop-state.c: the stop flag, its reason, stop callbacks
 *
 * Owns: a KillableStopState per task: the atomic flag, the reason, the
 * stop-callback list with its exact semantics, the wake-up of blocked
 * waits (sleep, wait_fd), and the pause of thread tasks (check, sleep and
 * wait_fd block while KILLABLE_STOP_FLAG_PAUSED is set; a stop clears it).
 * Memory: 24 bytes in each task (the flag, a spin lock, the reason, a
 * pointer); what only tasks with callbacks, sleeps, fd waits or pauses
 * need is in a KillableStopStateExtra allocated on first use, so that a
 * pending task that is only stopped never allocates it.
 * Callbacks: the newest in a slot of the extra block, the older ones in a
 * list of nodes cut from blocks (see killable-stop-state-private.h). The
 * common add and remove are inline in the private header (the public
 * functions of killable-task.c reach them without another call); what
 * they do not take (a contended lock, a stopped task, a taken slot, a
 * callback that is not the newest) is the out-of-line *_slow() here.
 * Locks: KillableStopState.cb_lock (a spin lock held for a few
 * instructions: the slot, list links, ids, an allocation at most) guards
 * the publication of the reason with the flag, the allocation of the
 * extra block, the slot, the callback list and which callback runs. The
 * extra block's lock (a GMutex) guards the wake-up fd (and its counter: a
 * pause writes it, a resume drains it), `firing`, the changes of the
 * paused bit and the condition variable's waits. The flag is atomic; the reason is immutable
 * once the flag is set. No user code runs under either lock (callbacks run
 * outside both, one at a time); the order is the extra's lock, then
 * cb_lock, never the reverse (remove_callback() drops cb_lock first).
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
#include "killable-text-private.h"

/* How often wait_fd() looks at the stop flag when it has no wake-up fd. */
#define WAIT_FD_SLICE_MS 50

/* GLib's g_cond_broadcast() makes a futex system call even when nobody
 * waits, and a stop of a large tree broadcasts several times per task: only
 * wake when a thread waits (@n_waiters, protected by the same lock). */
static void
wake_waiters_locked (KillableStopStateExtra *extra)
{
  if (extra->n_waiters > 0)
    g_cond_broadcast (&extra->cond);
}

static void
wait_locked (KillableStopStateExtra *extra)
{
  extra->n_waiters++;
  g_cond_wait (&extra->cond, &extra->lock);
  extra->n_waiters--;
}

static gboolean
wait_until_locked (KillableStopStateExtra *extra,
                   gint64                  end_time)
{
  gboolean ret;

  extra->n_waiters++;
  ret = g_cond_wait_until (&extra->cond, &extra->lock, end_time);
  extra->n_waiters--;

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
 * new block is cut into nodes at once, all on the @spare list; a removed
 * node goes back there. The blocks are freed once the callbacks have
 * fired, or with the state. */
typedef struct _NodeChunk NodeChunk;
struct _NodeChunk
{
  NodeChunk            *next;
  gsize                 size;
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

/* Called with cb_lock held: the extra block, allocated (no user code) on
 * first use. */
static G_GNUC_NO_INLINE KillableStopStateExtra *
extra_new_locked (KillableStopState *state)
{
  KillableStopStateExtra *extra = g_new0 (KillableStopStateExtra, 1);

  g_mutex_init (&extra->lock);
  g_cond_init (&extra->cond);
  extra->wake_fd = -1;
  extra->callbacks.prev = extra->callbacks.next = &extra->callbacks;
  g_atomic_pointer_set (&state->extra, extra);

  return extra;
}

static inline KillableStopStateExtra *
get_extra_locked (KillableStopState *state)
{
  KillableStopStateExtra *extra = state->extra;

  return G_LIKELY (extra != NULL) ? extra : extra_new_locked (state);
}

/* The extra block, allocated on first use. Takes cb_lock only the first
 * time; never call it with cb_lock held (use get_extra_locked()). */
static KillableStopStateExtra *
get_extra (KillableStopState *state)
{
  KillableStopStateExtra *extra = g_atomic_pointer_get (&state->extra);

  if (G_LIKELY (extra != NULL))
    return extra;

  cb_lock (state);
  extra = get_extra_locked (state);
  cb_unlock (state);

  return extra;
}

/* Called with cb_lock held and @spare empty; allocates (no user code) the
 * next block and cuts it into spare nodes. */
static G_GNUC_NO_INLINE void
spare_refill_locked (KillableStopStateExtra *extra)
{
  NodeChunk *chunk = extra->chunks;
  gsize size = chunk == NULL ? 1 : MIN (chunk->size * 2, CHUNK_MAX_NODES);
  NodeChunk *fresh = g_malloc (sizeof (NodeChunk) + size * sizeof (KillableStopCallback));
  KillableStopCallback *spare = NULL;

  fresh->next = chunk;
  fresh->size = size;
  extra->chunks = fresh;

  /* Handed out in address order. */
  for (gsize i = size; i-- > 0;)
    {
      fresh->nodes[i].link.next = (KillableStopLink *) spare;
      spare = &fresh->nodes[i];
    }
  extra->spare = spare;
}

static inline void
unlink_locked (KillableStopLink *link)
{
  link->prev->next = link->next;
  link->next->prev = link->prev;
}

/* The lazy reason (see the private header): its domain and code are set
 * once, by killable_stop_state_set_lazy(), before any task exists; its
 * message is never shown (resolve_reason() replaces it first). */
GError killable_stop_state_lazy_reason = { 0, 0, (char *) "" };
static KillableStopLazyBuild lazy_build;

void
killable_stop_state_set_lazy (GQuark                domain,
                              int                   code,
                              KillableStopLazyBuild build)
{
  killable_stop_state_lazy_reason.domain = domain;
  killable_stop_state_lazy_reason.code = code;
  lazy_build = build;
}

/* The reason the lazy reason stands for, for @state's task (new). */
GError *
killable_stop_state_build_lazy (KillableStopState *state)
{
  return lazy_build (state);
}

/* The reason, the lazy one built and published first (once: a thread that
 * loses the race frees its copy and reads the winner's). Only once the
 * flag was seen set. */
static const GError *
resolve_reason (KillableStopState *state)
{
  GError *reason = g_atomic_pointer_get (&state->reason);
  GError *built;

  if (reason != &killable_stop_state_lazy_reason)
    return reason;

  built = lazy_build (state);
  if (g_atomic_pointer_compare_and_exchange (&state->reason, reason, built))
    return built;
  g_error_free (built);

  return g_atomic_pointer_get (&state->reason);
}

void
killable_stop_state_init (KillableStopState *state)
{
  state->requested = 0;
  state->cb_lock = 0;
  state->reason = NULL;
  state->extra = NULL;
}

void
killable_stop_state_clear (KillableStopState *state)
{
  KillableStopStateExtra *extra = state->extra;

  if (state->reason == &killable_stop_state_lazy_reason)
    state->reason = NULL;
  g_clear_error (&state->reason);
  if (extra == NULL)
    return;

  /* Nobody else can reach the state any more: callbacks that were never
   * fired are only released. */
  for (KillableStopLink *link = extra->callbacks.next; link != &extra->callbacks; link = link->next)
    stop_callback_notify ((KillableStopCallback *) link);
  if (extra->newest.id != 0 && extra->newest.notify != NULL)
    extra->newest.notify (extra->newest.user_data);
  chunks_free (extra->chunks);

  if (extra->wake_fd >= 0)
    close (extra->wake_fd);
  g_cond_clear (&extra->cond);
  g_mutex_clear (&extra->lock);
  g_free (extra);
  state->extra = NULL;
}

/* Publishes the request: the reason first, then the flag, then wakes every
 * sleeper. Runs no user code, so it may be called under the tree lock.
 * Returns TRUE for the one call that made the request. Without an extra
 * block (nobody sleeps, waits or registered a callback: a pending task in
 * a big tree), it costs the reason's copy and one spin-lock hold. */
KILLABLE_STOP_PATH gboolean
killable_stop_state_request (KillableStopState *state,
                             const GError      *reason)
{
  GError *copy;
  KillableStopStateExtra *extra;

  if (killable_stop_state_is_requested (state))
    return FALSE;

  /* Copied outside the spin lock; dropped if another request won. The
   * lazy reason is stored as it is. */
  if (reason == &killable_stop_state_lazy_reason)
    copy = (GError *) reason;
  else
    copy = reason != NULL ? g_error_copy (reason) : NULL;

  for (;;)
    {
      extra = g_atomic_pointer_get (&state->extra);
      if (extra != NULL)
        g_mutex_lock (&extra->lock);
      cb_lock (state);
      /* Allocated meanwhile (under cb_lock): take its lock first. */
      if (extra != NULL || state->extra == NULL)
        break;
      cb_unlock (state);
    }

  if (killable_stop_state_is_requested (state))
    {
      cb_unlock (state);
      if (extra != NULL)
        g_mutex_unlock (&extra->lock);
      if (copy != &killable_stop_state_lazy_reason)
        g_clear_error (&copy);
      return FALSE;
    }

  state->reason = copy;
  /* Set before the flag is visible: the worker may wake at once, and must
   * not end the task while the callbacks of this stop still run. Only
   * callbacks registered before the flag is set fire (an add that takes
   * cb_lock later runs its own): with none, nothing is to be waited for,
   * and fire() takes no lock. */
  if (extra != NULL)
    extra->firing = extra->newest.id != 0 || extra->callbacks.next != &extra->callbacks;
  g_atomic_int_or ((guint *) &state->requested, KILLABLE_STOP_FLAG_REQUESTED);
  /* A stop lifts a pause (the word stays non-zero in between); the
   * wake-up fd stays readable, now for the stop. */
  g_atomic_int_and ((guint *) &state->requested, ~(guint) KILLABLE_STOP_FLAG_PAUSED);
  cb_unlock (state);

  if (extra != NULL)
    {
      wake_waiters_locked (extra);
      if (extra->wake_fd >= 0)
        {
          guint64 one = 1;

          while (write (extra->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        }
      g_mutex_unlock (&extra->lock);
    }

  return TRUE;
}

/* Wakes remove_callback() calls waiting for the callback that just
 * returned. */
static G_GNUC_NO_INLINE void
wake_cb_waiters (KillableStopStateExtra *extra)
{
  g_mutex_lock (&extra->lock);
  wake_waiters_locked (extra);
  g_mutex_unlock (&extra->lock);
}

/* Runs the stop callbacks, each once, in the calling thread, oldest first.
 * Only the caller whose killable_stop_state_request() returned TRUE calls
 * this, exactly once (after the flag is set: an add_callback() that takes
 * cb_lock later sees it and runs its callback itself). One cb_lock hold per
 * callback: the hold that marks one callback done also takes the next. */
KILLABLE_STOP_PATH void
killable_stop_state_fire (KillableStopState *state,
                          KillableTask      *task)
{
  KillableStopStateExtra *extra = g_atomic_pointer_get (&state->extra);
  GThread *self;
  KillableStopCallback *cb;
  KillableStopCallback slot_copy;
  NodeChunk *chunks;
  gboolean wake = FALSE;

  /* No extra block when the flag was set: no callback was registered
   * then, and one added from then on ran at once in its adding thread. */
  if (extra == NULL)
    return;

  self = g_thread_self ();
  cb_lock (state);

  /* Oldest first: the list, then the slot (the newest). Each is taken
   * out under cb_lock (an unlinked node is not reused before the blocks
   * are freed, below; the slot is copied), so that a remove_callback()
   * meanwhile sees it running, not registered. */
  for (;;)
    {
      if (extra->callbacks.next != &extra->callbacks)
        {
          cb = (KillableStopCallback *) extra->callbacks.next;
          unlink_locked (&cb->link);
        }
      else if (extra->newest.id != 0)
        {
          cb = &slot_copy;
          cb->link.id = extra->newest.id;
          cb->func = extra->newest.func;
          cb->user_data = extra->newest.user_data;
          cb->notify = extra->newest.notify;
          extra->newest.id = 0;
        }
      else
        break;

      extra->running_id = cb->link.id;
      extra->running_thread = self;
      cb_unlock (state);

      if (wake)
        wake_cb_waiters (extra);

      /* @reason is immutable once requested (built once if lazy): no lock
       * needed to read it. */
      cb->func (task, resolve_reason (state), cb->user_data);
      stop_callback_notify (cb);

      cb_lock (state);
      extra->running_id = 0;
      extra->running_thread = NULL;
      /* Read under cb_lock: a waiter counts itself before it takes cb_lock
       * to look at running_id. */
      wake = g_atomic_int_get (&extra->n_cb_waiters) > 0;
    }

  /* Every node has fired or was removed, and no add allocates any more
   * (the flag is set): the blocks go. */
  chunks = extra->chunks;
  extra->chunks = NULL;
  extra->spare = NULL;
  cb_unlock (state);

  chunks_free (chunks);

  /* Written only by request() and here, both in the requesting thread:
   * read without the lock. */
  if (!extra->firing)
    return;

  g_mutex_lock (&extra->lock);
  extra->firing = FALSE;
  wake_waiters_locked (extra);
  g_mutex_unlock (&extra->lock);
}

/* Waits until the callbacks of the stop request, if any, have all returned:
 * a task does not end (cleanups, terminal state) while a stop callback may
 * still use what the cleanups free. */
void
killable_stop_state_wait_fired (KillableStopState *state)
{
  KillableStopStateExtra *extra = g_atomic_pointer_get (&state->extra);

  /* No block: no callback to fire (firing is only set in a block that
   * existed, with callbacks, when the flag was set). */
  if (extra == NULL)
    return;

  g_mutex_lock (&extra->lock);
  while (extra->firing)
    wait_locked (extra);
  g_mutex_unlock (&extra->lock);
}

/* The reason is written before the flag and immutable once it is set
 * (built once if lazy): no lock. */
GError *
killable_stop_state_dup_reason (KillableStopState *state)
{
  const GError *reason;

  if (!killable_stop_state_is_requested (state) ||
      (reason = resolve_reason (state)) == NULL)
    return NULL;

  return g_error_copy (reason);
}

gboolean
killable_stop_state_reason_matches (KillableStopState *state,
                                    GQuark             domain,
                                    int                code)
{
  /* The lazy reason has the domain and code of the one it stands for. */
  return killable_stop_state_is_requested (state) &&
         g_error_matches (g_atomic_pointer_get (&state->reason), domain, code);
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
  func (task, resolve_reason (state), user_data);
  if (notify != NULL)
    notify (user_data);
}

/* The whole add, for what the inline path does not take: a contended
 * cb_lock, a stopped task, the first callback (no extra block yet), a
 * taken slot (its callback moves to a node of the list; a block of nodes
 * is allocated under the lock when none is spare: no user code runs
 * there). */
gulong
killable_stop_state_add_callback_slow (KillableStopState *state,
                                       KillableTask      *task,
                                       KillableStopFunc   func,
                                       gpointer           user_data,
                                       GDestroyNotify     notify,
                                       gboolean           locked)
{
  KillableStopStateExtra *extra;
  gulong id;

  if (!locked)
    cb_lock (state);

  if (G_UNLIKELY (killable_stop_state_is_requested (state)))
    {
      cb_unlock (state);
      run_at_once (state, task, func, user_data, notify);
      return 0;
    }

  extra = get_extra_locked (state);

  /* The slot is taken: its callback, older than this one, goes to the
   * list's end (a node: allocated under the lock, no user code). */
  if (extra->newest.id != 0)
    {
      KillableStopCallback *cb;
      KillableStopLink *tail = extra->callbacks.prev;

      if (extra->spare == NULL)
        spare_refill_locked (extra);
      cb = extra->spare;
      extra->spare = (KillableStopCallback *) cb->link.next;
      cb->link.id = extra->newest.id;
      cb->func = extra->newest.func;
      cb->user_data = extra->newest.user_data;
      cb->notify = extra->newest.notify;
      cb->link.prev = tail;
      cb->link.next = &extra->callbacks;
      tail->next = &cb->link;
      extra->callbacks.prev = &cb->link;
    }

  extra->newest.id = id = ++extra->last_id;
  extra->newest.func = func;
  extra->newest.user_data = user_data;
  extra->newest.notify = notify;

  cb_unlock (state);

  return id;
}

/* The whole remove, for what the inline path does not take: a contended
 * cb_lock, a callback that is not the newest, one that runs or ran, an
 * unknown id. */
void
killable_stop_state_remove_callback_slow (KillableStopState *state,
                                          gulong             id,
                                          gboolean           locked)
{
  KillableStopStateExtra *extra;
  KillableStopLink *link;
  GDestroyNotify notify = NULL;
  gpointer user_data = NULL;

  if (id == 0)
    {
      if (locked)
        cb_unlock (state);
      return;
    }

  if (!locked)
    cb_lock (state);

  /* No block: no callback was ever added. */
  extra = state->extra;
  if (extra == NULL)
    {
      cb_unlock (state);
      return;
    }

  /* The slot: the inline path takes it when it got cb_lock at once. */
  if (extra->newest.id == id)
    {
      notify = extra->newest.notify;
      user_data = extra->newest.user_data;
      extra->newest.id = 0;
      cb_unlock (state);
      goto out;
    }

  /* Then the list, newest first: scoped callbacks are removed in reverse
   * order. Ids grow along the list and the sentinel's is 0 (never a
   * callback's): the walk stops at @id's place, at the latest on the
   * sentinel. */
  for (link = extra->callbacks.prev; link->id > id; link = link->prev)
    ;

  if (link->id == id)
    {
      KillableStopCallback *found = (KillableStopCallback *) link;

      unlink_locked (link);
      notify = found->notify;
      user_data = found->user_data;
      link->next = (KillableStopLink *) extra->spare;
      extra->spare = found;
      cb_unlock (state);
    }
  else if (extra->running_id == id && extra->running_thread != g_thread_self ())
    {
      /* Running in another thread: wait until it returned, so the caller
       * may free what the callback uses. From inside the callback itself:
       * do not wait (that would deadlock); it is released once it
       * returns. Counted in n_cb_waiters before looking again under
       * cb_lock, so that fire() sees the count when it clears running_id;
       * the GMutex closes the gap between that look and the wait. */
      gboolean running;

      cb_unlock (state);
      g_mutex_lock (&extra->lock);
      g_atomic_int_inc (&extra->n_cb_waiters);
      for (;;)
        {
          cb_lock (state);
          running = extra->running_id == id;
          cb_unlock (state);
          if (!running)
            break;
          wait_locked (extra);
        }
      g_atomic_int_dec_and_test (&extra->n_cb_waiters);
      g_mutex_unlock (&extra->lock);
    }
  else
    cb_unlock (state);

out:
  if (notify != NULL)
    notify (user_data);
}

/* Blocks until @end_time (monotonic) or a stop request, whichever comes
 * first. Returns FALSE when woken by the stop request. */
gboolean
killable_stop_state_sleep (KillableStopState *state,
                           gint64             end_time)
{
  KillableStopStateExtra *extra;
  gboolean stopped;

  if (killable_stop_state_is_requested (state))
    return FALSE;

  /* Allocated (under cb_lock) before the flag is read under its lock: a
   * request either saw it and wakes this wait, or set the flag first. */
  extra = get_extra (state);
  g_mutex_lock (&extra->lock);

  /* The deadline keeps running while paused: a sleep whose time passed
   * while paused returns as soon as the task is resumed. */
  for (;;)
    {
      int word = g_atomic_int_get (&state->requested);

      if (word & KILLABLE_STOP_FLAG_REQUESTED)
        break;
      if (word & KILLABLE_STOP_FLAG_PAUSED)
        wait_locked (extra);
      else if (g_get_monotonic_time () >= end_time)
        break;
      else
        (void) wait_until_locked (extra, end_time);
    }

  stopped = killable_stop_state_is_requested (state);

  g_mutex_unlock (&extra->lock);

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
  KillableStopStateExtra *extra = get_extra (state);

  g_mutex_lock (&extra->lock);

  if (killable_stop_state_is_requested (state))
    {
      g_mutex_unlock (&extra->lock);
      return !paused;
    }

  if (paused && !killable_stop_state_is_paused (state))
    {
      g_atomic_int_or ((guint *) &state->requested, KILLABLE_STOP_FLAG_PAUSED);
      /* wait_fd()'s poll wakes and blocks on the condition instead. */
      if (extra->wake_fd >= 0)
        {
          guint64 one = 1;

          while (write (extra->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        }
    }
  else if (!paused && killable_stop_state_is_paused (state))
    {
      g_atomic_int_and ((guint *) &state->requested, ~(guint) KILLABLE_STOP_FLAG_PAUSED);
      if (extra->wake_fd >= 0)
        {
          guint64 count;

          while (read (extra->wake_fd, &count, sizeof count) < 0 && errno == EINTR)
            ;
        }
      wake_waiters_locked (extra);
    }

  g_mutex_unlock (&extra->lock);

  return TRUE;
}

/* Blocks while the task is paused and no stop is requested. Returns FALSE
 * if a stop was requested. */
gboolean
killable_stop_state_wait_paused (KillableStopState *state)
{
  if (G_UNLIKELY (killable_stop_state_is_paused (state)))
    {
      /* Paused: set_paused() allocated the block. */
      KillableStopStateExtra *extra = get_extra (state);

      g_mutex_lock (&extra->lock);
      while ((g_atomic_int_get (&state->requested) &
              (KILLABLE_STOP_FLAG_PAUSED | KILLABLE_STOP_FLAG_REQUESTED)) == KILLABLE_STOP_FLAG_PAUSED)
        wait_locked (extra);
      g_mutex_unlock (&extra->lock);
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
  KillableStopStateExtra *extra = get_extra (state);
  int fd;

  g_mutex_lock (&extra->lock);

  if (extra->wake_fd < 0)
    {
      extra->wake_fd = eventfd (g_atomic_int_get (&state->requested) != 0 ? 1 : 0,
                               EFD_CLOEXEC | EFD_NONBLOCK);
    }
  fd = extra->wake_fd;

  g_mutex_unlock (&extra->lock);

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
