/* test-pause.c: pausing and resuming thread tasks
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A paused thread task blocks in check() (the C inline, whose word is
 * non-zero while paused), sleep() and wait_fd(); resume() lets it go on,
 * stop() ends it at once and lifts the pause. Each "blocked" is proven with
 * /proc (test_wait_thread_in), never with a sleep. Process tasks are paused
 * in test-containment.c.
 */

#include "config.h"

#include <unistd.h>

#include "killable.h"
#include "test-core-util.h"

static GThread *main_thread;

/* What a blocking call in the worker saw: set under the gate's lock. */
typedef struct
{
  TestGate     gate;
  int          fds[2];      /* a pipe for wait_fd() */
  gboolean     returned;    /* the blocking call returned */
  gboolean     ok;          /* ... with TRUE (or a condition) */
  GIOCondition condition;
} Pause;

static void
pause_init (Pause *p)
{
  memset (p, 0, sizeof *p);
  test_gate_init (&p->gate);
  g_assert_no_errno (pipe (p->fds));
}

static void
pause_clear (Pause *p)
{
  close (p->fds[0]);
  close (p->fds[1]);
  test_gate_clear (&p->gate);
}

static void
note_return (Pause        *p,
             gboolean      ok,
             GIOCondition  condition)
{
  g_mutex_lock (&p->gate.lock);
  p->returned = TRUE;
  p->ok = ok;
  p->condition = condition;
  g_cond_broadcast (&p->gate.cond);
  g_mutex_unlock (&p->gate.lock);
}

static gboolean
has_returned (Pause *p)
{
  gboolean ret;

  g_mutex_lock (&p->gate.lock);
  ret = p->returned;
  g_mutex_unlock (&p->gate.lock);

  return ret;
}

/* The worker waits at the gate (opened once the test paused the task),
 * then makes one blocking call. */
static gboolean
work_check (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  Pause *p = data;
  gboolean ok;

  test_gate_note_worker (&p->gate);
  test_gate_enter_and_wait (&p->gate);
  ok = killable_task_check (task, error);   /* the header inline in C */
  note_return (p, ok, 0);

  return ok;
}

static gboolean
work_sleep (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  Pause *p = data;
  gboolean ok;

  test_gate_note_worker (&p->gate);
  test_gate_enter_and_wait (&p->gate);
  /* Zero: its time is over at once, so only the pause can hold it. */
  ok = killable_task_sleep (task, 0, error);
  note_return (p, ok, 0);

  return ok;
}

static gboolean
work_wait_fd (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  Pause *p = data;
  GIOCondition condition;

  test_gate_note_worker (&p->gate);
  test_gate_enter_and_wait (&p->gate);
  condition = killable_task_wait_fd (task, p->fds[0], G_IO_IN, -1, error);
  note_return (p, condition != 0, condition);

  return condition != 0;
}

static void
count_notify (GObject    *object,
              GParamSpec *pspec,
              gpointer    user_data)
{
  g_assert_true (g_thread_self () == main_thread);
  (*(int *) user_data)++;
}

/* Starts @func, pauses the task (before its blocking call), lets the
 * worker make the call and waits until it is blocked in @where. */
static KillableTask *
start_paused (Pause            *p,
              KillableTaskFunc  func,
              TestBlockedIn     where,
              int              *notified)
{
  KillableTask *task = killable_task_new ("paused", func, p, NULL);

  g_signal_connect (task, "notify::paused", G_CALLBACK (count_notify), notified);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&p->gate, 1);

  g_assert_cmpint (*killable_task_get_stop_flag (task), ==, 0);
  killable_task_pause (task);
  /* On the owner's thread: notified at once. */
  g_assert_cmpint (*notified, ==, 1);
  g_assert_true (killable_task_is_paused (task));
  /* The inline check's word sends a paused task to the slow path. */
  g_assert_cmpint (*killable_task_get_stop_flag (task), !=, 0);
  g_assert_false (killable_task_is_stop_requested (task));

  test_gate_open (&p->gate);
  test_wait_thread_in (p->gate.worker_tid, where);
  g_assert_false (has_returned (p));

  return task;
}

/* check(), sleep() and wait_fd() block while paused, and go on after the
 * resume. */
static void
test_blocks_then_resumes (gconstpointer data)
{
  int which = GPOINTER_TO_INT (data);
  static const KillableTaskFunc funcs[] = { work_check, work_sleep, work_wait_fd };
  Pause p;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  int notified = 0;

  pause_init (&p);
  /* wait_fd() is given a readable fd: only the pause holds it. */
  if (funcs[which] == work_wait_fd)
    g_assert_cmpint (write (p.fds[1], "x", 1), ==, 1);

  task = start_paused (&p, funcs[which], TEST_IN_FUTEX, &notified);

  killable_task_resume (task);
  g_assert_cmpint (notified, ==, 2);
  g_assert_false (killable_task_is_paused (task));
  g_assert_cmpint (*killable_task_get_stop_flag (task), ==, 0);
  g_assert_true (test_join_guarded (task, &error));
  g_assert_no_error (error);
  g_assert_true (p.returned);
  g_assert_true (p.ok);
  if (funcs[which] == work_wait_fd)
    g_assert_cmpint (p.condition & G_IO_IN, ==, G_IO_IN);

  pause_clear (&p);
}

