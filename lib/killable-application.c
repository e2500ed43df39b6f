/* killable-application.c: tasks inside an application's life cycle
 *
 * Owns: what ties a task to an application or a process: the hold of a
 * bound GApplication, shutdown operations (stop, escalate, wait for the
 * tree and its abandoned threads), and SIGINT/SIGTERM sources.
 * Locks: shutdown_lock guards the list of shutdown operations waiting for
 * abandoned threads; a leaf lock (no user code, no other lock under it).
 * Everything else lives on the caller's main context.
 * Called by: the public API. Calls: the public task API, and in
 * killable-task.c killable_task_has_abandoned_thread() and the hook it
 * calls back through when an abandoned thread returns (a function pointer:
 * killable-task.c never calls this file), and killable-tree.c to snapshot
 * a subtree.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <signal.h>

#include <glib-unix.h>

#include "killable-task-private.h"

/* Bind {{{ */

/* The application a task was bound to (unowned: the binding's hold keeps
 * it alive while the task is live), for shutdown_async(). */
static GQuark
bound_application_quark (void)
{
  return g_quark_from_static_string ("killable-bound-application");
}

static void
bind_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GApplication) application = user_data;

  g_application_release (application);
}

/**
 * killable_task_bind_application:
 * @self: a task
 * @application: the application to keep running
 *
 * Holds @application (g_application_hold()) until @self is terminal: since
 * a task ends only after its children, that is as long as the task or any
 * descendant is live. An application that quits when nothing holds it
 * (the default for one without windows) then ends once its work has.
 *
 * A task that never starts and is never stopped holds it for ever. Quit
 * with [method@Killable.Task.shutdown_async], which stops the tree and
 * holds the application until the shutdown is complete.
 *
 * Call it from the thread that runs @application's main context: the
 * hold is released there.
 *
 * Since: 1.2
 */
void
killable_task_bind_application (KillableTask *self,
                                GApplication *application)
{
  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (G_IS_APPLICATION (application));

  g_application_hold (application);
  g_object_set_qdata_full (G_OBJECT (self), bound_application_quark (),
                           g_object_ref (application), g_object_unref);
  killable_task_wait_async (self, NULL, bind_done_cb, g_object_ref (application));
}

/* }}} */

/* Shutdown {{{ */

typedef struct
{
  GApplication *application;    /* (owned) (nullable) held until the shutdown completed */
  GPtrArray    *subtree;        /* (owned) the tree when shutdown began */
  gint64        grace_usec;
  GSource      *bound;          /* (owned) (nullable) the wait for abandoned threads */
  gboolean      waiting_threads;/* in shutdown_ops */
} ShutdownData;

static GMutex shutdown_lock;
static GList *shutdown_ops;     /* (element-type GTask) protected by shutdown_lock, each owns a ref */

static void
shutdown_data_free (gpointer user_data)
{
  ShutdownData *data = user_data;

  /* After the callback ran: the application quits (if nothing else holds
   * it) once the shutdown is complete, not when the tree ended. */
  if (data->application != NULL)
    {
      g_application_release (data->application);
      g_object_unref (data->application);
    }
  g_ptr_array_unref (data->subtree);
  if (data->bound != NULL)
    {
      g_source_destroy (data->bound);
      g_source_unref (data->bound);
    }
  g_free (data);
}

static gboolean
has_abandoned_threads (ShutdownData *data)
{
  for (guint i = 0; i < data->subtree->len; i++)
    if (killable_task_has_abandoned_thread (g_ptr_array_index (data->subtree, i)))
      return TRUE;

  return FALSE;
}

/* Completes @op if it is still waiting: TRUE if this call did. */
static gboolean
shutdown_complete (GTask *op)
{
  gboolean mine;

  g_mutex_lock (&shutdown_lock);
  mine = g_list_find (shutdown_ops, op) != NULL;
  shutdown_ops = g_list_remove (shutdown_ops, op);
  g_mutex_unlock (&shutdown_lock);

  if (mine)
    {
      g_task_return_boolean (op, TRUE);
      g_object_unref (op);
    }

  return mine;
}

