/* test-escalation.c: interrupt, kill and the grace-period ladder of thread
 * tasks
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <killable.h>

/* Upper bound of every wait: reaching it is a failure, never the way a test
 * synchronises. Longer under valgrind. */
#define TEST_GUARD_USEC TEST_LIMIT_USEC (5 * G_USEC_PER_SEC)
#include "test-core-util.h"

#define GRACE_USEC (50 * G_TIME_SPAN_MILLISECOND)

static GThread *main_thread;

/* A task that logs the rungs of the ladder {{{ */

typedef enum
{
  EVENT_STOP,
  EVENT_INTERRUPT,
  EVENT_KILL,
} EventKind;

typedef struct
{
  EventKind     kind;
  KillableTask *task;   /* unowned */
  gint64        time;
} Event;

typedef struct
{
  GMutex  lock;
  GArray *events;
} EventLog;

static void
event_log_init (EventLog *log)
{
  g_mutex_init (&log->lock);
  log->events = g_array_new (FALSE, FALSE, sizeof (Event));
}

static void
event_log_clear (EventLog *log)
{
  g_array_unref (log->events);
  g_mutex_clear (&log->lock);
}

static void
event_log_add (EventLog     *log,
               EventKind     kind,
               KillableTask *task)
{
  Event event = { kind, task, g_get_monotonic_time () };

  g_mutex_lock (&log->lock);
  g_array_append_val (log->events, event);
  g_mutex_unlock (&log->lock);
}

/* The events of @task, in order. */
static GArray *
event_log_dup_for (EventLog     *log,
                   KillableTask *task)
{
  GArray *ret = g_array_new (FALSE, FALSE, sizeof (Event));

  g_mutex_lock (&log->lock);
  for (guint i = 0; i < log->events->len; i++)
    {
      Event *event = &g_array_index (log->events, Event, i);

      if (event->task == task)
        g_array_append_val (ret, *event);
    }
  g_mutex_unlock (&log->lock);

  return ret;
}

static void
log_stop_cb (KillableTask *task,
             const GError *reason,
             gpointer      user_data)
{
  event_log_add (user_data, EVENT_STOP, task);
}

#define TEST_TYPE_LADDER_TASK (test_ladder_task_get_type ())
G_DECLARE_FINAL_TYPE (TestLadderTask, test_ladder_task, TEST, LADDER_TASK, KillableTask)

struct _TestLadderTask
{
  KillableTask      parent_instance;

  EventLog         *log;      /* unowned */
  KillableTaskFunc  func;
  gpointer          data;
};

G_DEFINE_FINAL_TYPE (TestLadderTask, test_ladder_task, KILLABLE_TYPE_TASK)

static gboolean
test_ladder_task_run (KillableTask  *task,
                      GError       **error)
{
  TestLadderTask *self = TEST_LADDER_TASK (task);

  return self->func (task, self->data, error);
}

static void
test_ladder_task_interrupt (KillableTask *task)
{
  event_log_add (TEST_LADDER_TASK (task)->log, EVENT_INTERRUPT, task);

  KILLABLE_TASK_CLASS (test_ladder_task_parent_class)->interrupt (task);
}

static void
test_ladder_task_kill (KillableTask *task)
{
  event_log_add (TEST_LADDER_TASK (task)->log, EVENT_KILL, task);

  KILLABLE_TASK_CLASS (test_ladder_task_parent_class)->kill (task);
}

static void
test_ladder_task_class_init (TestLadderTaskClass *klass)
{
  KillableTaskClass *task_class = KILLABLE_TASK_CLASS (klass);

  task_class->run = test_ladder_task_run;
  task_class->interrupt = test_ladder_task_interrupt;
  task_class->kill = test_ladder_task_kill;
}

static void
test_ladder_task_init (TestLadderTask *self)
{
}

static KillableTask *
ladder_task_new (const char       *name,
                 EventLog         *log,
                 KillableTaskFunc  func,
                 gpointer          data)
{
  TestLadderTask *self = g_object_new (TEST_TYPE_LADDER_TASK, "name", name, NULL);

  self->log = log;
  self->func = func;
  self->data = data;
  killable_task_add_stop_callback (KILLABLE_TASK (self), log_stop_cb, log, NULL);

  return KILLABLE_TASK (self);
}

/* What the tests of the ladder look at: the rungs each task went through,
 * the tasks finalized, and the abandoned threads before the test. */
typedef struct
{
  EventLog     log;
  TestCounter  finalized;
  guint        baseline;
} Watch;

static void
watch_init (Watch *watch)
{
  event_log_init (&watch->log);
  test_counter_init (&watch->finalized);
  watch->baseline = killable_get_abandoned_thread_count ();
}

