/* main.c: the GTK 4 demo of libkillable
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Launch workloads from the header bar, then stop, interrupt or kill any
 * task of the tree from its row. With --self-test, a script does the same
 * through the same code paths (the launch buttons are clicked; the rungs
 * go through the function the row buttons call), waits on the main loop
 * for every task to end, checks each ended as expected, and saves a
 * screenshot with --screenshot=FILE.
 */

#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib/gi18n.h>

#include "demo-window.h"

#define READY_TIMEOUT_MS   10000
#define END_TIMEOUT_MS     20000
/* The CPU tree runs until its bars are clearly visible, or this long. */
#define CPU_PROGRESS_SHOWN 0.2
#define CPU_RUN_MS         4000

static gboolean opt_self_test;
static char *opt_screenshot;
static int self_test_status = EXIT_SUCCESS;

static const GOptionEntry entries[] = {
  { "self-test", 0, 0, G_OPTION_ARG_NONE, &opt_self_test,
    N_("Run a scripted scenario, check every task ended as expected, then quit"), NULL },
  { "screenshot", 0, 0, G_OPTION_ARG_FILENAME, &opt_screenshot,
    N_("With --self-test, save a PNG of the window to FILE"), N_("FILE") },
  { NULL }
};

/* Waiting on the main loop {{{ */

/* The window keeps drawing and the tasks' notifications keep coming. */
static gboolean
wait_for (DemoPredicate predicate,
          gpointer      data,
          guint         timeout_ms)
{
  return demo_main_loop_wait (predicate, data, timeout_ms, NULL);
}

static gboolean
task_ready (gpointer data)
{
  return data != NULL && demo_task_is_ready (data);
}

static gboolean
cpu_progress_shown (gpointer data)
{
  return killable_task_get_progress (data) >= CPU_PROGRESS_SHOWN;
}

static gboolean
widget_mapped (gpointer data)
{
  return gtk_widget_get_mapped (data);
}

/* Every workload launched ended (and so did every task under it: a parent
 * ends after its children). */
static gboolean
all_ended (gpointer data)
{
  DemoWindow *window = data;

  for (guint w = 0; w < DEMO_N_WORKLOADS; w++)
    {
      KillableTask *task = demo_window_get_last_launched (window, w);

      if (task == NULL)
        continue;
      if (!killable_task_is_finished (task))
        return FALSE;
    }

  return TRUE;
}

typedef struct
{
  GPid  pids[8];
  guint n_pids;
} PidSet;

static gboolean
pids_gone (gpointer data)
{
  PidSet *set = data;

  for (guint i = 0; i < set->n_pids; i++)
    if (demo_pid_is_alive (set->pids[i]))
      return FALSE;

  return TRUE;
}

static gboolean
abandoned_returned (gpointer data)
{
  return killable_get_abandoned_thread_count () == 0 && demo_stuck_loop_cleanup_ran (data);
}

/* }}} */

/* Checks {{{ */

static guint n_checks;
static guint n_failed;

G_GNUC_PRINTF (2, 3)
static void
check (gboolean    ok,
       const char *format,
       ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  n_checks++;
  if (!ok)
    n_failed++;
  printf ("%s %s\n", ok ? "ok  " : "FAIL", message);
  fflush (stdout);
}

/* Every task of @root's subtree against the state and error it must end
 * with. */
static void
check_tree (KillableTask *root)
{
  g_autoptr(GPtrArray) stack = g_ptr_array_new_with_free_func (g_object_unref);

  g_ptr_array_add (stack, g_object_ref (root));
  while (stack->len > 0)
    {
      g_autoptr(KillableTask) task = g_ptr_array_steal_index (stack, stack->len - 1);
      GListModel *children = killable_task_get_children (task);
      KillableTaskState state = killable_task_get_state (task);
      KillableTaskState expected = demo_task_get_expected_state (task);
      int code = demo_task_get_expected_error (task);
      const GError *error = killable_task_get_error (task);

      check (state == expected &&
             (code < 0 || g_error_matches (error, KILLABLE_ERROR, code)),
             _("%s: %s (%s), expected %s"),
             killable_task_get_name (task), demo_state_to_string (state),
             error != NULL ? error->message : "-", demo_state_to_string (expected));

      for (guint i = g_list_model_get_n_items (children); i > 0; i--)
        g_ptr_array_add (stack, g_list_model_get_item (children, i - 1));
    }
}

/* }}} */

/* Screenshot {{{ */

/* Renders the window with its own renderer, offscreen: what is on screen
 * without needing a compositor or an X screenshot tool. */
