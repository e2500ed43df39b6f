/* test-task.c: the KillableTask core
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <errno.h>
#include <fcntl.h>
#include <math.h>

#include <gio/gunixinputstream.h>
#include <killable.h>

#include "killable-worker-pool-private.h"
#include "test-core-util.h"

/* Works {{{ */

static gboolean
work_succeed (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  test_gate_note_worker (data);
  return TRUE;
}

static gboolean
work_fail (KillableTask  *task,
           gpointer       data,
           GError       **error)
{
  test_gate_note_worker (data);
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "Nothing here");
  return FALSE;
}

/* Waits at the gate, deaf to stops; then returns the gate's result, or
 * what killable_task_check() says. */
static gboolean
work_stuck (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  TestGate *gate = data;
  gboolean use_check, result;

  test_gate_note_worker (gate);
  test_gate_enter_and_wait (gate);

  g_mutex_lock (&gate->lock);
  use_check = gate->use_check;
  result = gate->result;
  g_mutex_unlock (&gate->lock);

  if (use_check)
    return killable_task_check (task, error);
  if (!result)
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "Nothing here");

  return result;
}

/* Sleeps through the task for a minute: only a stop ends it early. */
static gboolean
work_sleep_long (KillableTask  *task,
                 gpointer       data,
                 GError       **error)
{
  TestGate *gate = data;
  gboolean ret;

  test_gate_note_worker (gate);
  test_gate_enter (gate);

  ret = killable_task_sleep (task, 60 * G_USEC_PER_SEC, error);

  g_mutex_lock (&gate->lock);
  gate->returned_time = g_get_monotonic_time ();
  if (!ret && error != NULL && *error != NULL)
    gate->seen_error = g_error_copy (*error);
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);

  return ret;
}

/* Starts @task, whose work notes its worker on @gate then enters it, and
 * waits until that worker is inside its blocking call @where (a futex wait
 * with a timeout for killable_task_sleep(), poll() for wait_fd() and a
 * cancellable GIO read): not about to enter it, nor blocked on a lock on
 * the way. */
static void
start_until_blocked (KillableTask  *task,
                     TestGate      *gate,
                     TestBlockedIn  where)
{
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (gate, 1);
  test_wait_thread_in (gate->worker_tid, where);
}

static void
cleanup_note (KillableTask *task,
              gpointer      data)
{
  TestGate *gate = data;

  g_mutex_lock (&gate->lock);
  gate->cleanup_ran++;
  gate->cleanup_thread = g_thread_self ();
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);
}

/* }}} */

/* Recorder of owner-side emissions {{{ */

typedef struct
{
  GThread           *owner;       /* the thread every emission must run in */
  GMainContext      *context;     /* and its thread-default context */
  int                wrong_place; /* emissions seen elsewhere */
  int                n_state;
  KillableTaskState  states[16];
  int                n_stop_requested;
  GError            *stop_reason;
  int                n_finished;
  int                n_error;
  int                n_progress;
  double             last_progress;
  int                n_status;
  char              *last_status;
  int                order;       /* emission counter */
  int                finished_order;
} Recorder;

static void
recorder_check_place (Recorder *rec)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  if (g_thread_self () != rec->owner || context != rec->context ||
      !g_main_context_is_owner (context))
    rec->wrong_place++;
}

static void
recorder_state_cb (GObject    *object,
                   GParamSpec *pspec,
                   Recorder   *rec)
{
  recorder_check_place (rec);
  g_assert_cmpint (rec->n_state, <, (int) G_N_ELEMENTS (rec->states));
  rec->states[rec->n_state++] = killable_task_get_state (KILLABLE_TASK (object));
  rec->order++;
}

static void
recorder_stop_requested_cb (KillableTask *task,
                            const GError *reason,
                            Recorder     *rec)
{
  recorder_check_place (rec);
  rec->n_stop_requested++;
  g_clear_error (&rec->stop_reason);
  if (reason != NULL)
    rec->stop_reason = g_error_copy (reason);
  rec->order++;
}

static void
recorder_finished_cb (KillableTask *task,
                      Recorder     *rec)
{
  recorder_check_place (rec);
  g_assert_true (killable_task_is_finished (task));
  rec->n_finished++;
  rec->finished_order = ++rec->order;
}

static void
recorder_error_cb (GObject    *object,
                   GParamSpec *pspec,
                   Recorder   *rec)
{
  recorder_check_place (rec);
  rec->n_error++;
  rec->order++;
}

static void
recorder_progress_cb (GObject    *object,
                      GParamSpec *pspec,
                      Recorder   *rec)
{
  recorder_check_place (rec);
  rec->n_progress++;
  rec->last_progress = killable_task_get_progress (KILLABLE_TASK (object));
}

static void
recorder_status_cb (GObject    *object,
                    GParamSpec *pspec,
                    Recorder   *rec)
{
  recorder_check_place (rec);
  rec->n_status++;
  g_free (rec->last_status);
  rec->last_status = killable_task_dup_status (KILLABLE_TASK (object));
}

/* Records on the calling thread and its thread-default context. */
static void
recorder_init (Recorder *rec)
{
  memset (rec, 0, sizeof *rec);
  rec->owner = g_thread_self ();
  rec->context = g_main_context_ref_thread_default ();
}

static void
recorder_clear (Recorder *rec)
{
  g_clear_error (&rec->stop_reason);
  g_clear_pointer (&rec->last_status, g_free);
  g_clear_pointer (&rec->context, g_main_context_unref);
}

/* Records the progress and the status only. */
static void
recorder_connect_progress (Recorder     *rec,
                           KillableTask *task)
{
  g_signal_connect (task, "notify::progress", G_CALLBACK (recorder_progress_cb), rec);
  g_signal_connect (task, "notify::status", G_CALLBACK (recorder_status_cb), rec);
}

static void
recorder_connect (Recorder     *rec,
                  KillableTask *task)
{
  g_signal_connect (task, "notify::state", G_CALLBACK (recorder_state_cb), rec);
  g_signal_connect (task, "stop-requested", G_CALLBACK (recorder_stop_requested_cb), rec);
  g_signal_connect (task, "finished", G_CALLBACK (recorder_finished_cb), rec);
  g_signal_connect (task, "notify::error", G_CALLBACK (recorder_error_cb), rec);
  recorder_connect_progress (rec, task);
}

/* Starts @task, whose work waits at a gate: RUNNING at once, notified only
 * once the owner's context runs. */
static void
recorder_start_stuck (Recorder     *rec,
                      KillableTask *task)
{
  g_assert_true (killable_task_start (task, NULL));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_RUNNING);
  g_assert_cmpint (rec->n_state, ==, 0);

  TEST_ITERATE_UNTIL (NULL, rec->n_state == 1);
  g_assert_cmpint (rec->states[0], ==, KILLABLE_TASK_STATE_RUNNING);
}

/* Iterates the global default context until `finished` came, then
 * dispatches whatever else is ready. */
static void
recorder_wait_finished (Recorder *rec)
{
  TEST_ITERATE_UNTIL (NULL, rec->n_finished == 1);
  test_drain (NULL);
}

/* What @rec saw of a task that ended in @state: @n_state state changes, the
 * last one to @state, @n_stop_requested stop requests, @n_error changes of
 * the error, one `finished`, all of them on the owner's context. */
static void
recorder_assert_ended (Recorder          *rec,
                       int                n_state,
                       KillableTaskState  state,
                       int                n_stop_requested,
                       int                n_error)
{
  g_assert_cmpint (rec->n_state, ==, n_state);
  g_assert_cmpint (rec->states[n_state - 1], ==, state);
  g_assert_cmpint (rec->n_stop_requested, ==, n_stop_requested);
  g_assert_cmpint (rec->n_error, ==, n_error);
  g_assert_cmpint (rec->n_finished, ==, 1);
  g_assert_cmpint (rec->wrong_place, ==, 0);
}

/* }}} */

/* Construction, start, join, wait {{{ */

static void
count_notify (gpointer data)
{
  g_atomic_int_inc ((int *) data);
}

static void
test_new (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(KillableTask) unnamed = NULL;
  g_autofree char *status = NULL;
  KillableTaskState state;
  GCancellable *cancellable = NULL;
  int notified = 0;
  TestGate gate;

  test_gate_init (&gate);

  task = killable_task_new ("new", work_succeed, &notified, count_notify);
  g_assert_true (KILLABLE_IS_TASK (task));
  g_assert_cmpstr (killable_task_get_name (task), ==, "new");
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_PENDING);
  g_assert_false (killable_task_is_finished (task));
  g_assert_false (killable_task_is_stop_requested (task));
  g_assert_null (killable_task_get_error (task));
  g_assert_cmpfloat (killable_task_get_progress (task), ==, 0.);
  g_assert_null (killable_task_dup_status (task));
  g_assert_cmpint (killable_task_get_timeout (task), ==, -1);
  g_assert_cmpint (killable_task_get_deadline (task), ==, G_MAXINT64);
  g_assert_cmpint (killable_task_get_grace_period (task), ==, -1);
  g_assert_false (killable_task_get_interrupt_syscalls (task));

  g_object_get (task, "state", &state, "status", &status,
                "cancellable", &cancellable, NULL);
  g_assert_cmpint (state, ==, KILLABLE_TASK_STATE_PENDING);
  g_assert_null (status);
  g_assert_true (G_IS_CANCELLABLE (cancellable));
  g_assert_true (cancellable == killable_task_get_cancellable (task));
  g_assert_false (g_cancellable_is_cancelled (cancellable));
  g_object_unref (cancellable);

  /* The user data's notify runs when the task is finalized, not before. */
  g_assert_cmpint (notified, ==, 0);
  g_clear_object (&task);
  g_assert_cmpint (notified, ==, 1);

  unnamed = killable_task_new (NULL, work_succeed, &gate, NULL);
  g_assert_cmpstr (killable_task_get_name (unnamed), ==, "KillableTask");

  test_gate_clear (&gate);
}

static void
test_start_success (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);

  task = killable_task_new ("success", work_succeed, &gate, NULL);
  g_assert_true (killable_task_start (task, &error));
  g_assert_no_error (error);

  /* start() sets RUNNING synchronously (or the work already ended). */
  g_assert_cmpint (killable_task_get_state (task), !=, KILLABLE_TASK_STATE_PENDING);

  g_assert_true (killable_task_join (task, &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);
  g_assert_true (killable_task_is_finished (task));
  g_assert_null (killable_task_get_error (task));
  g_assert_cmpint (gate.ran, ==, 1);
  g_assert_true (gate.worker_thread != g_thread_self ());

  /* Joining again gives the same outcome. */
  g_assert_true (killable_task_join (task, NULL));
  g_assert_true (killable_task_wait (task, 0));

  test_gate_clear (&gate);
}

static void
test_start_failure (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  GError *prop_error = NULL;
  TestGate gate;

  test_gate_init (&gate);

  task = killable_task_new ("failure", work_fail, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "Nothing here");
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_FAILED);

  g_object_get (task, "error", &prop_error, NULL);
  g_assert_error (prop_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_cmpstr (prop_error->message, ==, "Nothing here");
  g_error_free (prop_error);

  test_gate_clear (&gate);
}

static gboolean
work_false_without_error (KillableTask  *task,
                          gpointer       data,
                          GError       **error)
{
  return FALSE;
}

static void
test_fail_without_error (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;

  task = killable_task_new ("silent", work_false_without_error, NULL, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "silent"));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_FAILED);
}