/* A pause while wait_fd() polls: the fd becoming ready while paused does
 * not return it; it blocks until the resume, then reports the fd. */
static void
test_wait_fd_paused_in_poll (void)
{
  Pause p;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;

  pause_init (&p);
  task = killable_task_new ("poll", work_wait_fd, &p, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&p.gate, 1);
  test_gate_open (&p.gate);
  test_wait_thread_in (p.gate.worker_tid, TEST_IN_POLL);

  killable_task_pause (task);
  /* The pause wakes poll(): into the pause's wait. */
  test_wait_thread_in (p.gate.worker_tid, TEST_IN_FUTEX);
  /* The fd ready while paused does not return it. */
  g_assert_cmpint (write (p.fds[1], "x", 1), ==, 1);
  test_wait_thread_in (p.gate.worker_tid, TEST_IN_FUTEX);
  g_assert_false (has_returned (&p));

  killable_task_resume (task);
  g_assert_true (test_join_guarded (task, &error));
  g_assert_no_error (error);
  g_assert_cmpint (p.condition & G_IO_IN, ==, G_IO_IN);

  pause_clear (&p);
}

/* A stop while paused ends the blocked call at once and lifts the pause,
 * notified on the owner's context. */
static void
test_stop_while_paused (gconstpointer data)
{
  int which = GPOINTER_TO_INT (data);
  static const KillableTaskFunc funcs[] = { work_check, work_sleep, work_wait_fd };
  Pause p;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  int notified = 0;

  pause_init (&p);
  task = start_paused (&p, funcs[which], TEST_IN_FUTEX, &notified);

  killable_task_stop (task);
  g_assert_false (killable_task_is_paused (task));
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_true (p.returned);
  g_assert_false (p.ok);

  TEST_ITERATE_UNTIL (NULL, notified == 2);

  /* A stopped task is not paused again. */
  killable_task_pause (task);
  g_assert_false (killable_task_is_paused (task));

  pause_clear (&p);
}

static gpointer
pause_thread (gpointer data)
{
  killable_task_pause (data);
  return NULL;
}

/* Paused from another thread: notify::paused is emitted on the owner's
 * thread, when its context runs. */
static void
test_notify_from_other_thread (void)
{
  Pause p;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  int notified = 0;

  pause_init (&p);
  task = killable_task_new ("notify", work_check, &p, NULL);
  g_signal_connect (task, "notify::paused", G_CALLBACK (count_notify), &notified);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&p.gate, 1);

  g_thread_join (g_thread_new ("pauser", pause_thread, task));
  g_assert_true (killable_task_is_paused (task));
  g_assert_cmpint (notified, ==, 0);
  TEST_ITERATE_UNTIL (NULL, notified == 1);

  test_gate_open (&p.gate);
  test_wait_thread_in (p.gate.worker_tid, TEST_IN_FUTEX);
  killable_task_resume (task);
  g_assert_cmpint (notified, ==, 2);
  g_assert_true (test_join_guarded (task, &error));

  pause_clear (&p);
}

static gboolean
work_nothing (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  return TRUE;
}

/* Pausing a finished task does nothing (no critical: a finish may race
 * with a pause). */
static void
test_finished_is_noop (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("done", work_nothing, NULL, NULL);
  int notified = 0;

  g_signal_connect (task, "notify::paused", G_CALLBACK (count_notify), &notified);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (test_join_guarded (task, NULL));

  killable_task_pause (task);
  g_assert_false (killable_task_is_paused (task));
  g_assert_cmpint (*killable_task_get_stop_flag (task), ==, 0);
  killable_task_resume (task);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpint (notified, ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  main_thread = g_thread_self ();

  g_test_add_data_func ("/pause/check", GINT_TO_POINTER (0), test_blocks_then_resumes);
  g_test_add_data_func ("/pause/sleep", GINT_TO_POINTER (1), test_blocks_then_resumes);
  g_test_add_data_func ("/pause/wait-fd", GINT_TO_POINTER (2), test_blocks_then_resumes);
  g_test_add_func ("/pause/wait-fd-paused-in-poll", test_wait_fd_paused_in_poll);
  g_test_add_data_func ("/pause/stop/check", GINT_TO_POINTER (0), test_stop_while_paused);
  g_test_add_data_func ("/pause/stop/sleep", GINT_TO_POINTER (1), test_stop_while_paused);
  g_test_add_data_func ("/pause/stop/wait-fd", GINT_TO_POINTER (2), test_stop_while_paused);
  g_test_add_func ("/pause/notify-from-other-thread", test_notify_from_other_thread);
  g_test_add_func ("/pause/finished", test_finished_is_noop);

  return g_test_run ();
}
