/* test-owner-thread.c: every notification reaches handlers on the owner's thread
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A setter that may be called while the task runs notifies on the owner's
 * thread: at once when it runs there (GObject's usual synchronous
 * semantics), queued to the owner context when it runs on another thread.
 * The test connects a `notify::` handler per property on the owner's
 * thread, calls every such setter from another thread while the owner runs
 * its main loop, and looks at the thread each handler ran on.
 *
 * An outcome queued while the owner's main loop is blocked in poll() wakes
 * the loop.
 */

#include "config.h"

#include <killable.h>

#include "test-core-util.h"

typedef struct
{
  const char *property;
  void      (*set) (KillableTask *task);
} Setter;

static void set_timeout (KillableTask *t) { killable_task_set_timeout (t, G_TIME_SPAN_HOUR); }
static void set_grace (KillableTask *t) { killable_task_set_grace_period (t, G_TIME_SPAN_HOUR); }
static void set_syscalls (KillableTask *t) { killable_task_set_interrupt_syscalls (t, TRUE); }
static void set_policy (KillableTask *t) { killable_task_set_child_policy (t, KILLABLE_CHILD_POLICY_ISOLATE); }
static void set_retain (KillableTask *t) { killable_task_set_retain_children (t, TRUE); }
static void set_progress (KillableTask *t) { killable_task_set_progress (t, 0.5); }
static void set_status (KillableTask *t) { killable_task_set_status (t, "half way"); }

/* Every public setter that is valid on a started task. */
static const Setter setters[] = {
  { "timeout", set_timeout },
  { "grace-period", set_grace },
  { "interrupt-syscalls", set_syscalls },
  { "child-policy", set_policy },
  { "retain-children", set_retain },
  { "progress", set_progress },
  { "status", set_status },
};

typedef struct
{
  GMutex        lock;
  GCond         cond;
  KillableTask *task;
  gboolean      setters_done;               /* protected by @lock */
  GThread      *handler_thread[G_N_ELEMENTS (setters)]; /* owner thread only */
  guint         n_handled;                  /* owner thread only */
} Fixture;

static void
notify_cb (GObject    *object,
           GParamSpec *pspec,
           gpointer    user_data)
{
  Fixture *f = user_data;

  for (guint i = 0; i < G_N_ELEMENTS (setters); i++)
    if (g_str_equal (pspec->name, setters[i].property) && f->handler_thread[i] == NULL)
      {
        f->handler_thread[i] = g_thread_self ();
        f->n_handled++;
      }
}

static gboolean
work_until_stopped (KillableTask  *task,
                    gpointer       user_data,
                    GError       **error)
{
  return killable_task_sleep (task, G_MAXINT64, error);
}

static gpointer
other_thread (gpointer data)
{
  Fixture *f = data;

  for (guint i = 0; i < G_N_ELEMENTS (setters); i++)
    setters[i].set (f->task);

  g_mutex_lock (&f->lock);
  f->setters_done = TRUE;
  g_cond_signal (&f->cond);
  g_mutex_unlock (&f->lock);
  g_main_context_wakeup (NULL);

  return NULL;
}

static gboolean
guard_cb (gpointer data)
{
  g_error ("%s: the notifications never arrived", (const char *) data);
  return G_SOURCE_REMOVE;
}

static void
test_setters_from_other_thread (void)
{
  Fixture f = { 0 };
  GThread *thread;
  guint guard;

  g_test_summary ("Every setter valid on a started task, called from another thread, "
                  "notifies on the owner's thread");

  g_mutex_init (&f.lock);
  g_cond_init (&f.cond);
  f.task = killable_task_new ("owner-thread", work_until_stopped, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (setters); i++)
    {
      g_autofree char *signal = g_strdup_printf ("notify::%s", setters[i].property);

      g_signal_connect (f.task, signal, G_CALLBACK (notify_cb), &f);
    }
  g_assert_true (killable_task_start (f.task, NULL));

  thread = g_thread_new ("setter", other_thread, &f);

  /* The owner runs its main context until every handler ran. */
  guard = g_timeout_add_seconds (60, guard_cb, (gpointer) G_STRFUNC);
  for (;;)
    {
      gboolean done;

      g_mutex_lock (&f.lock);
      done = f.setters_done;
      g_mutex_unlock (&f.lock);
      if (done && f.n_handled == G_N_ELEMENTS (setters))
        break;
      g_main_context_iteration (NULL, TRUE);
    }
  g_source_remove (guard);
  g_thread_join (thread);

  for (guint i = 0; i < G_N_ELEMENTS (setters); i++)
    {
      g_test_message ("notify::%s ran on %s", setters[i].property,
                      f.handler_thread[i] == g_thread_self () ? "the owner's thread" : "another thread");
      g_assert_true (f.handler_thread[i] == g_thread_self ());
    }

  killable_task_stop (f.task);
  g_assert_true (killable_task_wait (f.task, -1));
  g_clear_object (&f.task);
  g_cond_clear (&f.cond);
  g_mutex_clear (&f.lock);
}

