/* killable-timer.c: the library's timer thread and its dispatchers
 *
 * Owns: the armed timers (a binary min-heap by ready time), the run queue
 * of due timers, the timer thread (started on first use) and the count of
 * dispatchers. Everything timed in the library (timeouts, grace periods,
 * interrupt repeats, deferred disposal) is a KillableTimer.
 * Locks: timer_lock guards the heap, the run queue, every timer's mutable
 * fields and the thread/dispatcher counts. It is a leaf lock: no timer
 * function, notify or other library lock is called with it held (the
 * worker pool is called without it).
 * Called by: killable-escalation.c, killable-tree.c, killable-fork.c.
 * Calls: killable-worker-pool.c only (threads, and the fork section gate
 * around each timer function).
 *
 * The timer thread only keeps time: a due timer goes to the run queue, and
 * dispatchers (threads of the worker pool) run the functions. So a function
 * that blocks (a Python stop callback waiting for the GIL, a rung that runs
 * Python code, a dispose waiting for the tree lock) never delays another
 * task's timer: when the head of the run queue has waited STALL_USEC, the
 * timer thread starts one more dispatcher (at most one per STALL_USEC).
 * A burst of quick timers is still run by one dispatcher.
 *
 * Nothing here aborts under exhaustion: no fd is needed (a GCond, not a
 * GMainContext with its wake-up pipe), the timer thread is created with
 * g_thread_try_new() and retried at the next killable_timer_add() when it
 * could not be (a warning says the timers are late meanwhile), and the
 * timer thread runs a due function itself when no dispatcher can be
 * created.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <string.h>

#include "killable-timer-private.h"
#include "killable-worker-pool-private.h"

/* How long the head of the run queue may wait for a busy dispatcher
 * before another dispatcher is started. */
#define STALL_USEC   (5 * G_TIME_SPAN_MILLISECOND)

/* Ready times beyond this are "never": no deadline computation wraps. */
#define NEVER_AFTER  (G_MAXINT64 / 2)

typedef enum
{
  TIMER_ARMED,     /* in the heap */
  TIMER_QUEUED,    /* due, in the run queue */
  TIMER_RUNNING,   /* its function runs on a dispatcher */
  TIMER_DONE,      /* will never run again; notify ran or runs now */
} TimerState;

struct _KillableTimer
{
  gint               ref_count;     /* atomic */
  KillableTimerFunc  func;          /* immutable */
  gpointer           data;          /* immutable */
  GDestroyNotify     notify;        /* immutable */

  /* Protected by timer_lock. While ARMED, QUEUED or RUNNING the timer
   * holds a reference on itself, dropped when it becomes DONE. */
  gint64             ready_time;
  guint              heap_index;
  TimerState         state;
  gboolean           cancelled;
  gint64             queued_time;
  GList              link;          /* in run_queue while QUEUED */
};

static GMutex timer_lock;
static GCond timer_cond;                     /* the timer thread waits on it */
static GPtrArray *heap;                      /* (element-type KillableTimer) min-heap */
static GQueue run_queue = G_QUEUE_INIT;      /* due timers, oldest first */
static gboolean thread_running;
static gboolean thread_warned;               /* warned since the last success */
static gboolean dispatch_warned;
static guint n_dispatchers;                  /* started and not yet back to the pool */
static gint64 last_spawn;
static GPrivate current_timer;

/* The heap {{{ */

static gboolean
heap_less (guint a,
           guint b)
{
  return ((KillableTimer *) heap->pdata[a])->ready_time <
         ((KillableTimer *) heap->pdata[b])->ready_time;
}

static void
heap_swap (guint a,
           guint b)
{
  gpointer t = heap->pdata[a];

  heap->pdata[a] = heap->pdata[b];
  heap->pdata[b] = t;
  ((KillableTimer *) heap->pdata[a])->heap_index = a;
  ((KillableTimer *) heap->pdata[b])->heap_index = b;
}

static void
heap_up (guint i)
{
  while (i > 0 && heap_less (i, (i - 1) / 2))
    {
      heap_swap (i, (i - 1) / 2);
      i = (i - 1) / 2;
    }
}

static void
heap_down (guint i)
{
  for (;;)
    {
      guint smallest = i, l = 2 * i + 1, r = 2 * i + 2;

      if (l < heap->len && heap_less (l, smallest))
        smallest = l;
      if (r < heap->len && heap_less (r, smallest))
        smallest = r;
      if (smallest == i)
        return;
      heap_swap (i, smallest);
      i = smallest;
    }
}

