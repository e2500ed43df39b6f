/* demo-window.c: the window of the GTK demo
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A group task ("session") holds every workload the header buttons launch
 * as a child, and ends when they all have; the column view shows that tree through a GtkTreeListModel
 * over the tasks' children list models. Those models, and every
 * notification the rows listen to, change only on the main context, so the
 * widgets are bound to the tasks directly. Parents retain their finished
 * children, so the outcome of every rung stays on screen.
 */

#include "config.h"

#include <glib/gi18n.h>

#include "demo-window.h"

/* How long each rung of the ladder is given when the window closes. */
#define CLOSE_GRACE_USEC (1 * G_USEC_PER_SEC)

struct _DemoWindow
{
  AdwApplicationWindow  parent_instance;

  /* Template children */
  GtkWidget            *cpu_tree_button;
  GtkWidget            *blocked_read_button;
  GtkWidget            *stuck_loop_button;
  GtkWidget            *process_tree_button;
  GtkWidget            *timeout_button;
  GtkColumnView        *column_view;
  GtkTextView          *log_view;

  KillableTask         *root;                            /* (owned) */
  GListStore           *root_store;                      /* (owned) */
  KillableTask         *last_launched[DEMO_N_WORKLOADS]; /* (owned) (nullable) */
  GPtrArray            *launched;                        /* (owned) every workload */
  gint64                t0;
  guint                 n_shutting_down;                 /* sessions still shutting down */
  gboolean              closing;                         /* close-request started the shutdown */
  gboolean              closed_gracefully;               /* every session ended before the window went */
};

G_DEFINE_FINAL_TYPE (DemoWindow, demo_window, ADW_TYPE_APPLICATION_WINDOW)

/* Log {{{ */

void
demo_window_log (DemoWindow *self,
                 const char *format,
                 ...)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->log_view);
  g_autofree char *message = NULL;
  g_autofree char *line = NULL;
  GtkTextIter end;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  line = g_strdup_printf ("%s[%7.3f] %s",
                          gtk_text_buffer_get_char_count (buffer) > 0 ? "\n" : "",
                          (g_get_monotonic_time () - self->t0) / (double) G_USEC_PER_SEC,
                          message);
  gtk_text_buffer_get_end_iter (buffer, &end);
  gtk_text_buffer_insert (buffer, &end, line, -1);
  gtk_text_view_scroll_mark_onscreen (self->log_view, gtk_text_buffer_get_insert (buffer));
}

/* Lines from the workers, already on the main context. */
static void
worker_log_cb (const char *message,
               gpointer    user_data)
{
  demo_window_log (user_data, "%s", message);
}

static void
log_state_cb (KillableTask *task,
              GParamSpec   *pspec,
              DemoWindow   *self)
{
  KillableTaskState old = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (task), "demo-last-state"));
  KillableTaskState state = killable_task_get_state (task);
  const GError *error = killable_task_get_error (task);

  if (state == old)
    return;

  g_object_set_data (G_OBJECT (task), "demo-last-state", GINT_TO_POINTER (state));
  if (killable_task_is_finished (task) && error != NULL)
    demo_window_log (self, "%s: %s → %s (%s)", killable_task_get_name (task),
                     demo_state_to_string (old), demo_state_to_string (state), error->message);
  else
    demo_window_log (self, "%s: %s → %s", killable_task_get_name (task),
                     demo_state_to_string (old), demo_state_to_string (state));
}

/* }}} */

/* Rows {{{ */

/* The task of a row: the list item holds a GtkTreeListRow, which holds the
 * task. */
static KillableTask *
list_item_get_task (GtkListItem *list_item)
{
  GtkTreeListRow *row = gtk_list_item_get_item (list_item);
  g_autoptr(GObject) item = NULL;

  if (row == NULL)
    return NULL;

  item = gtk_tree_list_row_get_item (row);
  /* The row keeps its own reference. */
  return KILLABLE_TASK (item);
}

static GListModel *
create_children_model (gpointer item,
                       gpointer user_data)
{
  KillableTask *task = item;

  if (g_object_get_data (G_OBJECT (task), "demo-parent") == NULL)
    return NULL;

  return g_object_ref (killable_task_get_children (task));
}