static void
test_start_twice (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);

  task = killable_task_new ("twice", work_stuck, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_false (killable_task_start (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "twice"));
  g_clear_error (&error);

  test_gate_open (&gate);
  g_assert_true (killable_task_join (task, NULL));

  /* Still an error once it ended, and the work ran once. */
  g_assert_false (killable_task_start (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_cmpint (gate.ran, ==, 1);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);

  test_gate_clear (&gate);
}

static void
test_wait (void)
{
  g_autoptr(KillableTask) task = NULL;
  TestGate gate;
  gint64 before;

  test_gate_init (&gate);

  task = killable_task_new ("wait", work_stuck, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  /* The worker cannot end while the gate is closed. */
  g_assert_false (killable_task_wait (task, 0));
  before = g_get_monotonic_time ();
  g_assert_false (killable_task_wait (task, 20 * G_TIME_SPAN_MILLISECOND));
  g_assert_cmpint (g_get_monotonic_time () - before, >=, 20 * G_TIME_SPAN_MILLISECOND);
  g_assert_false (killable_task_is_finished (task));

  test_gate_open (&gate);
  g_assert_true (killable_task_wait (task, TEST_GUARD_USEC));
  g_assert_true (killable_task_is_finished (task));
  g_assert_true (killable_task_wait (task, 0));
  g_assert_true (killable_task_wait (task, -1));

  test_gate_clear (&gate);
}

/* }}} */

/* Stop {{{ */

static void
test_stop_running (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);
  gate.use_check = TRUE;

  task = killable_task_new ("stopped", work_stuck, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_RUNNING);
  g_assert_false (killable_task_is_stop_requested (task));

  killable_task_stop (task);
  g_assert_true (killable_task_is_stop_requested (task));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_STOPPING);
  g_assert_null (killable_task_get_error (task));

  /* A second stop changes nothing. */
  killable_task_stop (task);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_STOPPING);

  test_gate_open (&gate);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpstr (error->message, ==, "Task “stopped” was stopped");
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_error (killable_task_get_error (task), KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);

  /* A stop after the end changes nothing either. */
  killable_task_stop (task);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

  test_gate_clear (&gate);
}

static void
test_stop_pending (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);

  task = killable_task_new ("early", work_succeed, &gate, NULL);
  killable_task_stop (task);

  /* Terminal at once, without a start. */
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_true (killable_task_is_finished (task));
  g_assert_error (killable_task_get_error (task), KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_true (killable_task_wait (task, 0));

  /* Joining a stopped, never-started task is fine: it is terminal. */
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_clear_error (&error);

  /* start() then succeeds and runs nothing. */
  g_assert_true (killable_task_start (task, &error));
  g_assert_no_error (error);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (gate.ran, ==, 0);

  test_gate_clear (&gate);
}

static void
test_stop_with_error (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) reason = NULL;
  g_autoptr(GError) error = NULL;
  GError *prop_error = NULL;
  TestGate gate;

  test_gate_init (&gate);

  reason = g_error_new_literal (TEST_ERROR, 42, "The building is on fire");
  task = killable_task_new ("fire", work_sleep_long, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  killable_task_stop_with_error (task, reason);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, TEST_ERROR, 42);
  g_assert_cmpstr (error->message, ==, "The building is on fire");

  /* The worker's sleep saw the cause too. */
  g_assert_error (gate.seen_error, TEST_ERROR, 42);

  g_object_get (task, "error", &prop_error, NULL);
  g_assert_error (prop_error, TEST_ERROR, 42);
  g_assert_cmpstr (prop_error->message, ==, "The building is on fire");
  g_error_free (prop_error);

  /* It ended because of the stop: the worker only passed the cause on. */
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

  test_gate_clear (&gate);
}

static void
test_stop_with_error_pending (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) reason = NULL;
  g_autoptr(GError) error = NULL;

  reason = g_error_new_literal (TEST_ERROR, 7, "Not today");
  task = killable_task_new ("pending-cause", work_succeed, NULL, NULL);
  killable_task_stop_with_error (task, reason);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, TEST_ERROR, 7);
  g_assert_cmpstr (error->message, ==, "Not today");
  g_assert_error (killable_task_get_error (task), TEST_ERROR, 7);

  /* NULL is a plain stop. */
  g_clear_object (&task);
  g_clear_error (&error);
  task = killable_task_new ("plain", work_succeed, NULL, NULL);
  killable_task_stop_with_error (task, NULL);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
}

static void
test_check (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) reason = NULL;

  task = killable_task_new ("check", work_succeed, NULL, NULL);
  g_assert_true (killable_task_check (task, &error));
  g_assert_no_error (error);
  g_assert_true (killable_task_check (task, NULL));
  g_assert_false (killable_task_is_stop_requested (task));

  killable_task_stop (task);
  g_assert_true (killable_task_is_stop_requested (task));
  g_assert_false (killable_task_check (task, NULL));
  g_assert_false (killable_task_check (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpstr (error->message, ==, "Task “check” was stopped");

  /* With a cause, check() reports the cause. */
  g_clear_object (&task);
  g_clear_error (&error);
  reason = g_error_new_literal (TEST_ERROR, 3, "Because");
  task = killable_task_new ("check-cause", work_succeed, NULL, NULL);
  killable_task_stop_with_error (task, reason);
  g_assert_false (killable_task_check (task, &error));
  g_assert_error (error, TEST_ERROR, 3);
  g_assert_cmpstr (error->message, ==, "Because");
}

/* }}} */

/* Sleep {{{ */

static gboolean
work_sleep_short (KillableTask  *task,
                  gpointer       data,
                  GError       **error)
{
  gint64 *slept = data;
  gint64 before = g_get_monotonic_time ();

  if (!killable_task_sleep (task, 0, error))
    return FALSE;
  if (!killable_task_sleep (task, 20 * G_TIME_SPAN_MILLISECOND, error))
    return FALSE;

  *slept = g_get_monotonic_time () - before;
  return TRUE;
}

static void
test_sleep_full (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  gint64 slept = 0;

  task = killable_task_new ("nap", work_sleep_short, &slept, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, &error));
  g_assert_no_error (error);
  g_assert_cmpint (slept, >=, 20 * G_TIME_SPAN_MILLISECOND);
}

static void
test_sleep_stop_latency (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;
  gint64 before, latency;

  test_gate_init (&gate);

  task = killable_task_new ("sleeper", work_sleep_long, &gate, NULL);
  /* Blocked in the kernel: inside the sleep, not about to enter it. */
  start_until_blocked (task, &gate, TEST_IN_TIMED_FUTEX);

  before = g_get_monotonic_time ();
  killable_task_stop (task);
  g_assert_true (killable_task_wait (task, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC)));

  g_mutex_lock (&gate.lock);
  latency = gate.returned_time - before;
  g_mutex_unlock (&gate.lock);

  g_test_message ("killable_task_sleep() returned %" G_GINT64_FORMAT " µs after stop()",
                  latency);
  g_assert_cmpint (latency, >=, 0);
  g_assert_cmpint (latency, <, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC));

  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_error (gate.seen_error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

  test_gate_clear (&gate);
}

static gboolean
work_sleep_after_stop (KillableTask  *task,
                       gpointer       data,
                       GError       **error)
{
  TestGate *gate = data;
  g_autoptr(GError) local_error = NULL;
  gint64 before;

  test_gate_note_worker (gate);
  test_gate_enter_and_wait (gate);

  /* The stop came before: sleep returns at once. */
  before = g_get_monotonic_time ();
  g_assert_false (killable_task_sleep (task, 60 * G_USEC_PER_SEC, &local_error));
  g_assert_error (local_error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (g_get_monotonic_time () - before, <, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC));
  g_assert_false (killable_task_sleep (task, 0, NULL));

  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

static void
test_sleep_after_stop (void)
{
  g_autoptr(KillableTask) task = NULL;
  TestGate gate;

  test_gate_init (&gate);

  task = killable_task_new ("late-sleeper", work_sleep_after_stop, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);
  killable_task_stop (task);
  test_gate_open (&gate);
  g_assert_false (killable_task_join (task, NULL));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

  test_gate_clear (&gate);
}

/* }}} */

/* wait_fd {{{ */

typedef struct
{
  TestGate      gate;
  int           fd;
  GIOCondition  condition;
  gint64        timeout;
  GIOCondition  result;
  GError       *error;      /* (owned) */
  gint64        returned_time;
} WaitFd;

static gboolean
work_wait_fd (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  WaitFd *w = data;
  GError *local_error = NULL;
  GIOCondition result;

  test_gate_note_worker (&w->gate);
  test_gate_enter (&w->gate);

  result = killable_task_wait_fd (task, w->fd, w->condition, w->timeout, &local_error);

  g_mutex_lock (&w->gate.lock);
  w->returned_time = g_get_monotonic_time ();
  w->result = result;
  w->error = local_error != NULL ? g_error_copy (local_error) : NULL;
  g_mutex_unlock (&w->gate.lock);

  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return FALSE;
    }

  return TRUE;
}

static void
wait_fd_init (WaitFd       *w,
              int           fd,
              GIOCondition  condition,
              gint64        timeout)
{
  memset (w, 0, sizeof *w);
  test_gate_init (&w->gate);
  w->fd = fd;
  w->condition = condition;
  w->timeout = timeout;
  w->result = (GIOCondition) -1;
}

static void
wait_fd_clear (WaitFd *w)
{
  g_clear_error (&w->error);
  test_gate_clear (&w->gate);
}

static void
test_wait_fd_stop (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  int fds[2];
  gint64 before;
  WaitFd w;

  g_assert_no_errno (pipe (fds));
  wait_fd_init (&w, fds[0], G_IO_IN, -1);

  task = killable_task_new ("silent-pipe", work_wait_fd, &w, NULL);
  start_until_blocked (task, &w.gate, TEST_IN_POLL);

  before = g_get_monotonic_time ();
  killable_task_stop (task);
  g_assert_true (killable_task_wait (task, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC)));
  g_test_message ("killable_task_wait_fd() returned %" G_GINT64_FORMAT " µs after stop()",
                  w.returned_time - before);

  g_assert_cmpint (w.result, ==, 0);
  g_assert_error (w.error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

  close (fds[0]);
  close (fds[1]);
  wait_fd_clear (&w);
}

static void
test_wait_fd_ready (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  int fds[2];
  WaitFd w;

  g_assert_no_errno (pipe (fds));
  wait_fd_init (&w, fds[0], G_IO_IN, -1);

  task = killable_task_new ("talking-pipe", work_wait_fd, &w, NULL);
  start_until_blocked (task, &w.gate, TEST_IN_POLL);

  g_assert_cmpint (write (fds[1], "x", 1), ==, 1);
  g_assert_true (killable_task_join (task, &error));
  g_assert_no_error (error);
  g_assert_no_error (w.error);
  g_assert_cmpint (w.result, ==, G_IO_IN);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);

  close (fds[0]);
  close (fds[1]);
  wait_fd_clear (&w);
}

static void
test_wait_fd_hup (void)
{
  g_autoptr(KillableTask) task = NULL;
  int fds[2];
  WaitFd w;

  g_assert_no_errno (pipe (fds));
  wait_fd_init (&w, fds[0], G_IO_IN, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC));

  task = killable_task_new ("hung-up", work_wait_fd, &w, NULL);
  close (fds[1]);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  g_assert_no_error (w.error);
  g_assert_true (w.result & G_IO_HUP);

  close (fds[0]);
  wait_fd_clear (&w);
}

