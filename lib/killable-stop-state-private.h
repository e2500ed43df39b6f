/* killable-stop-state-private.h: the stop flag, its reason, stop callbacks
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>
#include <glib-object.h>

#include "killable-task.h"

G_BEGIN_DECLS

typedef struct _KillableStopLink     KillableStopLink;
typedef struct _KillableStopCallback KillableStopCallback;

/* A stop request flows one way: killable_stop_state_request() publishes the
 * flag and the reason and wakes sleepers (it may be called under the tree
 * lock, it never runs user code); killable_stop_state_fire() then runs the
 * stop callbacks in the requesting thread, outside every lock.
 */
/* The bits of KillableStopState.requested, the word that
 * killable_task_get_stop_flag() exposes: any bit set means "take the slow
 * path" to the inline killable_task_check(). */
#define KILLABLE_STOP_FLAG_REQUESTED 1   /* set once, never cleared */
#define KILLABLE_STOP_FLAG_PAUSED    2   /* set while paused (killable_stop_state_set_paused), cleared by a stop */

/* Where the registered callbacks are: the newest in a slot of the extra
 * block (KillableStopStateExtra.newest), the older ones in a list. Scoped
 * callbacks (added, then removed in the reverse order, std::stop_callback's
 * use) then only fill and empty the slot: no node, no link. An add that
 * finds the slot taken first moves the slot's callback to the list's end.
 *
 * The list: circular and doubly linked through a sentinel
 * (KillableStopStateExtra.callbacks, whose @id is always 0), so that
 * linking and unlinking take no branch. Ids grow from the oldest callback
 * (sentinel->next) to the newest of the list (sentinel->prev), and the
 * slot's, when it is taken, is above them all; 0 is never a callback's
 * id. */
struct _KillableStopLink
{
  KillableStopLink *prev;
  KillableStopLink *next;
  gulong            id;
};

/* A registered callback: a node of the intrusive list (no allocation for
 * the list itself), like the nodes of std::stop_callback. Nodes come from
 * blocks owned by the extra block (see killable-stop-state.c); a free node
 * waits on KillableStopStateExtra.spare, linked by @link.next. */
struct _KillableStopCallback
{
  KillableStopLink      link;            /* first: a list link is a node, except the sentinel */
  KillableStopFunc      func;
  gpointer              user_data;
  GDestroyNotify        notify;
};

/* A callback in the slot; @id is 0 when the slot is free. */
typedef struct
{
  gulong                id;
  KillableStopFunc      func;
  gpointer              user_data;
  GDestroyNotify        notify;
} KillableStopSlot;

/* What only a task that has stop callbacks, sleeps, waits on an fd or is
 * paused needs: allocated on first use (killable_stop_state_get_extra(),
 * under @cb_lock), published with an atomic store, freed only with the
 * state. A pending task that is only stopped never has one. The fields of
 * an add + remove pair come first. */
typedef struct
{
  KillableStopSlot      newest;          /* the newest callback, if its slot is taken; protected by the state's cb_lock */
  gulong                last_id;         /* protected by cb_lock */
  KillableStopLink      callbacks;       /* the sentinel (id 0) of the list of the older ones; protected by cb_lock */
  KillableStopCallback *spare;           /* (nullable) free nodes, linked by ->link.next, for the next adds; protected by cb_lock */
  gulong                running_id;      /* protected by cb_lock: the callback being run, 0 if none */
  GThread              *running_thread;  /* protected by cb_lock */
  gpointer              chunks;          /* (owned) (nullable) the node blocks (see stop-state.c); protected by cb_lock */
  GMutex                lock;
  GCond                 cond;            /* sleepers, remove_stop_callback() waiters, wait_fired() */
  guint                 n_waiters;       /* protected by @lock: threads in a wait on @cond */
  gboolean              firing;          /* protected by @lock: requested, callbacks not all run yet */
  int                   wake_fd;         /* (owned) eventfd for wait_fd(), -1 until needed; protected by @lock */
  int                   n_cb_waiters;    /* (atomic) remove_callback() calls waiting for a running callback */
} KillableStopStateExtra;