static void
name_setup_cb (GtkSignalListItemFactory *factory,
               GtkListItem              *list_item,
               DemoWindow               *self)
{
  GtkWidget *expander = gtk_tree_expander_new ();
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (label), 0.);
  gtk_tree_expander_set_child (GTK_TREE_EXPANDER (expander), label);
  gtk_list_item_set_child (list_item, expander);
}

static void
name_bind_cb (GtkSignalListItemFactory *factory,
              GtkListItem              *list_item,
              DemoWindow               *self)
{
  GtkTreeExpander *expander = GTK_TREE_EXPANDER (gtk_list_item_get_child (list_item));
  KillableTask *task = list_item_get_task (list_item);

  gtk_tree_expander_set_list_row (expander, gtk_list_item_get_item (list_item));
  gtk_label_set_label (GTK_LABEL (gtk_tree_expander_get_child (expander)),
                       killable_task_get_name (task));
}

static void
update_state_label (GtkLabel     *label,
                    KillableTask *task)
{
  static const char * const classes[] = { "dim-label", "accent", "warning", "success", "error", "heading" };
  KillableTaskState state = killable_task_get_state (task);
  const GError *error = killable_task_get_error (task);
  const char *css_class;

  switch (state)
    {
    case KILLABLE_TASK_STATE_RUNNING:
      css_class = "accent";
      break;
    case KILLABLE_TASK_STATE_STOPPING:
      css_class = "warning";
      break;
    case KILLABLE_TASK_STATE_SUCCEEDED:
      css_class = "success";
      break;
    case KILLABLE_TASK_STATE_FAILED:
    case KILLABLE_TASK_STATE_KILLED:
      css_class = "error";
      break;
    case KILLABLE_TASK_STATE_CANCELLED:
      css_class = "heading";
      break;
    case KILLABLE_TASK_STATE_PENDING:
    default:
      css_class = "dim-label";
      break;
    }

  for (guint i = 0; i < G_N_ELEMENTS (classes); i++)
    gtk_widget_remove_css_class (GTK_WIDGET (label), classes[i]);
  gtk_widget_add_css_class (GTK_WIDGET (label), css_class);
  gtk_label_set_label (label, demo_state_to_string (state));
  gtk_widget_set_tooltip_text (GTK_WIDGET (label), error != NULL ? error->message : NULL);
}

static void
state_notify_cb (KillableTask *task,
                 GParamSpec   *pspec,
                 GtkLabel     *label)
{
  update_state_label (label, task);
}

static void
state_setup_cb (GtkSignalListItemFactory *factory,
                GtkListItem              *list_item,
                DemoWindow               *self)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (label), 0.);
  gtk_list_item_set_child (list_item, label);
}

static void
state_bind_cb (GtkSignalListItemFactory *factory,
               GtkListItem              *list_item,
               DemoWindow               *self)
{
  GtkWidget *label = gtk_list_item_get_child (list_item);
  KillableTask *task = list_item_get_task (list_item);
  gulong id;

  update_state_label (GTK_LABEL (label), task);
  id = g_signal_connect_object (task, "notify::state", G_CALLBACK (state_notify_cb), label, 0);
  g_object_set_data (G_OBJECT (list_item), "demo-state-handler", GSIZE_TO_POINTER (id));
}

static void
state_unbind_cb (GtkSignalListItemFactory *factory,
                 GtkListItem              *list_item,
                 DemoWindow               *self)
{
  KillableTask *task = list_item_get_task (list_item);
  gulong id = GPOINTER_TO_SIZE (g_object_steal_data (G_OBJECT (list_item), "demo-state-handler"));

  if (task != NULL)
    g_clear_signal_handler (&id, task);
}

/* The columns below bind one task property to one widget property; the
 * binding is dropped when the list item is recycled. */
static void
bind_to_list_item (GtkListItem *list_item,
                   GBinding    *binding)
{
  g_object_set_data (G_OBJECT (list_item), "demo-binding", binding);
}

static void
binding_unbind_cb (GtkSignalListItemFactory *factory,
                   GtkListItem              *list_item,
                   DemoWindow               *self)
{
  GBinding *binding = g_object_steal_data (G_OBJECT (list_item), "demo-binding");

  if (binding != NULL)
    g_binding_unbind (binding);
}

static void
progress_setup_cb (GtkSignalListItemFactory *factory,
                   GtkListItem              *list_item,
                   DemoWindow               *self)
{
  GtkWidget *bar = gtk_progress_bar_new ();

  gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (bar), TRUE);
  gtk_widget_set_valign (bar, GTK_ALIGN_CENTER);
  gtk_widget_set_hexpand (bar, TRUE);
  gtk_list_item_set_child (list_item, bar);
}

