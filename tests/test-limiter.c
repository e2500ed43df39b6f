/* test-limiter.c: KillableLimiter
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "test-core-util.h"
#include "killable-worker-pool-private.h"

static int n_running_now;     /* (atomic) */
static int max_running_seen;  /* (atomic) */
static int max_threads_seen;  /* (atomic) */
static int n_ran;             /* (atomic) */

static void
atomic_max (int *where,
            int  value)
{
  int old;

  while ((old = g_atomic_int_get (where)) < value &&
         !g_atomic_int_compare_and_exchange (where, old, value))
    ;
}

static gboolean
work_count (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  int now = g_atomic_int_add (&n_running_now, 1) + 1;

  atomic_max (&max_running_seen, now);
  atomic_max (&max_threads_seen, (int) killable_worker_pool_get_n_threads ());
  g_atomic_int_inc (&n_ran);
  g_atomic_int_add (&n_running_now, -1);

  return killable_task_check (task, error);
}

/* 10 000 tasks under a limit of 4 use at most 4 worker threads: measured
 * with the pool's thread count, first in this program (no idle thread
 * from another test). */
/* A permit returns once its task's worker is idle again (right after the
 * terminal state is published): a join() may return a moment before.
 * Bounded by the guard. */
static void
wait_permits_returned (KillableLimiter *limiter)
{
  gint64 end = g_get_monotonic_time () + TEST_GUARD_USEC;

  while (killable_limiter_get_n_running (limiter) != 0 && g_get_monotonic_time () < end)
    g_thread_yield ();
  g_assert_cmpuint (killable_limiter_get_n_running (limiter), ==, 0);
}

static void
test_limiter_threads (void)
{
  const guint n = test_scale (10000, 1000);
  g_autoptr(KillableLimiter) limiter = killable_limiter_new (4);
  g_autoptr(KillableTask) group = killable_task_new_group ("thumbnails");
  g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);

  g_assert_cmpuint (killable_worker_pool_get_n_threads (), ==, 0);
  killable_task_set_limiter (group, limiter);   /* ignored: a group takes no permit */

  for (guint i = 0; i < n; i++)
    {
      KillableTask *task = killable_task_new ("thumbnail", work_count, NULL, NULL);

      killable_task_set_limiter (task, limiter);
      g_assert_true (killable_task_add_child (group, task, NULL));
      g_ptr_array_add (tasks, task);
    }
  g_assert_true (killable_task_start (group, NULL));
  for (guint i = 0; i < n; i++)
    g_assert_true (killable_task_start (g_ptr_array_index (tasks, i), NULL));

  g_assert_true (killable_task_join (group, NULL));
  g_assert_cmpint (g_atomic_int_get (&n_ran), ==, (int) n);
  g_assert_cmpint (g_atomic_int_get (&max_running_seen), <=, 4);
  g_assert_cmpint (g_atomic_int_get (&max_threads_seen), <=, 4);
  g_assert_cmpuint (killable_worker_pool_get_n_threads (), <=, 4);
  wait_permits_returned (limiter);
  g_assert_cmpuint (killable_limiter_get_n_waiting (limiter), ==, 0);
}

/* Beyond the limit a task waits PENDING; stopping it then ends it
 * CANCELLED without running; a returned permit starts the next. */
