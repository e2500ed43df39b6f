/* test-stop-callbacks.c: killable_task_add_stop_callback() and friends
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <killable.h>

#include "killable-task-private.h"
#include "test-core-util.h"

/* One callback's record {{{ */

typedef struct
{
  KillableTask *task;          /* (unowned) the task it is registered on */
  int           ran;           /* (atomic) */
  int           notified;      /* (atomic) */
  int           ran_after_notify; /* (atomic) must stay 0 */
  GThread      *thread;        /* where it ran */
  KillableTask *seen_task;
  GError       *reason;        /* (owned) (nullable) the reason it got */
  gboolean      had_reason;
  gulong        id;
  /* Behaviours */
  gboolean      restop;        /* calls stop() and stop_with_error() again */
  gboolean      remove_self;   /* calls remove_stop_callback() on its own id */
  gulong        remove_other;  /* (nullable) an id it removes */
  TestGate     *gate;          /* (nullable) waits here */
} Cb;

static void
cb_init (Cb           *cb,
         KillableTask *task)
{
  memset (cb, 0, sizeof *cb);
  cb->task = task;
}

static void
cb_clear (Cb *cb)
{
  g_clear_error (&cb->reason);
}

static void
cb_func (KillableTask *task,
         const GError *reason,
         gpointer      data)
{
  Cb *cb = data;

  if (g_atomic_int_get (&cb->notified) != 0)
    g_atomic_int_inc (&cb->ran_after_notify);

  cb->thread = g_thread_self ();
  cb->seen_task = task;
  cb->had_reason = reason != NULL;
  g_clear_error (&cb->reason);
  if (reason != NULL)
    cb->reason = g_error_copy (reason);

  if (cb->restop)
    {
      g_autoptr(GError) again = g_error_new_literal (TEST_ERROR, 99, "Again");

      killable_task_stop (task);
      killable_task_stop_with_error (task, again);
    }

  if (cb->remove_self)
    killable_task_remove_stop_callback (task, cb->id);

  if (cb->remove_other != 0)
    killable_task_remove_stop_callback (task, cb->remove_other);

  if (cb->gate != NULL)
    test_gate_enter_and_wait (cb->gate);

  /* Last: "ran" means "returned" for the waiting tests. */
  g_atomic_int_inc (&cb->ran);
}

static void
cb_notify (gpointer data)
{
  Cb *cb = data;

  g_atomic_int_inc (&cb->notified);
}

static gulong
cb_add (Cb *cb)
{
  cb->id = killable_task_add_stop_callback (cb->task, cb_func, cb, cb_notify);
  return cb->id;
}

/* A new record, of a callback without behaviours, registered on @task. */
static gulong
cb_setup (Cb           *cb,
          KillableTask *task)
{
  cb_init (cb, task);
  return cb_add (cb);
}

/* }}} */

static gboolean
work_nothing (KillableTask  *task,
              gpointer       data,
              GError       **error)
{
  return TRUE;
}

typedef struct
{
  KillableTask *task;
  GError       *reason;    /* (nullable) (owned) */
} StopThread;

static gpointer
stop_thread_main (gpointer data)
{
  StopThread *st = data;

  if (st->reason != NULL)
    killable_task_stop_with_error (st->task, st->reason);
  else
    killable_task_stop (st->task);

  return g_thread_self ();
}

/* Stops @task from a new thread; returns that thread (joined, not freed:
 * only its address is compared). */
static GThread *
stop_in_thread (KillableTask *task,
                const GError *reason)
{
  StopThread st = { task, reason != NULL ? g_error_copy (reason) : NULL };
  GThread *thread = g_thread_new ("stopper", stop_thread_main, &st);
  GThread *self;

  g_thread_ref (thread);
  self = g_thread_join (thread);
  g_assert_true (self == thread);
  g_clear_error (&st.reason);

  return thread;
}

static void
test_runs_once_in_stopping_thread (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-once", work_nothing, NULL, NULL);
  GThread *stopper;
  Cb cb;

  g_assert_cmpuint (cb_setup (&cb, task), !=, 0);
  g_assert_cmpint (cb.ran, ==, 0);

  stopper = stop_in_thread (task, NULL);
  g_assert_cmpint (cb.ran, ==, 1);
  g_assert_cmpint (cb.notified, ==, 1);
  g_assert_true (cb.thread == stopper);
  g_assert_true (cb.seen_task == task);
  g_assert_false (cb.had_reason);

  /* Later stops, and the end of the task, run nothing again. */
  killable_task_stop (task);
  g_clear_object (&task);
  g_assert_cmpint (cb.ran, ==, 1);
  g_assert_cmpint (cb.notified, ==, 1);
  g_assert_cmpint (cb.ran_after_notify, ==, 0);

  g_thread_unref (stopper);
  cb_clear (&cb);
}

/* @request (kill() or interrupt()) stops a task with a reason of its own,
 * @code of KILLABLE_ERROR, given to the callbacks. */