static void
progress_bind_cb (GtkSignalListItemFactory *factory,
                  GtkListItem              *list_item,
                  DemoWindow               *self)
{
  bind_to_list_item (list_item,
                     g_object_bind_property (list_item_get_task (list_item), "progress",
                                             gtk_list_item_get_child (list_item), "fraction",
                                             G_BINDING_SYNC_CREATE));
}

static void
status_setup_cb (GtkSignalListItemFactory *factory,
                 GtkListItem              *list_item,
                 DemoWindow               *self)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (label), 0.);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_widget_add_css_class (label, "dim-label");
  gtk_list_item_set_child (list_item, label);
}

/* The worker's status while it runs; once it ended, why (the error). */
static void
update_status_label (GtkLabel     *label,
                     KillableTask *task)
{
  g_autofree char *status = killable_task_dup_status (task);
  const GError *error = killable_task_get_error (task);

  if (killable_task_is_finished (task) && error != NULL)
    gtk_label_set_label (label, error->message);
  else
    gtk_label_set_label (label, status != NULL ? status : "");
  gtk_widget_set_tooltip_text (GTK_WIDGET (label), status);
}

static void
status_notify_cb (KillableTask *task,
                  GParamSpec   *pspec,
                  GtkLabel     *label)
{
  if (g_str_equal (pspec->name, "status") || g_str_equal (pspec->name, "state") ||
      g_str_equal (pspec->name, "error"))
    update_status_label (label, task);
}

static void
status_bind_cb (GtkSignalListItemFactory *factory,
                GtkListItem              *list_item,
                DemoWindow               *self)
{
  GtkWidget *label = gtk_list_item_get_child (list_item);
  KillableTask *task = list_item_get_task (list_item);
  gulong id;

  update_status_label (GTK_LABEL (label), task);
  id = g_signal_connect_object (task, "notify", G_CALLBACK (status_notify_cb), label, 0);
  g_object_set_data (G_OBJECT (list_item), "demo-status-handler", GSIZE_TO_POINTER (id));
}

static void
status_unbind_cb (GtkSignalListItemFactory *factory,
                  GtkListItem              *list_item,
                  DemoWindow               *self)
{
  KillableTask *task = list_item_get_task (list_item);
  gulong id = GPOINTER_TO_SIZE (g_object_steal_data (G_OBJECT (list_item), "demo-status-handler"));

  if (task != NULL)
    g_clear_signal_handler (&id, task);
}

static gboolean
state_to_sensitive (GBinding     *binding,
                    const GValue *from,
                    GValue       *to,
                    gpointer      user_data)
{
  g_value_set_boolean (to, g_value_get_enum (from) < KILLABLE_TASK_STATE_SUCCEEDED);

  return TRUE;
}

static void
row_action_clicked_cb (GtkButton  *button,
                       DemoWindow *self)
{
  GtkListItem *list_item = g_object_get_data (G_OBJECT (button), "demo-list-item");
  DemoRung rung = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (button), "demo-rung"));
  KillableTask *task = list_item_get_task (list_item);

  if (task != NULL)
    demo_window_apply_rung (self, task, rung);
}

/* Pause/Resume: a process task is frozen, a thread task blocks in its
 * next check(), sleep() or wait_fd(). */
static void
pause_toggled_cb (GtkToggleButton *toggle,
                  DemoWindow      *self)
{
  GtkListItem *list_item = g_object_get_data (G_OBJECT (toggle), "demo-list-item");
  KillableTask *task = list_item_get_task (list_item);

  if (task == NULL)
    return;
  if (gtk_toggle_button_get_active (toggle) == killable_task_is_paused (task))
    return;

  if (gtk_toggle_button_get_active (toggle))
    killable_task_pause (task);
  else
    killable_task_resume (task);
  demo_window_log (self, "%s: %s", killable_task_get_name (task),
                   killable_task_is_paused (task) ? _("paused") : _("resumed"));
}