/* A ladder task logged and counted by @watch. */
static KillableTask *
watch_ladder_task_new (Watch            *watch,
                       const char       *name,
                       KillableTaskFunc  func,
                       gpointer          data)
{
  KillableTask *task = ladder_task_new (name, &watch->log, func, data);

  test_counter_watch (&watch->finalized, task);

  return task;
}

/* Once the test dropped its references: waits until the @n_tasks watched
 * tasks were finalized, and checks that no thread is left abandoned. */
static void
watch_finish (Watch *watch,
              guint  n_tasks)
{
  test_counter_wait (&watch->finalized, n_tasks);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, watch->baseline);

  test_counter_clear (&watch->finalized);
  event_log_clear (&watch->log);
}

/* }}} */

/* Work functions {{{ */

typedef struct
{
  TestGate  about_to_read;
  TestGate  unblock;       /* with block_signal_first */
  int       fds[2];        /* the pipe: the worker reads fds[0] */
  gboolean  block_signal_first;
  gboolean  was_pending;   /* the first interrupt signal was pending */
  int       saw_eintr;     /* (atomic) */
  gssize    n_read;
} ReadData;

static void
read_data_init (ReadData *data)
{
  g_assert_true (g_unix_open_pipe (data->fds, FD_CLOEXEC, NULL));
  test_gate_init (&data->about_to_read);
  test_gate_init (&data->unblock);
  data->block_signal_first = FALSE;
  data->was_pending = FALSE;
  data->saw_eintr = FALSE;
  data->n_read = -2;
}

static void
read_data_clear (ReadData *data)
{
  close (data->fds[0]);
  close (data->fds[1]);
  test_gate_clear (&data->unblock);
  test_gate_clear (&data->about_to_read);
}

/* A C worker blocked in read(), handling EINTR as it should. */
static gboolean
read_pipe (KillableTask  *task,
           gpointer       user_data,
           GError       **error)
{
  ReadData *data = user_data;
  sigset_t set;
  char c;

  if (data->block_signal_first)
    {
      /* The interrupt signal is sent while it is blocked, and delivered
       * (and so lost) just before read() blocks: only a repeat of the
       * signal can make read() return. */
      sigemptyset (&set);
      sigaddset (&set, killable_get_interrupt_signal ());
      pthread_sigmask (SIG_BLOCK, &set, NULL);
    }

  test_gate_enter (&data->about_to_read);

  if (data->block_signal_first)
    {
      sigset_t pending;

      test_gate_pass (&data->unblock);
      sigpending (&pending);
      data->was_pending = sigismember (&pending, killable_get_interrupt_signal ()) == 1;
      pthread_sigmask (SIG_UNBLOCK, &set, NULL);
    }

  for (;;)
    {
      gssize n = read (data->fds[0], &c, 1);

      if (n >= 0)
        {
          data->n_read = n;
          break;
        }

      if (errno == EINTR)
        {
          g_atomic_int_set (&data->saw_eintr, TRUE);
          if (!killable_task_check (task, error))
            return FALSE;
          continue;
        }

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "read: %s", g_strerror (errno));
      return FALSE;
    }

  return killable_task_check (task, error);
}

/* }}} */

/* Interrupting system calls {{{ */

static void
check_interrupt_syscalls (gboolean block_signal_first)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  ReadData data;

  read_data_init (&data);
  data.block_signal_first = block_signal_first;

  task = killable_task_new ("reader", read_pipe, &data, NULL);
  killable_task_set_interrupt_syscalls (task, TRUE);
  g_assert_true (killable_task_get_interrupt_syscalls (task));
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&data.about_to_read, 1);

  /* The worker may not be inside read() yet: the signal is sent again
   * until the task ends. */
  killable_task_interrupt (task);
  if (block_signal_first)
    test_gate_open (&data.unblock);

  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_true (g_atomic_int_get (&data.saw_eintr));
  g_assert_cmpint (data.n_read, ==, -2);
  if (block_signal_first)
    g_assert_true (data.was_pending);

  read_data_clear (&data);
}

static void
test_interrupt_syscalls (void)
{
  check_interrupt_syscalls (FALSE);
}

static void
test_interrupt_syscalls_lost_signal (void)
{
  check_interrupt_syscalls (TRUE);
}

static void
test_interrupt_without_syscalls (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  ReadData data;

  read_data_init (&data);

  task = killable_task_new ("reader", read_pipe, &data, NULL);
  g_assert_false (killable_task_get_interrupt_syscalls (task));
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&data.about_to_read, 1);

  killable_task_interrupt (task);
  g_assert_true (killable_task_is_stop_requested (task));

  /* No signal: read() stays blocked (the bound is a failure guard of the
   * other direction: with a signal, it would end within milliseconds). */
  g_assert_false (killable_task_wait (task, 100 * G_TIME_SPAN_MILLISECOND));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_STOPPING);

  g_assert_cmpint (write (data.fds[1], "x", 1), ==, 1);
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_false (g_atomic_int_get (&data.saw_eintr));
  g_assert_cmpint (data.n_read, ==, 1);

  read_data_clear (&data);
}

