/* test-application.c: a real GApplication through bind → work → quit →
 * shutdown; shutdown's ladder; Unix signals; owner-context releases
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <signal.h>

#include "test-core-util.h"

/* The application {{{ */

typedef struct
{
  GApplication *app;
  KillableTask *root;
  KillableTask *cooperative;
  KillableTask *stuck;
  KillableTask *process;
  TestGate      coop_gate;
  TestGate      stuck_gate;
  gboolean      shutdown_done;
  gboolean      shutdown_ret;
  guint         abandoned_at_shutdown_end;
} App;

static gboolean
work_sleep (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  test_gate_enter (data);
  return killable_task_sleep (task, G_MAXINT64, error);
}

/* Ignores every stop until the test opens its gate: climbs the whole
 * ladder and is abandoned. */
static gboolean
work_stuck (KillableTask  *task,
            gpointer       data,
            GError       **error)
{
  test_gate_pass (data);
  return TRUE;
}

/* Once the tree ended, the abandoned thread of the stuck task still runs
 * and the shutdown must wait for it: it returns only now. */
static gboolean
release_stuck_cb (gpointer user_data)
{
  App *self = user_data;

  if (!killable_task_is_finished (self->root))
    return G_SOURCE_CONTINUE;

  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, 1);
  g_assert_false (self->shutdown_done);
  test_gate_open (&self->stuck_gate);

  return G_SOURCE_REMOVE;
}

static void
stuck_state_cb (KillableTask *task,
                GParamSpec   *pspec,
                App          *self)
{
  if (killable_task_get_state (task) == KILLABLE_TASK_STATE_KILLED)
    g_idle_add_full (G_PRIORITY_LOW, release_stuck_cb, self, NULL);
}

static void
shutdown_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  App *self = user_data;

  self->shutdown_ret = killable_task_shutdown_finish (KILLABLE_TASK (object), result, NULL);
  self->abandoned_at_shutdown_end = killable_get_abandoned_thread_count ();
  self->shutdown_done = TRUE;
}

static gboolean
quit_cb (gpointer user_data)
{
  App *self = user_data;

  /* The work runs: quit. Not g_application_quit(): the application ends
   * once nothing holds it, after the tree. */
  int coop_entered, stuck_entered;

  /* Read under the gates' locks: the workers write them under those. */
  g_mutex_lock (&self->coop_gate.lock);
  coop_entered = self->coop_gate.entered;
  g_mutex_unlock (&self->coop_gate.lock);
  g_mutex_lock (&self->stuck_gate.lock);
  stuck_entered = self->stuck_gate.entered;
  g_mutex_unlock (&self->stuck_gate.lock);

  if (coop_entered < 1 || stuck_entered < 1 ||
      killable_task_get_state (self->process) != KILLABLE_TASK_STATE_RUNNING)
    return G_SOURCE_CONTINUE;

  /* The grace (and the bound on abandoned threads, one more grace) scales
   * with the tools' slowdown. */
  killable_task_shutdown_async (self->root, TEST_LIMIT_USEC (20 * 1000), NULL, shutdown_cb, self);
  return G_SOURCE_REMOVE;
}

static void
activate_cb (GApplication *app,
             App          *self)
{
  const char *argv[] = { "sleep", "3600", NULL };
  g_autoptr(GError) error = NULL;

  self->root = killable_task_new_group ("app");
  self->cooperative = killable_task_new ("cooperative", work_sleep, &self->coop_gate, NULL);
  self->stuck = killable_task_new ("stuck", work_stuck, &self->stuck_gate, NULL);
  self->process = KILLABLE_TASK (killable_process_task_new (argv, &error));
  g_assert_no_error (error);
  g_signal_connect (self->stuck, "notify::state", G_CALLBACK (stuck_state_cb), self);

  g_assert_true (killable_task_add_child (self->root, self->cooperative, NULL));
  g_assert_true (killable_task_add_child (self->root, self->stuck, NULL));
  g_assert_true (killable_task_add_child (self->root, self->process, NULL));
  killable_task_bind_application (self->root, app);
  g_assert_true (killable_task_start (self->root, NULL));
  g_assert_true (killable_task_start (self->cooperative, NULL));
  g_assert_true (killable_task_start (self->stuck, NULL));
  g_assert_true (killable_task_start (self->process, NULL));

  g_timeout_add (1, quit_cb, self);
}