static void
test_setters_on_owner_thread (void)
{
  Fixture f = { 0 };
  guint n_sync = 0;

  g_test_summary ("A setter called on the owner's thread notifies before it returns, "
                  "as a GObject setter does");

  f.task = killable_task_new ("owner-thread", work_until_stopped, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (setters); i++)
    {
      g_autofree char *signal = g_strdup_printf ("notify::%s", setters[i].property);

      g_signal_connect (f.task, signal, G_CALLBACK (notify_cb), &f);
    }
  g_assert_true (killable_task_start (f.task, NULL));

  /* The owner-side setters only: progress and status are the worker's,
   * always queued. */
  for (guint i = 0; i < 5; i++)
    {
      setters[i].set (f.task);
      g_assert_true (f.handler_thread[i] == g_thread_self ());
      n_sync++;
    }
  g_assert_cmpuint (n_sync, ==, f.n_handled);

  killable_task_stop (f.task);
  g_assert_true (killable_task_wait (f.task, -1));
  while (g_main_context_iteration (NULL, FALSE));
  g_clear_object (&f.task);
}

/* A run_async() outcome and a main loop blocked in poll() {{{ */

/* Opened by the poll function of the loop below: owner thread only. */
static TestGate *poll_gate;
static guint n_gated_polls;

/* The context's poll function: the work may end only once the loop is
 * about to block in poll(), past any moment of spinning before it. */
static gint
gate_opening_poll (GPollFD *fds,
                   guint    n_fds,
                   gint     timeout)
{
  if (timeout != 0 && poll_gate != NULL)
    {
      test_gate_open (poll_gate);
      poll_gate = NULL;
      n_gated_polls++;
    }

  return g_poll (fds, n_fds, timeout);
}

static gboolean
work_wait_gate (KillableTask  *task,
                gpointer       user_data,
                GError       **error)
{
  test_gate_enter_and_wait (user_data);

  return TRUE;
}

static void
outcome_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  gboolean *done = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (killable_task_run_finish (KILLABLE_TASK (source), result, &error));
  g_assert_no_error (error);
  *done = TRUE;
}

static gboolean
not_woken_cb (gpointer data)
{
  g_error ("%s: the outcome never woke the main loop blocked in poll()", (const char *) data);
  return G_SOURCE_REMOVE;
}

static void
test_outcome_wakes_blocked_loop (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(KillableTask) task = NULL;
  GSource *guard;
  TestGate gate;
  gboolean done = FALSE;

  g_test_summary ("A run_async() outcome that comes while the owner's main loop is blocked "
                  "in poll() wakes the loop (nothing else would)");

  test_gate_init (&gate);
  g_main_context_push_thread_default (context);
  g_main_context_set_poll_func (context, gate_opening_poll);

  task = killable_task_new ("wakes-the-loop", work_wait_gate, &gate, NULL);
  poll_gate = &gate;
  n_gated_polls = 0;
  killable_task_run_async (task, NULL, outcome_cb, &done);

  /* The only other source: a guard that fails the test, which the loop
   * would sleep until without the wake-up. */
  guard = g_timeout_source_new_seconds (60);
  g_source_set_callback (guard, not_woken_cb, (gpointer) G_STRFUNC, NULL);
  g_source_attach (guard, context);
  while (!done)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (guard);
  g_source_unref (guard);

  /* The work ended after the loop went to poll(), once. */
  g_assert_cmpuint (n_gated_polls, ==, 1);
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_SUCCEEDED);

  g_main_context_pop_thread_default (context);
  test_gate_clear (&gate);
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/owner-thread/setters-from-other-thread", test_setters_from_other_thread);
  g_test_add_func ("/owner-thread/setters-on-owner-thread", test_setters_on_owner_thread);
  g_test_add_func ("/owner-thread/outcome-wakes-blocked-loop", test_outcome_wakes_blocked_loop);

  return g_test_run ();
}
