/* killable-fork.c: fork() in a process that uses libkillable
 *
 * Owns: the pthread_atfork() handlers, registered once when the task class
 * is initialised.
 * Locks: none of its own. Around fork() it holds (after the worker pool's
 * section gate, see below) every process-wide lock
 * of the library, in the library's lock order (tree, owner queues, signal,
 * timer, worker pool), so that no other thread is half-way through a change
 * of what they guard when the child's copy of memory is taken.
 * Called by: killable-task.c (class_init, which hands over the tree's hook,
 * so that this file calls nothing that calls back into the task). Calls:
 * the fork hooks of killable-owner.c, killable-signal.c, killable-timer.c
 * and killable-worker-pool.c.
 *
 * In the child only the thread that called fork() exists. The pool forgets
 * its threads and the timer its thread, its dispatchers and its armed
 * timers (killable-timer.c), so the child can start tasks, timers fire and
 * process tasks run as in a fresh process. Tasks that were running at the
 * fork are not running in the child: their workers did not cross the fork
 * and their timers are forgotten (see the "fork()" section of the threads
 * guide).
 *
 * GLib 2.74 holds none of its own locks across fork() (GObject's global
 * notify lock, taken by every last g_object_unref(); its signal lock;
 * GSlice's, taken now and then by any g_slice_alloc() or g_slice_free(),
 * so by every GObject and GError): a thread inside one at the fork leaves
 * it locked in the child, whose first g_object_new() then hangs. The
 * library's own threads call GLib in a few known places:
 * - a timer's function and notify on a dispatcher, the end of a task on
 *   its worker, the stop error a worker's check() or sleep() builds, and a
 *   worker's first GThread (g_thread_self()): those are "sections"
 *   (killable_worker_pool_section_enter()), and fork_prepare() waits until
 *   no library thread is inside one (new ones wait until the fork is done);
 * - a worker thread's start and exit: workers are plain pthreads (a
 *   GThread is a GSlice block), and an exiting worker, which still hands
 *   its GSlice caches back after its function returned, is joined before
 *   the fork (killable-worker-pool.c).
 * The timer thread is created under the timer's lock, which the fork takes.
 * The wait is bounded (SECTION_WAIT_USEC): a section may be waiting for a
 * lock the forking thread holds (Python's GIL during os.fork()), and a
 * fork never deadlocks. Application threads inside GLib at the fork, and
 * the application's own code run() runs on a worker, are the
 * application's business, as with any GLib program.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <pthread.h>

#include "killable-fork-private.h"
#include "killable-owner-private.h"
#include "killable-signal-private.h"
#include "killable-timer-private.h"
#include "killable-worker-pool-private.h"

static void (*tree_fork_lock) (gboolean lock);

static void
fork_prepare (void)
{
  killable_worker_pool_fork_quiesce ();
  tree_fork_lock (TRUE);
  killable_owner_fork_lock (TRUE);
  killable_signal_fork_lock (TRUE);
  killable_timer_fork_prepare ();
  killable_worker_pool_fork_prepare ();
}

static void
fork_parent (void)
{
  killable_worker_pool_fork_parent ();
  killable_timer_fork_parent ();
  killable_signal_fork_lock (FALSE);
  killable_owner_fork_lock (FALSE);
  tree_fork_lock (FALSE);
  killable_worker_pool_fork_resume (FALSE);
}

static void
fork_child (void)
{
  killable_worker_pool_fork_child ();
  killable_timer_fork_child ();
  killable_signal_fork_lock (FALSE);
  killable_owner_fork_lock (FALSE);
  tree_fork_lock (FALSE);
  killable_worker_pool_fork_resume (TRUE);
}

void
killable_fork_init (void (*tree_lock) (gboolean lock))
{
  static gsize registered;

  if (g_once_init_enter (&registered))
    {
      tree_fork_lock = tree_lock;
      pthread_atfork (fork_prepare, fork_parent, fork_child);
      g_once_init_leave (&registered, 1);
    }
}