static void
test_wait_fd_timeout (void)
{
  g_autoptr(KillableTask) task = NULL;
  int fds[2];
  gint64 before;
  WaitFd w;

  g_assert_no_errno (pipe (fds));
  wait_fd_init (&w, fds[0], G_IO_IN, 20 * G_TIME_SPAN_MILLISECOND);

  task = killable_task_new ("patient", work_wait_fd, &w, NULL);
  before = g_get_monotonic_time ();
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  g_assert_cmpint (w.result, ==, 0);
  g_assert_no_error (w.error);
  g_assert_cmpint (w.returned_time - before, >=, 20 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);

  /* A zero timeout polls once. */
  g_clear_object (&task);
  wait_fd_clear (&w);
  wait_fd_init (&w, fds[0], G_IO_IN, 0);
  task = killable_task_new ("impatient", work_wait_fd, &w, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  g_assert_cmpint (w.result, ==, 0);
  g_assert_no_error (w.error);

  close (fds[0]);
  close (fds[1]);
  wait_fd_clear (&w);
}

static void
test_wait_fd_closed (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  int fds[2];
  int closed_fd;
  WaitFd w;

  /* A descriptor number far above the ones in use, so that no descriptor
   * opened meanwhile (say, by the cancellable) takes it. */
  g_assert_no_errno (pipe (fds));
  closed_fd = fcntl (fds[0], F_DUPFD, 900);
  g_assert_cmpint (closed_fd, >=, 900);
  close (closed_fd);
  close (fds[0]);
  close (fds[1]);

  /* The timeout only turns a hang into a failure. */
  wait_fd_init (&w, closed_fd, G_IO_IN, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC));
  task = killable_task_new ("closed", work_wait_fd, &w, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_false (killable_task_join (task, &error));
  g_assert_cmpint (w.result, ==, 0);
  g_assert_nonnull (w.error);
  g_assert_true (w.error->domain == G_IO_ERROR);
  g_assert_true (error != NULL && error->domain == G_IO_ERROR);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_FAILED);

  wait_fd_clear (&w);
}

static void
test_wait_fd_after_stop (void)
{
  g_autoptr(KillableTask) task = NULL;
  int fds[2];
  WaitFd w;

  g_assert_no_errno (pipe (fds));
  g_assert_cmpint (write (fds[1], "x", 1), ==, 1);
  wait_fd_init (&w, fds[0], G_IO_IN, -1);

  /* Stopped before it waits: returns 0 with the stop, even on a ready fd. */
  task = killable_task_new ("too-late", work_wait_fd, &w, NULL);
  killable_task_stop (task);
  g_assert_cmpint (killable_task_wait_fd (task, fds[0], G_IO_IN, -1, &w.error), ==, 0);
  g_assert_error (w.error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);

  close (fds[0]);
  close (fds[1]);
  wait_fd_clear (&w);
}

/* }}} */

/* Cancellable {{{ */

static void
test_cancellable_stop_cancels (void)
{
  g_autoptr(KillableTask) task = NULL;
  GCancellable *cancellable;
  TestGate gate;

  test_gate_init (&gate);

  /* Running */
  task = killable_task_new ("cancels", work_sleep_long, &gate, NULL);
  cancellable = killable_task_get_cancellable (task);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);
  g_assert_false (g_cancellable_is_cancelled (cancellable));
  killable_task_stop (task);
  g_assert_true (g_cancellable_is_cancelled (cancellable));
  g_assert_false (killable_task_join (task, NULL));
  g_assert_true (cancellable == killable_task_get_cancellable (task));

  /* Asked for after the stop: cancelled already. */
  g_clear_object (&task);
  task = killable_task_new ("cancels-later", work_succeed, &gate, NULL);
  killable_task_stop (task);
  g_assert_true (g_cancellable_is_cancelled (killable_task_get_cancellable (task)));

  /* Pending, asked for before the stop. */
  g_clear_object (&task);
  task = killable_task_new ("cancels-pending", work_succeed, &gate, NULL);
  cancellable = killable_task_get_cancellable (task);
  killable_task_stop (task);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_true (g_cancellable_is_cancelled (cancellable));

  test_gate_clear (&gate);
}

static void
test_cancellable_cancel_stops (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);

  task = killable_task_new ("cancelled", work_sleep_long, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  g_cancellable_cancel (killable_task_get_cancellable (task));
  g_assert_true (killable_task_is_stop_requested (task));
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

  /* Pending */
  g_clear_object (&task);
  g_clear_error (&error);
  task = killable_task_new ("cancelled-pending", work_succeed, &gate, NULL);
  g_cancellable_cancel (killable_task_get_cancellable (task));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);

  test_gate_clear (&gate);
}

typedef struct
{
  TestGate  gate;
  int       fd;
  gssize    n_read;
} GioRead;

static gboolean
work_gio_read (KillableTask  *task,
               gpointer       data,
               GError       **error)
{
  GioRead *r = data;
  g_autoptr(GInputStream) stream = g_unix_input_stream_new (r->fd, FALSE);
  GError *local_error = NULL;
  char buf[1];
  gssize n;

  test_gate_note_worker (&r->gate);
  test_gate_enter (&r->gate);

  n = g_input_stream_read (stream, buf, sizeof buf,
                           killable_task_get_cancellable (task), &local_error);

  g_mutex_lock (&r->gate.lock);
  r->gate.returned_time = g_get_monotonic_time ();
  r->n_read = n;
  if (local_error != NULL)
    r->gate.seen_error = g_error_copy (local_error);
  g_mutex_unlock (&r->gate.lock);

  if (n < 0)
    {
      g_propagate_error (error, local_error);
      return FALSE;
    }

  return TRUE;
}

static void
test_cancellable_gio (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  int fds[2];
  gint64 before;
  GioRead r;

  g_assert_no_errno (pipe (fds));
  memset (&r, 0, sizeof r);
  test_gate_init (&r.gate);
  r.fd = fds[0];

  task = killable_task_new ("gio-reader", work_gio_read, &r, NULL);
  start_until_blocked (task, &r.gate, TEST_IN_POLL);

  before = g_get_monotonic_time ();
  killable_task_stop (task);
  g_assert_true (killable_task_wait (task, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC)));
  g_test_message ("g_input_stream_read() returned %" G_GINT64_FORMAT " µs after stop()",
                  r.gate.returned_time - before);

  /* The worker saw GIO's symptom; the owner gets the cause. */
  g_assert_cmpint (r.n_read, ==, -1);
  g_assert_error (r.gate.seen_error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

  close (fds[0]);
  close (fds[1]);
  test_gate_clear (&r.gate);
}

/* }}} */

/* Cleanups {{{ */

typedef struct
{
  GMutex    lock;
  GString  *order;       /* names of the cleanups that ran, in order */
  GThread  *threads[8];
  int       n_ran;
  int       n_notified;
  GThread  *run_thread;
  TestGate *gate;        /* (nullable) a cleanup that waits here */
} CleanupLog;

typedef struct
{
  CleanupLog *log;
  char        name;
} CleanupItem;

static void
cleanup_log_cb (KillableTask *task,
                gpointer      data)
{
  CleanupItem *item = data;
  CleanupLog *log = item->log;

  g_mutex_lock (&log->lock);
  g_string_append_c (log->order, item->name);
  if (log->n_ran < (int) G_N_ELEMENTS (log->threads))
    log->threads[log->n_ran] = g_thread_self ();
  log->n_ran++;
  g_mutex_unlock (&log->lock);
}

static void
cleanup_item_free (gpointer data)
{
  CleanupItem *item = data;

  g_mutex_lock (&item->log->lock);
  item->log->n_notified++;
  g_mutex_unlock (&item->log->lock);
  g_free (item);
}

static void
add_logged_cleanup (KillableTask *task,
                    CleanupLog   *log,
                    char          name)
{
  CleanupItem *item = g_new0 (CleanupItem, 1);

  item->log = log;
  item->name = name;
  killable_task_add_cleanup (task, cleanup_log_cb, item, cleanup_item_free);
}

static void
cleanup_log_init (CleanupLog *log)
{
  memset (log, 0, sizeof *log);
  g_mutex_init (&log->lock);
  log->order = g_string_new (NULL);
}

static void
cleanup_log_clear (CleanupLog *log)
{
  g_string_free (log->order, TRUE);
  g_mutex_clear (&log->lock);
}

typedef enum
{
  OUTCOME_SUCCESS,
  OUTCOME_FAILURE,
  OUTCOME_STOP,
} Outcome;

typedef struct
{
  CleanupLog  log;
  TestGate    gate;
  Outcome     outcome;
} CleanupRun;

static gboolean
work_with_cleanups (KillableTask  *task,
                    gpointer       data,
                    GError       **error)
{
  CleanupRun *run = data;

  g_mutex_lock (&run->log.lock);
  run->log.run_thread = g_thread_self ();
  g_mutex_unlock (&run->log.lock);

  add_logged_cleanup (task, &run->log, 'B');
  add_logged_cleanup (task, &run->log, 'C');

  switch (run->outcome)
    {
    case OUTCOME_SUCCESS:
      return TRUE;
    case OUTCOME_FAILURE:
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Broken");
      return FALSE;
    case OUTCOME_STOP:
    default:
      return work_sleep_long (task, &run->gate, error);
    }
}

static void
test_cleanup_order (void)
{
  static const KillableTaskState expected[] = {
    [OUTCOME_SUCCESS] = KILLABLE_TASK_STATE_SUCCEEDED,
    [OUTCOME_FAILURE] = KILLABLE_TASK_STATE_FAILED,
    [OUTCOME_STOP] = KILLABLE_TASK_STATE_CANCELLED,
  };

  for (Outcome outcome = OUTCOME_SUCCESS; outcome <= OUTCOME_STOP; outcome++)
    {
      g_autoptr(KillableTask) task = NULL;
      CleanupRun run;

      cleanup_log_init (&run.log);
      test_gate_init (&run.gate);
      run.outcome = outcome;

      task = killable_task_new ("cleaner", work_with_cleanups, &run, NULL);
      add_logged_cleanup (task, &run.log, 'A');
      g_assert_true (killable_task_start (task, NULL));
      if (outcome == OUTCOME_STOP)
        {
          test_gate_wait_entered (&run.gate, 1);
          killable_task_stop (task);
        }

      /* join() returns after the cleanups. */
      g_assert_true (killable_task_join (task, NULL) == (outcome == OUTCOME_SUCCESS));
      g_assert_cmpint (killable_task_get_state (task), ==, expected[outcome]);

      g_mutex_lock (&run.log.lock);
      g_assert_cmpstr (run.log.order->str, ==, "CBA");
      g_assert_cmpint (run.log.n_ran, ==, 3);
      g_assert_cmpint (run.log.n_notified, ==, 3);
      for (int i = 0; i < 3; i++)
        g_assert_true (run.log.threads[i] == run.log.run_thread);
      g_mutex_unlock (&run.log.lock);
      g_assert_true (run.log.run_thread != g_thread_self ());

      /* Exactly once: finalize does not run them again. */
      g_clear_object (&task);
      g_assert_cmpint (run.log.n_ran, ==, 3);
      g_assert_cmpint (run.log.n_notified, ==, 3);

      test_gate_clear (&run.gate);
      cleanup_log_clear (&run.log);
    }
}