static void
test_application_lifecycle (void)
{
  App self;
  char *argv[] = { (char *) "test-application", NULL };
  GPid pid;
  int status;

  memset (&self, 0, sizeof self);
  test_gate_init (&self.coop_gate);
  test_gate_init (&self.stuck_gate);
  self.app = g_application_new ("org.killable.TestApplication", G_APPLICATION_NON_UNIQUE);
  g_signal_connect (self.app, "activate", G_CALLBACK (activate_cb), &self);

  status = g_application_run (self.app, 1, argv);

  /* It quit by itself, once the tree had ended: nothing is left. */
  g_assert_cmpint (status, ==, 0);
  g_assert_true (self.shutdown_done);
  g_assert_true (self.shutdown_ret);
  g_assert_cmpuint (self.abandoned_at_shutdown_end, ==, 0);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, 0);
  g_assert_cmpint (killable_task_get_state (self.root), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_cmpint (killable_task_get_state (self.cooperative), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (killable_task_get_state (self.stuck), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_true (killable_task_is_finished (self.process));
  pid = killable_process_task_get_pid (KILLABLE_PROCESS_TASK (self.process));
  g_assert_true (pid <= 0 || kill (pid, 0) != 0);

  g_object_unref (self.root);
  g_object_unref (self.cooperative);
  g_object_unref (self.stuck);
  g_object_unref (self.process);
  g_object_unref (self.app);
  test_gate_clear (&self.coop_gate);
  test_gate_clear (&self.stuck_gate);
}

/* }}} */

/* Shutdown alone {{{ */

static void
shutdown_error_cb (GObject      *object,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  GError **error = user_data;

  g_assert_false (killable_task_shutdown_finish (KILLABLE_TASK (object), result, error));
}

/* Cancelled: the wait for the tree is abandoned, the tree stays stopped. */
static void
test_shutdown_cancelled (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);
  task = killable_task_new ("stuck", work_stuck, &gate, NULL);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  killable_task_shutdown_async (task, -1, cancellable, shutdown_error_cb, &error);
  g_assert_true (killable_task_is_stop_requested (task));
  g_cancellable_cancel (cancellable);
  TEST_ITERATE_UNTIL (NULL, error != NULL);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (killable_task_is_finished (task));

  test_gate_open (&gate);
  g_assert_false (killable_task_join (task, NULL));
  test_gate_clear (&gate);
}

/* }}} */

/* Unix signals {{{ */

static void
test_unix_signals (void)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);
  task = killable_task_new ("stuck", work_stuck, &gate, NULL);
  killable_task_stop_on_unix_signals (task);
  g_assert_true (killable_task_start (task, NULL));
  test_gate_wait_entered (&gate, 1);

  /* First: a stop. */
  raise (SIGINT);
  TEST_ITERATE_UNTIL (NULL, killable_task_is_stop_requested (task));
  g_assert_false (killable_task_is_finished (task));

  /* Second: a kill. */
  raise (SIGTERM);
  TEST_ITERATE_UNTIL (NULL, killable_task_is_finished (task));
  g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);

  test_gate_open (&gate);
  TEST_POLL_UNTIL (killable_get_abandoned_thread_count () == 0);
  test_drain (NULL);
  test_gate_clear (&gate);
}

/* }}} */

/* Releases on the owner's context {{{ */

