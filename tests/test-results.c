/* test-results.c: results, wait_async, GIO habits, group tasks, outcomes
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "test-core-util.h"
#include "killable-worker-pool-private.h"

/* Results {{{ */

static gboolean
work_return_int (KillableTask  *task,
                 gpointer       data,
                 GError       **error)
{
  GValue value = G_VALUE_INIT;

  g_value_init (&value, G_TYPE_INT);
  g_value_set_int (&value, 41);
  killable_task_return_value (task, &value);
  /* A later value replaces the first. */
  g_value_set_int (&value, GPOINTER_TO_INT (data));
  killable_task_return_value (task, &value);
  g_value_unset (&value);

  return TRUE;
}

static gboolean
work_return_string_then_fail (KillableTask  *task,
                              gpointer       data,
                              GError       **error)
{
  GValue value = G_VALUE_INIT;

  g_value_init (&value, G_TYPE_STRING);
  g_value_set_string (&value, "partial");
  killable_task_return_value (task, &value);
  g_value_unset (&value);

  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "Nothing here");
  return FALSE;
}

static gboolean
work_nothing (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  return TRUE;
}

static void
test_results_join (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("answer", work_return_int,
                                                    GINT_TO_POINTER (42), NULL);
  g_autoptr(KillableTask) failing = killable_task_new ("failing", work_return_string_then_fail,
                                                       NULL, NULL);
  g_autoptr(KillableTask) empty = killable_task_new ("empty", work_nothing, NULL, NULL);
  g_autoptr(GError) error = NULL;
  GValue value = G_VALUE_INIT;

  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  g_assert_true (killable_task_propagate_value (task, &value, &error));
  g_assert_no_error (error);
  g_assert_true (G_VALUE_HOLDS_INT (&value));
  g_assert_cmpint (g_value_get_int (&value), ==, 42);
  g_value_unset (&value);
  /* Any number of times. */
  g_assert_true (killable_task_propagate_value (task, &value, NULL));
  g_assert_cmpint (g_value_get_int (&value), ==, 42);
  g_value_unset (&value);
  g_assert_true (killable_task_propagate_value (task, NULL, NULL));

  /* A failed task gives its error, not the value it set. */
  g_assert_true (killable_task_start (failing, NULL));
  g_assert_false (killable_task_join (failing, NULL));
  g_assert_false (killable_task_propagate_value (failing, &value, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_false (G_IS_VALUE (&value));
  g_clear_error (&error);

  /* Succeeded without a value: the value stays unset. */
  g_assert_true (killable_task_start (empty, NULL));
  g_assert_true (killable_task_join (empty, NULL));
  g_assert_true (killable_task_propagate_value (empty, &value, &error));
  g_assert_false (G_IS_VALUE (&value));
}

static void
results_async_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  GValue *value = user_data;

  g_assert_true (killable_task_run_finish (KILLABLE_TASK (object), result, NULL));
  g_assert_true (killable_task_propagate_value (KILLABLE_TASK (object), value, NULL));
}

static void
test_results_run_async (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("answer", work_return_int,
                                                    GINT_TO_POINTER (7), NULL);
  GValue value = G_VALUE_INIT;

  killable_task_run_async (task, NULL, results_async_cb, &value);
  TEST_ITERATE_UNTIL (NULL, G_IS_VALUE (&value));
  g_assert_cmpint (g_value_get_int (&value), ==, 7);
  g_value_unset (&value);
}

/* }}} */

/* wait_async {{{ */

typedef struct
{
  GMainContext *context;
  KillableTask *task;
  GCancellable *cancellable;
  gboolean      done;
  gboolean      ret;
  GError       *error;
  GThread      *thread;      /* where the callback ran */
  int           value;
} Wait;

static void
wait_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  Wait *wait = user_data;
  GValue value = G_VALUE_INIT;

  wait->ret = killable_task_wait_finish (KILLABLE_TASK (object), result, &wait->error);
  if (wait->ret && killable_task_propagate_value (KILLABLE_TASK (object), &value, NULL))
    {
      wait->value = g_value_get_int (&value);
      g_value_unset (&value);
    }
  wait->thread = g_thread_self ();
  wait->done = TRUE;
  g_main_context_wakeup (wait->context);
}