static void
test_cleanup_after_end (void)
{
  g_autoptr(KillableTask) task = NULL;
  CleanupLog log;

  cleanup_log_init (&log);

  task = killable_task_new ("ended", work_false_without_error, NULL, NULL);
  g_assert_true (killable_task_start (task, NULL));
  killable_task_join (task, NULL);

  add_logged_cleanup (task, &log, 'Z');
  /* Ran at once, here. */
  g_assert_cmpstr (log.order->str, ==, "Z");
  g_assert_cmpint (log.n_notified, ==, 1);
  g_assert_true (log.threads[0] == g_thread_self ());

  g_clear_object (&task);
  g_assert_cmpint (log.n_ran, ==, 1);
  g_assert_cmpint (log.n_notified, ==, 1);

  cleanup_log_clear (&log);
}

static void
test_cleanup_never_started (void)
{
  KillableTask *task;
  CleanupLog log;

  cleanup_log_init (&log);

  task = killable_task_new ("never", work_succeed, NULL, NULL);
  add_logged_cleanup (task, &log, 'A');
  add_logged_cleanup (task, &log, 'B');
  g_assert_cmpint (log.n_ran, ==, 0);
  g_object_unref (task);
  g_assert_cmpstr (log.order->str, ==, "BA");
  g_assert_cmpint (log.n_notified, ==, 2);

  /* Stopped while pending: still in finalize, once. */
  g_string_truncate (log.order, 0);
  log.n_ran = log.n_notified = 0;
  task = killable_task_new ("never-stopped", work_succeed, NULL, NULL);
  add_logged_cleanup (task, &log, 'A');
  killable_task_stop (task);
  add_logged_cleanup (task, &log, 'B');
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_true (killable_task_start (task, NULL));
  g_object_unref (task);
  g_assert_cmpstr (log.order->str, ==, "BA");
  g_assert_cmpint (log.n_notified, ==, 2);

  cleanup_log_clear (&log);
}

static void
cleanup_wait_at_gate (KillableTask *task,
                      gpointer      data)
{
  test_gate_enter_and_wait (data);
}

static gboolean
work_return_gate_result (KillableTask  *task,
                         gpointer       data,
                         GError       **error)
{
  TestGate *gate = data;

  test_gate_note_worker (gate);
  if (!gate->result)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "Nothing here");
      return FALSE;
    }

  return TRUE;
}

/* A stop that arrives while the cleanups run does not change the outcome
 * of the work. */
static void
test_stop_during_cleanup (void)
{
  for (int i = 0; i < 2; i++)
    {
      g_autoptr(KillableTask) task = NULL;
      g_autoptr(GError) error = NULL;
      gboolean succeed = (i == 0);
      TestGate gate;

      test_gate_init (&gate);
      gate.result = succeed;

      task = killable_task_new ("cleaning", work_return_gate_result, &gate, NULL);
      killable_task_add_cleanup (task, cleanup_wait_at_gate, &gate, NULL);
      g_assert_true (killable_task_start (task, NULL));
      test_gate_wait_entered (&gate, 1);

      /* The work returned; its cleanup is running. */
      killable_task_stop (task);
      g_assert_true (killable_task_is_stop_requested (task));
      g_assert_false (killable_task_is_finished (task));

      test_gate_open (&gate);
      if (succeed)
        {
          g_assert_true (killable_task_join (task, &error));
          g_assert_no_error (error);
          g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);
          g_assert_null (killable_task_get_error (task));
        }
      else
        {
          g_assert_false (killable_task_join (task, &error));
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
          g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_FAILED);
        }

      test_gate_clear (&gate);
    }
}

/* }}} */

/* Progress and status {{{ */

static gboolean
work_progress (KillableTask  *task,
               gpointer       data,
               GError       **error)
{
  for (int i = 1; i <= 1000; i++)
    {
      killable_task_set_progress (task, i / 1000.);
      if (i % 100 == 0)
        {
          g_autofree char *status = g_strdup_printf ("step %d", i);

          killable_task_set_status (task, status);
        }
    }

  return TRUE;
}

static void
test_progress_coalesced (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autofree char *status = NULL;
  Recorder rec;

  recorder_init (&rec);
  test_drain (NULL);

  task = killable_task_new ("progress", work_progress, NULL, NULL);
  recorder_connect_progress (&rec, task);
  g_signal_connect (task, "finished", G_CALLBACK (recorder_finished_cb), &rec);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));

  /* Nothing is emitted until the owner's context runs... */
  g_assert_cmpint (rec.n_progress, ==, 0);
  g_assert_cmpint (rec.n_status, ==, 0);

  /* ...then 1000 updates come as one notification, with the last value. */
  recorder_wait_finished (&rec);
  g_test_message ("1000 set_progress() → %d notify::progress, "
                  "10 set_status() → %d notify::status", rec.n_progress, rec.n_status);
  g_assert_cmpint (rec.n_progress, ==, 1);
  g_assert_cmpint (rec.n_status, ==, 1);
  g_assert_cmpfloat (rec.last_progress, ==, 1.);
  g_assert_cmpstr (rec.last_status, ==, "step 1000");
  g_assert_cmpint (rec.wrong_place, ==, 0);

  g_assert_cmpfloat (killable_task_get_progress (task), ==, 1.);
  status = killable_task_dup_status (task);
  g_assert_cmpstr (status, ==, "step 1000");

  recorder_clear (&rec);
}

typedef struct
{
  TestGate  gate;
  int       n_updates;
} ProgressRun;

static gboolean
work_progress_live (KillableTask  *task,
                    gpointer       data,
                    GError       **error)
{
  ProgressRun *run = data;

  test_gate_note_worker (&run->gate);
  for (int i = 1; i <= run->n_updates; i++)
    killable_task_set_progress (task, (double) i / run->n_updates);

  return TRUE;
}

/* The owner iterates while the worker reports. */
static void
test_progress_live (void)
{
  g_autoptr(KillableTask) task = NULL;
  ProgressRun run;
  Recorder rec;

  recorder_init (&rec);
  test_gate_init (&run.gate);
  run.n_updates = 1000;

  task = killable_task_new ("live-progress", work_progress_live, &run, NULL);
  recorder_connect (&rec, task);
  g_assert_true (killable_task_start (task, NULL));
  recorder_wait_finished (&rec);

  g_test_message ("1000 set_progress() with a live owner → %d notify::progress",
                  rec.n_progress);
  g_assert_cmpint (rec.n_progress, >=, 1);
  g_assert_cmpint (rec.n_progress, <=, 1000);
  g_assert_cmpfloat (rec.last_progress, ==, 1.);
  g_assert_cmpint (rec.wrong_place, ==, 0);
  g_assert_true (run.gate.worker_thread != g_thread_self ());

  test_gate_clear (&run.gate);
  recorder_clear (&rec);
}

static void
test_progress_values (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autofree char *status = NULL;
  Recorder rec;

  recorder_init (&rec);
  test_drain (NULL);

  task = killable_task_new ("values", work_succeed, NULL, NULL);
  recorder_connect_progress (&rec, task);

  killable_task_set_progress (task, 2.);
  g_assert_cmpfloat (killable_task_get_progress (task), ==, 1.);
  killable_task_set_progress (task, -1.);
  g_assert_cmpfloat (killable_task_get_progress (task), ==, 0.);
  killable_task_set_progress (task, .25);
  g_assert_cmpfloat (killable_task_get_progress (task), ==, .25);

  /* Emitted on the owner context, not in the setter. */
  g_assert_cmpint (rec.n_progress, ==, 0);
  TEST_ITERATE_UNTIL (NULL, rec.n_progress >= 1);
  test_drain (NULL);
  g_assert_cmpint (rec.n_progress, ==, 1);
  g_assert_cmpfloat (rec.last_progress, ==, .25);

  /* An unchanged value notifies nothing. */
  killable_task_set_progress (task, .25);
  test_drain (NULL);
  g_assert_cmpint (rec.n_progress, ==, 1);

  killable_task_set_status (task, "one");
  killable_task_set_status (task, NULL);
  status = killable_task_dup_status (task);
  g_assert_null (status);
  killable_task_set_status (task, "two");
  TEST_ITERATE_UNTIL (NULL, rec.n_status >= 1);
  test_drain (NULL);
  g_assert_cmpint (rec.n_status, ==, 1);
  g_assert_cmpstr (rec.last_status, ==, "two");
  killable_task_set_status (task, "two");
  test_drain (NULL);
  g_assert_cmpint (rec.n_status, ==, 1);
  g_assert_cmpint (rec.wrong_place, ==, 0);

  recorder_clear (&rec);
}

/* }}} */

/* Current task {{{ */

typedef struct
{
  KillableTask *seen;
} CurrentRun;

static gboolean
work_current (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  CurrentRun *run = data;

  run->seen = killable_task_get_current ();
  return TRUE;
}

static void
test_get_current (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(KillableTask) second = NULL;
  CurrentRun run = { NULL }, run2 = { NULL };

  g_assert_null (killable_task_get_current ());

  task = killable_task_new ("current", work_current, &run, NULL);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  g_assert_true (run.seen == task);
  g_assert_null (killable_task_get_current ());

  /* A reused thread sees the new task, not the old one. */
  second = killable_task_new ("current-2", work_current, &run2, NULL);
  g_assert_true (killable_task_start (second, NULL));
  g_assert_true (killable_task_join (second, NULL));
  g_assert_true (run2.seen == second);
}

/* }}} */

/* Timeout {{{ */

static void
note_stop_thread (KillableTask *task,
                  const GError *reason,
                  gpointer      data)
{
  TestGate *gate = data;

  g_mutex_lock (&gate->lock);
  gate->cleanup_thread = g_thread_self ();
  g_clear_error (&gate->seen_error);
  gate->seen_error = reason != NULL ? g_error_copy (reason) : NULL;
  gate->returned_time = g_get_monotonic_time ();
  gate->entered++;
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);
}

