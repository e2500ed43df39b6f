/* killable-worker-pool.c: the process-wide cache of idle threads
 *
 * Owns: the idle workers and the thread count; the section gate of fork()
 * (killable-fork.c): how many library threads are inside a section.
 * Locks: pool_lock guards the idle workers, the count, each worker's
 * sleeping flag and the hand-over of a job (the job word is also atomic);
 * gate_lock the gate's waits (its counters are atomics). Leaf
 * locks.
 * Called by: killable-task.c (a task's work, its end as a section),
 * killable-timer.c (timer dispatchers, each timer function a section),
 * killable-fork.c (fork handlers). Calls nothing of the
 * library.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <string.h>

#include "killable-worker-pool-private.h"

/* Each job gets a thread of its own at once: an idle cached thread if there
 * is one, a new one otherwise. There is deliberately no queue, so a parent
 * task that waits for its children can never starve them (the livelock of a
 * bounded pool). A thread that stays idle for idle_timeout exits.
 */

typedef struct
{
  GCond     cond;
  GFunc     func;     /* (atomic) set (after @data) by a dispatcher under pool_lock; NULL while idle */
  gpointer  data;
  gboolean  sleeping; /* protected by pool_lock: waits on @cond (else it runs, or is about to wait) */
  GList     link;     /* in idle_workers while idle */
  GFunc     after;    /* worker thread only: killable_worker_pool_after_job() */
  gpointer  after_data;
} Worker;

static __thread Worker *current_worker;

static GMutex pool_lock;
static GQueue idle_workers = G_QUEUE_INIT;    /* most recently idle first */
static guint n_threads;                       /* protected by pool_lock */
static gint64 idle_timeout = 15 * G_USEC_PER_SEC;

/* Waits for the next job of @worker: FALSE when it idled for too long and
 * must exit (it is then freed). */
static gboolean
wait_for_job (Worker *worker)
{
  gint64 idle_since;

  GFunc after = worker->after;

  g_mutex_lock (&pool_lock);
  g_queue_push_head_link (&idle_workers, &worker->link);
  g_mutex_unlock (&pool_lock);

  /* Idle from here on: what the job asked to run after it (a limiter
   * permit given back) can hand a job to this very thread. */
  if (after != NULL)
    {
      gpointer after_data = worker->after_data;

      worker->after = NULL;
      worker->after_data = NULL;
      after (after_data, NULL);
    }

  g_mutex_lock (&pool_lock);
  idle_since = g_get_monotonic_time ();
  worker->sleeping = TRUE;

  /* idle_timeout is read on each wake-up, so a new value applies at once */
  while (worker->func == NULL)
    {
      if (!g_cond_wait_until (&worker->cond, &pool_lock, idle_since + idle_timeout))
        break;
    }
  worker->sleeping = FALSE;

  if (worker->func == NULL)
    {
      /* Idle for too long: leave. Still in the queue, since only a
       * dispatcher handing over a job unlinks a worker. */
      g_queue_unlink (&idle_workers, &worker->link);
      n_threads--;
      g_mutex_unlock (&pool_lock);
      g_cond_clear (&worker->cond);
      g_free (worker);
      return FALSE;
    }

  g_mutex_unlock (&pool_lock);

  return TRUE;
}

static gpointer
worker_main (gpointer user_data)
{
  Worker *worker = user_data;

  current_worker = worker;

  do
    {
      /* Handed over by a dispatcher that unlinked this worker: nobody else
       * touches the job fields until this worker is idle again. */
      GFunc func = g_atomic_pointer_get (&worker->func);
      gpointer data = worker->data;

      worker->data = NULL;
      g_atomic_pointer_set (&worker->func, NULL);

      func (data, NULL);
    }
  while (wait_for_job (worker));

  return NULL;
}

gboolean
killable_worker_pool_run (GFunc     func,
                          gpointer  data,
                          GError  **error)
{
  GList *link;
  Worker *worker;
  GThread *thread;

  g_mutex_lock (&pool_lock);

  link = g_queue_pop_head_link (&idle_workers);
  if (link != NULL)
    {
      worker = link->data;
      worker->data = data;
      /* Published last: a worker about to wait reads @data after it. */
      g_atomic_pointer_set (&worker->func, func);
      /* A worker not yet waiting sees it by itself: no wake-up. */
      if (worker->sleeping)
        g_cond_signal (&worker->cond);
      g_mutex_unlock (&pool_lock);
      return TRUE;
    }

  worker = g_new0 (Worker, 1);
  g_cond_init (&worker->cond);
  worker->func = func;
  worker->data = data;
  worker->link.data = worker;
  n_threads++;
  g_mutex_unlock (&pool_lock);

  thread = g_thread_try_new ("killable-worker", worker_main, worker, error);
  if (thread == NULL)
    {
      g_mutex_lock (&pool_lock);
      n_threads--;
      g_mutex_unlock (&pool_lock);
      g_cond_clear (&worker->cond);
      g_free (worker);
      return FALSE;
    }

  g_thread_unref (thread);

  return TRUE;
}

