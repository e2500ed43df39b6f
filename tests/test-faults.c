/* test-faults.c: user code that misbehaves, and a process short of fds
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A crash in user code is a crash: out of scope. What is tested here is
 * user code that turns the library on itself (a cleanup that stops or
 * kills its own task, a stop callback that stops again or removes itself,
 * a `finished` handler that drops the last reference) and a process that
 * runs out of file descriptors (in a subprocess, with RLIMIT_NOFILE
 * lowered). None of it may crash, hang, run something twice or leak.
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE 1
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "killable.h"

#include "test-core-util.h"

#define GUARD_USEC TEST_LIMIT_USEC (20 * G_USEC_PER_SEC)

/* Helpers {{{ */

typedef struct
{
  GMutex lock;
  GCond  cond;
  int    finalized;
} Finalized;

static void
finalized_notify (gpointer data,
                  GObject *where_the_object_was)
{
  Finalized *f = data;

  g_mutex_lock (&f->lock);
  f->finalized++;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
}

static void
finalized_init (Finalized *f)
{
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  f->finalized = 0;
}

/* Waits (bounded) until @n watched objects were finalized. */
static void
finalized_wait (Finalized *f,
                int        n)
{
  gint64 end = g_get_monotonic_time () + GUARD_USEC;

  g_mutex_lock (&f->lock);
  while (f->finalized < n)
    if (!g_cond_wait_until (&f->cond, &f->lock, end))
      break;
  g_assert_cmpint (f->finalized, ==, n);
  g_mutex_unlock (&f->lock);
}

static void
finalized_clear (Finalized *f)
{
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
}

static void
wait_abandoned_zero (void)
{
  gint64 end = g_get_monotonic_time () + GUARD_USEC;

  while (killable_get_abandoned_thread_count () != 0 && g_get_monotonic_time () < end)
    g_thread_yield ();
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, 0);
}

/* }}} */

/* A failing worker whose cleanup stops or kills its own task {{{ */

typedef enum
{
  SELF_STOP,
  SELF_KILL,
  SELF_INTERRUPT,
} SelfAction;

typedef struct
{
  SelfAction action;
  int        cleanups;        /* (atomic) */
  int        cleanup_freed;   /* (atomic) */
  int        on_worker;       /* (atomic) cleanup ran on the task's worker */
} SelfHarm;

static gboolean
work_fails (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE, "the work broke");
  return FALSE;
}

static void
cleanup_harms_self (KillableTask *task,
                    gpointer      data)
{
  SelfHarm *sh = data;

  g_atomic_int_inc (&sh->cleanups);
  if (killable_task_get_current () == task)
    g_atomic_int_set (&sh->on_worker, 1);

  switch (sh->action)
    {
    case SELF_STOP:
      killable_task_stop (task);
      break;
    case SELF_KILL:
      killable_task_kill (task);
      break;
    case SELF_INTERRUPT:
      killable_task_interrupt (task);
      break;
    default:
      g_assert_not_reached ();
    }
}

static void
cleanup_freed (gpointer data)
{
  SelfHarm *sh = data;

  g_atomic_int_inc (&sh->cleanup_freed);
}

static void
run_self_harm (SelfAction         action,
               KillableTaskState  expected_state,
               GQuark             expected_domain,
               int                expected_code)
{
  g_autoptr(GError) error = NULL;
  SelfHarm sh = { action, 0, 0, 0 };
  Finalized f;
  KillableTask *task;

  finalized_init (&f);
  task = killable_task_new ("self-harm", work_fails, NULL, NULL);
  g_object_weak_ref (G_OBJECT (task), finalized_notify, &f);
  killable_task_add_cleanup (task, cleanup_harms_self, &sh, cleanup_freed);

  g_assert_true (killable_task_start (task, NULL));
  g_assert_false (killable_task_join (task, &error));
  g_test_message ("cleanup %s: state %d, error %s",
                  action == SELF_STOP ? "stops" : action == SELF_KILL ? "kills" : "interrupts",
                  killable_task_get_state (task), error->message);
  g_assert_cmpint (killable_task_get_state (task), ==, expected_state);
  g_assert_error (error, expected_domain, expected_code);

  g_object_unref (task);
  finalized_wait (&f, 1);
  g_assert_cmpint (g_atomic_int_get (&sh.cleanups), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&sh.cleanup_freed), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&sh.on_worker), ==, 1);
  wait_abandoned_zero ();
  finalized_clear (&f);
}

static void
test_cleanup_stops_own_task (void)
{
  /* The work's own failure wins over the stop its cleanup asked for. */
  run_self_harm (SELF_STOP, KILLABLE_TASK_STATE_FAILED, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE);
}