static void
test_timeout_expires (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate, stop;
  gint64 before;

  test_gate_init (&gate);
  test_gate_init (&stop);

  task = killable_task_new ("slow", work_sleep_long, &gate, NULL);
  killable_task_set_timeout (task, 20 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (killable_task_get_timeout (task), ==, 20 * G_TIME_SPAN_MILLISECOND);
  killable_task_add_stop_callback (task, note_stop_thread, &stop, NULL);

  before = g_get_monotonic_time ();
  g_assert_true (killable_task_start (task, NULL));
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_assert_cmpstr (error->message, ==, "Task “slow” timed out");
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (g_get_monotonic_time () - before, >=, 20 * G_TIME_SPAN_MILLISECOND);
  /* Whether join() may return before the stop callbacks did is
   * /stop-callbacks/task-ends-after-callbacks's business: wait for it. */
  test_gate_wait_entered (&stop, 1);
  g_assert_cmpint (stop.returned_time - before, >=, 20 * G_TIME_SPAN_MILLISECOND);

  /* The stop came from the timer thread: neither the owner nor the worker. */
  g_assert_error (stop.seen_error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_assert_nonnull (stop.cleanup_thread);
  g_assert_true (stop.cleanup_thread != g_thread_self ());
  g_assert_true (stop.cleanup_thread != gate.worker_thread);

  test_gate_clear (&stop);
  test_gate_clear (&gate);
}

/* Naps 300 ms, then sleeps for a minute. */
static gboolean
work_nap_then_sleep_long (KillableTask  *task,
                          gpointer       data,
                          GError       **error)
{
  if (!killable_task_sleep (task, 300 * G_TIME_SPAN_MILLISECOND, error))
    return FALSE;

  return work_sleep_long (task, data, error);
}

/* Set after the start, the limit counts from the start. */
static void
test_timeout_after_start (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate, stop;
  gint64 before_start, after_start, deadline, set_time;

  test_gate_init (&gate);
  test_gate_init (&stop);

  task = killable_task_new ("late-limit", work_nap_then_sleep_long, &gate, NULL);
  killable_task_add_stop_callback (task, note_stop_thread, &stop, NULL);
  before_start = g_get_monotonic_time ();
  g_assert_true (killable_task_start (task, NULL));
  after_start = g_get_monotonic_time ();

  /* Deterministic: the deadline is start + limit, not call + limit. */
  killable_task_set_timeout (task, 60 * G_USEC_PER_SEC);
  deadline = killable_task_get_deadline (task);
  g_assert_cmpint (deadline, >=, before_start + 60 * G_USEC_PER_SEC);
  g_assert_cmpint (deadline, <=, after_start + 60 * G_USEC_PER_SEC);
  g_assert_false (killable_task_is_stop_requested (task));

  /* The worker napped 300 ms since the start: a 250 ms limit set now has
   * already passed and stops the task at once, not 250 ms from now. */
  test_gate_wait_entered (&gate, 1);
  g_assert_cmpint (g_get_monotonic_time () - before_start, >=, 300 * G_TIME_SPAN_MILLISECOND);
  set_time = g_get_monotonic_time ();
  killable_task_set_timeout (task, 250 * G_TIME_SPAN_MILLISECOND);
  g_assert_true (killable_task_wait (task, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC)));
  test_gate_wait_entered (&stop, 1);
  g_test_message ("a passed limit stopped the task %" G_GINT64_FORMAT " µs after set_timeout()",
                  stop.returned_time - set_time);
  g_assert_cmpint (stop.returned_time - set_time, <, TEST_LIMIT_USEC (200 * G_TIME_SPAN_MILLISECOND));
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);

  test_gate_clear (&stop);
  test_gate_clear (&gate);
}

/* }}} */

/* Errors {{{ */

static void
test_error_is_cancellation (void)
{
  static const struct {
    KillableError code;
    gboolean      cancellation;
  } codes[] = {
    { KILLABLE_ERROR_STOPPED, TRUE },
    { KILLABLE_ERROR_INTERRUPTED, TRUE },
    { KILLABLE_ERROR_TIMED_OUT, TRUE },
    { KILLABLE_ERROR_KILLED, TRUE },
    { KILLABLE_ERROR_CHILD_FAILED, TRUE },
    { KILLABLE_ERROR_FAILED, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (codes); i++)
    {
      g_autoptr(GError) error = g_error_new (KILLABLE_ERROR, codes[i].code, "code %d",
                                             codes[i].code);

      g_assert_cmpint (killable_error_is_cancellation (error), ==, codes[i].cancellation);
    }

  {
    g_autoptr(GError) cancelled = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "c");
    g_autoptr(GError) io_failed = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "f");
    g_autoptr(GError) timed_out = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "t");
    g_autoptr(GError) other = g_error_new_literal (TEST_ERROR, KILLABLE_ERROR_STOPPED, "o");
    g_autoptr(GError) file = g_error_new_literal (G_FILE_ERROR, G_FILE_ERROR_INTR, "i");

    g_assert_true (killable_error_is_cancellation (cancelled));
    g_assert_false (killable_error_is_cancellation (io_failed));
    g_assert_false (killable_error_is_cancellation (timed_out));
    g_assert_false (killable_error_is_cancellation (other));
    g_assert_false (killable_error_is_cancellation (file));
    g_assert_false (killable_error_is_cancellation (NULL));
  }

  g_assert_cmpstr (g_quark_to_string (KILLABLE_ERROR), ==, "killable-error-quark");
}

/* }}} */

/* run_async {{{ */

typedef struct
{
  gboolean      done;
  gboolean      ret;
  GError       *error;        /* (owned) */
  GThread      *thread;
  GMainContext *context;      /* (owned) thread-default in the callback */
  int           order;
  Recorder     *rec;          /* (nullable) to order against `finished` */
} AsyncResult;

static void
async_result_clear (AsyncResult *res)
{
  g_clear_error (&res->error);
  g_clear_pointer (&res->context, g_main_context_unref);
}

static void
run_async_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      data)
{
  AsyncResult *res = data;

  g_assert_false (res->done);
  res->ret = killable_task_run_finish (KILLABLE_TASK (source), result, &res->error);
  res->thread = g_thread_self ();
  res->context = g_main_context_ref_thread_default ();
  if (res->rec != NULL)
    res->order = ++res->rec->order;
  res->done = TRUE;
}

/* What a run_async() test needs: a new context, pushed as thread-default in
 * the calling thread meanwhile, the result, and a gate for the work. */
typedef struct
{
  GMainContext *context;   /* (owned) */
  AsyncResult   res;
  TestGate      gate;
} AsyncRun;

static void
async_run_init (AsyncRun *run)
{
  memset (&run->res, 0, sizeof run->res);
  test_gate_init (&run->gate);
  run->context = g_main_context_new ();
  g_main_context_push_thread_default (run->context);
}

static void
async_run_clear (AsyncRun *run)
{
  g_main_context_pop_thread_default (run->context);
  g_clear_pointer (&run->context, g_main_context_unref);
  async_result_clear (&run->res);
  test_gate_clear (&run->gate);
}

/* Runs a task with run_async() on a new context pushed as thread-default
 * in the calling thread, and checks where everything lands. */
static void
run_async_on_new_context (gboolean succeed)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(KillableTask) task = NULL;
  Recorder rec;
  AsyncRun run;

  async_run_init (&run);
  recorder_init (&rec);
  run.res.rec = &rec;

  task = killable_task_new ("async", succeed ? work_succeed : work_fail, &run.gate, NULL);
  recorder_connect (&rec, task);
  killable_task_run_async (task, cancellable, run_async_cb, &run.res);
  g_assert_cmpint (killable_task_get_state (task), !=, KILLABLE_TASK_STATE_PENDING);

  TEST_ITERATE_UNTIL (run.context, run.res.done);
  test_drain (run.context);

  g_assert_true (run.res.thread == g_thread_self ());
  g_assert_true (run.res.context == run.context);
  g_assert_true (run.gate.worker_thread != g_thread_self ());
  g_assert_cmpint (rec.wrong_place, ==, 0);
  g_assert_cmpint (rec.n_finished, ==, 1);
  /* The callback comes after `finished`. */
  g_assert_cmpint (rec.finished_order, <, run.res.order);
  g_assert_true (killable_task_is_finished (task));

  /* The caller's cancellable is let go once the task ended. */
  g_assert_false (g_signal_has_handler_pending (cancellable,
                                                g_signal_lookup ("cancelled", G_TYPE_CANCELLABLE),
                                                0, FALSE));
  g_cancellable_cancel (cancellable);
  g_assert_false (killable_task_is_stop_requested (task));

  if (succeed)
    {
      g_assert_true (run.res.ret);
      g_assert_no_error (run.res.error);
      g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);
    }
  else
    {
      g_assert_false (run.res.ret);
      g_assert_error (run.res.error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
      g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_FAILED);
    }

  recorder_clear (&rec);
  async_run_clear (&run);
}

static void
test_run_async_main_thread (void)
{
  test_drain (NULL);
  run_async_on_new_context (TRUE);
  run_async_on_new_context (FALSE);
  /* Nothing landed on the global default context. */
  g_assert_false (g_main_context_pending (NULL));
}

static gpointer
run_async_thread (gpointer data)
{
  run_async_on_new_context (TRUE);
  run_async_on_new_context (FALSE);
  return data;
}

static void
test_run_async_other_thread (void)
{
  GThread *thread = g_thread_new ("async-owner", run_async_thread, NULL);

  g_thread_join (thread);
}

static void
test_run_async_cancel (void)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(KillableTask) task = NULL;
  AsyncRun run;

  async_run_init (&run);

  task = killable_task_new ("async-cancel", work_sleep_long, &run.gate, NULL);
  killable_task_run_async (task, cancellable, run_async_cb, &run.res);
  test_gate_wait_entered (&run.gate, 1);
  g_assert_false (run.res.done);

  g_cancellable_cancel (cancellable);
  g_assert_true (killable_task_is_stop_requested (task));
  TEST_ITERATE_UNTIL (run.context, run.res.done);

  g_assert_false (run.res.ret);
  g_assert_true (killable_error_is_cancellation (run.res.error));
  /* The caller's cancellable caused the stop: GIO's error, as GIO code
   * expects, for the caller and as the cause the worker sees. */
  g_assert_error (run.res.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_error (run.gate.seen_error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  async_run_clear (&run);
}

/* Cancelled before run_async(): the work must never run. */
static void
test_run_async_cancelled_before (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  guint n = test_scale (2000, 50);
  int ran = 0, not_cancelled = 0;

  g_main_context_push_thread_default (context);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GCancellable) cancellable = g_cancellable_new ();
      g_autoptr(KillableTask) task = NULL;
      AsyncResult res = { 0, };
      TestGate gate;

      test_gate_init (&gate);
      g_cancellable_cancel (cancellable);

      task = killable_task_new ("async-precancelled", work_succeed, &gate, NULL);
      killable_task_run_async (task, cancellable, run_async_cb, &res);
      TEST_ITERATE_UNTIL (context, res.done);

      /* Counted, so that the message says how often the race was lost. */
      if (res.ret || !killable_error_is_cancellation (res.error) ||
          killable_task_get_state (task) != KILLABLE_TASK_STATE_CANCELLED)
        not_cancelled++;
      ran += gate.ran;

      async_result_clear (&res);
      test_gate_clear (&gate);
    }

  g_test_message ("the work ran in %d of %u tasks given a cancelled cancellable, "
                  "%d did not end CANCELLED", ran, n, not_cancelled);
  g_assert_cmpint (ran, ==, 0);
  g_assert_cmpint (not_cancelled, ==, 0);

  g_main_context_pop_thread_default (context);
}

