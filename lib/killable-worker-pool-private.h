/* killable-worker-pool-private.h: the process-wide cache of idle threads
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Runs @func (@data) on an idle thread of the pool (one that searches for
 * jobs, or a sleeping one woken for it), or on a new thread when none is
 * idle: a job never waits behind another.
 * Returns FALSE with @error set when no thread could be created.
 */
gboolean killable_worker_pool_run              (GFunc     func,
                                                gpointer  data,
                                                GError  **error);

gboolean killable_worker_pool_after_job        (GFunc     func,
                                                gpointer  data);

/* For a thread about to sleep until @done (@data) (a joiner): spins a
 * moment first, calling @done between looks, when that has been paying off
 * lately and a CPU is free. Returns TRUE if @done returned TRUE meanwhile.
 * Each kind of wait learns its own budget. */
typedef gboolean (*KillableWorkerPoolSpinDone) (gconstpointer data);

typedef enum
{
  KILLABLE_WORKER_POOL_SPIN_JOIN,     /* join()/wait(-1): the task's end */
  KILLABLE_WORKER_POOL_SPIN_RELEASE,  /* a joiner, after the end: its worker lets go of the task */
  KILLABLE_WORKER_POOL_SPIN_OWNER,    /* an owner's main loop: a run_async() outcome */
  KILLABLE_WORKER_POOL_N_SPINS
} KillableWorkerPoolSpin;

gboolean killable_worker_pool_spin_until       (KillableWorkerPoolSpin     kind,
                                                KillableWorkerPoolSpinDone done,
                                                gconstpointer              data);

/* Whether a CPU is free of running jobs (more than one CPU, fewer jobs
 * running than CPUs): a thread that waits for one may spin for it. */
gboolean killable_worker_pool_has_free_cpu     (void);

/* For tests and benchmarks. */
guint    killable_worker_pool_get_n_threads    (void);
guint    killable_worker_pool_get_n_idle       (void);
void     killable_worker_pool_set_idle_timeout (gint64    usec);
gboolean killable_worker_pool_is_fork_pending  (void);
guint    killable_worker_pool_reap_exited      (void);

/* Around the GObject calls of library threads (see killable-fork.c): a
 * fork waits (a bounded time) until no thread is inside. Cheap: two
 * atomics when no fork is being prepared. */
void     killable_worker_pool_section_enter    (void);
void     killable_worker_pool_section_leave    (void);

/* For killable-fork.c: the gate (first and last), then pool_lock is held across fork(); the child forgets
 * the threads of the parent. */
void     killable_worker_pool_fork_quiesce     (void);
void     killable_worker_pool_fork_resume      (gboolean  in_child);
void     killable_worker_pool_fork_prepare     (void);
void     killable_worker_pool_fork_parent      (void);
void     killable_worker_pool_fork_child       (void);

G_END_DECLS