static void
actions_setup_cb (GtkSignalListItemFactory *factory,
                  GtkListItem              *list_item,
                  DemoWindow               *self)
{
  static const struct
  {
    const char *label;
    const char *tooltip;
    DemoRung    rung;
  } actions[] = {
    { N_("Stop"), N_("Rung 1: ask the task to stop"), DEMO_RUNG_STOP },
    { N_("Interrupt"), N_("Rung 2: stop, and make a blocked system call fail with EINTR"),
      DEMO_RUNG_INTERRUPT },
    { N_("Kill"), N_("Rung 3: release the owner now (SIGKILL for a process)"), DEMO_RUNG_KILL },
  };
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);

  for (guint i = 0; i < G_N_ELEMENTS (actions); i++)
    {
      GtkWidget *button = gtk_button_new_with_label (_(actions[i].label));

      gtk_widget_set_tooltip_text (button, _(actions[i].tooltip));
      gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
      gtk_widget_add_css_class (button, "row-action");
      if (actions[i].rung == DEMO_RUNG_KILL)
        gtk_widget_add_css_class (button, "destructive-action");
      g_object_set_data (G_OBJECT (button), "demo-list-item", list_item);
      g_object_set_data (G_OBJECT (button), "demo-rung", GINT_TO_POINTER (actions[i].rung));
      g_signal_connect_object (button, "clicked", G_CALLBACK (row_action_clicked_cb), self, 0);
      gtk_box_append (GTK_BOX (box), button);
    }

  {
    GtkWidget *pause = gtk_toggle_button_new_with_label (_("Pause"));

    gtk_widget_set_tooltip_text (pause, _("Pause the task: a program and everything it started "
                                          "is frozen (cgroup.freeze, or SIGSTOP), a thread task "
                                          "waits in its next check; a stop resumes it"));
    gtk_widget_set_valign (pause, GTK_ALIGN_CENTER);
    gtk_widget_add_css_class (pause, "row-action");
    g_object_set_data (G_OBJECT (pause), "demo-list-item", list_item);
    g_signal_connect_object (pause, "toggled", G_CALLBACK (pause_toggled_cb), self, 0);
    gtk_box_append (GTK_BOX (box), pause);
    g_object_set_data (G_OBJECT (list_item), "demo-pause-button", pause);
  }

  gtk_list_item_set_child (list_item, box);
}

static void
actions_bind_cb (GtkSignalListItemFactory *factory,
                 GtkListItem              *list_item,
                 DemoWindow               *self)
{
  KillableTask *task = list_item_get_task (list_item);
  GtkWidget *pause = g_object_get_data (G_OBJECT (list_item), "demo-pause-button");

  bind_to_list_item (list_item,
                     g_object_bind_property_full (task, "state",
                                                  gtk_list_item_get_child (list_item), "sensitive",
                                                  G_BINDING_SYNC_CREATE,
                                                  state_to_sensitive, NULL, NULL, NULL));

  gtk_widget_set_visible (pause, !killable_task_is_group (task));
  if (!killable_task_is_group (task))
    g_object_set_data (G_OBJECT (list_item), "demo-pause-binding",
                       g_object_bind_property (task, "paused", pause, "active",
                                               G_BINDING_SYNC_CREATE));
}

static void
actions_unbind_cb (GtkSignalListItemFactory *factory,
                   GtkListItem              *list_item,
                   DemoWindow               *self)
{
  GBinding *binding = g_object_steal_data (G_OBJECT (list_item), "demo-pause-binding");

  if (binding != NULL)
    g_binding_unbind (binding);
  binding_unbind_cb (factory, list_item, self);
}

/* }}} */

/* Launching and rungs {{{ */

/* Marks parents (their rows get an expander) and logs every state change
 * of @root's subtree. */
static void
watch_tree (DemoWindow   *self,
            KillableTask *root)
{
  g_autoptr(GPtrArray) stack = g_ptr_array_new_with_free_func (g_object_unref);

  g_ptr_array_add (stack, g_object_ref (root));
  while (stack->len > 0)
    {
      g_autoptr(KillableTask) task = g_ptr_array_steal_index (stack, stack->len - 1);
      GListModel *children = killable_task_get_children (task);
      guint n = g_list_model_get_n_items (children);

      if (n > 0)
        g_object_set_data (G_OBJECT (task), "demo-parent", GINT_TO_POINTER (TRUE));
      g_object_set_data (G_OBJECT (task), "demo-last-state",
                         GINT_TO_POINTER (killable_task_get_state (task)));
      g_signal_connect_object (task, "notify::state", G_CALLBACK (log_state_cb), self, 0);

      for (guint i = n; i > 0; i--)
        g_ptr_array_add (stack, g_list_model_get_item (children, i - 1));
    }
}

