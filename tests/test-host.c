/* test-host.c: a good citizen of its host process (issue 12)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * What a library living in someone else's process must survive: times at
 * the limits of gint64, fork(), the application's signal masks and
 * handlers, thread and fd exhaustion, programs it cannot signal, and
 * hostile input. Each test is a break that was found and fixed.
 */

#include "config.h"

#include <glib/gstdio.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "killable-process-task.h"
#include "killable-task.h"
#include "killable-timer-private.h"
#include "killable-worker-pool-private.h"
#include "test-core-util.h"

/* Helpers {{{ */

static gboolean
work_true (KillableTask  *task,
           gpointer       data,
           GError       **error)
{
  return TRUE;
}

/* Sleeps until stopped. */
static gboolean
work_sleep_until_stopped (KillableTask  *task,
                          gpointer       data,
                          GError       **error)
{
  return killable_task_sleep (task, G_MAXINT64, error);
}

/* Ignores every stop until the gate opens, then reports it. */
static gboolean
work_pass_gate (KillableTask  *task,
                gpointer       gate,
                GError       **error)
{
  test_gate_pass (gate);
  return killable_task_check (task, error);
}

/* Blocked in read() on a pipe nobody writes to: only EINTR ends it. The
 * gate records the worker's tid and the errno the read ended with. */
typedef struct
{
  TestGate  gate;
  int       fds[2];
  int       read_errno;
  int       handler_calls;   /* unused by most */
} BlockedRead;

static gboolean
work_blocked_read (KillableTask  *task,
                   gpointer       data,
                   GError       **error)
{
  BlockedRead *br = data;
  char c;
  ssize_t n;

  test_gate_note_worker (&br->gate);
  test_gate_enter (&br->gate);
  n = read (br->fds[0], &c, 1);
  g_mutex_lock (&br->gate.lock);
  br->read_errno = n < 0 ? errno : 0;
  g_mutex_unlock (&br->gate.lock);

  return killable_task_check (task, error);
}

static void
blocked_read_init (BlockedRead *br)
{
  memset (br, 0, sizeof *br);
  test_gate_init (&br->gate);
  g_assert_cmpint (pipe (br->fds), ==, 0);
}

static void
blocked_read_clear (BlockedRead *br)
{
  close (br->fds[0]);
  close (br->fds[1]);
  test_gate_clear (&br->gate);
}

/* Starts a task blocked in read() with interrupt-syscalls, interrupts it
 * once it is inside read(), and returns the errno read() ended with. A
 * read that no signal interrupts ends the test process at the guard (the
 * callers run in a g_test_trap_subprocess()). */
static int
interrupt_blocked_read (void)
{
  BlockedRead br;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  int ret;

  blocked_read_init (&br);
  task = killable_task_new ("blocked-read", work_blocked_read, &br, NULL);
  killable_task_set_interrupt_syscalls (task, TRUE);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&br.gate, 1);
  test_wait_thread_in (br.gate.worker_tid, TEST_IN_READ);
  killable_task_stop (task);
  killable_task_interrupt (task);

  g_assert_true (killable_task_wait (task, TEST_GUARD_USEC));
  g_assert_false (killable_task_join (task, &error));

  g_mutex_lock (&br.gate.lock);
  ret = br.read_errno;
  g_mutex_unlock (&br.gate.lock);
  blocked_read_clear (&br);

  return ret;
}

/* TEST_HOST_DEBUG_HANG=1: a child that hangs prints its stacks (gdb). */
static void
debug_hang (int sig)
{
  char cmd[200];

  snprintf (cmd, sizeof cmd, "gdb -p %d -batch -ex 'thread apply all bt' >&2 2>/dev/null", (int) getpid ());
  system (cmd);
  _exit (99);
}

/* Runs @func in a forked child that must exit 0 within @guard_sec (an
 * alarm ends a child that hangs); returns the child's wait status. */
static int
run_in_child_locked (void     (*func) (gpointer),
                     gpointer   data,
                     guint      guard_sec,
                     GMutex    *around_fork)
{
  pid_t pid;
  int status = 0;

  fflush (stdout);
  fflush (stderr);
  if (around_fork != NULL)
    g_mutex_lock (around_fork);
  pid = fork ();
  if (around_fork != NULL)
    g_mutex_unlock (around_fork);
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      if (g_getenv ("TEST_HOST_DEBUG_HANG"))
        signal (SIGALRM, debug_hang);
      alarm (guard_sec);
      func (data);
      _exit (0);
    }

  while (waitpid (pid, &status, 0) < 0)
    g_assert_cmpint (errno, ==, EINTR);

  return status;
}

static int
run_in_child (void     (*func) (gpointer),
              gpointer   data,
              guint      guard_sec)
{
  return run_in_child_locked (func, data, guard_sec, NULL);
}

/* ThreadSanitizer does not support starting threads in the child of a
 * multithreaded fork (it ends the child); valgrind reports the memory of
 * the threads that did not cross the fork as lost in every child. */
static gboolean
skip_fork_under_tool (void)
{
#ifdef KILLABLE_SYNC_PTHREAD
  g_test_skip ("ThreadSanitizer does not support threads in the child of a "
               "multithreaded fork()");
  return TRUE;
#else
  if (test_under_valgrind ())
    {
      g_test_skip ("valgrind reports the memory of the threads that did not cross "
                   "fork() as lost in the child");
      return TRUE;
    }
  return FALSE;
#endif
}

static void
assert_child_ok (int status)
{
  if (WIFSIGNALED (status))
    g_error ("the child was killed by signal %d (%s)", WTERMSIG (status),
             WTERMSIG (status) == SIGALRM ? "it hung" : "it crashed or an assertion failed");
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
}