static void
test_cleanup_interrupts_own_task (void)
{
  run_self_harm (SELF_INTERRUPT, KILLABLE_TASK_STATE_FAILED, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE);
}

static void
test_cleanup_kills_own_task (void)
{
  /* kill() releases the owner at once, even from the worker itself: the
   * task is KILLED, the worker finishes its cleanups and leaves. */
  run_self_harm (SELF_KILL, KILLABLE_TASK_STATE_KILLED, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
}

/* A task that never ran runs its cleanups in finalize: a cleanup that
 * stops or kills it there must not resurrect it. Run in a subprocess: a
 * failure here may be a crash. */
static void
test_cleanup_harms_never_started (void)
{
  if (g_test_subprocess ())
    {
      for (SelfAction action = SELF_STOP; action <= SELF_INTERRUPT; action++)
        {
          SelfHarm sh = { action, 0, 0, 0 };
          Finalized f;
          KillableTask *task;

          finalized_init (&f);
          task = killable_task_new ("never-started", work_fails, NULL, NULL);
          g_object_weak_ref (G_OBJECT (task), finalized_notify, &f);
          killable_task_add_cleanup (task, cleanup_harms_self, &sh, cleanup_freed);
          g_object_unref (task);

          finalized_wait (&f, 1);
          g_assert_cmpint (sh.cleanups, ==, 1);
          g_assert_cmpint (sh.cleanup_freed, ==, 1);
          g_assert_cmpint (sh.on_worker, ==, 0);
          finalized_clear (&f);
        }
      wait_abandoned_zero ();
      return;
    }

  g_test_trap_subprocess (NULL, GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* }}} */

/* Stop callbacks that stop again, remove themselves, remove others {{{ */

typedef struct
{
  KillableTask *task;
  gulong        self_id;      /* set before the stop */
  gulong        other_id;
  int           ran_restop;
  int           ran_remove_self;
  int           ran_removed_other;
  int           ran_nested;
  int           freed;
} Reentrant;

static void
cb_restop (KillableTask *task,
           const GError *reason,
           gpointer      data)
{
  Reentrant *r = data;
  g_autoptr(GError) again = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "again");

  r->ran_restop++;
  /* Only the first stop counts; no deadlock, no second run. */
  killable_task_stop (task);
  killable_task_stop_with_error (task, again);
  killable_task_interrupt (task);
}

static void
cb_nested (KillableTask *task,
           const GError *reason,
           gpointer      data)
{
  Reentrant *r = data;

  r->ran_nested++;
}

static void
cb_removed_other (KillableTask *task,
                  const GError *reason,
                  gpointer      data)
{
  Reentrant *r = data;

  r->ran_removed_other++;
}

static void
cb_remove_self (KillableTask *task,
                const GError *reason,
                gpointer      data)
{
  Reentrant *r = data;

  r->ran_remove_self++;
  /* From inside: must not wait for itself. */
  killable_task_remove_stop_callback (task, r->self_id);
  /* Another one, queued after this one: it must not run. */
  killable_task_remove_stop_callback (task, r->other_id);
  /* A new one runs at once, here. */
  g_assert_cmpuint (killable_task_add_stop_callback (task, cb_nested, r, NULL), ==, 0);
  g_assert_cmpint (r->ran_nested, ==, 1);
}

static void
reentrant_freed (gpointer data)
{
  Reentrant *r = data;

  r->freed++;
}

static gboolean
work_until_stopped (KillableTask  *task,
                    gpointer       data,
                    GError       **error)
{
  return killable_task_sleep (task, G_MAXINT64, error);
}

static void
test_stop_callback_reentrant (void)
{
  g_autoptr(GError) error = NULL;
  Reentrant r = { 0, };
  KillableTask *task;

  task = killable_task_new ("reentrant", work_until_stopped, NULL, NULL);
  r.task = task;
  g_assert_cmpuint (killable_task_add_stop_callback (task, cb_restop, &r, reentrant_freed), !=, 0);
  r.self_id = killable_task_add_stop_callback (task, cb_remove_self, &r, reentrant_freed);
  r.other_id = killable_task_add_stop_callback (task, cb_removed_other, &r, reentrant_freed);
  g_assert_cmpuint (r.self_id, !=, 0);
  g_assert_cmpuint (r.other_id, !=, 0);

  g_assert_true (killable_task_start (task, NULL));
  killable_task_stop (task);

  /* All ran synchronously in this thread. */
  g_assert_cmpint (r.ran_restop, ==, 1);
  g_assert_cmpint (r.ran_remove_self, ==, 1);
  g_assert_cmpint (r.ran_removed_other, ==, 0);
  g_assert_cmpint (r.ran_nested, ==, 1);

  /* The first stop's cause won: a plain stop. */
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);

  g_object_unref (task);
  /* Each of the three notifies ran once (the removed one's too). The
   * worker may drop the last reference a moment after join(). */
  {
    gint64 end = g_get_monotonic_time () + GUARD_USEC;

    while (g_atomic_int_get (&r.freed) < 3 && g_get_monotonic_time () < end)
      g_thread_yield ();
  }
  g_assert_cmpint (g_atomic_int_get (&r.freed), ==, 3);
}