static gboolean
save_screenshot (GtkWidget   *widget,
                 const char  *path,
                 GError     **error)
{
  g_autoptr(GdkPaintable) paintable = gtk_widget_paintable_new (widget);
  g_autoptr(GskRenderNode) node = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  int width = gtk_widget_get_width (widget);
  int height = gtk_widget_get_height (widget);
  GskRenderer *renderer = gtk_native_get_renderer (gtk_widget_get_native (widget));

  gdk_paintable_snapshot (paintable, snapshot, width, height);
  node = gtk_snapshot_free_to_node (snapshot);
  if (node == NULL || renderer == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Nothing to render"));
      return FALSE;
    }

  texture = gsk_renderer_render_texture (renderer, node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  if (!gdk_texture_save_to_png (texture, path))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Cannot write “%s”"), path);
      return FALSE;
    }

  return TRUE;
}

/* }}} */

/* The scripted scenario {{{ */

static gboolean
window_closed_gracefully (gpointer data)
{
  return demo_window_is_closed_gracefully (data);
}

static gboolean
self_test_cb (gpointer data)
{
  GtkApplication *app = data;
  DemoWindow *window = DEMO_WINDOW (gtk_application_get_active_window (app));
  KillableTask *tasks[DEMO_N_WORKLOADS] = { NULL, };
  GPid pids[8];
  guint n_pids = 0, alive = 0;
  PidSet pid_set = { { 0, }, 0 };

  check (wait_for (widget_mapped, window, READY_TIMEOUT_MS), _("the window is shown"));

  /* Launch everything through the header buttons. */
  for (guint w = 0; w < DEMO_N_WORKLOADS; w++)
    {
      g_signal_emit_by_name (demo_window_get_launch_button (window, w), "clicked");
      tasks[w] = demo_window_get_last_launched (window, w);
      check (tasks[w] != NULL, _("“%s” launched"), demo_workload_get_title (w));
    }

  /* The blocked read must be in read(), and the process tree must have
   * told its PIDs, for the checks below to mean something. The CPU tree
   * may be slow to start on a loaded machine: a stop reaches it anyway. */
  wait_for (task_ready, tasks[DEMO_WORKLOAD_CPU_TREE], READY_TIMEOUT_MS);
  for (guint w = 0; w < DEMO_N_WORKLOADS; w++)
    if (w != DEMO_WORKLOAD_TIMEOUT && w != DEMO_WORKLOAD_CPU_TREE)
      check (wait_for (task_ready, tasks[w], READY_TIMEOUT_MS),
             _("“%s” is ready for its rung"), demo_workload_get_title (w));

  if (tasks[DEMO_WORKLOAD_PROCESS_TREE] != NULL)
    n_pids = demo_process_tree_get_pids (tasks[DEMO_WORKLOAD_PROCESS_TREE], pids, G_N_ELEMENTS (pids));

  /* Let the progress bars grow before stopping anything. */
  if (tasks[DEMO_WORKLOAD_CPU_TREE] != NULL)
    wait_for (cpu_progress_shown, tasks[DEMO_WORKLOAD_CPU_TREE], CPU_RUN_MS);

  /* Paused (as with its row's Pause button): the stop of its rung must
   * resume it first, or the tree would never end. */
  if (tasks[DEMO_WORKLOAD_PROCESS_TREE] != NULL)
    {
      killable_task_pause (tasks[DEMO_WORKLOAD_PROCESS_TREE]);
      check (killable_task_is_paused (tasks[DEMO_WORKLOAD_PROCESS_TREE]),
             _("the process tree is paused"));
    }

  /* Each rung, as the row buttons apply it. */
  for (guint w = 0; w < DEMO_N_WORKLOADS; w++)
    if (tasks[w] != NULL)
      demo_window_apply_rung (window, tasks[w], demo_workload_get_rung (w));

  check (wait_for (all_ended, window, END_TIMEOUT_MS), _("every task ended"));

  for (guint w = 0; w < DEMO_N_WORKLOADS; w++)
    if (tasks[w] != NULL)
      check_tree (tasks[w]);

  if (tasks[DEMO_WORKLOAD_BLOCKED_READ] != NULL)
    check (demo_blocked_read_saw_eintr (tasks[DEMO_WORKLOAD_BLOCKED_READ]),
           _("read() failed with EINTR"));
  if (tasks[DEMO_WORKLOAD_STUCK_LOOP] != NULL)
    check (killable_get_abandoned_thread_count () == 1,
           _("the stuck loop's thread is abandoned (%u)"), killable_get_abandoned_thread_count ());

  for (guint i = 0; i < n_pids; i++)
    alive += demo_pid_is_alive (pids[i]);
  check (n_pids == 3 && alive == 0, _("%u of %u processes of the tree still alive"), alive, n_pids);

  /* The screenshot: the tree expanded, every bar where its task stopped. */
  wait_for (NULL, NULL, 300);
  if (opt_screenshot != NULL)
    {
      g_autoptr(GError) error = NULL;

      if (save_screenshot (GTK_WIDGET (window), opt_screenshot, &error))
        printf ("screenshot: %s\n", opt_screenshot);
      else
        check (FALSE, _("screenshot: %s"), error->message);
    }

  if (tasks[DEMO_WORKLOAD_STUCK_LOOP] != NULL)
    {
      demo_stuck_loops_release ();
      check (wait_for (abandoned_returned, tasks[DEMO_WORKLOAD_STUCK_LOOP], END_TIMEOUT_MS),
             _("the abandoned loop returned and its cleanup ran"));
    }

  /* Closing the window while a process tree runs leaves nothing behind. */
  g_signal_emit_by_name (demo_window_get_launch_button (window, DEMO_WORKLOAD_PROCESS_TREE),
                         "clicked");
  tasks[DEMO_WORKLOAD_PROCESS_TREE] = demo_window_get_last_launched (window, DEMO_WORKLOAD_PROCESS_TREE);
  check (wait_for (task_ready, tasks[DEMO_WORKLOAD_PROCESS_TREE], READY_TIMEOUT_MS),
         _("a second process tree is running"));
  pid_set.n_pids = demo_process_tree_get_pids (tasks[DEMO_WORKLOAD_PROCESS_TREE],
                                               pid_set.pids, G_N_ELEMENTS (pid_set.pids));

  /* A graceful quit: closing the window shuts the session down (stop,
   * then the ladder after the grace period) and the window goes once the
   * tree ended, without blocking the main loop meanwhile. */
  {
    g_autoptr(DemoWindow) closing = g_object_ref (window);
    g_autoptr(KillableTask) process_tree = g_object_ref (tasks[DEMO_WORKLOAD_PROCESS_TREE]);
    g_autoptr(KillableTask) session = g_object_ref (demo_window_get_root (window));

    gtk_window_close (GTK_WINDOW (window));
    check (!demo_window_is_closed_gracefully (closing) && gtk_widget_get_visible (GTK_WIDGET (closing)),
           _("closing returned at once, the window waits for its session"));
    check (wait_for (window_closed_gracefully, closing, END_TIMEOUT_MS),
           _("the window closed once its session had ended"));
    check (killable_task_get_state (session) == KILLABLE_TASK_STATE_CANCELLED,
           _("the session was stopped, not killed (%s)"),
           demo_state_to_string (killable_task_get_state (session)));
    /* It ignores SIGTERM: its own grace period (shorter than the
     * session's) took it to SIGKILL. */
    check (killable_task_get_state (process_tree) == KILLABLE_TASK_STATE_KILLED,
           _("the process tree climbed its own ladder (%s)"),
           demo_state_to_string (killable_task_get_state (process_tree)));
    check (killable_get_abandoned_thread_count () == 0,
           _("no abandoned thread left (%u)"), killable_get_abandoned_thread_count ());
  }
  wait_for (pids_gone, &pid_set, END_TIMEOUT_MS);
  alive = 0;
  for (guint i = 0; i < pid_set.n_pids; i++)
    alive += demo_pid_is_alive (pid_set.pids[i]);
  check (pid_set.n_pids == 3 && alive == 0,
         _("after the window closed, %u of %u processes still alive"), alive, pid_set.n_pids);

  printf (_("%u checks, %u failed\n"), n_checks, n_failed);
  if (n_failed > 0)
    self_test_status = EXIT_FAILURE;

  g_application_quit (G_APPLICATION (app));

  return G_SOURCE_REMOVE;
}

/* }}} */

static void
activate_cb (GApplication *app)
{
  DemoWindow *window = demo_window_new (ADW_APPLICATION (app));

  gtk_window_present (GTK_WINDOW (window));

  if (opt_self_test)
    g_idle_add (self_test_cb, app);
}

static void
shutdown_cb (GApplication *app)
{
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (app));

  for (GList *l = windows; l != NULL; l = l->next)
    if (DEMO_IS_WINDOW (l->data))
      demo_window_shutdown (l->data);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(AdwApplication) app = NULL;
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  app = adw_application_new ("org.killable.Demo", G_APPLICATION_NON_UNIQUE);
  g_application_add_main_option_entries (G_APPLICATION (app), entries);
  g_application_set_option_context_summary (G_APPLICATION (app),
                                            _("Stop, interrupt and kill real work from a GTK window."));
  g_signal_connect (app, "activate", G_CALLBACK (activate_cb), NULL);
  g_signal_connect (app, "shutdown", G_CALLBACK (shutdown_cb), NULL);

  status = g_application_run (G_APPLICATION (app), argc, argv);
  g_free (opt_screenshot);

  return status != EXIT_SUCCESS ? status : self_test_status;
}