/* }}} */

/* Overflow: G_MAXINT64 and its neighbours mean "practically never" {{{ */

static const gint64 huge_times[] = { G_MAXINT64, G_MAXINT64 - 1, G_MAXINT64 - 1000,
                                     G_MAXINT64 / 2 + 1 };

/* A task that ignores its stop, with a huge grace period, is not
 * escalated: a sentinel with a short grace period, stopped after it, is
 * killed first (its timer is due later than an overflowed one would be). */
static void
test_overflow_grace (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (huge_times); i++)
    {
      TestGate gate, sentinel_gate;
      g_autoptr(KillableTask) task = NULL;
      g_autoptr(KillableTask) sentinel = NULL;
      g_autoptr(GError) error = NULL;

      test_gate_init (&gate);
      test_gate_init (&sentinel_gate);

      task = killable_task_new ("huge-grace", work_pass_gate, &gate, NULL);
      killable_task_set_grace_period (task, huge_times[i]);
      g_assert_cmpint (killable_task_get_grace_period (task), ==, huge_times[i]);
      g_assert_true (killable_task_start (task, NULL));
      test_gate_wait_entered (&gate, 1);

      sentinel = killable_task_new ("sentinel", work_pass_gate, &sentinel_gate, NULL);
      killable_task_set_grace_period (sentinel, 1000);
      g_assert_true (killable_task_start (sentinel, NULL));
      test_gate_wait_entered (&sentinel_gate, 1);

      killable_task_stop (task);
      killable_task_stop (sentinel);

      /* The sentinel climbs stop → interrupt → kill, 1 ms apart. */
      g_assert_true (killable_task_wait (sentinel, TEST_GUARD_USEC));
      g_assert_cmpint (killable_task_get_state (sentinel), ==, KILLABLE_TASK_STATE_KILLED);
      g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_STOPPING);
      g_assert_false (killable_task_wait (task, 0));

      test_gate_open (&gate);
      test_gate_open (&sentinel_gate);
      g_assert_false (test_join_guarded (task, &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
      g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

      /* The sentinel's abandoned thread returns. */
      TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == 0);
      test_gate_clear (&gate);
      test_gate_clear (&sentinel_gate);
    }
}

/* The same for a process task (whose stop is SIGTERM, its kill SIGKILL):
 * a program that ignores SIGTERM is not killed. */
static void
test_overflow_grace_process (void)
{
  g_autofree char *dir = g_dir_make_tmp ("killable-host-XXXXXX", NULL);
  g_autofree char *ready = g_build_filename (dir, "ready", NULL);
  g_autofree char *script = g_strdup_printf ("trap '' TERM; touch '%s'; exec sleep 1000", ready);
  const char *argv[] = { "sh", "-c", script, NULL };

  g_assert_nonnull (dir);

  for (guint i = 0; i < G_N_ELEMENTS (huge_times); i++)
    {
      g_autoptr(KillableProcessTask) task = NULL;
      g_autoptr(KillableTask) sentinel = NULL;
      g_autoptr(GError) error = NULL;
      TestGate sentinel_gate;

      g_unlink (ready);
      test_gate_init (&sentinel_gate);
      task = killable_process_task_new (argv, &error);
      g_assert_no_error (error);
      killable_task_set_grace_period (KILLABLE_TASK (task), huge_times[i]);
      g_assert_true (killable_task_start (KILLABLE_TASK (task), NULL));
      /* SIGTERM is ignored from here on. */
      TEST_POLL_UNTIL (g_file_test (ready, G_FILE_TEST_EXISTS));

      sentinel = killable_task_new ("sentinel", work_pass_gate, &sentinel_gate, NULL);
      killable_task_set_grace_period (sentinel, 1000);
      g_assert_true (killable_task_start (sentinel, NULL));
      test_gate_wait_entered (&sentinel_gate, 1);

      killable_task_stop (KILLABLE_TASK (task));
      killable_task_stop (sentinel);
      g_assert_true (killable_task_wait (sentinel, TEST_GUARD_USEC));
      g_assert_cmpint (killable_task_get_state (sentinel), ==, KILLABLE_TASK_STATE_KILLED);
      g_assert_false (killable_task_wait (KILLABLE_TASK (task), 0));
      g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==,
                       KILLABLE_TASK_STATE_STOPPING);

      killable_task_kill (KILLABLE_TASK (task));
      g_assert_false (test_join_guarded (KILLABLE_TASK (task), &error));
      g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==,
                       KILLABLE_TASK_STATE_KILLED);

      test_gate_open (&sentinel_gate);
      TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == 0);
      test_gate_clear (&sentinel_gate);
    }

  g_unlink (ready);
  g_rmdir (dir);
}

/* get_deadline() after set_timeout(huge), own or inherited, is G_MAXINT64
 * ("none"), never a time in the past. */
static void
test_overflow_deadline (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (huge_times); i++)
    {
      TestGate gate;
      g_autoptr(KillableTask) parent = NULL;
      g_autoptr(KillableTask) child = NULL;
      g_autoptr(GError) error = NULL;
      gint64 deadline;

      test_gate_init (&gate);
      parent = killable_task_new ("parent", work_pass_gate, &gate, NULL);
      child = killable_task_new ("child", work_pass_gate, &gate, NULL);
      killable_task_set_timeout (parent, huge_times[i]);
      g_assert_true (killable_task_add_child (parent, child, &error));
      g_assert_no_error (error);
      g_assert_true (killable_task_start (parent, NULL));
      g_assert_true (killable_task_start (child, NULL));
      test_gate_wait_entered (&gate, 2);

      deadline = killable_task_get_deadline (parent);
      g_assert_cmpint (deadline, >, g_get_monotonic_time ());
      g_assert_cmpint (killable_task_get_deadline (child), ==, deadline);

      killable_task_set_timeout (child, huge_times[i]);
      g_assert_cmpint (killable_task_get_deadline (child), >, g_get_monotonic_time ());

      /* Not timed out either. */
      g_assert_false (killable_task_wait (parent, 0));

      test_gate_open (&gate);
      g_assert_true (test_join_guarded (child, NULL));
      g_assert_true (test_join_guarded (parent, NULL));
      test_gate_clear (&gate);
    }
}