static gpointer
wait_thread (gpointer data)
{
  Wait *wait = data;

  g_main_context_push_thread_default (wait->context);
  killable_task_wait_async (wait->task, wait->cancellable, wait_cb, wait);
  TEST_ITERATE_UNTIL (wait->context, wait->done);
  g_main_context_pop_thread_default (wait->context);

  return NULL;
}

static gboolean
work_gate_then_int (KillableTask  *task,
                    gpointer       data,
                    GError       **error)
{
  TestGate *gate = data;
  GValue value = G_VALUE_INIT;

  test_gate_enter_and_wait (gate);
  g_value_init (&value, G_TYPE_INT);
  g_value_set_int (&value, 5);
  killable_task_return_value (task, &value);

  return TRUE;
}

/* Several waiters, each on its own thread's context; one of them
 * cancelled, which abandons its wait and not the task. */
static void
test_wait_async_many (void)
{
  g_autoptr(KillableTask) task = NULL;
  TestGate gate;
  Wait waits[3];
  Wait cancelled;
  GThread *threads[2];

  test_gate_init (&gate);
  task = killable_task_new ("awaited", work_gate_then_int, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  memset (waits, 0, sizeof waits);
  memset (&cancelled, 0, sizeof cancelled);
  for (guint i = 0; i < G_N_ELEMENTS (waits); i++)
    {
      waits[i].task = task;
      waits[i].context = i == 0 ? g_main_context_ref (g_main_context_default ())
                                : g_main_context_new ();
    }

  cancelled.task = task;
  cancelled.context = g_main_context_ref (g_main_context_default ());
  cancelled.cancellable = g_cancellable_new ();
  killable_task_wait_async (task, cancelled.cancellable, wait_cb, &cancelled);
  killable_task_wait_async (task, NULL, wait_cb, &waits[0]);
  for (guint i = 1; i < G_N_ELEMENTS (waits); i++)
    threads[i - 1] = g_thread_new ("waiter", wait_thread, &waits[i]);

  g_cancellable_cancel (cancelled.cancellable);
  TEST_ITERATE_UNTIL (NULL, cancelled.done);
  g_assert_false (cancelled.ret);
  g_assert_error (cancelled.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  /* Only the wait was abandoned. */
  g_assert_false (killable_task_is_stop_requested (task));
  g_assert_false (killable_task_is_finished (task));
  g_assert_false (waits[0].done);

  test_gate_open (&gate);
  for (guint i = 1; i < G_N_ELEMENTS (waits); i++)
    g_thread_join (threads[i - 1]);
  TEST_ITERATE_UNTIL (NULL, waits[0].done);

  for (guint i = 0; i < G_N_ELEMENTS (waits); i++)
    {
      g_assert_true (waits[i].ret);
      g_assert_no_error (waits[i].error);
      g_assert_cmpint (waits[i].value, ==, 5);
      if (i == 0)
        g_assert_true (waits[i].thread == g_thread_self ());
      else
        g_assert_true (waits[i].thread == threads[i - 1]);
      g_main_context_unref (waits[i].context);
    }

  g_clear_error (&cancelled.error);
  g_object_unref (cancelled.cancellable);
  g_main_context_unref (cancelled.context);
  test_gate_clear (&gate);
}

/* A terminal task: the wait completes at once (in a later iteration). A
 * stopped one gives the stop's cause. */
static void
test_wait_async_terminal (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("stopped", work_nothing, NULL, NULL);
  Wait wait;

  memset (&wait, 0, sizeof wait);
  wait.context = g_main_context_default ();
  killable_task_stop (task);
  killable_task_wait_async (task, NULL, wait_cb, &wait);
  g_assert_false (wait.done);
  TEST_ITERATE_UNTIL (NULL, wait.done);
  g_assert_false (wait.ret);
  g_assert_error (wait.error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_clear_error (&wait.error);
}

static void
run_cb (GObject      *object,
        GAsyncResult *result,
        gpointer      user_data)
{
  Wait *wait = user_data;

  wait->ret = killable_task_run_finish (KILLABLE_TASK (object), result, &wait->error);
  wait->done = TRUE;
}

static gboolean
work_sleep_forever (KillableTask  *task,
                    gpointer       data,
                    GError       **error)
{
  test_gate_enter (data);
  return killable_task_sleep (task, G_MAXINT64, error);
}

/* run_finish gives G_IO_ERROR_CANCELLED only when the caller's cancellable
 * caused the stop; another stop keeps its own cause. */
static void
test_run_finish_cancel_cause (void)
{
  for (int i = 0; i < 2; i++)
    {
      g_autoptr(KillableTask) task = NULL;
      g_autoptr(GCancellable) cancellable = g_cancellable_new ();
      TestGate gate;
      Wait wait;

      memset (&wait, 0, sizeof wait);
      test_gate_init (&gate);
      task = killable_task_new ("cancelled", work_sleep_forever, &gate, NULL);
      killable_task_run_async (task, cancellable, run_cb, &wait);
      test_gate_wait_entered (&gate, 1);
      if (i == 0)
        g_cancellable_cancel (cancellable);
      else
        killable_task_stop (task);
      TEST_ITERATE_UNTIL (NULL, wait.done);
      g_assert_false (wait.ret);
      if (i == 0)
        g_assert_error (wait.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      else
        g_assert_error (wait.error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
      g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
      g_clear_error (&wait.error);
      test_gate_clear (&gate);
    }
}

/* }}} */

/* Outcomes {{{ */

static gboolean
work_return_true_at_once (KillableTask  *task,
                          gpointer       data,
                          GError       **error)
{
  return TRUE;
}

/* A parent whose own work returned TRUE, stopped while its child still
 * runs: CANCELLED with the stop's cause, not SUCCEEDED. */
static void
test_outcome_stopped_parent (void)
{
  g_autoptr(KillableTask) parent = killable_task_new ("parent", work_return_true_at_once,
                                                      NULL, NULL);
  g_autoptr(KillableTask) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) reason = g_error_new_literal (TEST_ERROR, 3, "Enough");
  TestGate gate;

  test_gate_init (&gate);
  child = killable_task_new ("child", work_sleep_forever, &gate, NULL);
  g_assert_true (killable_task_add_child (parent, child, NULL));
  g_assert_true (killable_task_start (child, NULL));
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&gate, 1);

  killable_task_stop_with_error (parent, reason);
  g_assert_false (killable_task_join (parent, &error));
  g_assert_error (error, TEST_ERROR, 3);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (killable_task_get_state (child), ==, KILLABLE_TASK_STATE_CANCELLED);
  test_gate_clear (&gate);
}

static gboolean
work_fail_now (KillableTask  *task,
               gpointer       data,
               GError       **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Broken");
  return FALSE;
}

static gboolean
work_wait_children_ok (KillableTask  *task,
                       gpointer       data,
                       GError       **error)
{
  /* Returns TRUE after the stop its failing child caused. */
  test_gate_enter_and_wait (data);
  return TRUE;
}

/* FAIL_FAST: the parent stays FAILED with CHILD_FAILED, whatever its own
 * work returned. */
static void
test_outcome_fail_fast (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(KillableTask) child = killable_task_new ("bad", work_fail_now, NULL, NULL);
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);
  parent = killable_task_new ("parent", work_wait_children_ok, &gate, NULL);
  g_assert_true (killable_task_add_child (parent, child, NULL));
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&gate, 1);
  g_assert_true (killable_task_start (child, NULL));
  g_assert_false (killable_task_join (child, NULL));
  /* The parent learns of the end just after the child's join returned. */
  TEST_POLL_UNTIL (killable_task_is_stop_requested (parent));
  test_gate_open (&gate);

  g_assert_false (killable_task_join (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_FAILED);
  test_gate_clear (&gate);
}

static gboolean
work_stuck (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  test_gate_pass (data);
  return TRUE;
}

/* A timeout that escalated to a kill: TIMED_OUT, state KILLED. */
static void
test_outcome_timeout_killed (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);
  task = killable_task_new ("stuck", work_stuck, &gate, NULL);
  killable_task_set_grace_period (task, 1000);
  g_assert_true (killable_task_start (task, NULL));
  /* The timeout is armed once the work runs: a timeout that expires before
   * the worker starts the work ends the task CANCELLED, with nothing to
   * kill. (It counts from the start: it expires at once.) */
  test_gate_wait_entered (&gate, 1);
  killable_task_set_timeout (task, 1000);

  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);

  test_gate_open (&gate);
  TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == 0);
  test_gate_clear (&gate);
}