static void
check_own_reason (const char    *name,
                  void         (*request) (KillableTask *task),
                  int            code)
{
  g_autoptr(KillableTask) task = killable_task_new (name, work_nothing, NULL, NULL);
  Cb cb;

  cb_setup (&cb, task);
  request (task);
  g_assert_cmpint (cb.ran, ==, 1);
  g_assert_error (cb.reason, KILLABLE_ERROR, code);
  cb_clear (&cb);
}

static void
test_reason (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) reason = g_error_new_literal (TEST_ERROR, 5, "Five");
  GThread *stopper;
  Cb cb;

  task = killable_task_new ("cb-reason", work_nothing, NULL, NULL);
  cb_setup (&cb, task);
  stopper = stop_in_thread (task, reason);
  g_assert_true (cb.thread == stopper);
  g_assert_true (cb.had_reason);
  g_assert_error (cb.reason, TEST_ERROR, 5);
  g_assert_cmpstr (cb.reason->message, ==, "Five");
  g_thread_unref (stopper);
  cb_clear (&cb);

  /* kill() and interrupt() give their own reasons. */
  g_clear_object (&task);
  check_own_reason ("cb-kill", killable_task_kill, KILLABLE_ERROR_KILLED);
  check_own_reason ("cb-interrupt", killable_task_interrupt, KILLABLE_ERROR_INTERRUPTED);
}

/* A started task's work: sleeps until it is stopped. */
static gboolean
work_sleep_until_stopped (KillableTask  *task,
                          gpointer       user_data,
                          GError       **error)
{
  return killable_task_sleep (task, (gint64) 3600 * G_USEC_PER_SEC, error);
}