static gboolean
work_wait_self_huge (KillableTask  *task,
                     gpointer       data,
                     GError       **error)
{
  gint64 timeout = *(gint64 *) data;

  /* From its own worker it could only wait for ever: a programming error,
   * reported at once like wait (-1). */
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*");
  g_assert_false (killable_task_wait (task, timeout));
  g_test_assert_expected_messages ();

  /* A short wait still returns (FALSE: the task cannot end meanwhile). */
  g_assert_false (killable_task_wait (task, 1000));

  return TRUE;
}

static void
test_overflow_wait_self (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (huge_times); i++)
    {
      g_autoptr(KillableTask) task = NULL;
      gint64 timeout = huge_times[i];

      task = killable_task_new ("wait-self", work_wait_self_huge, &timeout, NULL);
      g_assert_true (killable_task_start (task, NULL));
      g_assert_true (test_join_guarded (task, NULL));
    }
}

/* Sleeps and wait_fd with huge timeouts end on stop, not at once. */
static gboolean
work_sleep_huge (KillableTask  *task,
                 gpointer       data,
                 GError       **error)
{
  TestGate *gate = data;
  gint64 timeout = G_MAXINT64;

  test_gate_note_worker (gate);
  test_gate_enter (gate);
  if (killable_task_sleep (task, timeout, error))
    {
      g_set_error (error, TEST_ERROR, 1, "sleep (G_MAXINT64) returned without a stop");
      return FALSE;
    }
  g_clear_error (error);
  return killable_task_check (task, error);
}

static void
test_overflow_sleep (void)
{
  TestGate gate;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;

  test_gate_init (&gate);
  task = killable_task_new ("sleep-huge", work_sleep_huge, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);
  test_wait_thread_in (gate.worker_tid, TEST_IN_TIMED_FUTEX);
  killable_task_stop (task);
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  test_gate_clear (&gate);
}

/* }}} */

/* fork() {{{ */

/* What a child must be able to do: run a task, have a timeout fire, run
 * a process task. */