typedef struct
{
  GMainLoop *loop;
  GThread   *notify_thread;
  int        n_notified;
  int        n_ran;
} Release;

static gboolean
quit_guard_cb (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

/* Runs @loop until a release quits it; fails after the guard. */
static void
run_guarded (GMainLoop *loop)
{
  GSource *guard = g_timeout_source_new (TEST_GUARD_USEC / 1000);

  g_source_set_callback (guard, quit_guard_cb, loop, NULL);
  g_source_attach (guard, NULL);
  g_main_loop_run (loop);
  g_source_destroy (guard);
  g_source_unref (guard);
}

static void
release_notify (gpointer data)
{
  Release *release = data;

  release->notify_thread = g_thread_self ();
  release->n_notified++;
  if (release->loop != NULL)
    g_main_loop_quit (release->loop);
}

static void
release_cleanup (KillableTask *task,
                 gpointer      data)
{
  ((Release *) data)->n_ran++;
}

static gboolean
work_return (KillableTask  *task,
             gpointer       data,
             GError       **error)
{
  return TRUE;
}

/* While a main loop runs the owner's context, a cleanup's data is
 * released there, not on the worker; with no main loop (a script that
 * joins), at once. */
static void
test_release_on_owner (void)
{
  for (int with_loop = 0; with_loop < 2; with_loop++)
    {
      g_autoptr(KillableTask) task = killable_task_new ("released", work_return, NULL, NULL);
      Release release;

      memset (&release, 0, sizeof release);
      killable_task_add_cleanup (task, release_cleanup, &release, release_notify);
      if (with_loop)
        {
          /* Held from before the start, as a running main loop holds it:
           * the release cannot come before the loop runs. */
          release.loop = g_main_loop_new (NULL, FALSE);
          g_assert_true (g_main_context_acquire (NULL));
          g_assert_true (killable_task_start (task, NULL));
          run_guarded (release.loop);
          g_main_context_release (NULL);
          g_main_loop_unref (release.loop);
          g_assert_true (release.notify_thread == g_thread_self ());
        }
      else
        {
          g_assert_true (killable_task_start (task, NULL));
          g_assert_true (killable_task_join (task, NULL));
          g_assert_cmpint (release.n_notified, ==, 1);
          g_assert_true (release.notify_thread != g_thread_self ());
        }
      g_assert_cmpint (release.n_ran, ==, 1);
      g_assert_cmpint (release.n_notified, ==, 1);
    }
}

static void
stop_cb (KillableTask *task,
         const GError *reason,
         gpointer      data)
{
  ((Release *) data)->n_ran++;
}

static gpointer
stop_thread (gpointer data)
{
  killable_task_stop (data);
  return NULL;
}

/* A stop callback fired by another thread: its data is released on the
 * owner's running context. */
static void
test_release_stop_callback (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("stopped", work_return, NULL, NULL);
  Release release;
  GThread *thread;

  memset (&release, 0, sizeof release);
  release.loop = g_main_loop_new (NULL, FALSE);
  killable_task_add_stop_callback (task, stop_cb, &release, release_notify);
  g_assert_true (g_main_context_acquire (NULL));
  thread = g_thread_new ("stopper", stop_thread, task);
  run_guarded (release.loop);
  g_main_context_release (NULL);
  g_thread_join (thread);
  g_main_loop_unref (release.loop);

  g_assert_cmpint (release.n_ran, ==, 1);
  g_assert_cmpint (release.n_notified, ==, 1);
  g_assert_true (release.notify_thread == g_thread_self ());
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/application/lifecycle", test_application_lifecycle);
  g_test_add_func ("/application/shutdown-cancelled", test_shutdown_cancelled);
  g_test_add_func ("/application/unix-signals", test_unix_signals);
  g_test_add_func ("/application/release-on-owner", test_release_on_owner);
  g_test_add_func ("/application/release-stop-callback", test_release_stop_callback);

  return g_test_run ();
}