/* }}} */

/* Group tasks {{{ */

static void
count_finished_cb (KillableTask *task,
                   gpointer      user_data)
{
  (*(int *) user_data)++;
}

static void
cleanup_count (KillableTask *task,
               gpointer      user_data)
{
  (*(int *) user_data)++;
}

static void
test_group_empty (void)
{
  g_autoptr(KillableTask) group = killable_task_new_group ("empty");
  guint n_threads = killable_worker_pool_get_n_threads ();
  int finished = 0, cleaned = 0;

  g_assert_true (killable_task_is_group (group));
  g_signal_connect (group, "finished", G_CALLBACK (count_finished_cb), &finished);
  killable_task_add_cleanup (group, cleanup_count, &cleaned, NULL);
  g_assert_true (killable_task_start (group, NULL));
  /* No work, no child: it ended in start(), on no thread of its own. */
  g_assert_cmpint (killable_task_get_state (group), ==, KILLABLE_TASK_STATE_SUCCEEDED);
  g_assert_cmpint (cleaned, ==, 1);
  g_assert_cmpuint (killable_worker_pool_get_n_threads (), ==, n_threads);
  g_assert_true (killable_task_join (group, NULL));
  TEST_ITERATE_UNTIL (NULL, finished == 1);
}

static void
test_group_children (void)
{
  g_autoptr(KillableTask) group = killable_task_new_group ("downloads");
  g_autoptr(KillableTask) a = NULL;
  g_autoptr(KillableTask) b = NULL;
  TestGate gate;
  int finished = 0;

  test_gate_init (&gate);
  a = killable_task_new ("a", test_work_pass_gate, &gate, NULL);
  b = killable_task_new ("b", test_work_pass_gate, &gate, NULL);
  g_assert_true (killable_task_add_child (group, a, NULL));
  g_assert_true (killable_task_add_child (group, b, NULL));
  g_signal_connect (group, "finished", G_CALLBACK (count_finished_cb), &finished);
  g_assert_true (killable_task_start (group, NULL));
  g_assert_true (killable_task_start (a, NULL));
  g_assert_true (killable_task_start (b, NULL));
  test_gate_wait_entered (&gate, 2);
  g_assert_cmpint (killable_task_get_state (group), ==, KILLABLE_TASK_STATE_RUNNING);

  test_gate_open (&gate);
  g_assert_true (killable_task_join (group, NULL));
  g_assert_cmpint (killable_task_get_state (a), ==, KILLABLE_TASK_STATE_SUCCEEDED);
  g_assert_cmpint (killable_task_get_state (b), ==, KILLABLE_TASK_STATE_SUCCEEDED);
  TEST_ITERATE_UNTIL (NULL, finished == 1);
  test_gate_clear (&gate);
}