/* }}} */

/* Shields: an interrupt signal held back over a region {{{ */

typedef struct
{
  TestGate  in_shield;        /* the worker is in the shield, about to read */
  int       fds[2];           /* the pipe: the worker reads fds[0] */
  int       eintr_in_shield;  /* (atomic) */
  int       eintr_after;      /* (atomic) */
  gssize    n_read;
  gboolean  inner_end;        /* what the inner shield_end() returned */
  gboolean  outer_end;        /* and the outer one */
} ShieldData;

/* A C worker that reads one byte inside two nested shields, then reads
 * again after them, handling EINTR as it should. */
static gboolean
read_shielded (KillableTask  *task,
               gpointer       user_data,
               GError       **error)
{
  ShieldData *data = user_data;
  char c;

  killable_task_shield_begin (task);
  killable_task_shield_begin (task);
  test_gate_note_worker (&data->in_shield);
  test_gate_enter (&data->in_shield);
  data->n_read = read (data->fds[0], &c, 1);
  if (data->n_read < 0 && errno == EINTR)
    g_atomic_int_set (&data->eintr_in_shield, 1);
  data->inner_end = killable_task_shield_end (task);
  data->outer_end = killable_task_shield_end (task);

  /* Nothing is written any more: only the held-back signal ends it. */
  if (read (data->fds[0], &c, 1) < 0 && errno == EINTR)
    g_atomic_int_set (&data->eintr_after, 1);

  return killable_task_check (task, error);
}

static void
test_shield_defers_eintr (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  ShieldData data = { 0, };

  g_assert_true (g_unix_open_pipe (data.fds, FD_CLOEXEC, NULL));
  test_gate_init (&data.in_shield);
  data.n_read = -2;

  task = killable_task_new ("shielded reader", read_shielded, &data, NULL);
  killable_task_set_interrupt_syscalls (task, TRUE);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&data.in_shield, 1);
  test_wait_thread_in (data.in_shield.worker_tid, TEST_IN_READ);

  killable_task_interrupt (task);
  g_assert_true (killable_task_is_stop_requested (task));

  /* Still in read(): unshielded, the signal (sent by interrupt(), then
   * again 1, 2, 4 ms later) would end it within milliseconds, and the
   * task with it; the bound fails only that other direction. */
  g_assert_false (killable_task_wait (task, 100 * G_TIME_SPAN_MILLISECOND));
  g_assert_false (g_atomic_int_get (&data.eintr_in_shield));

  /* The byte ends the shielded read(); the outermost shield_end() sends
   * the held-back signal, which ends the next read() with EINTR. */
  g_assert_cmpint (write (data.fds[1], "x", 1), ==, 1);
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (data.n_read, ==, 1);
  g_assert_false (g_atomic_int_get (&data.eintr_in_shield));
  g_assert_false (data.inner_end);
  g_assert_true (data.outer_end);
  g_assert_true (g_atomic_int_get (&data.eintr_after));

  close (data.fds[0]);
  close (data.fds[1]);
  test_gate_clear (&data.in_shield);
}

static gboolean
shield_end_unbalanced (KillableTask  *task,
                       gpointer       user_data,
                       GError       **error)
{
  gboolean *ended = user_data;

  /* No shield begun: a critical, and nothing changes. */
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*depth > 0*");
  *ended = killable_task_shield_end (task);
  g_test_assert_expected_messages ();

  return TRUE;
}

static void
test_shield_bad_input (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("unbalanced", shield_end_unbalanced,
                                                    NULL, NULL);
  g_autoptr(KillableTask) other = NULL;
  gboolean ended = TRUE;

  /* Not from the task's worker: criticals. */
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*get_current () == self*");
  killable_task_shield_begin (task);
  g_test_assert_expected_messages ();
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*get_current () == self*");
  g_assert_false (killable_task_shield_end (task));
  g_test_assert_expected_messages ();
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*KILLABLE_IS_TASK*");
  killable_task_shield_begin (NULL);
  g_test_assert_expected_messages ();

  other = killable_task_new ("unbalanced", shield_end_unbalanced, &ended, NULL);
  g_assert_true (killable_task_start (other, NULL));
  g_assert_true (test_join_guarded (other, NULL));
  g_assert_false (ended);
}

/* }}} */

/* Kill: abandoning a thread that never checks {{{ */

typedef struct
{
  TestGate  spinning;
  int       release;        /* (atomic) */
  int       returned;       /* (atomic) */
  GThread  *worker_thread;  /* set before `spinning` is entered */
  int       n_cleanups;     /* (atomic) */
  GThread  *cleanup_thread;

  /* The worker drops its reference on the task after its work: the test
   * learns it through a toggle reference, which enters this gate. */
  TestGate  last_ref;
} SpinData;