static void
test_limiter_wait_and_stop (void)
{
  g_autoptr(KillableLimiter) limiter = killable_limiter_new (2);
  KillableTask *tasks[4];
  TestGate gates[4];
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (tasks); i++)
    {
      test_gate_init (&gates[i]);
      tasks[i] = killable_task_new ("gated", test_work_pass_gate, &gates[i], NULL);
      g_object_set (tasks[i], "limiter", limiter, NULL);
      g_assert_true (killable_task_get_limiter (tasks[i]) == limiter);
      g_assert_true (killable_task_start (tasks[i], NULL));
    }

  test_gate_wait_entered (&gates[0], 1);
  test_gate_wait_entered (&gates[1], 1);
  g_assert_cmpuint (killable_limiter_get_n_running (limiter), ==, 2);
  g_assert_cmpuint (killable_limiter_get_n_waiting (limiter), ==, 2);
  g_assert_cmpint (killable_task_get_state (tasks[2]), ==, KILLABLE_TASK_STATE_PENDING);
  g_assert_cmpint (killable_task_get_state (tasks[3]), ==, KILLABLE_TASK_STATE_PENDING);

  /* Stopped while it waits: ends at once, never runs. */
  killable_task_stop (tasks[2]);
  g_assert_cmpint (killable_task_get_state (tasks[2]), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_false (killable_task_join (tasks[2], &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpuint (killable_limiter_get_n_waiting (limiter), ==, 1);

  /* A permit comes back: the next waiting task runs. */
  test_gate_open (&gates[0]);
  g_assert_true (killable_task_join (tasks[0], NULL));
  test_gate_wait_entered (&gates[3], 1);
  g_assert_cmpuint (killable_limiter_get_n_waiting (limiter), ==, 0);

  test_gate_open (&gates[1]);
  test_gate_open (&gates[3]);
  g_assert_true (killable_task_join (tasks[1], NULL));
  g_assert_true (killable_task_join (tasks[3], NULL));
  g_assert_cmpint (gates[2].entered, ==, 0);
  wait_permits_returned (limiter);

  for (guint i = 0; i < G_N_ELEMENTS (tasks); i++)
    {
      g_object_unref (tasks[i]);
      test_gate_clear (&gates[i]);
    }
}

/* A killed task gives its permit back at once, though its abandoned
 * thread still runs. */
static void
test_limiter_kill (void)
{
  g_autoptr(KillableLimiter) limiter = killable_limiter_new (1);
  g_autoptr(KillableTask) stuck = NULL;
  g_autoptr(KillableTask) next = NULL;
  TestGate gate, gate2;

  test_gate_init (&gate);
  test_gate_init (&gate2);
  stuck = killable_task_new ("stuck", test_work_pass_gate, &gate, NULL);
  next = killable_task_new ("next", test_work_pass_gate, &gate2, NULL);
  killable_task_set_limiter (stuck, limiter);
  killable_task_set_limiter (next, limiter);
  g_assert_true (killable_task_start (stuck, NULL));
  g_assert_true (killable_task_start (next, NULL));
  test_gate_wait_entered (&gate, 1);
  g_assert_cmpint (killable_task_get_state (next), ==, KILLABLE_TASK_STATE_PENDING);

  killable_task_kill (stuck);
  g_assert_cmpint (killable_task_get_state (stuck), ==, KILLABLE_TASK_STATE_KILLED);
  test_gate_wait_entered (&gate2, 1);

  test_gate_open (&gate2);
  g_assert_true (killable_task_join (next, NULL));
  test_gate_open (&gate);
  TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == 0);
  test_gate_clear (&gate);
  test_gate_clear (&gate2);
}

/* A parent group with a limit of 1 never starves its children: it holds
 * no permit. */
static void
test_limiter_group_no_permit (void)
{
  g_autoptr(KillableLimiter) limiter = killable_limiter_new (1);
  g_autoptr(KillableTask) group = killable_task_new_group ("group");
  g_autoptr(KillableTask) child = killable_task_new ("child", work_count, NULL, NULL);

  killable_task_set_limiter (group, limiter);
  killable_task_set_limiter (child, limiter);
  g_assert_true (killable_task_add_child (group, child, NULL));
  g_assert_true (killable_task_start (group, NULL));
  g_assert_cmpuint (killable_limiter_get_n_running (limiter), ==, 0);
  g_assert_true (killable_task_start (child, NULL));
  g_assert_true (killable_task_join (group, NULL));
  g_assert_cmpint (killable_task_get_state (child), ==, KILLABLE_TASK_STATE_SUCCEEDED);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  /* First: it counts the pool's threads from zero. */
  g_test_add_func ("/limiter/threads", test_limiter_threads);
  g_test_add_func ("/limiter/wait-and-stop", test_limiter_wait_and_stop);
  g_test_add_func ("/limiter/kill", test_limiter_kill);
  g_test_add_func ("/limiter/group-no-permit", test_limiter_group_no_permit);

  return g_test_run ();
}