/* }}} */

/* Handlers that drop the last reference {{{ */

static void
finished_drops_last_ref (KillableTask *task,
                         gpointer      data)
{
  int *finished = data;

  (*finished)++;
  /* The reference the test gave to this handler: the last one the
   * application holds. */
  g_object_unref (task);
}

static void
notify_drops_last_ref (KillableTask *task,
                       GParamSpec   *pspec,
                       gpointer      data)
{
  if (killable_task_is_finished (task) &&
      g_object_get_data (G_OBJECT (task), "dropped") == NULL)
    {
      g_object_set_data (G_OBJECT (task), "dropped", GINT_TO_POINTER (1));
      g_object_unref (task);
    }
}

static void
async_drops_last_ref (GObject      *source,
                      GAsyncResult *result,
                      gpointer      data)
{
  int *done = data;
  g_autoptr(GError) error = NULL;

  g_assert_true (killable_task_run_finish (KILLABLE_TASK (source), result, &error));
  g_assert_no_error (error);
  (*done)++;
  g_object_unref (source);
}

static gboolean
work_true (KillableTask  *task,
           gpointer       data,
           GError       **error)
{
  return TRUE;
}

static void
iterate_until (int    *counter,
               int     n,
               gint64  timeout_usec)
{
  gint64 end = g_get_monotonic_time () + timeout_usec;

  while (*counter < n && g_get_monotonic_time () < end)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_thread_yield ();
    }
  g_assert_cmpint (*counter, ==, n);
}

static void
test_handler_drops_last_ref (void)
{
  Finalized f;

  finalized_init (&f);

  /* `finished` */
  {
    int finished = 0;
    KillableTask *task = killable_task_new ("finished-unref", work_true, NULL, NULL);

    g_object_weak_ref (G_OBJECT (task), finalized_notify, &f);
    g_signal_connect (task, "finished", G_CALLBACK (finished_drops_last_ref), &finished);
    g_assert_true (killable_task_start (task, NULL));
    iterate_until (&finished, 1, GUARD_USEC);
    finalized_wait (&f, 1);
  }

  /* notify::state, for a task stopped before it started (terminal at
   * once, in this thread). */
  {
    KillableTask *task = killable_task_new ("notify-unref", work_true, NULL, NULL);

    g_object_weak_ref (G_OBJECT (task), finalized_notify, &f);
    g_signal_connect (task, "notify::state", G_CALLBACK (notify_drops_last_ref), NULL);
    killable_task_stop (task);
    {
      gint64 end = g_get_monotonic_time () + GUARD_USEC;

      while (g_atomic_int_get (&f.finalized) < 2 && g_get_monotonic_time () < end)
        g_main_context_iteration (NULL, FALSE);
    }
    finalized_wait (&f, 2);
  }

  /* The run_async() callback. */
  {
    int done = 0;
    KillableTask *task = killable_task_new ("async-unref", work_true, NULL, NULL);

    g_object_weak_ref (G_OBJECT (task), finalized_notify, &f);
    killable_task_run_async (task, NULL, async_drops_last_ref, &done);
    iterate_until (&done, 1, GUARD_USEC);
    finalized_wait (&f, 3);
  }

  finalized_clear (&f);
}

/* }}} */

/* Out of file descriptors {{{ */