/* The session: a group task, no work of its own, no thread. It ends when
 * all its workloads have, or when it is stopped. A workload added under a
 * stopped or finished session would be stopped at once, or refused: the
 * next launch then opens a new session. The old one stays listed. It is
 * started with its first workload (a group started empty ends at once). */
static void
ensure_session (DemoWindow *self)
{
  if (self->root != NULL && !killable_task_is_stop_requested (self->root) &&
      !killable_task_is_finished (self->root))
    return;

  g_clear_object (&self->root);
  self->root = killable_task_new_group ("session");
  /* Finished workloads stay listed; one that fails stays its own business. */
  killable_task_set_retain_children (self->root, TRUE);
  killable_task_set_child_policy (self->root, KILLABLE_CHILD_POLICY_ISOLATE);
  g_object_set_data (G_OBJECT (self->root), "demo-parent", GINT_TO_POINTER (TRUE));
  watch_tree (self, self->root);

  g_list_store_append (self->root_store, self->root);
}

/* Adds @task under the session (a new one if the current one ended just
 * now, its last workload gone) and starts the session with its first. */
static gboolean
add_to_session (DemoWindow    *self,
                KillableTask  *task,
                GError       **error)
{
  for (int attempt = 0; ; attempt++)
    {
      g_autoptr(GError) local_error = NULL;

      ensure_session (self);
      if (killable_task_add_child (self->root, task, &local_error))
        break;
      if (attempt > 0 || !killable_task_is_finished (self->root))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
    }

  if (killable_task_get_state (self->root) == KILLABLE_TASK_STATE_PENDING)
    {
      /* The application stays up while a session is live. */
      killable_task_bind_application (self->root,
                                      G_APPLICATION (gtk_window_get_application (GTK_WINDOW (self))));
      return killable_task_start (self->root, error);
    }

  return TRUE;
}

/**
 * demo_window_launch:
 * @self: the window
 * @workload: what to run
 *
 * What the header buttons do: creates the workload, adds it under the
 * session task and starts it.
 *
 * Returns: (transfer none) (nullable): the workload's task
 */
KillableTask *
demo_window_launch (DemoWindow   *self,
                    DemoWorkload  workload)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail (DEMO_IS_WINDOW (self), NULL);

  task = demo_workload_new (workload, &error);
  if (task == NULL)
    {
      demo_window_log (self, _("cannot launch “%s”: %s"),
                       demo_workload_get_title (workload), error->message);
      return NULL;
    }

  watch_tree (self, task);
  if (!add_to_session (self, task, &error) ||
      !demo_workload_start (task, &error))
    {
      demo_window_log (self, _("cannot launch “%s”: %s"),
                       demo_workload_get_title (workload), error->message);
      killable_task_stop (task);
      return NULL;
    }

  demo_window_log (self, _("launched %s: “%s”"),
                   demo_workload_get_title (workload), killable_task_get_name (task));
  g_set_object (&self->last_launched[workload], task);
  g_ptr_array_add (self->launched, g_object_ref (task));

  return task;
}

/**
 * demo_window_apply_rung:
 * @self: the window
 * @task: a task of the tree
 * @rung: what to do to it
 *
 * What the Stop, Interrupt and Kill buttons of a row do.
 */
void
demo_window_apply_rung (DemoWindow   *self,
                        KillableTask *task,
                        DemoRung      rung)
{
  g_return_if_fail (DEMO_IS_WINDOW (self));
  g_return_if_fail (KILLABLE_IS_TASK (task));

  switch (rung)
    {
    case DEMO_RUNG_STOP:
    case DEMO_RUNG_GRACE_PERIOD:
      demo_window_log (self, "killable_task_stop (“%s”)", killable_task_get_name (task));
      killable_task_stop (task);
      break;
    case DEMO_RUNG_INTERRUPT:
      demo_window_log (self, "killable_task_interrupt (“%s”)", killable_task_get_name (task));
      killable_task_interrupt (task);
      break;
    case DEMO_RUNG_KILL:
      demo_window_log (self, "killable_task_kill (“%s”)", killable_task_get_name (task));
      killable_task_kill (task);
      demo_window_log (self, _("abandoned threads: %u"), killable_get_abandoned_thread_count ());
      break;
    case DEMO_RUNG_TIMEOUT:
    default:
      break;
    }
}