/* From a job running on a pool thread: @func (@data) runs on this thread
 * once it is back among the idle workers (at most one per job). Returns
 * FALSE, and nothing is scheduled, elsewhere. */
gboolean
killable_worker_pool_after_job (GFunc    func,
                                gpointer data)
{
  Worker *worker = current_worker;

  if (worker == NULL || worker->after != NULL)
    return FALSE;

  worker->after = func;
  worker->after_data = data;

  return TRUE;
}

guint
killable_worker_pool_get_n_threads (void)
{
  guint ret;

  g_mutex_lock (&pool_lock);
  ret = n_threads;
  g_mutex_unlock (&pool_lock);

  return ret;
}

guint
killable_worker_pool_get_n_idle (void)
{
  guint ret;

  g_mutex_lock (&pool_lock);
  ret = idle_workers.length;
  g_mutex_unlock (&pool_lock);

  return ret;
}

void
killable_worker_pool_set_idle_timeout (gint64 usec)
{
  GList *l;

  g_mutex_lock (&pool_lock);
  idle_timeout = usec;
  /* Wake idle workers so that they apply the new timeout now. */
  for (l = idle_workers.head; l != NULL; l = l->next)
    g_cond_signal (&((Worker *) l->data)->cond);
  g_mutex_unlock (&pool_lock);
}

/* fork() {{{
 *
 * pool_lock is held across fork() (killable-fork.c), so the child's copy of
 * the idle queue is consistent. In the child no worker thread exists: the
 * idle ones are forgotten (a job handed to one would never run) and the
 * count restarts at 0, so the next job gets a new thread. The Worker of a
 * busy thread belongs to that thread, which does not exist in the child: it
 * is leaked there, never touched.
 */

/* The section gate: see killable-fork.c. A fork waits this long at most
 * for library threads inside a GObject section (a bound, because Python
 * holds its GIL across os.fork() and a section may wait for it): 100 ms
 * left a child hung in 1 of about 2 400 forks under AddressSanitizer on a
 * loaded machine, 1 s none in 2 400. */
#define SECTION_WAIT_USEC (1000 * G_TIME_SPAN_MILLISECOND)

static GMutex gate_lock;
static GCond gate_cond;
static gint gate_active;     /* (atomic) library threads inside a section */
static gint gate_forking;    /* (atomic) a fork() is being prepared */

void
killable_worker_pool_section_enter (void)
{
  for (;;)
    {
      g_atomic_int_inc (&gate_active);
      if (G_LIKELY (!g_atomic_int_get (&gate_forking)))
        return;

      /* A fork is being prepared: wait outside until it is done. */
      killable_worker_pool_section_leave ();
      g_mutex_lock (&gate_lock);
      while (g_atomic_int_get (&gate_forking))
        g_cond_wait (&gate_cond, &gate_lock);
      g_mutex_unlock (&gate_lock);
    }
}

void
killable_worker_pool_section_leave (void)
{
  if (g_atomic_int_dec_and_test (&gate_active) && g_atomic_int_get (&gate_forking))
    {
      g_mutex_lock (&gate_lock);
      g_cond_broadcast (&gate_cond);
      g_mutex_unlock (&gate_lock);
    }
}

/* First of the fork handlers: waits (bounded) until no library thread is
 * inside a section, and keeps new ones out until killable_worker_pool_fork_resume(). */
void
killable_worker_pool_fork_quiesce (void)
{
  gint64 end = g_get_monotonic_time () + SECTION_WAIT_USEC;

  g_mutex_lock (&gate_lock);
  g_atomic_int_set (&gate_forking, 1);
  while (g_atomic_int_get (&gate_active) > 0)
    {
      if (!g_cond_wait_until (&gate_cond, &gate_lock, end))
        break;
    }
  /* gate_lock stays held until killable_worker_pool_fork_resume(). */
}

void
killable_worker_pool_fork_resume (gboolean in_child)
{
  if (in_child)
    {
      /* The threads that were inside a section are gone, so are the
       * waiters. */
      g_atomic_int_set (&gate_active, 0);
      memset (&gate_cond, 0, sizeof gate_cond);
    }
  g_atomic_int_set (&gate_forking, 0);
  g_cond_broadcast (&gate_cond);
  g_mutex_unlock (&gate_lock);
}

void
killable_worker_pool_fork_prepare (void)
{
  g_mutex_lock (&pool_lock);
}

void
killable_worker_pool_fork_parent (void)
{
  g_mutex_unlock (&pool_lock);
}

void
killable_worker_pool_fork_child (void)
{
  GList *link;

  while ((link = g_queue_pop_head_link (&idle_workers)) != NULL)
    g_free (link->data);   /* its GCond holds no resource (a futex word) */
  n_threads = 0;

  g_mutex_unlock (&pool_lock);
}

/* }}} */