/* 24 bytes in every task. The reason is written once, under @cb_lock,
 * before the flag is set, and is immutable from then: whoever saw the
 * flag set reads it without a lock. (The lazy reason is the exception:
 * replaced once, by a compare-and-swap, with the reason it stands for, of
 * the same domain and code.) */
typedef struct
{
  int                     requested;     /* (atomic) KILLABLE_STOP_FLAG_* bits; first: the inline check reads it */
  /* A short spin lock (no user code, no wait under it; an allocation at
   * most): guards the publication of @reason and the flag, the allocation
   * of @extra, and the callbacks in @extra. An add + remove pair costs
   * two atomic instructions (std::stop_callback's cost six). */
  int                     cb_lock;       /* (atomic) 0 free, 1 held */
  GError                 *reason;        /* (owned) (nullable) see above */
  KillableStopStateExtra *extra;         /* (owned) (nullable) (atomic) see KillableStopStateExtra */
} KillableStopState;

/* For tests: whether the extra block was allocated. */
static inline gboolean
killable_stop_state_has_extra (KillableStopState *state)
{
  return g_atomic_pointer_get (&state->extra) != NULL;
}

void      killable_stop_state_init            (KillableStopState    *state);
void      killable_stop_state_clear           (KillableStopState    *state);

static inline gboolean
killable_stop_state_is_requested (KillableStopState *state)
{
  return (g_atomic_int_get (&state->requested) & KILLABLE_STOP_FLAG_REQUESTED) != 0;
}

/* Whether check() must look further than the flag (stopped or paused). */
static inline gboolean
killable_stop_state_needs_slow_path (KillableStopState *state)
{
  return g_atomic_int_get (&state->requested) != 0;
}

/* Whether KILLABLE_STOP_FLAG_PAUSED is set: check(), sleep() and wait_fd()
 * block. */
static inline gboolean
killable_stop_state_is_paused (KillableStopState *state)
{
  return (g_atomic_int_get (&state->requested) & KILLABLE_STOP_FLAG_PAUSED) != 0;
}

gboolean  killable_stop_state_set_paused      (KillableStopState    *state,
                                               gboolean              paused);
gboolean  killable_stop_state_wait_paused     (KillableStopState    *state);
gboolean  killable_stop_state_request         (KillableStopState    *state,
                                               const GError         *reason);

/* The lazy reason: passed as the @reason of killable_stop_state_request(),
 * it is stored as it is (not copied); it has the domain and code of the
 * reason it stands for (what peek_reason()'s readers look at), and the
 * reason itself is built by the builder given to
 * killable_stop_state_set_lazy() when something first reads more than
 * that (the callbacks, dup_reason()), published with a compare-and-swap.
 * Only a request that reaches the state of the task the reason is about
 * may use it: the builder is given that state. */
typedef GError *(*KillableStopLazyBuild) (KillableStopState *state);
extern GError killable_stop_state_lazy_reason;
void      killable_stop_state_set_lazy        (GQuark                domain,
                                               int                   code,
                                               KillableStopLazyBuild build);
GError   *killable_stop_state_build_lazy      (KillableStopState    *state);
void      killable_stop_state_fire            (KillableStopState    *state,
                                               KillableTask         *task);
GError   *killable_stop_state_dup_reason      (KillableStopState    *state);

/* Whether the stop request this thread made has callbacks to fire: only
 * for the thread whose killable_stop_state_request() returned TRUE, before
 * it calls killable_stop_state_fire() (it wrote @firing itself). */
static inline gboolean
killable_stop_state_has_callbacks_to_fire (KillableStopState *state)
{
  KillableStopStateExtra *extra = g_atomic_pointer_get (&state->extra);

  return extra != NULL && extra->firing;
}

/* The reason, without a copy or a lock: only once the flag was seen set.
 * Its domain and code are immutable from then until the state is cleared;
 * its message may be the lazy reason's (see killable_stop_state_lazy_reason):
 * read only the domain and code here, dup_reason() for the rest. */