static void
child_uses_library (gpointer unused)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(KillableTask) timed = NULL;
  g_autoptr(KillableProcessTask) process = NULL;
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "true", NULL };

  task = killable_task_new ("in-child", work_true, NULL, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, &error));
  g_assert_no_error (error);

  timed = killable_task_new ("timed-in-child", work_sleep_until_stopped, NULL, NULL);
  killable_task_set_timeout (timed, 20 * G_TIME_SPAN_MILLISECOND);
  g_assert_true (killable_task_start (timed, NULL));
  g_assert_false (killable_task_join (timed, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_clear_error (&error);

  process = killable_process_task_new (argv, &error);
  g_assert_no_error (error);
  g_assert_true (killable_task_start (KILLABLE_TASK (process), NULL));
  g_assert_true (killable_task_join (KILLABLE_TASK (process), &error));
  g_assert_no_error (error);
}

/* The parent has a cached idle worker, a timer thread and a timer
 * dispatcher when it forks: none exists in the child. */
static void
test_fork_after_tasks (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(KillableTask) timed = NULL;
  g_autoptr(GError) error = NULL;

  if (skip_fork_under_tool ())
    return;

  task = killable_task_new ("before-fork", work_true, NULL, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  timed = killable_task_new ("timed-before-fork", work_sleep_until_stopped, NULL, NULL);
  killable_task_set_timeout (timed, 1000);
  g_assert_true (killable_task_start (timed, NULL));
  g_assert_false (killable_task_join (timed, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  TEST_POLL_UNTIL (killable_worker_pool_get_n_idle () > 0);

  assert_child_ok (run_in_child (child_uses_library, NULL, 20));

  /* And the parent goes on. */
  child_uses_library (NULL);
}

/* GLib 2.74 holds no lock of its own across fork() (GObject's signal
 * lock, GSlice's magazines, ...): an application thread inside GLib at the
 * fork can leave one locked in the child, with or without libkillable. So
 * the churning application thread holds @app_lock while it calls GLib or
 * libkillable, and the forking thread takes it around fork(), as such an
 * application has to. The library's own threads (workers, the timer thread,
 * its dispatchers), which hold the library's locks and run its timers,
 * keep running through every fork: those are what this test is about. */
typedef struct
{
  GMutex    app_lock;
  gint      stop;     /* atomic */
  gint      rounds;   /* atomic */
} Churn;

static gboolean
work_churn_child (KillableTask  *task,
                  gpointer       data,
                  GError       **error)
{
  return killable_task_check (task, error);
}

/* Starts, stops, times out and joins tasks as fast as it can. */
static gpointer
churn_thread (gpointer data)
{
  Churn *churn = data;

  while (!g_atomic_int_get (&churn->stop))
    {
      KillableTask *parent, *child;

      g_mutex_lock (&churn->app_lock);
      parent = killable_task_new ("churn", work_sleep_until_stopped, NULL, NULL);
      child = killable_task_new ("churn-child", work_churn_child, NULL, NULL);
      killable_task_set_timeout (parent, 200);
      killable_task_set_grace_period (child, 100);
      killable_task_add_child (parent, child, NULL);
      killable_task_start (parent, NULL);
      killable_task_start (child, NULL);
      if (g_atomic_int_get (&churn->rounds) % 2)
        killable_task_stop (parent);
      g_mutex_unlock (&churn->app_lock);

      /* The timeout, the stop and the ends happen on library threads. */
      killable_task_wait (parent, -1);
      killable_task_wait (child, -1);

      g_mutex_lock (&churn->app_lock);
      g_object_unref (parent);
      g_object_unref (child);
      g_mutex_unlock (&churn->app_lock);
      g_atomic_int_inc (&churn->rounds);
    }

  return NULL;
}

static void
child_quick (gpointer unused)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(KillableTask) timed = NULL;
  g_autoptr(GError) error = NULL;

  task = killable_task_new ("in-child", work_true, NULL, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));

  timed = killable_task_new ("timed-in-child", work_sleep_until_stopped, NULL, NULL);
  killable_task_set_timeout (timed, 1000);
  g_assert_true (killable_task_start (timed, NULL));
  g_assert_false (killable_task_join (timed, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
}

/* A worker thread that exits still runs GLib's clean-ups after its
 * function returned (thread-specific destructors: its GThread, GSlice's
 * per-thread caches, which go back under GSlice's lock). A fork waits for
 * such a thread to be gone. Here the exiting worker has a destructor of the
 * test's own, which ends only once it sees the fork being prepared: the
 * child's copy of memory must be taken after it ended. */
static pthread_key_t exit_key;
static gint exit_destructor_state;   /* (atomic) 1 entered, 2 done */
static gint exit_give_up;            /* (atomic) */

static void
exit_destructor (gpointer unused)
{
  g_atomic_int_set (&exit_destructor_state, 1);
  while (!killable_worker_pool_is_fork_pending () && !g_atomic_int_get (&exit_give_up))
    g_thread_yield ();
  g_atomic_int_set (&exit_destructor_state, 2);
}

static gboolean
work_set_exit_key (KillableTask  *task,
                   gpointer       data,
                   GError       **error)
{
  pthread_setspecific (exit_key, GINT_TO_POINTER (1));
  return TRUE;
}

static void
child_saw_exit_done (gpointer unused)
{
  /* The parent's state when the child's memory was copied. */
  if (g_atomic_int_get (&exit_destructor_state) != 2)
    _exit (3);
}

/* Ten rounds: without the wait, a child is copied before the destructor
 * ended in about one round in two. */
static void
test_fork_waits_for_exiting_worker (void)
{
  if (skip_fork_under_tool ())
    return;

  /* Its worker exits as soon as it is idle. */
  killable_worker_pool_set_idle_timeout (0);

  for (guint round = 0; round < 10; round++)
    {
      g_autoptr(KillableTask) task = NULL;
      int status;

      g_atomic_int_set (&exit_destructor_state, 0);
      g_atomic_int_set (&exit_give_up, 0);
      g_assert_cmpint (pthread_key_create (&exit_key, exit_destructor), ==, 0);
      task = killable_task_new ("sets-a-key", work_set_exit_key, NULL, NULL);
      g_assert_true (killable_task_start (task, NULL));
      g_assert_true (test_join_guarded (task, NULL));
      TEST_POLL_UNTIL (g_atomic_int_get (&exit_destructor_state) == 1);

      status = run_in_child (child_saw_exit_done, NULL, 20);
      g_atomic_int_set (&exit_give_up, 1);
      if (WIFEXITED (status) && WEXITSTATUS (status) == 3)
        g_error ("round %u: the child was forked while a worker thread was still exiting",
                 round);
      assert_child_ok (status);
      TEST_POLL_UNTIL (g_atomic_int_get (&exit_destructor_state) == 2);
      g_assert_cmpint (pthread_key_delete (exit_key), ==, 0);
    }

  killable_worker_pool_set_idle_timeout (15 * G_USEC_PER_SEC);
}

/* 400 forks while another thread churns tasks: every child can use the
 * library (no lock of the library held by a vanished thread). */
static void
test_fork_while_churning (void)
{
  Churn churn = { { 0 }, 0, 0 };
  GThread *thread;
  guint n = test_scale (400, 20);
  guint hung = 0, failed = 0;

  if (skip_fork_under_tool ())
    return;
#ifdef __SANITIZE_ADDRESS__
  /* Seen in CI: the child's first new thread blocked for good in the
   * sanitizer's calloc(), on an allocator region lock that a churning
   * thread of the parent held at the fork(). */
  g_test_skip ("AddressSanitizer's allocator (GCC 12's libasan) takes no lock around "
               "fork(): a child forked while another thread allocates can deadlock "
               "in it; this test runs in the other builds");
  return;
#endif

  /* Worker threads exit after 100 µs idle, so threads start and exit
   * all the time: an exit hands GSlice's per-thread caches back under
   * GSlice's lock (seen as a child hung in its first g_object_new() when
   * workers were GThreads not joined before a fork: 1 to 2 in 2 000 forks
   * at this setting). */
  killable_worker_pool_set_idle_timeout (100);
  g_mutex_init (&churn.app_lock);
  thread = g_thread_new ("churn", churn_thread, &churn);
  TEST_POLL_UNTIL (g_atomic_int_get (&churn.rounds) > 10);

  for (guint i = 0; i < n; i++)
    {
      int status;

      status = run_in_child_locked (child_quick, NULL, test_under_valgrind () ? 60 : 10,
                                    &churn.app_lock);

      if (WIFSIGNALED (status) && WTERMSIG (status) == SIGALRM)
        hung++;
      else if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
        failed++;
    }

  g_atomic_int_set (&churn.stop, 1);
  g_thread_join (thread);
  g_mutex_clear (&churn.app_lock);
  killable_worker_pool_set_idle_timeout (15 * G_USEC_PER_SEC);

  g_test_message ("%u forks during %d churn rounds: %u hung, %u failed",
                  n, g_atomic_int_get (&churn.rounds), hung, failed);
  g_assert_cmpuint (hung, ==, 0);
  g_assert_cmpuint (failed, ==, 0);
}

/* fork() inside a task's work: the child is a copy of the worker thread. */
static gboolean
work_fork (KillableTask  *task,
           gpointer       data,
           GError       **error)
{
  assert_child_ok (run_in_child (child_uses_library, NULL, 20));
  return TRUE;
}

static void
test_fork_in_worker (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(KillableTask) other = NULL;
  g_autoptr(KillableTask) timed = NULL;
  g_autoptr(GError) error = NULL;

  if (skip_fork_under_tool ())
    return;

  /* An idle cached worker and a timer thread exist at the fork. */
  other = killable_task_new ("before-fork", work_true, NULL, NULL);
  g_assert_true (killable_task_start (other, NULL));
  g_assert_true (killable_task_join (other, NULL));
  timed = killable_task_new ("timed-before-fork", work_sleep_until_stopped, NULL, NULL);
  killable_task_set_timeout (timed, 1000);
  g_assert_true (killable_task_start (timed, NULL));
  g_assert_false (killable_task_join (timed, &error));
  TEST_POLL_UNTIL (killable_worker_pool_get_n_idle () >= 2);

  task = killable_task_new ("forks", work_fork, NULL, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (test_join_guarded (task, NULL));
}

/* }}} */

/* Signal masks and handlers {{{ */

/* An application that blocks every signal in main() before any thread is
 * created (the signalfd/sigwait design): interrupts still work. */
static void
test_signal_blocked_in_main (void)
{
  if (g_test_subprocess ())
    {
      sigset_t all;

      sigfillset (&all);
      g_assert_cmpint (pthread_sigmask (SIG_BLOCK, &all, NULL), ==, 0);
      g_assert_cmpint (interrupt_blocked_read (), ==, EINTR);
      return;
    }

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* A previous task on the same cached thread blocked every signal. */
static gboolean
work_block_all (KillableTask  *task,
                gpointer       gate,
                GError       **error)
{
  sigset_t all;

  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, NULL);
  test_gate_note_worker (gate);
  return TRUE;
}

static void
test_signal_blocked_by_previous_task (void)
{
  if (g_test_subprocess ())
    {
      TestGate gate;
      g_autoptr(KillableTask) task = NULL;

      test_gate_init (&gate);
      task = killable_task_new ("blocks-all", work_block_all, &gate, NULL);
      g_assert_true (killable_task_start (task, NULL));
      g_assert_true (killable_task_join (task, NULL));
      TEST_POLL_UNTIL (killable_worker_pool_get_n_idle () == 1);

      /* The only idle thread runs the next task. */
      g_assert_cmpint (interrupt_blocked_read (), ==, EINTR);
      test_gate_clear (&gate);
      return;
    }

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static int app_handler_calls;   /* atomic */

static void
app_handler (int signum)
{
  g_atomic_int_inc (&app_handler_calls);
}

static void
install_app_handler (int signum,
                     int flags)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = app_handler;
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = flags;
  g_assert_cmpint (sigaction (signum, &sa, NULL), ==, 0);
}

static gboolean
has_app_handler (int signum)
{
  struct sigaction sa;

  g_assert_cmpint (sigaction (signum, NULL, &sa), ==, 0);
  return sa.sa_handler == app_handler;
}

/* The application's handler for the default signal is never replaced: the
 * next free real-time signal is used. */
static void
test_signal_existing_handler (void)
{
  if (g_test_subprocess ())
    {
      int wanted = killable_get_interrupt_signal ();
      g_autoptr(GError) error = NULL;

      install_app_handler (wanted, 0);

      /* Chosen explicitly: refused with a clear error. */
      g_assert_false (killable_set_interrupt_signal (wanted, &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
      g_assert_nonnull (strstr (error->message, "handler"));

      g_assert_cmpint (interrupt_blocked_read (), ==, EINTR);
      g_assert_true (has_app_handler (wanted));
      g_assert_cmpint (g_atomic_int_get (&app_handler_calls), ==, 0);
      g_assert_cmpint (killable_get_interrupt_signal (), !=, wanted);
      return;
    }

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*already has a handler*");
}

/* The application installs its own SA_RESTART handler after the first
 * interrupt: the library notices, never sends into it, and moves on. */
static void
test_signal_handler_installed_later (void)
{
  if (g_test_subprocess ())
    {
      int first;

      g_assert_cmpint (interrupt_blocked_read (), ==, EINTR);
      first = killable_get_interrupt_signal ();
      install_app_handler (first, SA_RESTART);

      g_assert_cmpint (interrupt_blocked_read (), ==, EINTR);
      g_assert_cmpint (g_atomic_int_get (&app_handler_calls), ==, 0);
      g_assert_true (has_app_handler (first));
      g_assert_cmpint (killable_get_interrupt_signal (), !=, first);
      return;
    }

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*installed its own handler*");
}

/* Every real-time signal has a handler: a warning, the application's
 * handlers untouched, and the task can still be killed. */
static void
test_signal_none_free (void)
{
  if (g_test_subprocess ())
    {
      TestGate gate;
      g_autoptr(KillableTask) task = NULL;
      g_autoptr(GError) error = NULL;

      g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
      for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
        install_app_handler (s, 0);

      test_gate_init (&gate);
      task = killable_task_new ("no-signal", work_pass_gate, &gate, NULL);
      killable_task_set_interrupt_syscalls (task, TRUE);
      g_assert_true (killable_task_start (task, NULL));
      test_gate_wait_entered (&gate, 1);
      killable_task_interrupt (task);
      killable_task_interrupt (task);
      killable_task_kill (task);
      g_assert_false (killable_task_join (task, &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
      g_assert_cmpint (g_atomic_int_get (&app_handler_calls), ==, 0);
      for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
        g_assert_true (has_app_handler (s));
      test_gate_open (&gate);
      /* The abandoned worker still reads @gate (on this stack frame) as it
       * leaves the gate: wait until it has returned. */
      TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == 0);
      return;
    }

  if (test_under_valgrind ())
    {
      g_test_skip ("valgrind reserves real-time signals");
      return;
    }
#ifdef KILLABLE_SYNC_PTHREAD
  g_test_skip ("ThreadSanitizer intercepts the handlers of every signal");
  return;
#endif

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  /* Once, however many interrupts. */
  g_test_trap_assert_stderr ("*every real-time signal has a handler*");
  g_test_trap_assert_stderr_unmatched ("*every real-time signal*every real-time signal*");
}

/* KILLABLE_INTERRUPT_SIGNAL is parsed strictly. */
static void
test_signal_env_strict (void)
{
  const char *bad[] = { "41abc", "abc", "", " 41", "41 ", "-41", "0x29", "99999999999999999999" };

  if (g_test_subprocess ())
    {
      const char *value = g_getenv ("TEST_HOST_VALUE");

      g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
      g_setenv ("KILLABLE_INTERRUPT_SIGNAL", value, TRUE);
      if (g_strcmp0 (value, "good") == 0)
        {
          g_autofree char *s = g_strdup_printf ("%d", SIGRTMIN + 3);

          g_setenv ("KILLABLE_INTERRUPT_SIGNAL", s, TRUE);
          g_assert_cmpint (killable_get_interrupt_signal (), ==, SIGRTMIN + 3);
        }
      else
        g_assert_cmpint (killable_get_interrupt_signal (), ==, SIGRTMIN + 6);
      return;
    }

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_setenv ("TEST_HOST_VALUE", bad[i], TRUE);
      g_test_trap_subprocess (NULL, TEST_GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      g_test_trap_assert_stderr ("*KILLABLE_INTERRUPT_SIGNAL*not a real-time signal*");
    }

  g_setenv ("TEST_HOST_VALUE", "good", TRUE);
  g_test_trap_subprocess (NULL, TEST_GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_unsetenv ("TEST_HOST_VALUE");
}

/* }}} */

/* Exhaustion: no thread, no fd {{{ */

/* Root ignores RLIMIT_NPROC: the child drops to nobody first. Returns
 * FALSE (the test is skipped) when not root. */
static gboolean
drop_to_nobody (void)
{
  if (getuid () != 0)
    return FALSE;

  g_assert_cmpint (setgroups (0, NULL), ==, 0);
  g_assert_cmpint (setgid (65534), ==, 0);
  g_assert_cmpint (setuid (65534), ==, 0);
  /* A process that changed its credentials is not dumpable: its own
   * /proc/self/task/TID/syscall (the handshakes) would be unreadable. */
  g_assert_cmpint (prctl (PR_SET_DUMPABLE, 1, 0, 0, 0), ==, 0);
  return TRUE;
}

static void
set_limit (int      resource,
           rlim_t   soft)
{
  struct rlimit rl;

  g_assert_cmpint (getrlimit (resource, &rl), ==, 0);
  rl.rlim_cur = MIN (soft, rl.rlim_max);
  g_assert_cmpint (setrlimit (resource, &rl), ==, 0);
}

/* What must keep working when nothing new can be created: stop, kill,
 * interrupt and join of running tasks, timeouts and grace periods set now
 * (late, with a warning, rather than an abort). Started before the
 * exhaustion: a thread task ignoring stops, a thread task blocked in read()
 * with interrupt-syscalls, and a process task. */
typedef struct
{
  TestGate              gate;
  KillableTask         *stubborn;
  BlockedRead           br;
  KillableTask         *reader;
  KillableProcessTask  *process;
} Running;

static void
running_start (Running *r)
{
  /* Until stopped, or this process is gone (the test failed); it keeps no
   * pipe of the test's open, so a crash is reported at once. */
  g_autofree char *script = g_strdup_printf ("exec >/dev/null 2>&1; "
                                             "while kill -0 %d; do sleep 0.1; done",
                                             (int) getpid ());
  const char *argv[] = { "sh", "-c", script, NULL };
  g_autoptr(GError) error = NULL;

  test_gate_init (&r->gate);
  r->stubborn = killable_task_new ("stubborn", work_pass_gate, &r->gate, NULL);
  g_assert_true (killable_task_start (r->stubborn, NULL));
  test_gate_wait_entered (&r->gate, 1);

  blocked_read_init (&r->br);
  r->reader = killable_task_new ("reader", work_blocked_read, &r->br, NULL);
  killable_task_set_interrupt_syscalls (r->reader, TRUE);
  g_assert_true (killable_task_start (r->reader, NULL));
  test_gate_wait_entered (&r->br.gate, 1);
  test_wait_thread_in (r->br.gate.worker_tid, TEST_IN_READ);

  r->process = killable_process_task_new (argv, &error);
  g_assert_no_error (error);
  g_assert_true (killable_task_start (KILLABLE_TASK (r->process), NULL));
  TEST_POLL_UNTIL (killable_process_task_get_pid (r->process) > 0);
}

static void
running_shed (Running *r)
{
  g_autoptr(GError) error = NULL;

  /* A timeout set now needs the timer thread. */
  killable_task_set_timeout (r->stubborn, 1000);

  /* interrupt-syscalls: the signal, without the repeat timer. */
  killable_task_stop (r->reader);
  killable_task_interrupt (r->reader);
  g_assert_false (test_join_guarded (r->reader, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_clear_error (&error);

  /* A process task's stop (SIGTERM) with its default grace period. */
  killable_task_stop (KILLABLE_TASK (r->process));
  g_assert_false (test_join_guarded (KILLABLE_TASK (r->process), &error));
  g_clear_error (&error);

  /* Stop and kill of a task that ignores stops. */
  killable_task_stop (r->stubborn);
  killable_task_kill (r->stubborn);
  g_assert_false (test_join_guarded (r->stubborn, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  test_gate_open (&r->gate);
}

static void
running_clear (Running *r)
{
  /* The stubborn task's abandoned worker still reads @r->gate as it
   * leaves it. */
  TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == 0);
  g_clear_object (&r->stubborn);
  g_clear_object (&r->reader);
  g_clear_object (&r->process);
  blocked_read_clear (&r->br);
  test_gate_clear (&r->gate);
}

static void
test_exhaustion_threads (void)
{
  if (g_test_subprocess ())
    {
      Running r;
      g_autoptr(KillableTask) task = NULL;
      g_autoptr(KillableTask) late = NULL;
      g_autoptr(GError) error = NULL;

      g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
      g_assert_true (drop_to_nobody ());
      running_start (&r);

      /* No new thread from here on (the limit counts this user's threads). */
      set_limit (RLIMIT_NPROC, 0);

      /* start() fails cleanly. */
      task = killable_task_new ("no-thread", work_true, NULL, NULL);
      g_assert_false (killable_task_start (task, &error));
      g_assert_nonnull (error);
      g_clear_error (&error);

      /* A timeout set while no timer thread can exist... */
      late = killable_task_new ("late", work_sleep_until_stopped, NULL, NULL);
      killable_task_set_timeout (late, 1000);

      running_shed (&r);
      running_clear (&r);

      /* ... fires once threads can be created again. */
      set_limit (RLIMIT_NPROC, RLIM_INFINITY);
      g_assert_true (killable_task_start (late, NULL));
      g_assert_false (test_join_guarded (late, &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
      return;
    }

  if (getuid () != 0)
    {
      g_test_skip ("needs root: root ignores RLIMIT_NPROC, so the test drops to "
                   "nobody (uid 65534), which only root can do");
      return;
    }

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC * 2, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*could not start the timer thread*");
  g_test_trap_assert_stderr_unmatched ("*GLib-ERROR*");
}

static void
test_exhaustion_fds (void)
{
  if (g_test_subprocess ())
    {
      Running r;
      g_autoptr(GError) error = NULL;
      g_autoptr(KillableTask) task = NULL;
      int fd, n_opened = 0;

      g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
      if (getuid () == 0)
        drop_to_nobody ();
      /* A GLib application has its default main context already (its
       * creation needs an fd, and GLib aborts without one). */
      g_main_context_default ();
      running_start (&r);

      set_limit (RLIMIT_NOFILE, 64);
      while ((fd = open ("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n_opened++;
      g_assert_cmpint (errno, ==, EMFILE);
      g_test_message ("%d fds opened until EMFILE", n_opened);

      /* A thread task still starts and ends (it needs no fd). */
      task = killable_task_new ("no-fd", work_sleep_until_stopped, NULL, NULL);
      g_assert_true (killable_task_start (task, NULL));
      killable_task_stop (task);
      g_assert_false (test_join_guarded (task, &error));
      g_clear_error (&error);

      running_shed (&r);
      running_clear (&r);
      return;
    }

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC * 2, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr_unmatched ("*GLib-ERROR*");
}

/* }}} */

/* kill() always releases the owner {{{ */

/* The program runs as root, its owner as nobody (as when a program became
 * root through su or sudo): kill() gets EPERM, and still ends the task. */
static void
test_kill_eperm (void)
{
  if (g_test_subprocess ())
    {
      /* It ends by itself once this process is gone. */
      g_autofree char *script = g_strdup_printf ("while kill -0 %d 2>/dev/null; do sleep 0.1; done",
                                                 (int) getpid ());
      const char *argv[] = { "sh", "-c", script, NULL };
      g_autoptr(KillableProcessTask) task = NULL;
      g_autoptr(GError) error = NULL;

      g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
      task = killable_process_task_new (argv, &error);
      g_assert_no_error (error);
      /* Signalled directly: the reaper helper would still kill it. */
      killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_GROUP);
      g_assert_true (killable_task_start (KILLABLE_TASK (task), NULL));
      TEST_POLL_UNTIL (killable_process_task_get_pid (task) > 0);

      g_assert_true (drop_to_nobody ());
      g_assert_cmpint (kill (killable_process_task_get_pid (task), 0), ==, -1);
      g_assert_cmpint (errno, ==, EPERM);

      killable_task_stop (KILLABLE_TASK (task));
      killable_task_kill (KILLABLE_TASK (task));
      g_assert_false (test_join_guarded (KILLABLE_TASK (task), &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
      g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==,
                       KILLABLE_TASK_STATE_KILLED);
      return;
    }

  if (getuid () != 0)
    {
      g_test_skip ("needs root: the program must run as a user its owner cannot signal");
      return;
    }

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC * 2, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*program*sh*(pid *cannot be signalled*");
}

/* }}} */

/* Hostile input {{{ */

static void
test_hostile_not_utf8 (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("ok", work_true, NULL, NULL);
  g_autofree char *status = NULL;

  killable_task_set_status (task, "fine");
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*g_utf8_validate*");
  killable_task_set_status (task, "bad \xff\xfe status");
  g_test_assert_expected_messages ();
  status = killable_task_dup_status (task);
  g_assert_cmpstr (status, ==, "fine");

  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*g_utf8_validate*");
  g_assert_null (killable_task_new ("bad \xff name", work_true, NULL, NULL));
  g_test_assert_expected_messages ();
}

static void
test_hostile_environ (void)
{
  const char *bad[][2] = { { "NOEQUALS", NULL }, { "=x", NULL }, { "", NULL } };
  const char *good[] = { "A=1", "EMPTY=", NULL };
  const char *argv[] = { "sh", "-c", "test \"$A\" = 1 && test -z \"$EMPTY\"", NULL };
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;

  task = killable_process_task_new (argv, &error);
  g_assert_no_error (error);
  killable_process_task_set_environ (task, good);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*environ_is_valid*");
      killable_process_task_set_environ (task, bad[i]);
      g_test_assert_expected_messages ();
    }

  /* The good environment is still the one in effect. */
  g_assert_true (killable_task_start (KILLABLE_TASK (task), NULL));
  g_assert_true (test_join_guarded (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
}

static void
test_hostile_program_name (void)
{
  g_autofree char *dir = g_dir_make_tmp ("killable-host-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "prog\xff\xfe", NULL);
  const char *argv[] = { path, NULL };
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  const char *name;

  g_assert_true (g_file_set_contents (path, "#!/bin/sh\nexit 0\n", -1, NULL));
  g_assert_cmpint (g_chmod (path, 0755), ==, 0);

  task = killable_process_task_new (argv, &error);
  g_assert_no_error (error);
  name = killable_task_get_name (KILLABLE_TASK (task));
  g_assert_true (g_utf8_validate (name, -1, NULL));
  g_assert_true (g_str_has_prefix (name, "prog"));
  g_assert_true (killable_task_start (KILLABLE_TASK (task), NULL));
  g_assert_true (test_join_guarded (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);

  g_unlink (path);
  g_rmdir (dir);
}

/* Without PATH, what execvp() searches: never the current directory. */
static void
test_hostile_path_unset (void)
{
  if (g_test_subprocess ())
    {
      g_autofree char *dir = g_dir_make_tmp ("killable-host-XXXXXX", NULL);
      g_autofree char *path = g_build_filename (dir, "killable-host-here-only", NULL);
      const char *here[] = { "killable-host-here-only", NULL };
      const char *sh[] = { "sh", "-c", "exit 0", NULL };
      g_autoptr(KillableProcessTask) task = NULL;
      g_autoptr(GError) error = NULL;

      g_assert_true (g_file_set_contents (path, "#!/bin/sh\nexit 0\n", -1, NULL));
      g_assert_cmpint (g_chmod (path, 0755), ==, 0);
      g_assert_cmpint (chdir (dir), ==, 0);
      g_unsetenv ("PATH");

      g_assert_null (killable_process_task_new (here, &error));
      g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT);
      g_clear_error (&error);

      task = killable_process_task_new (sh, &error);
      g_assert_no_error (error);
      g_assert_true (killable_task_start (KILLABLE_TASK (task), NULL));
      g_assert_true (test_join_guarded (KILLABLE_TASK (task), &error));

      g_unlink (path);
      g_rmdir (dir);
      return;
    }

  g_test_trap_subprocess (NULL, TEST_GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* }}} */

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/host/overflow/grace", test_overflow_grace);
  g_test_add_func ("/host/overflow/grace-process", test_overflow_grace_process);
  g_test_add_func ("/host/overflow/deadline", test_overflow_deadline);
  g_test_add_func ("/host/overflow/wait-self", test_overflow_wait_self);
  g_test_add_func ("/host/overflow/sleep", test_overflow_sleep);
  g_test_add_func ("/host/fork/after-tasks", test_fork_after_tasks);
  g_test_add_func ("/host/fork/while-churning", test_fork_while_churning);
  g_test_add_func ("/host/fork/waits-for-exiting-worker", test_fork_waits_for_exiting_worker);
  g_test_add_func ("/host/fork/in-worker", test_fork_in_worker);
  g_test_add_func ("/host/signal/blocked-in-main", test_signal_blocked_in_main);
  g_test_add_func ("/host/signal/blocked-by-previous-task", test_signal_blocked_by_previous_task);
  g_test_add_func ("/host/signal/existing-handler", test_signal_existing_handler);
  g_test_add_func ("/host/signal/handler-installed-later", test_signal_handler_installed_later);
  g_test_add_func ("/host/signal/none-free", test_signal_none_free);
  g_test_add_func ("/host/signal/env-strict", test_signal_env_strict);

  g_test_add_func ("/host/exhaustion/threads", test_exhaustion_threads);
  g_test_add_func ("/host/exhaustion/fds", test_exhaustion_fds);

  g_test_add_func ("/host/kill/eperm", test_kill_eperm);

  g_test_add_func ("/host/hostile/not-utf8", test_hostile_not_utf8);
  g_test_add_func ("/host/hostile/environ", test_hostile_environ);
  g_test_add_func ("/host/hostile/program-name", test_hostile_program_name);
  g_test_add_func ("/host/hostile/path-unset", test_hostile_path_unset);

  return g_test_run ();
}