static void
launch_clicked_cb (GtkButton  *button,
                   DemoWindow *self)
{
  for (guint i = 0; i < DEMO_N_WORKLOADS; i++)
    if (demo_window_get_launch_button (self, i) == GTK_WIDGET (button))
      demo_window_launch (self, i);
}

GtkWidget *
demo_window_get_launch_button (DemoWindow   *self,
                               DemoWorkload  workload)
{
  g_return_val_if_fail (DEMO_IS_WINDOW (self), NULL);

  switch (workload)
    {
    case DEMO_WORKLOAD_CPU_TREE:
      return self->cpu_tree_button;
    case DEMO_WORKLOAD_BLOCKED_READ:
      return self->blocked_read_button;
    case DEMO_WORKLOAD_STUCK_LOOP:
      return self->stuck_loop_button;
    case DEMO_WORKLOAD_PROCESS_TREE:
      return self->process_tree_button;
    case DEMO_WORKLOAD_TIMEOUT:
      return self->timeout_button;
    case DEMO_N_WORKLOADS:
    default:
      g_return_val_if_reached (NULL);
    }
}

KillableTask *
demo_window_get_last_launched (DemoWindow   *self,
                               DemoWorkload  workload)
{
  g_return_val_if_fail (DEMO_IS_WINDOW (self), NULL);
  g_return_val_if_fail (workload < DEMO_N_WORKLOADS, NULL);

  return self->last_launched[workload];
}

KillableTask *
demo_window_get_root (DemoWindow *self)
{
  g_return_val_if_fail (DEMO_IS_WINDOW (self), NULL);

  return self->root;
}

/**
 * demo_window_shutdown:
 * @self: the window
 *
 * The last resort, when the application quits without closing the window:
 * kills every session still live (SIGKILL to every process group still
 * running) without waiting for anything. The normal way out is closing the
 * window, which shuts the sessions down gracefully first.
 */
void
demo_window_shutdown (DemoWindow *self)
{
  g_return_if_fail (DEMO_IS_WINDOW (self));

  if (self->root_store == NULL)
    return;

  demo_stuck_loops_release ();

  for (guint i = 0; i < g_list_model_get_n_items (G_LIST_MODEL (self->root_store)); i++)
    {
      g_autoptr(KillableTask) session = g_list_model_get_item (G_LIST_MODEL (self->root_store), i);

      if (!killable_task_is_finished (session))
        killable_task_kill (session);
    }
}

/**
 * demo_window_is_closed_gracefully:
 * @self: the window
 *
 * Returns: whether the window closed after every session had ended
 */
gboolean
demo_window_is_closed_gracefully (DemoWindow *self)
{
  g_return_val_if_fail (DEMO_IS_WINDOW (self), FALSE);

  return self->closed_gracefully;
}

static void
session_shutdown_cb (GObject      *object,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(DemoWindow) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!killable_task_shutdown_finish (KILLABLE_TASK (object), result, &error))
    demo_window_log (self, _("shutdown of “%s”: %s"), killable_task_get_name (KILLABLE_TASK (object)),
                     error->message);

  if (--self->n_shutting_down > 0)
    return;

  /* Every session ended (and their abandoned threads returned): go. */
  self->closed_gracefully = TRUE;
  gtk_window_destroy (GTK_WINDOW (self));
}

/* Closing the window shuts every live session down: stopped, then
 * interrupted and killed if it does not end within the grace period. The
 * window goes once they have; nothing blocks meanwhile. */
static gboolean
close_request_cb (GtkWindow *window,
                  gpointer   user_data)
{
  DemoWindow *self = DEMO_WINDOW (window);

  if (self->closing)
    return TRUE;

  /* A stuck loop cannot be stopped, only abandoned: let it return. */
  demo_stuck_loops_release ();

  for (guint i = 0; i < g_list_model_get_n_items (G_LIST_MODEL (self->root_store)); i++)
    {
      g_autoptr(KillableTask) session = g_list_model_get_item (G_LIST_MODEL (self->root_store), i);

      if (killable_task_is_finished (session) ||
          killable_task_get_state (session) == KILLABLE_TASK_STATE_PENDING)
        continue;

      self->n_shutting_down++;
      killable_task_shutdown_async (session, CLOSE_GRACE_USEC, NULL, session_shutdown_cb,
                                    g_object_ref (self));
    }

  if (self->n_shutting_down == 0)
    {
      self->closed_gracefully = TRUE;
      return FALSE;
    }

  self->closing = TRUE;
  demo_window_log (self, _("closing: shutting %u session(s) down"), self->n_shutting_down);
  gtk_widget_set_sensitive (GTK_WIDGET (self->column_view), FALSE);

  return TRUE;
}