static void
test_group_policy (void)
{
  for (int isolate = 0; isolate < 2; isolate++)
    {
      g_autoptr(KillableTask) group = killable_task_new_group ("group");
      g_autoptr(KillableTask) bad = killable_task_new ("bad", work_fail_now, NULL, NULL);
      g_autoptr(KillableTask) sleeper = NULL;
      g_autoptr(GError) error = NULL;
      TestGate gate;

      test_gate_init (&gate);
      sleeper = killable_task_new ("sleeper", work_sleep_forever, &gate, NULL);
      if (isolate)
        killable_task_set_child_policy (group, KILLABLE_CHILD_POLICY_ISOLATE);
      g_assert_true (killable_task_add_child (group, sleeper, NULL));
      g_assert_true (killable_task_add_child (group, bad, NULL));
      g_assert_true (killable_task_start (group, NULL));
      g_assert_true (killable_task_start (sleeper, NULL));
      test_gate_wait_entered (&gate, 1);
      g_assert_true (killable_task_start (bad, NULL));

      if (!isolate)
        {
          g_assert_false (killable_task_join (group, &error));
          g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED);
          g_assert_cmpint (killable_task_get_state (group), ==, KILLABLE_TASK_STATE_FAILED);
          g_assert_cmpint (killable_task_get_state (sleeper), ==, KILLABLE_TASK_STATE_CANCELLED);
        }
      else
        {
          g_assert_false (killable_task_join (bad, NULL));
          g_assert_false (killable_task_is_stop_requested (sleeper));
          killable_task_stop (sleeper);
          g_assert_true (killable_task_join (group, &error));
          g_assert_no_error (error);
        }
      test_gate_clear (&gate);
    }
}