static gboolean
shutdown_recheck_cb (gpointer user_data)
{
  GTask *op = user_data;
  ShutdownData *data = g_task_get_task_data (op);

  if (!has_abandoned_threads (data))
    shutdown_complete (op);

  return G_SOURCE_REMOVE;
}

static gboolean
shutdown_bound_cb (gpointer user_data)
{
  /* Past the bound: the threads still running are left to themselves
   * (killable_get_abandoned_thread_count() counts them). */
  shutdown_complete (user_data);

  return G_SOURCE_REMOVE;
}

/* Called by killable-task.c, on the returning thread, each time an
 * abandoned thread returns: each waiting shutdown looks again on its own
 * context. */
static void
abandoned_returned (void)
{
  g_mutex_lock (&shutdown_lock);
  for (GList *l = shutdown_ops; l != NULL; l = l->next)
    {
      GTask *op = l->data;
      GSource *source = g_idle_source_new ();

      g_source_set_static_name (source, "[killable] shutdown");
      g_source_set_callback (source, shutdown_recheck_cb, g_object_ref (op), g_object_unref);
      g_source_attach (source, g_task_get_context (op));
      g_source_unref (source);
    }
  g_mutex_unlock (&shutdown_lock);
}

static void
shutdown_tree_ended_cb (GObject      *object,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  g_autoptr(GTask) op = user_data;
  KillableTask *self = KILLABLE_TASK (object);
  ShutdownData *data = g_task_get_task_data (op);
  g_autoptr(GError) error = NULL;

  /* The tree's own outcome is not the shutdown's: only a cancelled wait
   * is. */
  if (!killable_task_wait_finish (self, result, &error) &&
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
      g_cancellable_is_cancelled (g_task_get_cancellable (op)))
    {
      g_task_return_error (op, g_steal_pointer (&error));
      return;
    }

  g_mutex_lock (&shutdown_lock);
  shutdown_ops = g_list_prepend (shutdown_ops, g_object_ref (op));
  g_mutex_unlock (&shutdown_lock);

  /* Listed before the look: a thread returning in between is seen by the
   * look or calls abandoned_returned() for a listed op. */
  if (!has_abandoned_threads (data) || data->grace_usec < 0)
    {
      shutdown_complete (op);
      return;
    }

  data->bound = g_timeout_source_new (MAX (data->grace_usec / 1000, 1));
  g_source_set_static_name (data->bound, "[killable] shutdown bound");
  g_source_set_callback (data->bound, shutdown_bound_cb, g_object_ref (op), g_object_unref);
  g_source_attach (data->bound, g_task_get_context (op));
}

/**
 * killable_task_shutdown_async:
 * @self: the root of the tree to shut down
 * @grace_usec: how long, in microseconds, each rung of the ladder is
 *   given: the work has this long to end after the stop, then again after
 *   the interrupt, before it is killed; -1 never escalates
 * @cancellable: (nullable): cancelling it abandons the wait for the tree
 *   (the tree stays stopped)
 * @callback: (scope async) (closure user_data): called on the caller's
 *   thread-default main context once the shutdown is complete
 * @user_data: data for @callback
 *
 * Shuts a tree of tasks down the way an application quits: stops @self
 * (and so every descendant), sets its [property@Killable.Task:grace-period]
 * to @grace_usec so that work that does not end in time is interrupted and
 * then killed, and completes once the tree is terminal and the threads it
 * abandoned by killing have returned, or one more @grace_usec has passed
 * (their count is then in [func@Killable.get_abandoned_thread_count]).
 *
 * ```c
 * static void
 * quit_activated (GSimpleAction *action, GVariant *parameter, gpointer user_data)
 * {
 *   MyApp *self = user_data;
 *
 *   // The tree was bound with killable_task_bind_application(): the
 *   // application quits by itself once the tree has ended.
 *   killable_task_shutdown_async (self->tasks, 2 * G_USEC_PER_SEC, NULL, NULL, NULL);
 * }
 * ```
 *
 * Call it from the thread that owns the caller's thread-default main
 * context.
 *
 * Since: 1.2
 */