/* Stopped (and so terminal) before run_async(). */
static void
test_run_async_stopped_before (void)
{
  g_autoptr(KillableTask) task = NULL;
  AsyncRun run;

  async_run_init (&run);

  task = killable_task_new ("async-stopped", work_succeed, &run.gate, NULL);
  killable_task_stop (task);
  killable_task_run_async (task, NULL, run_async_cb, &run.res);
  TEST_ITERATE_UNTIL (run.context, run.res.done);

  g_assert_false (run.res.ret);
  g_assert_error (run.res.error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_true (run.res.context == run.context);
  g_assert_cmpint (run.gate.ran, ==, 0);

  async_run_clear (&run);
}

static void
test_run_async_already_started (void)
{
  g_autoptr(KillableTask) task = NULL;
  AsyncRun run;

  async_run_init (&run);

  task = killable_task_new ("async-twice", work_stuck, &run.gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  killable_task_run_async (task, NULL, run_async_cb, &run.res);
  /* Reported through the callback, on the run.context, not synchronously. */
  g_assert_false (run.res.done);
  TEST_ITERATE_UNTIL (run.context, run.res.done);

  g_assert_false (run.res.ret);
  g_assert_error (run.res.error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_nonnull (strstr (run.res.error->message, "async-twice"));
  g_assert_true (run.res.context == run.context);

  /* The running task is unaffected. */
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_RUNNING);
  test_gate_open (&run.gate);
  g_assert_true (killable_task_join (task, NULL));
  g_assert_cmpint (run.gate.ran, ==, 1);

  async_run_clear (&run);
}

/* }}} */

/* States and owner-context emissions {{{ */

/* The states tests record on the global default context, drained first of
 * what earlier tests left there. */
static void
states_init (Recorder *rec,
             TestGate *gate)
{
  test_drain (NULL);
  recorder_init (rec);
  test_gate_init (gate);
}

static void
states_clear (Recorder *rec,
              TestGate *gate)
{
  recorder_clear (rec);
  test_gate_clear (gate);
}

/* A work stuck at the gate, then released: it returns the gate's result,
 * and the task ends SUCCEEDED, or FAILED with a change of its error. */
static void
check_states_released (gboolean succeed)
{
  g_autoptr(KillableTask) task = NULL;
  Recorder rec;
  TestGate gate;

  states_init (&rec, &gate);
  gate.result = succeed;

  task = killable_task_new (succeed ? "states-ok" : "states-fail", work_stuck, &gate, NULL);
  recorder_connect (&rec, task);
  recorder_start_stuck (&rec, task);

  test_gate_open (&gate);
  recorder_wait_finished (&rec);
  if (succeed)
    recorder_assert_ended (&rec, 2, KILLABLE_TASK_STATE_SUCCEEDED, 0, 0);
  else
    recorder_assert_ended (&rec, 2, KILLABLE_TASK_STATE_FAILED, 0, 1);

  states_clear (&rec, &gate);
}

static void
test_states_succeeded (void)
{
  check_states_released (TRUE);
}

static void
test_states_failed (void)
{
  check_states_released (FALSE);
}

static gpointer
stop_in_thread_main (gpointer data)
{
  killable_task_stop (data);
  return NULL;
}

static void
test_states_cancelled (void)
{
  g_autoptr(KillableTask) task = NULL;
  Recorder rec;
  TestGate gate;

  states_init (&rec, &gate);
  gate.use_check = TRUE;

  task = killable_task_new ("states-stop", work_stuck, &gate, NULL);
  recorder_connect (&rec, task);
  recorder_start_stuck (&rec, task);
  test_gate_wait_entered (&gate, 1);

  /* Stopped from another thread: emitted here all the same. */
  g_thread_join (g_thread_new ("stopper", stop_in_thread_main, task));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_STOPPING);
  g_assert_cmpint (rec.n_stop_requested, ==, 0);
  TEST_ITERATE_UNTIL (NULL, rec.n_state == 2 && rec.n_stop_requested == 1);
  g_assert_cmpint (rec.states[1], ==, KILLABLE_TASK_STATE_STOPPING);
  g_assert_null (rec.stop_reason);

  test_gate_open (&gate);
  recorder_wait_finished (&rec);
  recorder_assert_ended (&rec, 3, KILLABLE_TASK_STATE_CANCELLED, 1, 1);

  states_clear (&rec, &gate);
}

static void
test_states_pending_cancelled (void)
{
  g_autoptr(KillableTask) task = NULL;
  Recorder rec;
  TestGate gate;

  states_init (&rec, &gate);

  task = killable_task_new ("states-early", work_succeed, &gate, NULL);
  recorder_connect (&rec, task);
  killable_task_stop (task);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (rec.n_finished, ==, 0);

  recorder_wait_finished (&rec);
  recorder_assert_ended (&rec, 1, KILLABLE_TASK_STATE_CANCELLED, 1, 1);

  /* Starting it now emits nothing more. */
  g_assert_true (killable_task_start (task, NULL));
  test_drain (NULL);
  g_assert_cmpint (rec.n_state, ==, 1);
  g_assert_cmpint (rec.n_finished, ==, 1);
  g_assert_cmpint (rec.wrong_place, ==, 0);
  g_assert_cmpint (gate.ran, ==, 0);

  states_clear (&rec, &gate);
}

static void
test_states_killed (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  guint abandoned_before = killable_get_abandoned_thread_count ();
  gint64 before;
  Recorder rec;
  TestGate gate;

  states_init (&rec, &gate);

  /* Stuck: deaf to stops, returns TRUE once released. */
  task = killable_task_new ("states-kill", work_stuck, &gate, NULL);
  recorder_connect (&rec, task);
  killable_task_add_cleanup (task, cleanup_note, &gate, NULL);
  recorder_start_stuck (&rec, task);
  test_gate_wait_entered (&gate, 1);

  killable_task_kill (task);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, abandoned_before + 1);

  /* The owner is released at once, while the worker is still stuck. */
  before = g_get_monotonic_time ();
  g_assert_false (killable_task_join (task, &error));
  g_assert_cmpint (g_get_monotonic_time () - before, <, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_assert_cmpstr (error->message, ==, "Task “states-kill” was killed");
  g_assert_cmpint (gate.cleanup_ran, ==, 0);

  recorder_wait_finished (&rec);
  recorder_assert_ended (&rec, 3, KILLABLE_TASK_STATE_KILLED, 1, 1);
  g_assert_error (rec.stop_reason, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);

  /* The abandoned worker returns: its cleanups run on it, its late
   * success is dropped. */
  test_gate_open (&gate);
  test_gate_wait_count (&gate, &gate.cleanup_ran, 1);
  g_assert_true (gate.cleanup_thread == gate.worker_thread);
  TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == abandoned_before);

  test_drain (NULL);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_error (killable_task_get_error (task), KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_assert_cmpint (rec.n_finished, ==, 1);
  g_assert_cmpint (rec.n_state, ==, 3);
  g_assert_cmpint (gate.cleanup_ran, ==, 1);
  g_assert_cmpint (rec.wrong_place, ==, 0);

  states_clear (&rec, &gate);
}

/* A plain "notify" handler (no detail) sees the state changes too. */

static void
plain_notify_cb (GObject    *object,
                 GParamSpec *pspec,
                 Recorder   *rec)
{
  recorder_check_place (rec);
  if (g_strcmp0 (pspec->name, "state") == 0)
    {
      g_assert_cmpint (rec->n_state, <, (int) G_N_ELEMENTS (rec->states));
      rec->states[rec->n_state++] = killable_task_get_state (KILLABLE_TASK (object));
    }
}

static void
test_states_plain_notify (void)
{
  g_autoptr(KillableTask) task = NULL;
  Recorder rec;
  TestGate gate;

  states_init (&rec, &gate);

  task = killable_task_new ("plain-notify", work_succeed, &gate, NULL);
  g_signal_connect (task, "notify", G_CALLBACK (plain_notify_cb), &rec);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  TEST_ITERATE_UNTIL (NULL, rec.n_state == 2);
  test_drain (NULL);
  g_assert_cmpint (rec.n_state, ==, 2);
  g_assert_cmpint (rec.states[1], ==, KILLABLE_TASK_STATE_SUCCEEDED);
  g_assert_cmpint (rec.wrong_place, ==, 0);

  states_clear (&rec, &gate);
}

/* start() in this thread races stop() in another. */

typedef struct
{
  GMutex        lock;
  GCond         cond;
  guint         generation;  /* bumped for each new task */
  KillableTask *task;        /* (owned) (nullable) the task to stop */
  gboolean      quit;
} StopRacer;

static gpointer
stop_racer_main (gpointer data)
{
  StopRacer *racer = data;
  guint seen = 0;

  g_mutex_lock (&racer->lock);
  for (;;)
    {
      KillableTask *task;

      while (racer->generation == seen && !racer->quit)
        g_cond_wait (&racer->cond, &racer->lock);
      if (racer->quit)
        break;
      seen = racer->generation;
      /* NULL if this thread woke up after the task was dropped. */
      task = racer->task != NULL ? g_object_ref (racer->task) : NULL;
      g_mutex_unlock (&racer->lock);

      if (task != NULL)
        {
          killable_task_stop (task);
          g_object_unref (task);
        }

      g_mutex_lock (&racer->lock);
    }
  g_mutex_unlock (&racer->lock);

  return NULL;
}

static gboolean
work_check_once (KillableTask  *task,
                 gpointer       data,
                 GError       **error)
{
  test_gate_note_worker (data);
  return killable_task_check (task, error);
}

static void
count_cleanup (KillableTask *task,
               gpointer      data)
{
  g_atomic_int_inc ((int *) data);
}

static void
count_finished (KillableTask *task,
                int          *n)
{
  (*n)++;
}

static void
test_states_stop_racing_start (void)
{
  guint n = test_scale (500, 50);
  guint n_ran = 0, n_cancelled = 0, n_succeeded = 0;
  guint i;
  StopRacer racer;
  GThread *thread;

  memset (&racer, 0, sizeof racer);
  g_mutex_init (&racer.lock);
  g_cond_init (&racer.cond);
  thread = g_thread_new ("stop-racer", stop_racer_main, &racer);
  test_drain (NULL);

  /* At least n rounds, and on until both outcomes of the race were seen
   * (up to 20 n rounds): a race that never went both ways tested nothing. */
  for (i = 0; i < 20 * n && (i < n || n_cancelled == 0 || n_succeeded == 0); i++)
    {
      g_autoptr(GError) error = NULL;
      KillableTask *task;
      KillableTaskState state;
      int cleanups = 0, finished = 0;
      gboolean ret;
      TestGate gate;

      test_gate_init (&gate);
      task = killable_task_new ("racing", work_check_once, &gate, NULL);
      killable_task_add_cleanup (task, count_cleanup, &cleanups, NULL);
      g_signal_connect (task, "finished", G_CALLBACK (count_finished), &finished);

      g_mutex_lock (&racer.lock);
      g_clear_object (&racer.task);
      racer.task = g_object_ref (task);
      racer.generation++;
      g_cond_signal (&racer.cond);
      g_mutex_unlock (&racer.lock);

      g_assert_true (killable_task_start (task, NULL));
      g_assert_true (killable_task_wait (task, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC)));
      ret = killable_task_join (task, &error);
      state = killable_task_get_state (task);

      /* Either the work passed its check before the stop, or the task ended
       * cancelled by the stop (having run or not). */
      if (ret)
        {
          g_assert_cmpint (state, ==, KILLABLE_TASK_STATE_SUCCEEDED);
          g_assert_cmpint (gate.ran, ==, 1);
          n_succeeded++;
        }
      else
        {
          g_assert_cmpint (state, ==, KILLABLE_TASK_STATE_CANCELLED);
          g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
          n_cancelled++;
        }
      g_assert_cmpint (gate.ran, <=, 1);
      n_ran += gate.ran;

      TEST_ITERATE_UNTIL (NULL, finished == 1);

      /* Wait for the racer to let go of the task, then for its end. */
      g_mutex_lock (&racer.lock);
      g_clear_object (&racer.task);
      g_mutex_unlock (&racer.lock);
      g_object_unref (task);
      TEST_POLL_UNTIL (g_atomic_int_get (&cleanups) == 1);
      test_drain (NULL);
      g_assert_cmpint (finished, ==, 1);
      g_assert_cmpint (g_atomic_int_get (&cleanups), ==, 1);

      test_gate_clear (&gate);
    }

  g_mutex_lock (&racer.lock);
  racer.quit = TRUE;
  g_cond_signal (&racer.cond);
  g_mutex_unlock (&racer.lock);
  g_thread_join (thread);
  g_cond_clear (&racer.cond);
  g_mutex_clear (&racer.lock);

  g_test_message ("%u races: the work ran %u times, %u tasks succeeded, %u ended cancelled",
                  i, n_ran, n_succeeded, n_cancelled);
  if (n_cancelled == 0 || n_succeeded == 0)
    g_test_skip_printf ("the race was not exercised: in %u rounds every task %s", i,
                        n_cancelled == 0 ? "succeeded" : "was cancelled");
}