/* Returns whether @timer became the earliest (the thread must look again). */
static gboolean
heap_insert_locked (KillableTimer *timer)
{
  if (heap == NULL)
    heap = g_ptr_array_new ();

  timer->state = TIMER_ARMED;
  timer->heap_index = heap->len;
  g_ptr_array_add (heap, timer);
  heap_up (timer->heap_index);

  return timer->heap_index == 0;
}

static void
heap_remove_locked (KillableTimer *timer)
{
  guint i = timer->heap_index;
  guint last = heap->len - 1;

  if (i != last)
    {
      heap_swap (i, last);
      g_ptr_array_set_size (heap, last);
      heap_down (i);
      heap_up (i);
    }
  else
    g_ptr_array_set_size (heap, last);
}

/* }}} */

/* Running a timer's function {{{ */

static void
timer_done (KillableTimer *timer)
{
  if (timer->notify != NULL)
    timer->notify (timer->data);
  killable_timer_unref (timer);
}

/* Called with timer_lock held, @timer QUEUED and unlinked; returns with
 * timer_lock held. */
static void
run_locked (KillableTimer *timer)
{
  gboolean again;

  timer->state = TIMER_RUNNING;
  g_mutex_unlock (&timer_lock);

  /* A fork waits until the function and its notify are done (their GObject
   * calls take GLib's global locks). */
  killable_worker_pool_section_enter ();
  g_private_set (&current_timer, timer);
  again = timer->func (timer->data);
  g_private_set (&current_timer, NULL);

  g_mutex_lock (&timer_lock);
  if (again && !timer->cancelled)
    {
      if (heap_insert_locked (timer))
        g_cond_signal (&timer_cond);
      killable_worker_pool_section_leave ();
      return;
    }

  timer->state = TIMER_DONE;
  g_mutex_unlock (&timer_lock);
  timer_done (timer);
  killable_worker_pool_section_leave ();
  g_mutex_lock (&timer_lock);
}

/* A dispatcher: runs due timers until none is left, then goes back to the
 * worker pool. */
static void
dispatcher_run (gpointer unused1,
                gpointer unused2)
{
  GList *link;

  g_mutex_lock (&timer_lock);
  while ((link = g_queue_pop_head_link (&run_queue)) != NULL)
    run_locked (link->data);
  n_dispatchers--;
  g_mutex_unlock (&timer_lock);
}

/* Called on the timer thread with timer_lock held. */
static void
start_dispatcher_locked (gint64 now)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  n_dispatchers++;
  last_spawn = now;
  g_mutex_unlock (&timer_lock);
  ok = killable_worker_pool_run (dispatcher_run, NULL, &error);
  g_mutex_lock (&timer_lock);

  if (ok)
    {
      dispatch_warned = FALSE;
      return;
    }

  /* No thread left: the timer thread runs the oldest due timer itself
   * (late timers rather than none). */
  n_dispatchers--;
  if (!dispatch_warned)
    {
      dispatch_warned = TRUE;
      g_warning ("libkillable: could not start a thread to run due timers (%s); "
                 "the timer thread runs them itself, so some may be late",
                 error->message);
    }

  if (run_queue.head != NULL)
    {
      GList *link = g_queue_pop_head_link (&run_queue);

      run_locked (link->data);
    }
}

/* }}} */

/* The timer thread {{{ */

static gpointer
timer_thread_main (gpointer unused)
{
  g_mutex_lock (&timer_lock);

  for (;;)
    {
      gint64 now = g_get_monotonic_time ();
      gint64 wake = G_MAXINT64;

      while (heap != NULL && heap->len > 0 &&
             ((KillableTimer *) heap->pdata[0])->ready_time <= now)
        {
          KillableTimer *timer = heap->pdata[0];

          heap_remove_locked (timer);
          timer->state = TIMER_QUEUED;
          timer->queued_time = now;
          timer->link.data = timer;
          g_queue_push_tail_link (&run_queue, &timer->link);
        }

      if (run_queue.head != NULL)
        {
          KillableTimer *head = run_queue.head->data;
          gint64 since = MAX (head->queued_time, last_spawn);

          if (n_dispatchers == 0 || now - since >= STALL_USEC)
            {
              start_dispatcher_locked (now);
              continue;
            }
          wake = since + STALL_USEC;
        }

      if (heap != NULL && heap->len > 0)
        {
          gint64 ready = ((KillableTimer *) heap->pdata[0])->ready_time;

          if (ready <= NEVER_AFTER)
            wake = MIN (wake, ready);
        }

      if (wake == G_MAXINT64)
        g_cond_wait (&timer_cond, &timer_lock);
      else
        g_cond_wait_until (&timer_cond, &timer_lock, wake);
    }

  g_assert_not_reached ();
  return NULL;
}