static KillableTask *
start_sleeper (const char *name)
{
  g_autoptr(KillableTask) task = killable_task_new (name, work_sleep_until_stopped, NULL, NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (killable_task_start (task, &error));
  g_assert_no_error (error);

  return g_steal_pointer (&task);
}

/* The message of an interrupt's reason, about @name (untranslated: the
 * suite runs without the catalogs; test-i18n checks the translation). */
static char *
interrupted_message (const char *name)
{
  return g_strdup_printf ("Task “%s” was interrupted", name);
}

/* interrupt() of a started task builds its reason when it is first read
 * (issue 15): a callback registered before, one added after, join() and
 * a descendant get the whole reason, about the interrupted task (a
 * descendant's names the interrupted ancestor, not itself). */
static void
test_interrupt_reason (void)
{
  g_autoptr(KillableTask) before = start_sleeper ("cb-int-before");
  g_autoptr(KillableTask) joined = start_sleeper ("cb-int-joined");
  g_autoptr(KillableTask) after = NULL;
  g_autoptr(KillableTask) parent = start_sleeper ("cb-int-parent");
  g_autoptr(KillableTask) child = killable_task_new ("cb-int-child", work_sleep_until_stopped, NULL, NULL);
  g_autofree char *msg_before = interrupted_message ("cb-int-before");
  g_autofree char *msg_after = interrupted_message ("cb-int-after");
  g_autofree char *msg_joined = interrupted_message ("cb-int-joined");
  g_autofree char *msg_parent = interrupted_message ("cb-int-parent");
  g_autoptr(GError) error = NULL;
  Cb cb, cb_late, cb_child;
  TestGate gate;

  test_gate_init (&gate);
  after = killable_task_new ("cb-int-after", test_work_pass_gate_then_check, &gate, NULL);

  /* Registered before: fired by the interrupt. */
  cb_setup (&cb, before);
  killable_task_interrupt (before);
  g_assert_cmpint (cb.ran, ==, 1);
  g_assert_error (cb.reason, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpstr (cb.reason->message, ==, msg_before);
  g_assert_false (killable_task_join (before, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpstr (error->message, ==, msg_before);
  g_clear_error (&error);
  cb_clear (&cb);

  /* Nothing registered: the worker's end and join() read it. */
  killable_task_interrupt (joined);
  g_assert_false (killable_task_join (joined, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpstr (error->message, ==, msg_joined);
  g_clear_error (&error);

  /* Nothing registered, nothing read it yet (the worker waits at a gate,
   * ignoring the stop): a callback added later runs at once with it, then
   * join() gets it. */
  g_assert_true (killable_task_start (after, &error));
  g_assert_no_error (error);
  test_gate_wait_entered (&gate, 1);
  killable_task_interrupt (after);
  cb_setup (&cb_late, after);
  g_assert_cmpint (cb_late.ran, ==, 1);
  g_assert_error (cb_late.reason, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpstr (cb_late.reason->message, ==, msg_after);
  cb_clear (&cb_late);
  test_gate_open (&gate);
  g_assert_false (killable_task_join (after, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpstr (error->message, ==, msg_after);
  g_clear_error (&error);
  test_gate_clear (&gate);

  /* A parent with a child: the child's reason names the parent. */
  g_assert_true (killable_task_add_child (parent, child, &error));
  g_assert_no_error (error);
  g_assert_true (killable_task_start (child, &error));
  g_assert_no_error (error);
  cb_setup (&cb_child, child);
  killable_task_interrupt (parent);
  g_assert_cmpint (cb_child.ran, ==, 1);
  g_assert_cmpstr (cb_child.reason->message, ==, msg_parent);
  cb_clear (&cb_child);
  g_assert_false (killable_task_join (child, &error));
  g_clear_error (&error);

  g_assert_false (killable_task_join (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpstr (error->message, ==, msg_parent);
}

static void
test_multiple (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-many", work_nothing, NULL, NULL);
  GHashTable *ids = g_hash_table_new (NULL, NULL);
  Cb cbs[8];

  for (guint i = 0; i < G_N_ELEMENTS (cbs); i++)
    {
      g_assert_cmpuint (cb_setup (&cbs[i], task), !=, 0);
      g_hash_table_add (ids, GSIZE_TO_POINTER (cbs[i].id));
    }
  /* Distinct ids. */
  g_assert_cmpuint (g_hash_table_size (ids), ==, G_N_ELEMENTS (cbs));

  killable_task_stop (task);
  for (guint i = 0; i < G_N_ELEMENTS (cbs); i++)
    {
      g_assert_cmpint (cbs[i].ran, ==, 1);
      g_assert_cmpint (cbs[i].notified, ==, 1);
      g_assert_true (cbs[i].thread == g_thread_self ());
      cb_clear (&cbs[i]);
    }

  g_hash_table_unref (ids);
}

/* A callback that stops the task again: no deadlock, no second run. */
static void
test_restop (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-restop", work_nothing, NULL, NULL);
  g_autoptr(GError) error = NULL;
  Cb a, b;

  cb_init (&a, task);
  cb_init (&b, task);
  a.restop = TRUE;
  b.restop = TRUE;
  cb_add (&a);
  cb_add (&b);

  killable_task_stop (task);
  g_assert_cmpint (a.ran, ==, 1);
  g_assert_cmpint (b.ran, ==, 1);
  g_assert_cmpint (a.notified, ==, 1);
  g_assert_cmpint (b.notified, ==, 1);

  /* The first request's (empty) reason stays. */
  g_assert_false (a.had_reason);
  g_assert_false (killable_task_check (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);

  cb_clear (&a);
  cb_clear (&b);
}

static void
test_remove_before_stop (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-removed", work_nothing, NULL, NULL);
  Cb removed, kept;

  cb_setup (&removed, task);
  cb_setup (&kept, task);

  killable_task_remove_stop_callback (task, removed.id);
  /* Released at once. */
  g_assert_cmpint (removed.notified, ==, 1);

  /* Removing twice, or unknown and 0 ids, is harmless. */
  killable_task_remove_stop_callback (task, removed.id);
  killable_task_remove_stop_callback (task, 0);
  killable_task_remove_stop_callback (task, 123456);

  killable_task_stop (task);
  g_assert_cmpint (removed.ran, ==, 0);
  g_assert_cmpint (removed.notified, ==, 1);
  g_assert_cmpint (kept.ran, ==, 1);
  g_assert_cmpint (kept.notified, ==, 1);

  cb_clear (&removed);
  cb_clear (&kept);
}

typedef struct
{
  Cb      *cb;
  GThread *thread;
} AddThread;

static gpointer
add_thread_main (gpointer data)
{
  AddThread *at = data;

  at->thread = g_thread_self ();
  cb_add (at->cb);

  return NULL;
}

/* Added after the stop: runs at once, in the adding thread, returns 0. */
static void
test_add_after_stop (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-late", work_nothing, NULL, NULL);
  g_autoptr(GError) reason = g_error_new_literal (TEST_ERROR, 8, "Eight");
  AddThread at;
  Cb cb;

  killable_task_stop_with_error (task, reason);

  cb_init (&cb, task);
  at.cb = &cb;
  g_thread_join (g_thread_new ("adder", add_thread_main, &at));

  g_assert_cmpuint (cb.id, ==, 0);
  g_assert_cmpint (cb.ran, ==, 1);
  g_assert_cmpint (cb.notified, ==, 1);
  g_assert_true (cb.thread == at.thread);
  g_assert_error (cb.reason, TEST_ERROR, 8);

  /* Removing the 0 id is harmless. */
  killable_task_remove_stop_callback (task, cb.id);
  g_assert_cmpint (cb.notified, ==, 1);

  cb_clear (&cb);
}

/* remove_stop_callback() of a callback running in another thread returns
 * only after the callback returned. */

typedef struct
{
  KillableTask *task;
  Cb           *cb;
  TestGate      gate;          /* entered: about to remove */
  pid_t         tid;
  int           removed;       /* (atomic) remove returned */
  int           ran_at_remove; /* cb->ran when remove returned */
} Remover;

static gpointer
remover_main (gpointer data)
{
  Remover *r = data;

  g_mutex_lock (&r->gate.lock);
  r->tid = test_gettid ();
  g_mutex_unlock (&r->gate.lock);
  test_gate_enter (&r->gate);

  killable_task_remove_stop_callback (r->task, r->cb->id);

  r->ran_at_remove = g_atomic_int_get (&r->cb->ran);
  g_atomic_int_set (&r->removed, 1);

  return NULL;
}

/* @data: TRUE to register a second callback after the waited one (the
 * library keeps the newest callback apart from the older ones: both
 * places are run by a stop). */
static void
test_remove_waits_for_running (gconstpointer data)
{
  gboolean with_newer = GPOINTER_TO_INT (data);
  g_autoptr(KillableTask) task = killable_task_new ("cb-wait", work_nothing, NULL, NULL);
  TestGate cb_gate;
  GThread *stopper, *remover;
  StopThread st = { task, NULL };
  Remover r;
  Cb cb, newer;

  test_gate_init (&cb_gate);
  memset (&r, 0, sizeof r);
  test_gate_init (&r.gate);

  cb_init (&cb, task);
  cb.gate = &cb_gate;
  cb_add (&cb);
  cb_init (&newer, task);
  if (with_newer)
    cb_add (&newer);

  /* The callback runs in the stopper and waits at its gate (the oldest
   * runs first). */
  stopper = g_thread_new ("stopper", stop_thread_main, &st);
  test_gate_wait_entered (&cb_gate, 1);

  r.task = task;
  r.cb = &cb;
  remover = g_thread_new ("remover", remover_main, &r);
  test_gate_wait_entered (&r.gate, 1);

  /* The remover is blocked inside remove_stop_callback() (in a futex wait
   * without timeout: the library waits for the running callback; the
   * stopper holds no lock while the callback runs, so it is not a lock on
   * the way), and did not return while the callback runs. */
  test_wait_thread_in (r.tid, TEST_IN_FUTEX);
  g_assert_cmpint (g_atomic_int_get (&r.removed), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&cb.ran), ==, 0);

  test_gate_open (&cb_gate);
  g_thread_join (remover);
  g_thread_join (stopper);

  g_assert_cmpint (r.removed, ==, 1);
  /* When remove returned, the callback had returned. */
  g_assert_cmpint (r.ran_at_remove, ==, 1);
  g_assert_cmpint (cb.ran, ==, 1);
  g_assert_cmpint (cb.notified, ==, 1);
  g_assert_cmpint (newer.ran, ==, with_newer ? 1 : 0);
  g_assert_cmpint (newer.notified, ==, with_newer ? 1 : 0);

  test_gate_clear (&r.gate);
  test_gate_clear (&cb_gate);
  cb_clear (&cb);
  cb_clear (&newer);
}

/* From inside the callback itself: does not wait for itself. */
static void
test_remove_from_inside (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-self", work_nothing, NULL, NULL);
  GThread *stopper;
  Cb cb;

  cb_init (&cb, task);
  cb.remove_self = TRUE;
  cb_add (&cb);

  stopper = stop_in_thread (task, NULL);
  g_assert_cmpint (cb.ran, ==, 1);
  g_assert_cmpint (cb.notified, ==, 1);
  g_assert_true (cb.thread == stopper);

  g_clear_object (&task);
  g_assert_cmpint (cb.notified, ==, 1);
  g_assert_cmpint (cb.ran_after_notify, ==, 0);

  g_thread_unref (stopper);
  cb_clear (&cb);
}

/* Two callbacks that remove each other: whichever runs first keeps the
 * other from running. */
static void
test_remove_other_from_inside (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-other", work_nothing, NULL, NULL);
  Cb a, b;

  cb_setup (&a, task);
  cb_setup (&b, task);
  a.remove_other = b.id;
  b.remove_other = a.id;

  killable_task_stop (task);
  g_assert_cmpint (a.ran + b.ran, ==, 1);
  g_assert_cmpint (a.notified, ==, 1);
  g_assert_cmpint (b.notified, ==, 1);

  cb_clear (&a);
  cb_clear (&b);
}

/* A callback added from inside a callback: the stop was requested, so it
 * runs at once, nested, in the same thread. */

static void
add_nested_cb (KillableTask *task,
               const GError *reason,
               gpointer      data)
{
  Cb *nested = data;

  nested->id = killable_task_add_stop_callback (task, cb_func, nested, cb_notify);
}

static void
test_add_from_inside (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-nested", work_nothing, NULL, NULL);
  Cb nested;

  cb_init (&nested, task);
  nested.id = 77;
  killable_task_add_stop_callback (task, add_nested_cb, &nested, NULL);
  killable_task_stop (task);

  g_assert_cmpuint (nested.id, ==, 0);
  g_assert_cmpint (nested.ran, ==, 1);
  g_assert_cmpint (nested.notified, ==, 1);
  g_assert_true (nested.thread == g_thread_self ());

  cb_clear (&nested);
}

/* Never stopped: released in finalize, never run. */
static void
test_released_in_finalize (void)
{
  KillableTask *task;
  Cb pending, ended;

  Cb older[2];

  task = killable_task_new ("cb-finalize", work_nothing, NULL, NULL);
  cb_setup (&older[0], task);
  cb_setup (&older[1], task);
  cb_setup (&pending, task);
  g_object_unref (task);
  g_assert_cmpint (pending.ran, ==, 0);
  g_assert_cmpint (pending.notified, ==, 1);
  for (guint i = 0; i < G_N_ELEMENTS (older); i++)
    {
      g_assert_cmpint (older[i].ran, ==, 0);
      g_assert_cmpint (older[i].notified, ==, 1);
      cb_clear (&older[i]);
    }

  /* Ran to completion without a stop: same. */
  task = killable_task_new ("cb-finalize-ended", work_nothing, NULL, NULL);
  cb_setup (&ended, task);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  g_assert_cmpint (ended.ran, ==, 0);
  g_assert_cmpint (ended.notified, ==, 0);
  g_object_unref (task);
  /* The worker may hold the last reference for a moment after join(). */
  TEST_POLL_UNTIL (g_atomic_int_get (&ended.notified) == 1);
  g_assert_cmpint (ended.ran, ==, 0);

  cb_clear (&pending);
  cb_clear (&ended);
}

/* Sequences of adds and removes checked against a model. The library
 * keeps the newest callback in a slot and the older ones in a list (see
 * killable-stop-state.c); these sequences move callbacks between the two
 * in every order: adds with and without a notify (two paths through the
 * API), removes of the newest, of an older one, of a removed one and of an
 * unknown id, then a stop or the task's finalize. Run twice: through the
 * API (the inline common paths where they apply), and through the
 * out-of-line paths alone (what an add or a remove does when another
 * thread holds the stop state's spin lock). Whatever the sequence:
 * ids are distinct and non-zero; a removed callback is released at once
 * and never runs; a stop runs every registered one exactly once, oldest
 * first; a finalize runs none and releases each once. */

typedef struct _Seq Seq;

typedef struct
{
  Seq      *seq;
  gulong    id;
  gboolean  with_notify;
  gboolean  live;          /* registered and not removed */
  int       ran;
  int       run_position;  /* -1 until it ran */
  int       notified;
} SeqCb;

#define SEQ_MAX_OPS 48

struct _Seq
{
  SeqCb cbs[SEQ_MAX_OPS];
  guint n;
  int   next_position;
};

static void
seq_func (KillableTask *task,
          const GError *reason,
          gpointer      data)
{
  SeqCb *cb = data;

  cb->ran++;
  cb->run_position = cb->seq->next_position++;
}

static void
seq_notify (gpointer data)
{
  SeqCb *cb = data;

  cb->notified++;
}

static void
seq_check_removed (SeqCb *cb)
{
  g_assert_false (cb->live);
  g_assert_cmpint (cb->ran, ==, 0);
  g_assert_cmpint (cb->notified, ==, cb->with_notify ? 1 : 0);
}

/* Through the out-of-line paths alone (@data TRUE), or the API. */
static gboolean seq_slow_paths;

static gulong
seq_add (KillableTask   *task,
         SeqCb          *cb,
         GDestroyNotify  notify)
{
  if (seq_slow_paths)
    return killable_stop_state_add_callback_slow (killable_task_get_stop_state (task), task,
                                                  seq_func, cb, notify, FALSE);
  return killable_task_add_stop_callback (task, seq_func, cb, notify);
}

static void
seq_remove_id (KillableTask *task,
               gulong        id)
{
  if (seq_slow_paths)
    killable_stop_state_remove_callback_slow (killable_task_get_stop_state (task), id, FALSE);
  else
    killable_task_remove_stop_callback (task, id);
}

static void
seq_remove (KillableTask *task,
            Seq          *seq,
            SeqCb        *cb)
{
  seq_remove_id (task, cb->id);
  cb->live = FALSE;
  seq_check_removed (cb);
}

/* The newest live callback, or a random one, or NULL if none is live. */
static SeqCb *
seq_pick_live (Seq      *seq,
               GRand    *rand,
               gboolean  newest)
{
  SeqCb *live[SEQ_MAX_OPS];
  guint n_live = 0;

  for (guint i = 0; i < seq->n; i++)
    if (seq->cbs[i].live)
      live[n_live++] = &seq->cbs[i];

  if (n_live == 0)
    return NULL;

  return newest ? live[n_live - 1] : live[g_rand_int_range (rand, 0, (gint32) n_live)];
}

static void
test_sequences (gconstpointer data)
{
  guint n_sequences = test_scale (400, 40);
  guint n_stopped = 0, n_finalized = 0, n_removes = 0;

  seq_slow_paths = GPOINTER_TO_INT (data);

  for (guint s = 0; s < n_sequences; s++)
    {
      g_autoptr(GRand) rand = g_rand_new_with_seed (s);
      KillableTask *task = killable_task_new ("cb-sequence", work_nothing, NULL, NULL);
      guint n_ops = (guint) g_rand_int_range (rand, 1, SEQ_MAX_OPS + 1);
      gboolean stop = g_rand_boolean (rand);
      gulong max_id = 0;
      int n_ran = 0;
      Seq seq;

      memset (&seq, 0, sizeof seq);

      for (guint op = 0; op < n_ops; op++)
        {
          int kind = g_rand_int_range (rand, 0, 10);
          SeqCb *cb;

          if (kind < 5)
            {
              cb = &seq.cbs[seq.n++];
              cb->seq = &seq;
              cb->run_position = -1;
              cb->with_notify = g_rand_boolean (rand);
              cb->id = seq_add (task, cb, cb->with_notify ? seq_notify : NULL);
              g_assert_cmpuint (cb->id, !=, 0);
              /* Distinct: every id is above the ones given before. */
              g_assert_cmpuint (cb->id, >, max_id);
              max_id = cb->id;
              cb->live = TRUE;
            }
          else if (kind < 9 && (cb = seq_pick_live (&seq, rand, kind < 7)) != NULL)
            {
              seq_remove (task, &seq, cb);
              n_removes++;
            }
          else
            {
              /* A removed id, or an unknown one: nothing changes. */
              SeqCb *removed = NULL;

              for (guint i = 0; i < seq.n && removed == NULL; i++)
                if (!seq.cbs[i].live)
                  removed = &seq.cbs[i];
              seq_remove_id (task, removed != NULL ? removed->id : max_id + 1);
              for (guint i = 0; i < seq.n; i++)
                {
                  g_assert_cmpint (seq.cbs[i].ran, ==, 0);
                  if (seq.cbs[i].live)
                    g_assert_cmpint (seq.cbs[i].notified, ==, 0);
                  else
                    seq_check_removed (&seq.cbs[i]);
                }
            }
        }

      if (stop)
        {
          killable_task_stop (task);
          n_stopped++;
        }
      g_object_unref (task);
      n_finalized += !stop;

      for (guint i = 0; i < seq.n; i++)
        {
          SeqCb *cb = &seq.cbs[i];

          if (!cb->live)
            {
              seq_check_removed (cb);
              continue;
            }

          g_assert_cmpint (cb->notified, ==, cb->with_notify ? 1 : 0);
          if (stop)
            {
              /* Oldest first: the live ones in the order of their adds. */
              g_assert_cmpint (cb->ran, ==, 1);
              g_assert_cmpint (cb->run_position, ==, n_ran);
              n_ran++;
            }
          else
            {
              g_assert_cmpint (cb->ran, ==, 0);
            }
        }
      g_assert_cmpint (seq.next_position, ==, n_ran);
    }

  g_test_message ("%u sequences: %u stopped, %u finalized, %u removes",
                  n_sequences, n_stopped, n_finalized, n_removes);
  g_assert_cmpuint (n_stopped, >, 0);
  g_assert_cmpuint (n_finalized, >, 0);
}

/* Stopped by the task's own cancellable, from another thread: the callback
 * runs in the thread that cancelled. */

static gpointer
cancel_thread_main (gpointer data)
{
  g_cancellable_cancel (data);
  return g_thread_self ();
}

static void
test_cancellable_thread (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("cb-cancel", work_nothing, NULL, NULL);
  GThread *thread;
  Cb cb;

  cb_setup (&cb, task);

  thread = g_thread_new ("canceller", cancel_thread_main,
                         killable_task_get_cancellable (task));
  g_thread_ref (thread);
  g_thread_join (thread);

  g_assert_cmpint (cb.ran, ==, 1);
  g_assert_true (cb.thread == thread);

  g_thread_unref (thread);
  cb_clear (&cb);
}

/* Timeout: the callback runs on the timer thread, not the worker nor the
 * owner. */

static gboolean
work_sleep_long (KillableTask  *task,
                 gpointer       data,
                 GError       **error)
{
  TestGate *gate = data;

  test_gate_note_worker (gate);
  return killable_task_sleep (task, 60 * G_USEC_PER_SEC, error);
}

static void
test_timeout_thread (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;
  Cb cb;

  test_gate_init (&gate);
  task = killable_task_new ("cb-timeout", work_sleep_long, &gate, NULL);
  killable_task_set_timeout (task, 10 * G_TIME_SPAN_MILLISECOND);
  cb_setup (&cb, task);

  g_assert_true (killable_task_start (task, NULL));
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);

  /* See test_task_ends_after_callbacks() for whether this may lag. */
  TEST_POLL_UNTIL (g_atomic_int_get (&cb.ran) == 1);
  g_assert_error (cb.reason, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_assert_true (cb.thread != g_thread_self ());
  g_assert_true (cb.thread != gate.worker_thread);

  test_gate_clear (&gate);
  cb_clear (&cb);
}

/* The task ends only after the callbacks of the stop that ended it have
 * returned, so that a cleanup may free what a callback uses: the
 * sqlite3_interrupt() callback + sqlite3_close() cleanup pattern. */

typedef struct
{
  TestGate  gate;                   /* the callback waits here */
  int       cb_returned;            /* (atomic) */
  int       cb_returned_at_cleanup; /* -1 until the cleanup ran */
} Ordering;

static void
ordering_cb (KillableTask *task,
             const GError *reason,
             gpointer      data)
{
  Ordering *o = data;

  test_gate_enter_and_wait (&o->gate);
  g_atomic_int_set (&o->cb_returned, 1);
}

static void
ordering_cleanup (KillableTask *task,
                  gpointer      data)
{
  Ordering *o = data;

  o->cb_returned_at_cleanup = g_atomic_int_get (&o->cb_returned);
}

static void
test_task_ends_after_callbacks (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  StopThread st = { NULL, NULL };
  TestGate worker;
  GThread *stopper;
  gboolean ended_early;
  Ordering o;

  test_gate_init (&worker);
  test_gate_init (&o.gate);
  o.cb_returned = 0;
  o.cb_returned_at_cleanup = -1;

  task = killable_task_new ("cb-order", work_sleep_long, &worker, NULL);
  killable_task_add_stop_callback (task, ordering_cb, &o, NULL);
  killable_task_add_cleanup (task, ordering_cleanup, &o, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_count (&worker, &worker.ran, 1);

  st.task = task;
  stopper = g_thread_new ("stopper", stop_thread_main, &st);
  test_gate_wait_entered (&o.gate, 1);

  /* The callback is running in the stopper; the worker's sleep already
   * returned. The task must not end (nor run its cleanups) meanwhile. This
   * only bounds how long a wrong end is looked for. */
  ended_early = killable_task_wait (task, 200 * G_TIME_SPAN_MILLISECOND);

  test_gate_open (&o.gate);
  g_thread_join (stopper);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);

  g_assert_false (ended_early);
  g_assert_cmpint (o.cb_returned_at_cleanup, ==, 1);

  test_gate_clear (&o.gate);
  test_gate_clear (&worker);
}

/* Many threads add and remove while another stops. */

#define N_ADDERS 6

typedef struct
{
  KillableTask *task;
  TestGate      go;          /* every thread passes it at once */
  int           n_added;     /* (atomic) */
  int           stop_after;
  GThread      *stopper;
} Race;

typedef struct
{
  Cb       cb;
  gboolean removed;
  int      ran_at_remove;
  GThread *adder;
} RaceCb;

typedef struct
{
  Race    *race;
  RaceCb  *cbs;
  guint    n;
} Adder;

static gpointer
adder_main (gpointer data)
{
  Adder *adder = data;

  test_gate_pass (&adder->race->go);

  for (guint i = 0; i < adder->n; i++)
    {
      RaceCb *rcb = &adder->cbs[i];

      rcb->adder = g_thread_self ();
      cb_add (&rcb->cb);
      g_atomic_int_inc (&adder->race->n_added);

      if (i % 2 == 0)
        {
          killable_task_remove_stop_callback (adder->race->task, rcb->cb.id);
          rcb->ran_at_remove = g_atomic_int_get (&rcb->cb.ran);
          rcb->removed = TRUE;
        }
    }

  return NULL;
}

static gpointer
race_stopper_main (gpointer data)
{
  Race *race = data;
  gint64 end;

  test_gate_pass (&race->go);

  /* Stop in the middle of the adding; the guard only bounds the spin. */
  end = g_get_monotonic_time () + TEST_GUARD_USEC;
  while (g_atomic_int_get (&race->n_added) < race->stop_after &&
         g_get_monotonic_time () < end)
    g_thread_yield ();

  killable_task_stop (race->task);

  return NULL;
}

static void
test_concurrent (void)
{
  guint rounds = test_scale (20, 3);
  guint per_thread = test_scale (200, 30);
  guint n_before = 0, n_after = 0, n_removed_unrun = 0;

  for (guint round = 0; round < rounds; round++)
    {
      g_autoptr(KillableTask) task = killable_task_new ("cb-race", work_nothing, NULL, NULL);
      GThread *threads[N_ADDERS];
      Adder adders[N_ADDERS];
      GThread *stopper;
      Race race;

      memset (&race, 0, sizeof race);
      test_gate_init (&race.go);
      race.task = task;
      race.stop_after = (int) (N_ADDERS * per_thread / 2);

      for (guint t = 0; t < N_ADDERS; t++)
        {
          adders[t].race = &race;
          adders[t].n = per_thread;
          adders[t].cbs = g_new0 (RaceCb, per_thread);
          for (guint i = 0; i < per_thread; i++)
            cb_init (&adders[t].cbs[i].cb, task);
          threads[t] = g_thread_new ("adder", adder_main, &adders[t]);
        }
      stopper = g_thread_new ("stopper", race_stopper_main, &race);
      g_thread_ref (stopper);

      test_gate_open (&race.go);

      for (guint t = 0; t < N_ADDERS; t++)
        g_thread_join (threads[t]);
      g_thread_join (stopper);

      /* Every callback is released exactly once and runs at most once:
       * exactly once unless removed; never after remove() returned; in
       * the stopper if it was registered, in its adder if it was added
       * after the stop. */
      for (guint t = 0; t < N_ADDERS; t++)
        {
          for (guint i = 0; i < per_thread; i++)
            {
              RaceCb *rcb = &adders[t].cbs[i];

              g_assert_cmpint (rcb->cb.notified, ==, 1);
              g_assert_cmpint (rcb->cb.ran, <=, 1);
              g_assert_cmpint (rcb->cb.ran_after_notify, ==, 0);

              if (rcb->removed)
                {
                  g_assert_cmpint (rcb->cb.ran, ==, rcb->ran_at_remove);
                  if (rcb->cb.ran == 0)
                    n_removed_unrun++;
                }
              else
                {
                  g_assert_cmpint (rcb->cb.ran, ==, 1);
                }

              if (rcb->cb.ran == 1)
                {
                  if (rcb->cb.id == 0)
                    {
                      g_assert_true (rcb->cb.thread == rcb->adder);
                      n_after++;
                    }
                  else
                    {
                      g_assert_true (rcb->cb.thread == stopper);
                      n_before++;
                    }
                }
              cb_clear (&rcb->cb);
            }
          g_free (adders[t].cbs);
        }

      /* Whether an adder still added after the stop depends on the
       * scheduler (under valgrind, rarely): one more, added here after
       * the stop, always takes that path. */
      {
        Cb late;

        cb_init (&late, task);
        cb_add (&late);
        g_assert_cmpuint (late.id, ==, 0);
        g_assert_cmpint (late.ran, ==, 1);
        g_assert_cmpint (late.notified, ==, 1);
        g_assert_true (late.thread == g_thread_self ());
        n_after++;
        cb_clear (&late);
      }

      g_thread_unref (stopper);
      test_gate_clear (&race.go);
    }

  g_test_message ("%u rounds: %u callbacks run by the stop, %u run when added after it, "
                  "%u removed before running", rounds, n_before, n_after, n_removed_unrun);
  /* The stop landed after half of the adds: the odd ones, never removed,
   * ran in the stopper. */
  g_assert_cmpuint (n_before, >, 0);
  g_assert_cmpuint (n_after, >=, rounds);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("Stop callbacks and the stop-requested signal: order, threads, re-entrancy, removal.");

  g_test_add_func ("/stop-callbacks/once-in-stopping-thread", test_runs_once_in_stopping_thread);
  g_test_add_func ("/stop-callbacks/reason", test_reason);
  g_test_add_func ("/stop-callbacks/interrupt-reason", test_interrupt_reason);
  g_test_add_func ("/stop-callbacks/multiple", test_multiple);
  g_test_add_func ("/stop-callbacks/restop", test_restop);
  g_test_add_func ("/stop-callbacks/remove-before-stop", test_remove_before_stop);
  g_test_add_func ("/stop-callbacks/add-after-stop", test_add_after_stop);
  g_test_add_data_func ("/stop-callbacks/remove-waits-for-running", GINT_TO_POINTER (FALSE),
                        test_remove_waits_for_running);
  g_test_add_data_func ("/stop-callbacks/remove-waits-for-running-older", GINT_TO_POINTER (TRUE),
                        test_remove_waits_for_running);
  g_test_add_func ("/stop-callbacks/remove-from-inside", test_remove_from_inside);
  g_test_add_func ("/stop-callbacks/remove-other-from-inside", test_remove_other_from_inside);
  g_test_add_func ("/stop-callbacks/add-from-inside", test_add_from_inside);
  g_test_add_func ("/stop-callbacks/released-in-finalize", test_released_in_finalize);
  g_test_add_data_func ("/stop-callbacks/sequences", GINT_TO_POINTER (FALSE), test_sequences);
  g_test_add_data_func ("/stop-callbacks/sequences-out-of-line", GINT_TO_POINTER (TRUE), test_sequences);
  g_test_add_func ("/stop-callbacks/cancellable-thread", test_cancellable_thread);
  g_test_add_func ("/stop-callbacks/timeout-thread", test_timeout_thread);
  g_test_add_func ("/stop-callbacks/task-ends-after-callbacks", test_task_ends_after_callbacks);
  g_test_add_func ("/stop-callbacks/concurrent", test_concurrent);

  return g_test_run ();
}