/* kill() racing the natural end of the work. */

static gboolean
work_short (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  volatile guint sum = 0;

  for (guint i = 0; i < 2000; i++)
    sum += i;

  return TRUE;
}

static void
test_states_kill_racing_end (void)
{
  guint n = test_scale (300, 30);
  guint abandoned_before = killable_get_abandoned_thread_count ();
  guint n_killed = 0, n_succeeded = 0;
  guint i;
  int cleanups = 0;

  /* At least n rounds, and on until both outcomes of the race were seen
   * (up to 20 n rounds): a race that never went both ways tested nothing. */
  for (i = 0; i < 20 * n && (i < n || n_killed == 0 || n_succeeded == 0); i++)
    {
      g_autoptr(KillableTask) task = killable_task_new ("kill-race", work_short, NULL, NULL);
      g_autoptr(GError) error = NULL;
      KillableTaskState state;

      killable_task_add_cleanup (task, count_cleanup, &cleanups, NULL);
      g_assert_true (killable_task_start (task, NULL));
      killable_task_kill (task);

      if (killable_task_join (task, &error))
        {
          g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);
          n_succeeded++;
        }
      else
        {
          g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
          g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
          n_killed++;
        }

      state = killable_task_get_state (task);
      g_assert_true (state == KILLABLE_TASK_STATE_SUCCEEDED ||
                     state == KILLABLE_TASK_STATE_KILLED);
    }

  /* Every cleanup ran exactly once, and no thread stays counted. */
  TEST_POLL_UNTIL ((guint) g_atomic_int_get (&cleanups) == i);
  TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == abandoned_before);
  g_assert_cmpint (g_atomic_int_get (&cleanups), ==, (int) i);

  g_test_message ("%u kills racing the end: %u ended KILLED, %u SUCCEEDED", i, n_killed, n_succeeded);
  if (n_killed == 0 || n_succeeded == 0)
    g_test_skip_printf ("the race was not exercised: in %u rounds every task %s", i,
                        n_killed == 0 ? "succeeded" : "was killed");
}

/* Nobody connected, nobody iterating: nothing may pile up on the context. */

static int n_finalized;

static void
count_finalized (gpointer  data,
                 GObject  *where)
{
  g_atomic_int_inc (&n_finalized);
}

static gboolean
work_busy_unwatched (KillableTask  *task,
                     gpointer       data,
                     GError       **error)
{
  killable_task_set_progress (task, .5);
  killable_task_set_status (task, "busy");
  return killable_task_check (task, error);
}

static void
test_no_emission_unconnected (void)
{
  guint n = test_scale (10000, 300);
  gint64 before = g_get_monotonic_time ();

  test_drain (NULL);
  g_assert_false (g_main_context_pending (NULL));
  g_atomic_int_set (&n_finalized, 0);

  for (guint i = 0; i < n; i++)
    {
      KillableTask *task = killable_task_new ("unwatched", work_busy_unwatched, NULL, NULL);

      g_object_weak_ref (G_OBJECT (task), count_finalized, NULL);
      killable_task_set_progress (task, .1);
      if (i % 3 == 1)
        killable_task_stop (task);
      g_assert_true (killable_task_start (task, NULL));
      if (i % 3 == 2)
        killable_task_stop (task);
      killable_task_join (task, NULL);
      g_object_unref (task);
    }

  g_test_message ("%u unwatched tasks in %" G_GINT64_FORMAT " ms", n,
                  (g_get_monotonic_time () - before) / 1000);

  /* Nothing queued, and nothing holds a task: every one is finalized once
   * its worker let go of it. */
  g_assert_false (g_main_context_pending (NULL));
  TEST_POLL_UNTIL ((guint) g_atomic_int_get (&n_finalized) == n);
  g_assert_cmpuint (test_drain (NULL), ==, 0);
}

/* }}} */

/* Worker threads {{{ */

typedef struct
{
  GMutex      lock;
  GCond       cond;
  int         n_expected;
  int         n_arrived;
  GHashTable *threads;
} Barrier;

static gboolean
work_barrier (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  Barrier *barrier = data;
  gint64 end = g_get_monotonic_time () + TEST_GUARD_USEC;
  gboolean all;

  g_mutex_lock (&barrier->lock);
  barrier->n_arrived++;
  g_hash_table_add (barrier->threads, g_thread_self ());
  g_cond_broadcast (&barrier->cond);
  while (barrier->n_arrived < barrier->n_expected)
    {
      if (!g_cond_wait_until (&barrier->cond, &barrier->lock, end))
        break;
    }
  all = barrier->n_arrived >= barrier->n_expected;
  g_mutex_unlock (&barrier->lock);

  if (!all)
    g_set_error (error, TEST_ERROR, 1, "Only %d tasks of %d ran at once",
                 barrier->n_arrived, barrier->n_expected);

  return all;
}

/* Starts @n tasks that only end once all @n run at the same time. */
static void
run_barrier_tasks (int n)
{
  KillableTask **tasks = g_new0 (KillableTask *, n);
  Barrier barrier;

  g_mutex_init (&barrier.lock);
  g_cond_init (&barrier.cond);
  barrier.n_expected = n;
  barrier.n_arrived = 0;
  barrier.threads = g_hash_table_new (NULL, NULL);

  for (int i = 0; i < n; i++)
    {
      tasks[i] = killable_task_new ("barrier", work_barrier, &barrier, NULL);
      g_assert_true (killable_task_start (tasks[i], NULL));
    }

  for (int i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (killable_task_join (tasks[i], &error));
      g_assert_no_error (error);
      g_object_unref (tasks[i]);
    }

  g_assert_cmpint (barrier.n_arrived, ==, n);
  g_assert_cmpuint (g_hash_table_size (barrier.threads), ==, n);

  g_hash_table_unref (barrier.threads);
  g_cond_clear (&barrier.cond);
  g_mutex_clear (&barrier.lock);
  g_free (tasks);
}

static void
test_threads_no_queue (void)
{
  run_barrier_tasks (32);
  g_assert_cmpuint (killable_worker_pool_get_n_threads (), >=, 32);
}

static void
test_threads_reuse (void)
{
  guint n_threads;

  run_barrier_tasks (4);

  /* The workers go back to the cache just after their tasks ended. */
  TEST_POLL_UNTIL (killable_worker_pool_get_n_idle () >= 4);
  n_threads = killable_worker_pool_get_n_threads ();

  /* Four at once again: all served by idle threads. */
  run_barrier_tasks (4);
  g_assert_cmpuint (killable_worker_pool_get_n_threads (), ==, n_threads);

  /* One after another. */
  for (int i = 0; i < 100; i++)
    {
      g_autoptr(KillableTask) task = killable_task_new ("reuse", work_false_without_error,
                                                         NULL, NULL);

      TEST_POLL_UNTIL (killable_worker_pool_get_n_idle () >= 1);
      g_assert_true (killable_task_start (task, NULL));
      killable_task_join (task, NULL);
    }
  g_assert_cmpuint (killable_worker_pool_get_n_threads (), ==, n_threads);
}

/* Last: it empties the cache. */
static void
test_threads_idle_exit (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("idle", work_false_without_error,
                                                     NULL, NULL);

  g_assert_true (killable_task_start (task, NULL));
  killable_task_join (task, NULL);
  g_assert_cmpuint (killable_worker_pool_get_n_threads (), >, 0);

  killable_worker_pool_set_idle_timeout (G_TIME_SPAN_MILLISECOND);
  TEST_POLL_UNTIL (killable_worker_pool_get_n_threads () == 0);
  g_assert_cmpuint (killable_worker_pool_get_n_idle (), ==, 0);
  killable_worker_pool_set_idle_timeout (15 * G_USEC_PER_SEC);

  /* And the pool still works. */
  g_clear_object (&task);
  task = killable_task_new ("after-idle", work_false_without_error, NULL, NULL);
  g_assert_true (killable_task_start (task, NULL));
  killable_task_join (task, NULL);
  g_assert_cmpuint (killable_worker_pool_get_n_threads (), ==, 1);
}

/* }}} */

/* Bad input {{{ */

/* Expects the critical of the failed g_return_if_fail() of @precondition
 * (its text as written in the library; '*' and '?' are wildcards): another
 * precondition's critical fails the test. */
#define EXPECT_CRITICAL(precondition) \
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, \
                         "*: assertion '" precondition "' failed")

static void
dummy_cleanup (KillableTask *task,
               gpointer      data)
{
}

static void
dummy_stop (KillableTask *task,
            const GError *reason,
            gpointer      data)
{
}

static void
test_bad_null_self (void)
{
  GError *error = NULL;

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_false (killable_task_start (NULL, &error));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_false (killable_task_join (NULL, &error));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_false (killable_task_wait (NULL, 0));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  killable_task_stop (NULL);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  killable_task_stop_with_error (NULL, NULL);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_false (killable_task_check (NULL, &error));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_false (killable_task_is_stop_requested (NULL));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_false (killable_task_sleep (NULL, 1, &error));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_cmpint (killable_task_wait_fd (NULL, 0, G_IO_IN, 0, &error), ==, 0);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_null (killable_task_get_cancellable (NULL));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  killable_task_add_cleanup (NULL, dummy_cleanup, NULL, NULL);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  killable_task_set_progress (NULL, .5);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  killable_task_set_status (NULL, "x");
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  killable_task_set_timeout (NULL, 1);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_cmpuint (killable_task_add_stop_callback (NULL, dummy_stop, NULL, NULL), ==, 0);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  killable_task_remove_stop_callback (NULL, 1);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  killable_task_run_async (NULL, NULL, NULL, NULL);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("KILLABLE_IS_TASK (self)");
  g_assert_cmpint (killable_task_get_state (NULL), ==, KILLABLE_TASK_STATE_PENDING);
  g_test_assert_expected_messages ();

  g_assert_null (error);
}

static void
test_bad_null_func (void)
{
  g_autoptr(KillableTask) task = NULL;
  int notified = 0;

  EXPECT_CRITICAL ("func != NULL");
  g_assert_null (killable_task_new ("no-func", NULL, NULL, NULL));
  g_test_assert_expected_messages ();

  task = killable_task_new ("bad-args", work_succeed, NULL, NULL);

  EXPECT_CRITICAL ("func != NULL");
  killable_task_add_cleanup (task, NULL, &notified, count_notify);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("func != NULL");
  g_assert_cmpuint (killable_task_add_stop_callback (task, NULL, &notified, count_notify), ==, 0);
  g_test_assert_expected_messages ();

  /* Nothing was kept, nothing runs later. */
  g_clear_object (&task);
  g_assert_cmpint (notified, ==, 0);
}

static void
test_bad_timeouts (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("bad-times", work_succeed, NULL, NULL);
  GError *error = NULL;

  EXPECT_CRITICAL ("timeout_usec >= -1");
  g_assert_false (killable_task_wait (task, -2));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("timeout_usec >= -1");
  killable_task_set_timeout (task, -2);
  g_test_assert_expected_messages ();
  g_assert_cmpint (killable_task_get_timeout (task), ==, -1);

  EXPECT_CRITICAL ("usec >= 0");
  g_assert_false (killable_task_sleep (task, -1, &error));
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("timeout_usec >= -1");
  g_assert_cmpint (killable_task_wait_fd (task, 0, G_IO_IN, -2, &error), ==, 0);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("fd >= 0");
  g_assert_cmpint (killable_task_wait_fd (task, -1, G_IO_IN, 0, &error), ==, 0);
  g_test_assert_expected_messages ();

  EXPECT_CRITICAL ("!isnan (progress)");
  killable_task_set_progress (task, NAN);
  g_test_assert_expected_messages ();
  g_assert_cmpfloat (killable_task_get_progress (task), ==, 0.);

  EXPECT_CRITICAL ("grace_usec >= -1");
  killable_task_set_grace_period (task, -2);
  g_test_assert_expected_messages ();

  g_assert_null (error);
}