static void
test_group_stop_and_kill (void)
{
  for (int kill = 0; kill < 2; kill++)
    {
      g_autoptr(KillableTask) group = killable_task_new_group ("group");
      g_autoptr(KillableTask) child = NULL;
      g_autoptr(GError) error = NULL;
      TestGate gate;

      test_gate_init (&gate);
      child = killable_task_new ("child", kill ? work_stuck : work_sleep_forever, &gate, NULL);
      g_assert_true (killable_task_add_child (group, child, NULL));
      g_assert_true (killable_task_start (group, NULL));
      g_assert_true (killable_task_start (child, NULL));
      test_gate_wait_entered (&gate, 1);

      if (kill)
        killable_task_kill (group);
      else
        killable_task_stop (group);

      g_assert_false (killable_task_join (group, &error));
      if (kill)
        {
          g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
          g_assert_cmpint (killable_task_get_state (group), ==, KILLABLE_TASK_STATE_KILLED);
          g_assert_cmpint (killable_task_get_state (child), ==, KILLABLE_TASK_STATE_KILLED);
          test_gate_open (&gate);
          TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == 0);
        }
      else
        {
          g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
          g_assert_cmpint (killable_task_get_state (group), ==, KILLABLE_TASK_STATE_CANCELLED);
          g_assert_cmpint (killable_task_get_state (child), ==, KILLABLE_TASK_STATE_CANCELLED);
        }
      test_gate_clear (&gate);
    }
}

/* A pending child keeps a started group live; a stop ends both. */
static void
test_group_stop_empty (void)
{
  g_autoptr(KillableTask) group = killable_task_new_group ("group");
  g_autoptr(KillableTask) child = killable_task_new ("pending", work_nothing, NULL, NULL);
  g_autoptr(GError) error = NULL;

  /* A pending child keeps a started group live. */
  g_assert_true (killable_task_add_child (group, child, NULL));
  g_assert_true (killable_task_start (group, NULL));
  g_assert_cmpint (killable_task_get_state (group), ==, KILLABLE_TASK_STATE_RUNNING);
  killable_task_stop (group);
  g_assert_cmpint (killable_task_get_state (child), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (killable_task_get_state (group), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_false (killable_task_join (group, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/results/join", test_results_join);
  g_test_add_func ("/results/run-async", test_results_run_async);
  g_test_add_func ("/results/wait-async-many", test_wait_async_many);
  g_test_add_func ("/results/wait-async-terminal", test_wait_async_terminal);
  g_test_add_func ("/results/run-finish-cancel-cause", test_run_finish_cancel_cause);
  g_test_add_func ("/outcome/stopped-parent", test_outcome_stopped_parent);
  g_test_add_func ("/outcome/fail-fast", test_outcome_fail_fast);
  g_test_add_func ("/outcome/timeout-killed", test_outcome_timeout_killed);
  g_test_add_func ("/group/empty", test_group_empty);
  g_test_add_func ("/group/children", test_group_children);
  g_test_add_func ("/group/policy", test_group_policy);
  g_test_add_func ("/group/stop-and-kill", test_group_stop_and_kill);
  g_test_add_func ("/group/stop-empty", test_group_stop_empty);

  return g_test_run ();
}