/* Called with timer_lock held. */
static void
ensure_thread_locked (void)
{
  g_autoptr(GError) error = NULL;
  GThread *thread;

  if (thread_running)
    return;

  thread = g_thread_try_new ("killable-timer", timer_thread_main, NULL, &error);
  if (thread == NULL)
    {
      if (!thread_warned)
        {
          thread_warned = TRUE;
          g_warning ("libkillable: could not start the timer thread (%s); timeouts and "
                     "grace periods are late until a later call can start it",
                     error->message);
        }
      return;
    }

  g_thread_unref (thread);
  thread_running = TRUE;
  thread_warned = FALSE;
}

/* }}} */

/* API {{{ */

KillableTimer *
killable_timer_add (gint64             ready_time,
                    KillableTimerFunc  func,
                    gpointer           data,
                    GDestroyNotify     notify)
{
  KillableTimer *timer = g_new0 (KillableTimer, 1);

  timer->ref_count = 2;   /* the caller's, and the armed timer's own */
  timer->func = func;
  timer->data = data;
  timer->notify = notify;
  timer->ready_time = MAX (ready_time, 0);

  g_mutex_lock (&timer_lock);
  ensure_thread_locked ();
  if (heap_insert_locked (timer))
    g_cond_signal (&timer_cond);
  g_mutex_unlock (&timer_lock);

  return timer;
}

KillableTimer *
killable_timer_ref (KillableTimer *timer)
{
  g_atomic_int_inc (&timer->ref_count);
  return timer;
}

void
killable_timer_unref (KillableTimer *timer)
{
  if (g_atomic_int_dec_and_test (&timer->ref_count))
    g_free (timer);
}

KillableTimer *
killable_timer_current (void)
{
  return g_private_get (&current_timer);
}

void
killable_timer_set_ready_time (KillableTimer *timer,
                               gint64         ready_time)
{
  g_mutex_lock (&timer_lock);
  timer->ready_time = MAX (ready_time, 0);
  g_mutex_unlock (&timer_lock);
}

void
killable_timer_cancel (KillableTimer *timer)
{
  gboolean done = FALSE;

  g_mutex_lock (&timer_lock);
  timer->cancelled = TRUE;
  if (timer->state == TIMER_ARMED)
    {
      heap_remove_locked (timer);
      done = TRUE;
    }
  else if (timer->state == TIMER_QUEUED)
    {
      g_queue_unlink (&run_queue, &timer->link);
      done = TRUE;
    }
  if (done)
    timer->state = TIMER_DONE;
  g_mutex_unlock (&timer_lock);

  /* A RUNNING timer becomes DONE when its function returns. */
  if (done)
    timer_done (timer);
}

void
killable_timer_clear (KillableTimer **timer)
{
  KillableTimer *t = g_steal_pointer (timer);

  if (t != NULL)
    {
      killable_timer_cancel (t);
      killable_timer_unref (t);
    }
}

guint
killable_timer_get_n_dispatchers (void)
{
  guint ret;

  g_mutex_lock (&timer_lock);
  ret = n_dispatchers;
  g_mutex_unlock (&timer_lock);

  return ret;
}

/* }}} */

/* fork() {{{ */

void
killable_timer_fork_prepare (void)
{
  g_mutex_lock (&timer_lock);
}

void
killable_timer_fork_parent (void)
{
  g_mutex_unlock (&timer_lock);
}

/* In the child only the forking thread exists: no timer thread, no
 * dispatcher. The tasks that were running are not running here (their
 * workers are gone), so their timers are forgotten rather than fired (a
 * function could wait for a lock a vanished thread held): they are marked
 * DONE and leaked, never notified. New timers start a new thread. */
void
killable_timer_fork_child (void)
{
  GList *l;

  if (heap != NULL)
    {
      for (guint i = 0; i < heap->len; i++)
        ((KillableTimer *) heap->pdata[i])->state = TIMER_DONE;
      g_ptr_array_set_size (heap, 0);
    }
  for (l = run_queue.head; l != NULL; l = l->next)
    ((KillableTimer *) l->data)->state = TIMER_DONE;
  memset (&run_queue, 0, sizeof run_queue);

  thread_running = FALSE;
  thread_warned = FALSE;
  dispatch_warned = FALSE;
  n_dispatchers = 0;
  last_spawn = 0;
  /* Its waiter (the timer thread) is gone: start again from a fresh one. */
  memset (&timer_cond, 0, sizeof timer_cond);

  g_mutex_unlock (&timer_lock);
}

/* }}} */