/* The late result travels through the function's data, the side channel
 * of a KillableTaskFunc; the task frees it with the data. */
typedef struct
{
  SpinData     *spin;     /* unowned */
  GObject      *result;   /* (owned) (nullable) */
  TestCounter  *results_finalized;
} ResultSlot;

static void
result_slot_free (gpointer data)
{
  ResultSlot *slot = data;

  g_clear_object (&slot->result);
  g_free (slot);
}

static gboolean
spin_until_released (KillableTask  *task,
                     gpointer       user_data,
                     GError       **error)
{
  ResultSlot *slot = user_data;
  SpinData *spin = slot->spin;

  spin->worker_thread = g_thread_self ();
  test_gate_enter (&spin->spinning);

  /* Never checks the task. */
  while (!g_atomic_int_get (&spin->release))
    g_thread_yield ();

  slot->result = g_object_new (G_TYPE_OBJECT, NULL);
  test_counter_watch (slot->results_finalized, slot->result);
  g_atomic_int_set (&spin->returned, TRUE);

  /* A late failure, dropped (and freed) by the library. */
  g_set_error_literal (error, TEST_ERROR, 5, "late failure");
  return FALSE;
}

static void
count_cleanup (KillableTask *task,
               gpointer      user_data)
{
  SpinData *spin = user_data;

  /* After the work returned, on its thread. */
  g_assert_true (g_atomic_int_get (&spin->returned));
  spin->cleanup_thread = g_thread_self ();
  g_atomic_int_inc (&spin->n_cleanups);
}

static void
spin_toggle_notify (gpointer  data,
                    GObject  *object,
                    gboolean  is_last_ref)
{
  SpinData *spin = data;

  if (is_last_ref)
    test_gate_enter (&spin->last_ref);
}

static void
test_kill_abandons (void)
{
  KillableTask *task;
  g_autoptr(GError) error = NULL;
  TestCounter results_finalized, tasks_finalized;
  ResultSlot *slot;
  SpinData spin;
  guint baseline;
  gint64 t0;

  test_gate_init (&spin.spinning);
  test_gate_init (&spin.last_ref);
  spin.release = FALSE;
  spin.returned = FALSE;
  spin.n_cleanups = 0;
  spin.cleanup_thread = NULL;
  test_counter_init (&results_finalized);
  test_counter_init (&tasks_finalized);

  slot = g_new0 (ResultSlot, 1);
  slot->spin = &spin;
  slot->results_finalized = &results_finalized;

  baseline = killable_get_abandoned_thread_count ();

  task = killable_task_new ("spinner", spin_until_released, slot, result_slot_free);
  killable_task_add_cleanup (task, count_cleanup, &spin, NULL);
  test_counter_watch (&tasks_finalized, task);
  g_assert_true (killable_task_start (task, NULL));
  /* From now on the test holds a toggle reference only: it is told when
   * the worker drops the task's own reference. */
  g_object_add_toggle_ref (G_OBJECT (task), spin_toggle_notify, &spin);
  g_object_unref (task);
  test_gate_wait_entered (&spin.spinning, 1);

  t0 = g_get_monotonic_time ();
  killable_task_kill (task);

  /* Released at once, the thread still spinning. */
  g_assert_false (test_join_guarded (task, &error));
  g_test_message ("kill to join: %.2f ms", (g_get_monotonic_time () - t0) / 1000.);
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_clear_error (&error);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_false (g_atomic_int_get (&spin.returned));
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, baseline + 1);
  g_assert_cmpint (g_atomic_int_get (&spin.n_cleanups), ==, 0);

  /* The work returns late. */
  g_atomic_int_set (&spin.release, TRUE);
  test_gate_wait_entered (&spin.last_ref, 1);

  g_assert_cmpint (g_atomic_int_get (&spin.n_cleanups), ==, 1);
  g_assert_true (spin.cleanup_thread == spin.worker_thread);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, baseline);

  /* The late failure changed nothing. */
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_error (killable_task_get_error (task), KILLABLE_ERROR, KILLABLE_ERROR_KILLED);

  /* The late result goes with the task's data. */
  g_assert_cmpuint (test_counter_get (&results_finalized), ==, 0);
  g_object_remove_toggle_ref (G_OBJECT (task), spin_toggle_notify, &spin);
  g_assert_cmpuint (test_counter_get (&tasks_finalized), ==, 1);
  g_assert_cmpuint (test_counter_get (&results_finalized), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&spin.n_cleanups), ==, 1);

  test_counter_clear (&tasks_finalized);
  test_counter_clear (&results_finalized);
  test_gate_clear (&spin.last_ref);
  test_gate_clear (&spin.spinning);
}