void
killable_task_shutdown_async (KillableTask        *self,
                              gint64               grace_usec,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) op = NULL;
  ShutdownData *data;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (grace_usec >= -1);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  killable_task_set_abandoned_returned_func (abandoned_returned);

  op = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (op, killable_task_shutdown_async);
  g_task_set_name (op, "[killable] killable_task_shutdown_async");

  data = g_new0 (ShutdownData, 1);
  data->grace_usec = grace_usec;
  data->subtree = killable_tree_collect_subtree (self, 0);
  data->application = g_object_get_qdata (G_OBJECT (self), bound_application_quark ());
  if (data->application != NULL)
    {
      g_object_ref (data->application);
      g_application_hold (data->application);
    }
  g_task_set_task_data (op, data, shutdown_data_free);

  killable_task_set_grace_period (self, grace_usec);
  killable_task_stop (self);

  killable_task_wait_async (self, cancellable, shutdown_tree_ended_cb, g_steal_pointer (&op));
}

/**
 * killable_task_shutdown_finish:
 * @self: a task
 * @result: the result given to the callback of
 *   [method@Killable.Task.shutdown_async]
 * @error: return location for a #GError
 *
 * Finishes [method@Killable.Task.shutdown_async]. The outcome of the tree
 * itself is [method@Killable.Task.join]'s.
 *
 * Call it from the callback given to [method@Killable.Task.shutdown_async].
 *
 * Returns: %TRUE once the tree ended; %FALSE with %G_IO_ERROR_CANCELLED if
 *   the shutdown's cancellable was cancelled first
 *
 * Since: 1.2
 */
gboolean
killable_task_shutdown_finish (KillableTask  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, killable_task_shutdown_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* }}} */

/* Unix signals {{{ */

typedef struct
{
  KillableTask *task;           /* (owned) */
  GSource      *sources[2];     /* (owned) */
  guint         n_received;
} SignalsData;

static gboolean
unix_signal_cb (gpointer user_data)
{
  SignalsData *data = user_data;

  if (++data->n_received == 1)
    killable_task_stop (data->task);
  else
    killable_task_kill (data->task);

  return G_SOURCE_CONTINUE;
}

static void
signals_done_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  SignalsData *data = user_data;

  /* The default dispositions come back when the last source goes. */
  for (guint i = 0; i < G_N_ELEMENTS (data->sources); i++)
    {
      g_source_destroy (data->sources[i]);
      g_source_unref (data->sources[i]);
    }
  g_object_unref (data->task);
  g_free (data);
}

/**
 * killable_task_stop_on_unix_signals:
 * @self: a task, typically the root of a command-line program's work
 *
 * Makes `SIGINT` (Ctrl+C) and `SIGTERM` stop @self while it is live: the
 * first one stops it ([method@Killable.Task.stop]), a second one kills it
 * ([method@Killable.Task.kill]), as impatient users expect. The signals
 * are watched with g_unix_signal_source_new() on the caller's
 * thread-default main context, which must be iterated (a main loop, or
 * [method@Killable.Task.wait_async]); once @self is terminal, the signals
 * get their default dispositions back.
 *
 * Call it from the thread that owns the caller's thread-default main
 * context.
 *
 * Since: 1.2
 */
void
killable_task_stop_on_unix_signals (KillableTask *self)
{
  static const int signums[] = { SIGINT, SIGTERM };
  g_autoptr(GMainContext) context = NULL;
  SignalsData *data;

  g_return_if_fail (KILLABLE_IS_TASK (self));

  context = g_main_context_ref_thread_default ();
  data = g_new0 (SignalsData, 1);
  data->task = g_object_ref (self);

  for (guint i = 0; i < G_N_ELEMENTS (signums); i++)
    {
      data->sources[i] = g_unix_signal_source_new (signums[i]);
      g_source_set_static_name (data->sources[i], "[killable] stop on signal");
      g_source_set_callback (data->sources[i], unix_signal_cb, data, NULL);
      g_source_attach (data->sources[i], context);
    }

  killable_task_wait_async (self, NULL, signals_done_cb, data);
}

/* }}} */