/* }}} */

/* GObject {{{ */

static void
demo_window_dispose (GObject *object)
{
  DemoWindow *self = DEMO_WINDOW (object);

  demo_window_shutdown (self);
  demo_workloads_set_log_func (NULL, NULL);

  gtk_widget_dispose_template (GTK_WIDGET (self), DEMO_TYPE_WINDOW);

  for (guint i = 0; i < DEMO_N_WORKLOADS; i++)
    g_clear_object (&self->last_launched[i]);
  g_clear_pointer (&self->launched, g_ptr_array_unref);
  g_clear_object (&self->root_store);
  g_clear_object (&self->root);

  G_OBJECT_CLASS (demo_window_parent_class)->dispose (object);
}

static void
demo_window_class_init (DemoWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = demo_window_dispose;

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/killable/Demo/demo-window.ui");
  gtk_widget_class_bind_template_child (widget_class, DemoWindow, cpu_tree_button);
  gtk_widget_class_bind_template_child (widget_class, DemoWindow, blocked_read_button);
  gtk_widget_class_bind_template_child (widget_class, DemoWindow, stuck_loop_button);
  gtk_widget_class_bind_template_child (widget_class, DemoWindow, process_tree_button);
  gtk_widget_class_bind_template_child (widget_class, DemoWindow, timeout_button);
  gtk_widget_class_bind_template_child (widget_class, DemoWindow, column_view);
  gtk_widget_class_bind_template_child (widget_class, DemoWindow, log_view);

  gtk_widget_class_bind_template_callback (widget_class, launch_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, name_setup_cb);
  gtk_widget_class_bind_template_callback (widget_class, name_bind_cb);
  gtk_widget_class_bind_template_callback (widget_class, state_setup_cb);
  gtk_widget_class_bind_template_callback (widget_class, state_bind_cb);
  gtk_widget_class_bind_template_callback (widget_class, state_unbind_cb);
  gtk_widget_class_bind_template_callback (widget_class, progress_setup_cb);
  gtk_widget_class_bind_template_callback (widget_class, progress_bind_cb);
  gtk_widget_class_bind_template_callback (widget_class, status_setup_cb);
  gtk_widget_class_bind_template_callback (widget_class, status_bind_cb);
  gtk_widget_class_bind_template_callback (widget_class, actions_unbind_cb);
  gtk_widget_class_bind_template_callback (widget_class, status_unbind_cb);
  gtk_widget_class_bind_template_callback (widget_class, actions_setup_cb);
  gtk_widget_class_bind_template_callback (widget_class, actions_bind_cb);
  gtk_widget_class_bind_template_callback (widget_class, binding_unbind_cb);
}

static void
demo_window_init (DemoWindow *self)
{
  g_autoptr(GtkTreeListModel) tree = NULL;
  g_autoptr(GtkNoSelection) selection = NULL;

  self->t0 = g_get_monotonic_time ();
  self->launched = g_ptr_array_new_with_free_func (g_object_unref);

  gtk_widget_init_template (GTK_WIDGET (self));

  self->root_store = g_list_store_new (KILLABLE_TYPE_TASK);
  ensure_session (self);
  g_signal_connect (self, "close-request", G_CALLBACK (close_request_cb), NULL);
  tree = gtk_tree_list_model_new (g_object_ref (G_LIST_MODEL (self->root_store)),
                                  FALSE, TRUE, create_children_model, NULL, NULL);
  selection = gtk_no_selection_new (G_LIST_MODEL (g_steal_pointer (&tree)));
  gtk_column_view_set_model (self->column_view, GTK_SELECTION_MODEL (selection));

  demo_workloads_set_log_func (worker_log_cb, self);
  demo_window_log (self, _("session started: launch a workload with the buttons above"));
}

DemoWindow *
demo_window_new (AdwApplication *application)
{
  return g_object_new (DEMO_TYPE_WINDOW, "application", application, NULL);
}

/* }}} */