static void
count_cleanup_in_thread (KillableTask *task,
                         gpointer      user_data)
{
  GThread **thread = user_data;

  g_assert_null (*thread);
  *thread = g_thread_self ();
}

/* Killed before it started: nothing to abandon. */
static void
test_kill_pending (void)
{
  KillableTask *task;
  g_autoptr(GError) error = NULL;
  GThread *cleanup_thread = NULL;
  guint baseline = killable_get_abandoned_thread_count ();

  task = killable_task_new ("pending", spin_until_released, NULL, NULL);
  killable_task_add_cleanup (task, count_cleanup_in_thread, &cleanup_thread, NULL);
  killable_task_kill (task);

  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_error (killable_task_get_error (task), KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, baseline);

  /* Starting it runs nothing (the work would crash on its NULL data). */
  g_assert_true (killable_task_start (task, &error));
  g_assert_no_error (error);
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);

  /* Its cleanups run once, when it is finalized. */
  g_assert_null (cleanup_thread);
  g_object_unref (task);
  g_assert_true (cleanup_thread == g_thread_self ());
}

/* }}} */

/* The grace-period ladder {{{ */

typedef struct
{
  guint     n_emissions;
  gboolean  had_reason;
  gboolean  on_main_thread;
} StopSignalData;

static void
stop_requested_cb (KillableTask   *task,
                   const GError   *reason,
                   StopSignalData *data)
{
  data->n_emissions++;
  data->had_reason = reason != NULL;
  data->on_main_thread = g_thread_self () == main_thread;
}

/* Checks that @events are stop, interrupt, kill, each rung no earlier than
 * one grace period after the previous rung of @origin (the task whose
 * grace period drives the ladder: the task itself, or its ancestor). */
static void
check_ladder (GArray *events,
              GArray *origin,
              gint64  grace)
{
  static const EventKind expected[] = { EVENT_STOP, EVENT_INTERRUPT, EVENT_KILL };

  g_assert_cmpuint (events->len, ==, G_N_ELEMENTS (expected));
  g_assert_cmpuint (origin->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < events->len; i++)
    {
      Event *event = &g_array_index (events, Event, i);

      g_assert_cmpint (event->kind, ==, expected[i]);
      if (i > 0)
        {
          gint64 step = event->time - g_array_index (origin, Event, i - 1).time;

          g_test_message ("rung %u after %.1f ms", i, step / 1000.);
          g_assert_cmpint (step, >=, grace);
        }
    }
}

static void
test_grace_ladder (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GArray) events = NULL;
  g_autoptr(GError) error = NULL;
  StopSignalData signal_data = { 0, FALSE, FALSE };
  TestGate gate;
  Watch watch;

  watch_init (&watch);
  test_gate_init (&gate);

  task = watch_ladder_task_new (&watch, "stubborn", test_work_pass_gate_then_check, &gate);
  killable_task_set_grace_period (task, GRACE_USEC);
  g_assert_cmpint (killable_task_get_grace_period (task), ==, GRACE_USEC);
  g_signal_connect (task, "stop-requested", G_CALLBACK (stop_requested_cb), &signal_data);

  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  killable_task_stop (task);

  /* Returns once the last rung released the task. */
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, watch.baseline + 1);

  events = event_log_dup_for (&watch.log, task);
  check_ladder (events, events, GRACE_USEC);

  /* The signal came once, on the owner's context, for the plain stop. */
  TEST_ITERATE_UNTIL (NULL, signal_data.n_emissions > 0);
  test_drain (NULL);
  g_assert_cmpuint (signal_data.n_emissions, ==, 1);
  g_assert_true (signal_data.on_main_thread);
  g_assert_false (signal_data.had_reason);

  test_gate_open (&gate);
  g_clear_object (&task);
  watch_finish (&watch, 1);

  test_gate_clear (&gate);
}

/* The ladder stops at the rung that works: a worker blocked in read()
 * with interrupt-syscalls ends at the interrupt, and is never killed. */
static void
test_grace_interrupt_suffices (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GArray) events = NULL;
  g_autoptr(GError) error = NULL;
  EventLog log;
  ReadData data;
  guint baseline;

  event_log_init (&log);
  read_data_init (&data);
  baseline = killable_get_abandoned_thread_count ();

  task = ladder_task_new ("reader", &log, read_pipe, &data);
  killable_task_set_interrupt_syscalls (task, TRUE);
  killable_task_set_grace_period (task, GRACE_USEC);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&data.about_to_read, 1);

  killable_task_stop (task);
  g_assert_false (test_join_guarded (task, &error));

  /* The cause stays the plain stop: the interrupt only forced it. */
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_true (g_atomic_int_get (&data.saw_eintr));
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, baseline);

  events = event_log_dup_for (&log, task);
  g_assert_cmpuint (events->len, ==, 2);
  g_assert_cmpint (g_array_index (events, Event, 0).kind, ==, EVENT_STOP);
  g_assert_cmpint (g_array_index (events, Event, 1).kind, ==, EVENT_INTERRUPT);
  g_assert_cmpint (g_array_index (events, Event, 1).time - g_array_index (events, Event, 0).time,
                   >=, GRACE_USEC);

  read_data_clear (&data);
  event_log_clear (&log);
}