typedef struct
{
  gboolean join_ret;
  gboolean wait_ret;
} SelfJoin;

static gboolean
work_join_self (KillableTask  *task,
                gpointer       data,
                GError       **error)
{
  SelfJoin *self_join = data;
  GError *local_error = NULL;

  self_join->join_ret = killable_task_join (task, &local_error);
  g_assert_null (local_error);
  self_join->wait_ret = killable_task_wait (task, -1);

  return TRUE;
}

static void
test_bad_join_self (void)
{
  g_autoptr(KillableTask) task = NULL;
  SelfJoin self_join = { TRUE, TRUE };

  task = killable_task_new ("self-join", work_join_self, &self_join, NULL);

  /* The worker logs them while the test waits in join(). */
  EXPECT_CRITICAL ("killable_task_get_current () != self");
  EXPECT_CRITICAL ("killable_task_get_current () != self");
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  g_test_assert_expected_messages ();

  g_assert_false (self_join.join_ret);
  g_assert_false (self_join.wait_ret);
}

static void
test_bad_join_never_started (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("unstarted", work_succeed, NULL, NULL);
  GError *error = NULL;

  /* (The precondition's text names private fields.) */
  EXPECT_CRITICAL ("*started*");
  g_assert_false (killable_task_join (task, &error));
  g_test_assert_expected_messages ();
  g_assert_null (error);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_PENDING);
}

static void
test_bad_error_set (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("error-set", work_succeed, NULL, NULL);
  g_autoptr(GError) error = g_error_new_literal (TEST_ERROR, 1, "already");

  EXPECT_CRITICAL ("error == NULL || *error == NULL");
  g_assert_false (killable_task_start (task, &error));
  g_test_assert_expected_messages ();
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_PENDING);

  EXPECT_CRITICAL ("error == NULL || *error == NULL");
  g_assert_false (killable_task_sleep (task, 0, &error));
  g_test_assert_expected_messages ();
}

static gboolean
work_true_with_error (KillableTask  *task,
                      gpointer       data,
                      GError       **error)
{
  g_set_error_literal (error, TEST_ERROR, 1, "contradiction");
  return TRUE;
}

/* run() returning TRUE with an error set is a bug of the work: a critical
 * (logged by the worker thread), and the task still succeeds. */
static void
test_bad_true_with_error (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(KillableTask) task = killable_task_new ("liar", work_true_with_error,
                                                         NULL, NULL);

      /* Criticals are not fatal here: the outcome is checked too. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      g_assert_true (killable_task_start (task, NULL));
      g_assert_true (killable_task_join (task, NULL));
      g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);
      g_assert_null (killable_task_get_error (task));
      g_print ("outcome: succeeded\n");
      return;
    }

  g_test_trap_subprocess (NULL, TEST_LIMIT_USEC (5 * G_USEC_PER_SEC), G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stdout ("*outcome: succeeded*");
  g_test_trap_assert_stderr ("*CRITICAL*liar*returned TRUE and set an error*contradiction*");
}

/* }}} */

/* stop() never blocks {{{ */

/* A rung called in its own thread; the test waits (bounded) for it to
 * return. */
typedef struct
{
  KillableTask *task;
  void        (*rung) (KillableTask *task);
  TestGate      returned;
} RungCall;

static gpointer
rung_call_main (gpointer data)
{
  RungCall *call = data;

  call->rung (call->task);
  test_gate_enter (&call->returned);

  return NULL;
}

/* Calls @rung on @task in another thread and fails the test if it does not
 * return within the guard. */
static void
assert_rung_returns (KillableTask *task,
                     void        (*rung) (KillableTask *task))
{
  RungCall call = { task, rung, };
  GThread *thread;

  test_gate_init (&call.returned);
  thread = g_thread_new ("rung", rung_call_main, &call);
  test_gate_wait_entered (&call.returned, 1);
  g_thread_join (thread);
  test_gate_clear (&call.returned);
}

/* The worker ignores stops (it is in code that never checks): stop() and
 * interrupt() return at once all the same; they never wait for the
 * worker. */
static void
test_stop_never_waits_for_worker (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);
  task = killable_task_new ("deaf", test_work_pass_gate_then_check, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  assert_rung_returns (task, killable_task_stop);
  assert_rung_returns (task, killable_task_interrupt);
  /* The worker is still where it was: nothing waited for it. */
  g_assert_false (killable_task_is_finished (task));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_STOPPING);

  test_gate_open (&gate);
  g_assert_false (test_join_guarded (task, &error));
  g_assert_true (killable_error_is_cancellation (error));
  test_gate_clear (&gate);
}

static void
blocking_stop_cb (KillableTask *task,
                  const GError *reason,
                  gpointer      data)
{
  test_gate_pass (data);
}

/* A stop callback blocks in the thread of the first stop(): it holds that
 * stop() (callbacks run in the stopping thread), but no other thread's
 * stop(), interrupt() or kill(). */
static void
test_stop_not_held_by_blocked_callback (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate worker_gate, cb_gate;
  GThread *first;
  guint abandoned_before = killable_get_abandoned_thread_count ();

  test_gate_init (&worker_gate);
  test_gate_init (&cb_gate);
  task = killable_task_new ("held", test_work_pass_gate_then_check, &worker_gate, NULL);
  killable_task_add_stop_callback (task, blocking_stop_cb, &cb_gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&worker_gate, 1);

  first = g_thread_new ("first-stop", stop_in_thread_main, task);
  test_gate_wait_entered (&cb_gate, 1);

  assert_rung_returns (task, killable_task_stop);
  assert_rung_returns (task, killable_task_interrupt);
  assert_rung_returns (task, killable_task_kill);

  test_gate_open (&cb_gate);
  g_thread_join (first);
  test_gate_open (&worker_gate);
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  /* The killed worker was abandoned at its gate: it must have left the
   * gate before the gate goes. */
  TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == abandoned_before);
  test_gate_clear (&cb_gate);
  test_gate_clear (&worker_gate);
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("KillableTask: states, start/join/wait, sleep/wait_fd/check, timeouts, emissions on the owner context, the worker pool, misuse criticals.");

  g_test_add_func ("/task/new", test_new);
  g_test_add_func ("/task/start/success", test_start_success);
  g_test_add_func ("/task/start/failure", test_start_failure);
  g_test_add_func ("/task/start/failure-without-error", test_fail_without_error);
  g_test_add_func ("/task/start/twice", test_start_twice);
  g_test_add_func ("/task/wait", test_wait);

  g_test_add_func ("/task/stop/running", test_stop_running);
  g_test_add_func ("/task/stop/pending", test_stop_pending);
  g_test_add_func ("/task/stop/with-error", test_stop_with_error);
  g_test_add_func ("/task/stop/with-error-pending", test_stop_with_error_pending);
  g_test_add_func ("/task/stop/during-cleanup", test_stop_during_cleanup);
  g_test_add_func ("/task/check", test_check);

  g_test_add_func ("/task/sleep/full", test_sleep_full);
  g_test_add_func ("/task/sleep/stop-latency", test_sleep_stop_latency);
  g_test_add_func ("/task/sleep/after-stop", test_sleep_after_stop);

  g_test_add_func ("/task/wait-fd/stop", test_wait_fd_stop);
  g_test_add_func ("/task/wait-fd/ready", test_wait_fd_ready);
  g_test_add_func ("/task/wait-fd/hup", test_wait_fd_hup);
  g_test_add_func ("/task/wait-fd/timeout", test_wait_fd_timeout);
  g_test_add_func ("/task/wait-fd/closed", test_wait_fd_closed);
  g_test_add_func ("/task/wait-fd/after-stop", test_wait_fd_after_stop);

  g_test_add_func ("/task/cancellable/stop-cancels", test_cancellable_stop_cancels);
  g_test_add_func ("/task/cancellable/cancel-stops", test_cancellable_cancel_stops);
  g_test_add_func ("/task/cancellable/gio", test_cancellable_gio);

  g_test_add_func ("/task/cleanup/order", test_cleanup_order);
  g_test_add_func ("/task/cleanup/after-end", test_cleanup_after_end);
  g_test_add_func ("/task/cleanup/never-started", test_cleanup_never_started);

  g_test_add_func ("/task/progress/coalesced", test_progress_coalesced);
  g_test_add_func ("/task/progress/live", test_progress_live);
  g_test_add_func ("/task/progress/values", test_progress_values);

  g_test_add_func ("/task/current", test_get_current);

  g_test_add_func ("/task/timeout/expires", test_timeout_expires);
  g_test_add_func ("/task/timeout/after-start", test_timeout_after_start);

  g_test_add_func ("/task/error/is-cancellation", test_error_is_cancellation);

  g_test_add_func ("/task/run-async/main-thread", test_run_async_main_thread);
  g_test_add_func ("/task/run-async/other-thread", test_run_async_other_thread);
  g_test_add_func ("/task/run-async/cancel", test_run_async_cancel);
  g_test_add_func ("/task/run-async/cancelled-before", test_run_async_cancelled_before);
  g_test_add_func ("/task/run-async/stopped-before", test_run_async_stopped_before);
  g_test_add_func ("/task/run-async/already-started", test_run_async_already_started);

  g_test_add_func ("/task/states/succeeded", test_states_succeeded);
  g_test_add_func ("/task/states/failed", test_states_failed);
  g_test_add_func ("/task/states/cancelled", test_states_cancelled);
  g_test_add_func ("/task/states/pending-cancelled", test_states_pending_cancelled);
  g_test_add_func ("/task/states/killed", test_states_killed);
  g_test_add_func ("/task/states/plain-notify", test_states_plain_notify);
  g_test_add_func ("/task/states/stop-racing-start", test_states_stop_racing_start);
  g_test_add_func ("/task/states/kill-racing-end", test_states_kill_racing_end);
  g_test_add_func ("/task/stop/never-waits-for-worker", test_stop_never_waits_for_worker);
  g_test_add_func ("/task/stop/not-held-by-blocked-callback", test_stop_not_held_by_blocked_callback);
  g_test_add_func ("/task/states/no-emission-unconnected", test_no_emission_unconnected);

  g_test_add_func ("/task/bad/null-self", test_bad_null_self);
  g_test_add_func ("/task/bad/null-func", test_bad_null_func);
  g_test_add_func ("/task/bad/timeouts", test_bad_timeouts);
  g_test_add_func ("/task/bad/join-self", test_bad_join_self);
  g_test_add_func ("/task/bad/join-never-started", test_bad_join_never_started);
  g_test_add_func ("/task/bad/error-set", test_bad_error_set);
  g_test_add_func ("/task/bad/true-with-error", test_bad_true_with_error);

  g_test_add_func ("/task/threads/no-queue", test_threads_no_queue);
  g_test_add_func ("/task/threads/reuse", test_threads_reuse);
  g_test_add_func ("/task/threads/idle-exit", test_threads_idle_exit);

  return g_test_run ();
}