static inline const GError *
killable_stop_state_peek_reason (KillableStopState *state)
{
  g_assert (killable_stop_state_is_requested (state));
  return g_atomic_pointer_get (&state->reason);
}
gboolean  killable_stop_state_reason_matches  (KillableStopState    *state,
                                               GQuark                domain,
                                               int                   code);
/* Stop callbacks: the common paths inline (scoped callbacks are added and
 * removed in loops, and a call per layer was most of a pair's cost), the
 * rest out of line. Called with @locked TRUE, the slow paths start with
 * cb_lock held (they release it); with FALSE, they take it. */
gulong    killable_stop_state_add_callback_slow    (KillableStopState *state,
                                                    KillableTask      *task,
                                                    KillableStopFunc   func,
                                                    gpointer           user_data,
                                                    GDestroyNotify     notify,
                                                    gboolean           locked);
void      killable_stop_state_remove_callback_slow (KillableStopState *state,
                                                    gulong             id,
                                                    gboolean           locked);

/* Registers @func, or runs it at once (and returns 0) if the stop was
 * already requested. The common path: an unstopped task whose slot is
 * free (the first callback after the extra block exists, or the callback
 * of a scope that ended): one atomic exchange, the id and the slot's
 * stores, one releasing store. */
static inline gulong
killable_stop_state_add_callback (KillableStopState *state,
                                  KillableTask      *task,
                                  KillableStopFunc   func,
                                  gpointer           user_data,
                                  GDestroyNotify     notify)
{
  KillableStopStateExtra *extra;
  gulong id;

  if (G_UNLIKELY (__atomic_exchange_n (&state->cb_lock, 1, __ATOMIC_ACQUIRE) != 0))
    return killable_stop_state_add_callback_slow (state, task, func, user_data, notify, FALSE);

  /* Read under cb_lock: it is published under cb_lock. */
  extra = state->extra;
  if (G_UNLIKELY (extra == NULL || extra->newest.id != 0 ||
                  (g_atomic_int_get (&state->requested) & KILLABLE_STOP_FLAG_REQUESTED) != 0))
    return killable_stop_state_add_callback_slow (state, task, func, user_data, notify, TRUE);

  extra->newest.id = id = ++extra->last_id;
  extra->newest.func = func;
  extra->newest.user_data = user_data;
  extra->newest.notify = notify;

  __atomic_store_n (&state->cb_lock, 0, __ATOMIC_RELEASE);

  return id;
}

/* Unregisters the callback @id (non-zero); see
 * killable_task_remove_stop_callback(). The common path: it is the newest
 * callback and no stop runs it (a stop takes it out of the slot first):
 * one atomic exchange, the slot emptied, one releasing store. */
static inline void
killable_stop_state_remove_callback (KillableStopState *state,
                                     gulong             id)
{
  KillableStopStateExtra *extra;
  GDestroyNotify notify;
  gpointer user_data;

  if (G_UNLIKELY (__atomic_exchange_n (&state->cb_lock, 1, __ATOMIC_ACQUIRE) != 0))
    {
      killable_stop_state_remove_callback_slow (state, id, FALSE);
      return;
    }

  extra = state->extra;
  if (G_UNLIKELY (extra == NULL || extra->newest.id != id))
    {
      killable_stop_state_remove_callback_slow (state, id, TRUE);
      return;
    }

  notify = extra->newest.notify;
  user_data = extra->newest.user_data;
  extra->newest.id = 0;

  __atomic_store_n (&state->cb_lock, 0, __ATOMIC_RELEASE);

  if (notify != NULL)
    notify (user_data);
}

gboolean  killable_stop_state_sleep           (KillableStopState    *state,
                                               gint64                end_time);
void      killable_stop_state_wait_fired      (KillableStopState    *state);
int       killable_stop_state_get_wake_fd     (KillableStopState    *state);
gboolean  killable_stop_state_wait_fd         (KillableStopState    *state,
                                               int                   fd,
                                               GIOCondition          condition,
                                               gint64                end_time,
                                               GIOCondition         *out,
                                               GError              **error);

G_END_DECLS