/* Lowers the limit and fills every free fd; returns the fds to close. */
static GArray *
exhaust_fds (void)
{
  GArray *fds = g_array_new (FALSE, FALSE, sizeof (int));
  struct rlimit rl = { 64, 64 };
  int fd;

  g_assert_no_errno (setrlimit (RLIMIT_NOFILE, &rl));
  while ((fd = open ("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
    g_array_append_val (fds, fd);
  g_assert_cmpint (errno, ==, EMFILE);

  return fds;
}

static void
release_fds (GArray *fds)
{
  for (guint i = 0; i < fds->len; i++)
    close (g_array_index (fds, int, i));
  g_array_unref (fds);
}

typedef struct
{
  int       fd;
  GMutex    lock;
  GCond     cond;
  gboolean  waiting;
  gboolean  go;
  pid_t     tid;
} WaitFd;

static gboolean
work_wait_fd (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  WaitFd *w = data;

  /* Says who it is and waits for the go (the test opens this thread's
   * /proc syscall file, then takes every free fd); the test then waits
   * until this thread is inside wait_fd()'s poll(), not merely about to
   * call it. */
  g_mutex_lock (&w->lock);
  w->tid = test_gettid ();
  w->waiting = TRUE;
  g_cond_broadcast (&w->cond);
  while (!w->go)
    g_cond_wait (&w->cond, &w->lock);
  g_mutex_unlock (&w->lock);

  return killable_task_wait_fd (task, w->fd, G_IO_IN, -1, error) != 0;
}

/* wait_fd() needs one more fd to be woken by a stop (the cancellable's);
 * with none left it must still return on the stop (or fail clearly), not
 * hang or abort. */
static void
test_fd_exhaustion_wait_fd (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(KillableTask) task = NULL;
      GArray *fds;
      WaitFd w = { -1, };
      int pipe_fds[2];
      int syscall_fd;

      g_assert_no_errno (pipe (pipe_fds));
      w.fd = pipe_fds[0];
      g_mutex_init (&w.lock);
      g_cond_init (&w.cond);
      task = killable_task_new ("wait-fd-no-fds", work_wait_fd, &w, NULL);

      g_assert_true (killable_task_start (task, NULL));
      g_mutex_lock (&w.lock);
      while (!w.waiting)
        g_cond_wait (&w.cond, &w.lock);
      g_mutex_unlock (&w.lock);
      syscall_fd = test_syscall_fd_open (w.tid);

      fds = exhaust_fds ();
      g_mutex_lock (&w.lock);
      w.go = TRUE;
      g_cond_broadcast (&w.cond);
      g_mutex_unlock (&w.lock);
      test_wait_syscall_fd_in (syscall_fd, TEST_IN_POLL);

      killable_task_stop (task);
      g_assert_false (killable_task_join (task, &error));
      release_fds (fds);

      g_printerr ("wait_fd without fds: state %d, %s\n",
                  killable_task_get_state (task), error->message);
      g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);

      close (pipe_fds[0]);
      close (pipe_fds[1]);
      close (syscall_fd);
      return;
    }

  /* The subprocess reports what happened on stderr, shown in the log. */
  g_test_trap_subprocess (NULL, GUARD_USEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

/* A process task that cannot get its pipes or pidfd fails with a clear
 * GError. */
static void
test_fd_exhaustion_process_start (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(KillableProcessTask) task = NULL;
      const char *argv[] = { "true", NULL };
      GArray *fds;

      task = killable_process_task_new (argv, &error);
      g_assert_no_error (error);
      killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                             KILLABLE_PROCESS_FLAGS_STDERR_PIPE);

      fds = exhaust_fds ();
      g_assert_true (killable_task_start (KILLABLE_TASK (task), NULL));
      g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
      release_fds (fds);

      g_printerr ("process start without fds: state %d, %s\n",
                  killable_task_get_state (KILLABLE_TASK (task)), error->message);
      g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_FAILED);
      g_assert_nonnull (error);
      g_assert_cmpstr (error->message, !=, "");
      return;
    }

  /* The subprocess reports what happened on stderr, shown in the log. */
  g_test_trap_subprocess (NULL, GUARD_USEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("User code that turns the library on itself, and a process short of file descriptors: no crash, hang, double run or leak.");

  g_test_add_func ("/faults/cleanup/stops-own-task", test_cleanup_stops_own_task);
  g_test_add_func ("/faults/cleanup/interrupts-own-task", test_cleanup_interrupts_own_task);
  g_test_add_func ("/faults/cleanup/kills-own-task", test_cleanup_kills_own_task);
  g_test_add_func ("/faults/cleanup/harms-never-started", test_cleanup_harms_never_started);
  g_test_add_func ("/faults/stop-callback/reentrant", test_stop_callback_reentrant);
  g_test_add_func ("/faults/handler-drops-last-ref", test_handler_drops_last_ref);
  g_test_add_func ("/faults/fd-exhaustion/wait-fd", test_fd_exhaustion_wait_fd);
  g_test_add_func ("/faults/fd-exhaustion/process-start", test_fd_exhaustion_process_start);

  return g_test_run ();
}