static void
test_grace_subtree (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(GArray) parent_events = NULL;
  g_autoptr(GError) error = NULL;
  KillableTask *children[2];
  TestGate gate;
  Watch watch;

  watch_init (&watch);
  test_gate_init (&gate);

  parent = watch_ladder_task_new (&watch, "parent", test_work_pass_gate_then_check, &gate);
  killable_task_set_grace_period (parent, GRACE_USEC);
  g_assert_true (killable_task_start (parent, NULL));

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      children[i] = watch_ladder_task_new (&watch, "child",
                                           test_work_pass_gate_then_check, &gate);
      g_assert_cmpint (killable_task_get_grace_period (children[i]), ==, -1);
      g_assert_true (killable_task_add_child (parent, children[i], NULL));
      g_assert_true (killable_task_start (children[i], NULL));
    }
  test_gate_wait_entered (&gate, 1 + G_N_ELEMENTS (children));

  killable_task_stop (parent);

  /* The parent is released last (children first). */
  g_assert_false (test_join_guarded (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_clear_error (&error);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_KILLED);
  parent_events = event_log_dup_for (&watch.log, parent);
  check_ladder (parent_events, parent_events, GRACE_USEC);

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      g_autoptr(GArray) events = NULL;

      /* No grace of its own: the parent's escalation reached it. */
      g_assert_true (killable_task_is_finished (children[i]));
      g_assert_false (test_join_guarded (children[i], &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
      g_clear_error (&error);
      g_assert_cmpint (killable_task_get_state (children[i]), ==, KILLABLE_TASK_STATE_KILLED);

      events = event_log_dup_for (&watch.log, children[i]);
      check_ladder (events, parent_events, GRACE_USEC);
    }

  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==,
                    watch.baseline + 1 + G_N_ELEMENTS (children));

  test_gate_open (&gate);
  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    g_object_unref (children[i]);
  g_clear_object (&parent);
  watch_finish (&watch, 1 + G_N_ELEMENTS (children));

  test_gate_clear (&gate);
}

/* }}} */

/* The commit point {{{ */

typedef struct
{
  TestGate  in_section;
  TestGate  after;
  gboolean  enter_ret;
  gboolean  leave_ret;
} CommitData;

static void
commit_data_init (CommitData *data)
{
  test_gate_init (&data->in_section);
  test_gate_init (&data->after);
  data->enter_ret = FALSE;
  data->leave_ret = TRUE;
}

static void
commit_data_clear (CommitData *data)
{
  test_gate_clear (&data->after);
  test_gate_clear (&data->in_section);
}

static gboolean
commit_section (KillableTask  *task,
                gpointer       user_data,
                GError       **error)
{
  CommitData *data = user_data;

  data->enter_ret = killable_task_set_abandonable (task, FALSE);
  test_gate_pass (&data->in_section);
  data->leave_ret = killable_task_set_abandonable (task, TRUE);
  test_gate_pass (&data->after);

  return TRUE;
}

static void
test_commit_point (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GArray) events = NULL;
  g_autoptr(GError) error = NULL;
  CommitData data;
  Watch watch;

  watch_init (&watch);
  commit_data_init (&data);

  task = watch_ladder_task_new (&watch, "committing", commit_section, &data);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&data.in_section, 1);
  g_assert_true (data.enter_ret);

  /* Inside the section: interrupted, not abandoned. */
  killable_task_kill (task);
  g_assert_true (killable_task_is_stop_requested (task));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_STOPPING);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, watch.baseline);
  events = event_log_dup_for (&watch.log, task);
  g_assert_cmpuint (events->len, ==, 3);
  g_assert_cmpint (g_array_index (events, Event, 0).kind, ==, EVENT_STOP);
  g_assert_cmpint (g_array_index (events, Event, 1).kind, ==, EVENT_KILL);
  g_assert_cmpint (g_array_index (events, Event, 2).kind, ==, EVENT_INTERRUPT);
  g_clear_pointer (&events, g_array_unref);

  /* Leaving it: abandoned there and then. */
  test_gate_open (&data.in_section);
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  test_gate_wait_entered (&data.after, 1);
  g_assert_false (data.leave_ret);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, watch.baseline + 1);
  events = event_log_dup_for (&watch.log, task);
  g_assert_cmpuint (events->len, ==, 4);
  g_assert_cmpint (g_array_index (events, Event, 3).kind, ==, EVENT_KILL);

  test_gate_open (&data.after);
  g_clear_object (&task);
  watch_finish (&watch, 1);

  commit_data_clear (&data);
}

