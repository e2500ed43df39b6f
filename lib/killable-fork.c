/* killable-fork.c: fork() in a process that uses libkillable
 *
 * Owns: the pthread_atfork() handlers, registered once when the task class
 * is initialised.
 * Locks: none of its own. Around fork() it holds every process-wide lock
 * of the library, in the library's lock order (tree, owner queues, signal,
 * timer, worker pool), so that no other thread is half-way through a change
 * of what they guard when the child's copy of memory is taken.
 * Called by: killable-task.c (class_init). Calls: the fork hooks of
 * killable-tree.c, killable-owner.c, killable-signal.c, killable-timer.c and
 * killable-worker-pool.c.
 *
 * In the child only the thread that called fork() exists. The pool forgets
 * its threads and the timer its thread, its dispatchers and its armed
 * timers (killable-timer.c), so the child can start tasks, timers fire and
 * process tasks run as in a fresh process. Tasks that were running at the
 * fork are not running in the child: their workers did not cross the fork
 * and their timers are forgotten (see the "fork()" section of the threads
 * guide).
 *
 * GLib's own locks (GObject's, GMainContext's, GSlice's) are not held
 * across fork(): a thread of the application inside one of them at the fork
 * can still leave it locked in the child; the same holds for any library
 * without fork handlers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <pthread.h>

#include "killable-fork-private.h"
#include "killable-owner-private.h"
#include "killable-signal-private.h"
#include "killable-task-private.h"
#include "killable-timer-private.h"
#include "killable-tree-private.h"
#include "killable-worker-pool-private.h"

static void
fork_prepare (void)
{
  killable_tree_fork_lock (TRUE);
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
  killable_tree_fork_lock (FALSE);
}

static void
fork_child (void)
{
  killable_worker_pool_fork_child ();
  killable_timer_fork_child ();
  killable_signal_fork_lock (FALSE);
  killable_owner_fork_lock (FALSE);
  killable_tree_fork_lock (FALSE);
}

void
killable_fork_init (void)
{
  static gsize registered;

  if (g_once_init_enter (&registered))
    {
      pthread_atfork (fork_prepare, fork_parent, fork_child);
      g_once_init_leave (&registered, 1);
    }
}