typedef struct
{
  TestGate  killed;
  TestGate  done;
  gboolean  commit_ret;
} LateCommitData;

static gboolean
commit_after_kill (KillableTask  *task,
                   gpointer       user_data,
                   GError       **error)
{
  LateCommitData *data = user_data;

  test_gate_pass (&data->killed);
  data->commit_ret = killable_task_set_abandonable (task, FALSE);
  test_gate_enter (&data->done);

  return TRUE;
}

static void
test_commit_after_abandon (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  LateCommitData data;
  Watch watch;

  watch_init (&watch);
  test_gate_init (&data.killed);
  test_gate_init (&data.done);
  data.commit_ret = TRUE;

  task = killable_task_new ("late", commit_after_kill, &data, NULL);
  test_counter_watch (&watch.finalized, task);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&data.killed, 1);

  killable_task_kill (task);
  g_assert_false (test_join_guarded (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, watch.baseline + 1);

  /* Too late to commit: the worker must not publish anything. */
  test_gate_open (&data.killed);
  test_gate_wait_entered (&data.done, 1);
  g_assert_false (data.commit_ret);

  g_clear_object (&task);
  watch_finish (&watch, 1);

  test_gate_clear (&data.done);
  test_gate_clear (&data.killed);
}

/* }}} */

/* A child added while its parent is being killed {{{ */

/* The end of the tests of a late child: joins @parent then @child, which
 * both end with KILLABLE_ERROR @code, drops them and waits until @watch saw
 * both finalized. */
static void
join_pair_and_finish (Watch          *watch,
                      KillableTask  **parent,
                      KillableTask  **child,
                      gint            code)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (test_join_guarded (*parent, &error));
  g_assert_error (error, KILLABLE_ERROR, code);
  g_clear_error (&error);
  g_assert_false (test_join_guarded (*child, &error));
  g_assert_error (error, KILLABLE_ERROR, code);

  g_clear_object (child);
  g_clear_object (parent);
  watch_finish (watch, 2);
}


static void
test_kill_reaches_late_child (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(KillableTask) child = NULL;
  g_autoptr(GError) error = NULL;
  CommitData data;
  TestGate child_gate;
  Watch watch;

  watch_init (&watch);
  commit_data_init (&data);
  test_gate_init (&child_gate);

  /* The parent is in a section that must not be abandoned: kill() leaves
   * it STOPPING (not yet terminal), so it still takes children. */
  parent = watch_ladder_task_new (&watch, "parent", commit_section, &data);
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&data.in_section, 1);
  killable_task_kill (parent);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_STOPPING);

  /* A running child that never checks, added now: the kill reaches it as
   * the stop does. */
  child = watch_ladder_task_new (&watch, "late-child",
                                 test_work_pass_gate_then_check, &child_gate);
  g_assert_true (killable_task_start (child, NULL));
  test_gate_wait_entered (&child_gate, 1);
  g_assert_true (killable_task_add_child (parent, child, &error));
  g_assert_no_error (error);
  g_assert_true (killable_task_is_stop_requested (child));
  g_assert_cmpint (killable_task_get_state (child), ==, KILLABLE_TASK_STATE_KILLED);

  test_gate_open (&child_gate);
  test_gate_open (&data.in_section);
  test_gate_open (&data.after);
  join_pair_and_finish (&watch, &parent, &child, KILLABLE_ERROR_KILLED);

  test_gate_clear (&child_gate);
  commit_data_clear (&data);
}

/* }}} */

/* A child added to an interrupted leaf {{{ */

static void
test_interrupt_reaches_late_child (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(KillableTask) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) events = NULL;
  TestGate parent_gate, child_gate;
  Watch watch;

  watch_init (&watch);
  test_gate_init (&parent_gate);
  test_gate_init (&child_gate);

  /* A started leaf, the usual target of interrupt() (its own path), that
   * does not look at the stop until its gate opens. */
  parent = watch_ladder_task_new (&watch, "parent", test_work_pass_gate_then_check, &parent_gate);
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&parent_gate, 1);
  killable_task_interrupt (parent);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_STOPPING);
  events = event_log_dup_for (&watch.log, parent);
  g_assert_cmpuint (events->len, ==, 2);
  g_assert_cmpint (g_array_index (events, Event, 0).kind, ==, EVENT_STOP);
  g_assert_cmpint (g_array_index (events, Event, 1).kind, ==, EVENT_INTERRUPT);
  g_clear_pointer (&events, g_array_unref);

  /* A running child added now is stopped and interrupted, as if it had
   * been there. */
  child = watch_ladder_task_new (&watch, "late-child",
                                 test_work_pass_gate_then_check, &child_gate);
  g_assert_true (killable_task_start (child, NULL));
  test_gate_wait_entered (&child_gate, 1);
  g_assert_true (killable_task_add_child (parent, child, &error));
  g_assert_no_error (error);
  events = event_log_dup_for (&watch.log, child);
  g_assert_cmpuint (events->len, ==, 2);
  g_assert_cmpint (g_array_index (events, Event, 0).kind, ==, EVENT_STOP);
  g_assert_cmpint (g_array_index (events, Event, 1).kind, ==, EVENT_INTERRUPT);

  test_gate_open (&child_gate);
  test_gate_open (&parent_gate);
  join_pair_and_finish (&watch, &parent, &child, KILLABLE_ERROR_INTERRUPTED);

  test_gate_clear (&child_gate);
  test_gate_clear (&parent_gate);
}

/* }}} */

/* The interrupt signal {{{ */

static void
test_interrupt_signal_validation (void)
{
  g_autoptr(GError) error = NULL;
  int signum = killable_get_interrupt_signal ();

  g_assert_cmpint (signum, >=, SIGRTMIN);
  g_assert_cmpint (signum, <=, SIGRTMAX);

  g_assert_false (killable_set_interrupt_signal (SIGUSR1, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_clear_error (&error);

  g_assert_false (killable_set_interrupt_signal (SIGINT, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_clear_error (&error);

  g_assert_false (killable_set_interrupt_signal (0, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_clear_error (&error);

  g_assert_false (killable_set_interrupt_signal (SIGRTMAX + 1, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_clear_error (&error);

  g_assert_false (killable_set_interrupt_signal (-1, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_clear_error (&error);

  g_assert_cmpint (killable_get_interrupt_signal (), ==, signum);

  /* The current one is always accepted. */
  g_assert_true (killable_set_interrupt_signal (signum, &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_get_interrupt_signal (), ==, signum);
}

/* In a fresh process: a chosen signal is the one used, and cannot be
 * changed once its handler is installed. */
static void
test_interrupt_signal_custom (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GError) error = NULL;
      int signum = SIGRTMIN + 3;
      struct sigaction sa;

      g_assert_cmpint (killable_get_interrupt_signal (), !=, signum);
      g_assert_true (killable_set_interrupt_signal (signum, &error));
      g_assert_no_error (error);
      g_assert_cmpint (killable_get_interrupt_signal (), ==, signum);

      /* Not installed before the first interrupt. */
      g_assert_cmpint (sigaction (signum, NULL, &sa), ==, 0);
      g_assert_true (sa.sa_handler == SIG_DFL);

      check_interrupt_syscalls (FALSE);

      g_assert_cmpint (sigaction (signum, NULL, &sa), ==, 0);
      g_assert_true (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
      g_assert_cmpint (sa.sa_flags & SA_RESTART, ==, 0);

      g_assert_false (killable_set_interrupt_signal (signum + 1, &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
      g_clear_error (&error);
      g_assert_cmpint (killable_get_interrupt_signal (), ==, signum);
      g_assert_true (killable_set_interrupt_signal (signum, &error));
      g_assert_no_error (error);
      return;
    }

  g_test_trap_subprocess (NULL, TEST_LIMIT_USEC (10 * G_USEC_PER_SEC), G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("The stop, interrupt and kill rungs: grace periods, escalation timers, signals sent to workers and process groups.");

  main_thread = g_thread_self ();

  g_test_add_func ("/escalation/interrupt/syscalls", test_interrupt_syscalls);
  g_test_add_func ("/escalation/interrupt/syscalls-lost-signal", test_interrupt_syscalls_lost_signal);
  g_test_add_func ("/escalation/interrupt/no-syscalls", test_interrupt_without_syscalls);
  g_test_add_func ("/escalation/shield/defers-eintr", test_shield_defers_eintr);
  g_test_add_func ("/escalation/shield/bad-input", test_shield_bad_input);
  g_test_add_func ("/escalation/kill/abandon", test_kill_abandons);
  g_test_add_func ("/escalation/kill/pending", test_kill_pending);
  g_test_add_func ("/escalation/grace/ladder", test_grace_ladder);
  g_test_add_func ("/escalation/grace/interrupt-suffices", test_grace_interrupt_suffices);
  g_test_add_func ("/escalation/grace/subtree", test_grace_subtree);
  g_test_add_func ("/escalation/commit/section", test_commit_point);
  g_test_add_func ("/escalation/commit/after-abandon", test_commit_after_abandon);
  g_test_add_func ("/escalation/kill/late-child", test_kill_reaches_late_child);
  g_test_add_func ("/escalation/interrupt/late-child", test_interrupt_reaches_late_child);
  g_test_add_func ("/escalation/signal/validation", test_interrupt_signal_validation);
  g_test_add_func ("/escalation/signal/custom", test_interrupt_signal_custom);

  return g_test_run ();
}
