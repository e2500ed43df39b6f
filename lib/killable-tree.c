/* killable-tree.c: children, stop propagation, structured completion
 *
 * Owns: a KillableTreeNode per task (parent, children, live-children
 * count, completion flags, child policy, kill/interrupt marks, the
 * owner-side children model) and the public tree API.
 * Locks: the process-wide tree_lock guards every node's links, counts and
 * flags (the marks are also atomic; children_model is owner-thread only).
 * No user code runs under it; stop-state locks may be taken under it.
 * Called by: killable-task.c, and the public API. Calls: killable-task.c
 * (the stop request, ending a pending task, emissions: task and tree call
 * each other), killable-stop-state.c, killable-timer.c, killable-error.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "killable-error-private.h"
#include "killable-task-private.h"
#include "killable-timer-private.h"

/* The tree links (parent, children, live-children counts) of every task are
 * protected by one process-wide lock. The invariant that makes stop
 * propagation race-free: under this lock, a task whose stop flag is set has
 * only children whose flags are set too. A stop sets the flags of the whole
 * subtree under the lock (running no user code), then fires each task's
 * callbacks outside it; add_child() checks the parent's flag under the same
 * lock. Every traversal is iterative, with an explicit stack: a chain
 * 100 000 deep cannot overflow the C stack.
 */

/* Bindings and tree_lock: a reference that toggles (1 ↔ 2, with a
 * binding's toggle reference) runs the binding's toggle notification, which
 * takes its lock (Python's GIL), and a thread holding that lock may be in a
 * task's dispose. So roots are referenced before tree_lock is taken
 * (descendants are held by their parents), and dispose never waits for
 * tree_lock for long: see killable_tree_dispose(). */
static GMutex tree_lock;
static GCond tree_cond;    /* n_live_children of some task dropped to 0 */
static GPrivate release_queue;

#define NODE(t) killable_task_get_tree_node (t)
#define STOP(t) killable_task_get_stop_state (t)

/* Sets the stop flag of @root and its descendants; @won collects (with a
 * reference) the tasks whose request this call made. A task already stopped
 * is not descended into: its subtree was stopped with it. */
static void
request_stop_locked (KillableTask *root,
                     const GError *reason,
                     GPtrArray    *won)
{
  g_autoptr(GPtrArray) stack = g_ptr_array_new ();

  g_ptr_array_add (stack, root);

  while (stack->len > 0)
    {
      KillableTask *task = g_ptr_array_steal_index_fast (stack, stack->len - 1);

      if (!killable_stop_state_request (STOP (task), reason))
        continue;

      g_ptr_array_add (won, g_object_ref (task));
      for (GList *l = NODE (task)->children.head; l != NULL; l = l->next)
        g_ptr_array_add (stack, l->data);
    }
}

GPtrArray *
killable_tree_request_stop (KillableTask *self,
                            const GError *reason)
{
  GPtrArray *won = g_ptr_array_new_with_free_func (g_object_unref);

  g_object_ref (self);
  g_mutex_lock (&tree_lock);
  request_stop_locked (self, reason, won);
  g_mutex_unlock (&tree_lock);
  g_object_unref (self);

  return won;
}

/* @self and its descendants, parents before children, each with a ref.
 * With a @mark, also sets it on each of them under the tree lock, so that
 * a child added later sees it on its parent. */
GPtrArray *
killable_tree_collect_subtree (KillableTask *self,
                               KillableTreeMark  mark)
{
  GPtrArray *ret = g_ptr_array_new_with_free_func (g_object_unref);

  g_ptr_array_add (ret, g_object_ref (self));

  g_mutex_lock (&tree_lock);

  for (guint i = 0; i < ret->len; i++)
    {
      KillableTask *task = g_ptr_array_index (ret, i);

      if (mark != 0)
        g_atomic_int_or (&NODE (task)->marks, mark);

      for (GList *l = NODE (task)->children.head; l != NULL; l = l->next)
        g_ptr_array_add (ret, g_object_ref (l->data));
    }

  g_mutex_unlock (&tree_lock);

  return ret;
}

/* For a task stopped before it started: TRUE if it may end now; FALSE if
 * it has live children, and then it ends when the last of them does. Either
 * way it takes no new child from now on. With TRUE, *@child_failed tells
 * whether a child failed it (FAIL_FAST): read in the same critical section,
 * it cannot change any more (no live child, no new one), and the caller
 * does not need another round trip through the tree lock. */
gboolean
killable_tree_close_pending (KillableTask *self,
                             gboolean     *child_failed)
{
  KillableTreeNode *priv = NODE (self);
  gboolean ret;

  g_mutex_lock (&tree_lock);
  ret = priv->n_live_children == 0;
  priv->complete_when_children_end = !ret;
  priv->children_closed = ret;
  *child_failed = priv->failed_child != NULL;
  g_mutex_unlock (&tree_lock);

  return ret;
}

gboolean
killable_tree_has_live_children (KillableTask *self)
{
  gboolean ret;

  g_mutex_lock (&tree_lock);
  ret = NODE (self)->n_live_children > 0;
  g_mutex_unlock (&tree_lock);

  return ret;
}

/* Drops references on tasks without recursion: a task's dispose drops its
 * children, whose dispose drops theirs... With a chain 100 000 deep that
 * would be 100 000 nested finalizers. The outermost call on a thread owns a
 * queue; nested calls append to it and return. */
static void
release_tasks (GQueue *tasks)
{
  GQueue *queue = g_private_get (&release_queue);
  GQueue local = G_QUEUE_INIT;
  KillableTask *task;

  if (queue != NULL)
    {
      while ((task = g_queue_pop_head (tasks)) != NULL)
        g_queue_push_tail (queue, task);
      return;
    }

  while ((task = g_queue_pop_head (tasks)) != NULL)
    g_queue_push_tail (&local, task);

  g_private_set (&release_queue, &local);
  while ((task = g_queue_pop_head (&local)) != NULL)
    g_object_unref (task);
  g_private_set (&release_queue, NULL);
}

/* The end of a child can end its parent (stopped while pending, or killed
 * while a child could not be abandoned), whose end can end its own parent:
 * on a chain 100 000 deep that must not nest. Same trampoline as above:
 * the outermost call on a thread runs the queued steps in a loop. */
typedef enum { STEP_COMPLETE_PENDING, STEP_KILL } ParentStep;

static GPrivate parent_steps;

static void
run_parent_step (KillableTask *parent,   /* (transfer full) */
                 ParentStep    step)
{
  GQueue *queue = g_private_get (&parent_steps);
  GQueue local = G_QUEUE_INIT;
  gpointer item;

  if (queue != NULL)
    {
      g_queue_push_tail (queue, parent);
      g_queue_push_tail (queue, GINT_TO_POINTER (step));
      return;
    }

  g_queue_push_tail (&local, parent);
  g_queue_push_tail (&local, GINT_TO_POINTER (step));
  g_private_set (&parent_steps, &local);

  while ((item = g_queue_pop_head (&local)) != NULL)
    {
      KillableTask *task = item;

      switch ((ParentStep) GPOINTER_TO_INT (g_queue_pop_head (&local)))
        {
        case STEP_COMPLETE_PENDING:
          killable_task_complete_pending (task);
          break;
        case STEP_KILL:
          if (!KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (task)))
            KILLABLE_TASK_GET_CLASS (task)->kill (task);
          break;
        default:
          g_assert_not_reached ();
        }
      g_object_unref (task);
    }

  g_private_set (&parent_steps, NULL);
}

static void
release_task (KillableTask *task)
{
  GQueue one = G_QUEUE_INIT;

  g_queue_push_tail (&one, task);
  release_tasks (&one);
}

static void child_ended (KillableTask *child,
                         gboolean      at_add);

/**
 * killable_task_add_child:
 * @self: the parent
 * @child: (transfer none): the task to add
 * @error: return location for a #GError
 *
 * Makes @child a child of @self; @self holds a reference on it.
 *
 * A stop of @self, with its cause, reaches @child and its descendants; a
 * child added to a parent that was already stopped is stopped at once.
 * @self becomes terminal only after all its children are (structured
 * completion): when its work returns, children that were never started are
 * stopped, those that run are waited for, and if its work failed they are
 * stopped with its error. Under %KILLABLE_CHILD_POLICY_FAIL_FAST a child
 * that fails stops @self with %KILLABLE_ERROR_CHILD_FAILED.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE on success; %FALSE with @error set if @child already has a
 *   parent, is @self or one of its ancestors, or @self already finished
 *
 * Since: 1.0
 */
gboolean
killable_task_add_child (KillableTask  *self,
                         KillableTask  *child,
                         GError       **error)
{
  KillableTreeNode *priv;
  KillableTreeNode *cpriv;
  g_autoptr(GPtrArray) won = NULL;
  g_autoptr(GError) reason = NULL;
  gboolean child_terminal, kill, interrupt;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (KILLABLE_IS_TASK (child), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = NODE (self);
  cpriv = NODE (child);

  /* The parent's reference on the child, taken before the lock (see the
   * top of this file). */
  g_object_ref (child);

  g_mutex_lock (&tree_lock);

  if (cpriv->parent != NULL)
    {
      g_mutex_unlock (&tree_lock);
      g_object_unref (child);
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("Task “%s” already has a parent"), killable_task_get_name (child));
      return FALSE;
    }

  /* Only a task with children can be an ancestor of @self: building a
   * chain downwards does not walk the whole chain at each step. */
  for (KillableTask *t = self;
       t != NULL && (t == child || cpriv->children.length > 0);
       t = NODE (t)->parent)
    {
      if (t == child)
        {
          g_mutex_unlock (&tree_lock);
          g_object_unref (child);
          g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                       _("Task “%s” cannot be a child of itself or of its own descendant"),
                       killable_task_get_name (child));
          return FALSE;
        }
    }

  if (priv->children_closed ||
      KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (self)))
    {
      g_mutex_unlock (&tree_lock);
      g_object_unref (child);
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("Task “%s” already finished and cannot take children"),
                   killable_task_get_name (self));
      return FALSE;
    }

  cpriv->parent = self;
  g_queue_push_tail_link (&priv->children, &cpriv->sibling_link);

  /* "Live" is decided here once, under the lock that child_ended() takes:
   * a child completing right now is counted here and uncounted by its own
   * child_ended(); one that already completed is not counted, and the call
   * at the end of this function gives it the end it missed. */
  child_terminal = KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (child));
  if (!child_terminal)
    {
      priv->n_live_children++;
      cpriv->counted_in_parent = TRUE;
    }

  if (killable_stop_state_is_requested (STOP (self)))
    {
      won = g_ptr_array_new_with_free_func (g_object_unref);
      reason = killable_stop_state_dup_reason (STOP (self));
      request_stop_locked (child, reason, won);
    }
  else if (priv->work_returned &&
           (priv->completion_reason != NULL ||
            killable_task_get_state (child) == KILLABLE_TASK_STATE_PENDING))
    {
      /* The parent's work already returned: treat the newcomer as its
       * completion treated the others (pending ones are stopped; all are if
       * the work failed). */
      won = g_ptr_array_new_with_free_func (g_object_unref);
      if (priv->completion_reason != NULL)
        reason = g_error_copy (priv->completion_reason);
      request_stop_locked (child, reason, won);
    }

  kill = killable_tree_node_has_mark (priv, KILLABLE_TREE_MARK_KILL);
  interrupt = killable_tree_node_has_mark (priv, KILLABLE_TREE_MARK_INTERRUPT);

  g_mutex_unlock (&tree_lock);

  if (won != NULL)
    for (guint i = 0; i < won->len; i++)
      killable_task_request_stop_internal (g_ptr_array_index (won, i), reason, FALSE);

  /* The parent was interrupted or killed: so is its new child. */
  if (kill)
    killable_task_kill (child);
  else if (interrupt)
    killable_task_interrupt (child);

  killable_task_queue_emissions (self, KILLABLE_EMIT_CHILDREN);
  killable_task_queue_emissions (child, KILLABLE_EMIT_PARENT);

  /* Already finished: it leaves (or fails its parent) as it would have. */
  if (child_terminal)
    child_ended (child, TRUE);

  return TRUE;
}

/* Called once @child is terminal (by complete()), and by add_child() for a
 * child that was already terminal (@at_add). Acts once per child and
 * parent: on a counted child, or at its addition. */
static void
child_ended (KillableTask *child,
             gboolean      at_add)
{
  KillableTreeNode *cpriv = NODE (child);
  KillableTask *parent;
  g_autoptr(GPtrArray) won = NULL;
  g_autoptr(GError) reason = NULL;
  gboolean released = FALSE;
  gboolean parent_pending_done = FALSE;
  gboolean parent_kill_again = FALSE;

  g_mutex_lock (&tree_lock);

  parent = cpriv->parent;
  if (parent == NULL || (!at_add && !cpriv->counted_in_parent))
    {
      g_mutex_unlock (&tree_lock);
      return;
    }

  /* Alive: it holds @child, and its dispose takes this lock. (This
   * reference may toggle a binding's: dispose never waits long for the
   * lock, see killable_tree_dispose().) */
  g_object_ref (parent);

  if (cpriv->counted_in_parent &&
      (cpriv->counted_in_parent = FALSE, --NODE (parent)->n_live_children == 0))
    {
      g_cond_broadcast (&tree_cond);
      /* A parent stopped (or killed) before it started, or killed while a
       * child could not be abandoned, ends now. */
      if (NODE (parent)->complete_when_children_end)
        {
          NODE (parent)->complete_when_children_end = FALSE;
          parent_pending_done = TRUE;
        }
      else if (killable_tree_node_has_mark (NODE (parent), KILLABLE_TREE_MARK_KILL))
        parent_kill_again = TRUE;
    }

  if (killable_task_get_state (child) == KILLABLE_TASK_STATE_FAILED &&
      NODE (parent)->child_policy == KILLABLE_CHILD_POLICY_FAIL_FAST &&
      !killable_stop_state_is_requested (STOP (parent)))
    {
      reason = g_error_new (KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED,
                            _("Child task “%s” failed: %s"),
                            killable_task_get_name (child),
                            killable_task_get_error (child)->message);
      won = g_ptr_array_new_with_free_func (g_object_unref);
      request_stop_locked (parent, reason, won);
      NODE (parent)->failed_child = g_object_ref (child);
    }

  if (!NODE (parent)->retain_children)
    {
      g_queue_unlink (&NODE (parent)->children, &cpriv->sibling_link);
      cpriv->parent = NULL;
      released = TRUE;
    }

  g_mutex_unlock (&tree_lock);

  if (won != NULL)
    for (guint i = 0; i < won->len; i++)
      killable_task_request_stop_internal (g_ptr_array_index (won, i), reason, FALSE);

  if (parent_pending_done)
    run_parent_step (g_object_ref (parent), STEP_COMPLETE_PENDING);
  else if (parent_kill_again)
    run_parent_step (g_object_ref (parent), STEP_KILL);

  killable_task_queue_emissions (parent, KILLABLE_EMIT_CHILDREN);
  if (released)
    {
      killable_task_queue_emissions (child, KILLABLE_EMIT_PARENT);
      release_task (child);
    }
  release_task (parent);
}

void
killable_tree_child_ended (KillableTask *child)
{
  child_ended (child, FALSE);
}

/* On the worker, after the work returned: stop children that never
 * started (and all of them if the work failed), then wait for every child
 * to be terminal. */
void
killable_tree_before_completion (KillableTask *self,
                                 gboolean      run_failed,
                                 const GError *run_error)
{
  KillableTreeNode *priv = NODE (self);
  g_autoptr(GPtrArray) to_stop = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) reason = NULL;

  if (run_failed && run_error != NULL && !killable_error_is_cancellation (run_error))
    reason = g_error_copy (run_error);

  g_mutex_lock (&tree_lock);

  /* From here on, add_child() treats a newcomer like the children below. */
  priv->work_returned = TRUE;
  if (reason != NULL)
    priv->completion_reason = g_error_copy (reason);

  if (priv->n_live_children == 0)
    {
      priv->children_closed = TRUE;
      g_mutex_unlock (&tree_lock);
      return;
    }

  for (GList *l = priv->children.head; l != NULL; l = l->next)
    {
      KillableTask *child = l->data;
      int state = killable_task_get_state (child);

      /* Already stopped: by the tree invariant, whoever stopped it is
       * ending it; only its end is awaited below. */
      if (killable_stop_state_is_requested (STOP (child)))
        continue;

      if (run_failed ? !KILLABLE_TASK_STATE_IS_TERMINAL (state)
                     : state == KILLABLE_TASK_STATE_PENDING)
        g_ptr_array_add (to_stop, g_object_ref (child));
    }

  g_mutex_unlock (&tree_lock);

  for (guint i = 0; i < to_stop->len; i++)
    killable_task_request_stop_internal (g_ptr_array_index (to_stop, i), reason, TRUE);

  /* Closed in the same critical section that sees the last child end, so
   * that no child can slip in between (cleanups and the terminal state come
   * next; add_child() then fails as for a finished parent). */
  g_mutex_lock (&tree_lock);
  while (priv->n_live_children > 0)
    g_cond_wait (&tree_cond, &tree_lock);
  priv->children_closed = TRUE;
  g_mutex_unlock (&tree_lock);
}

static GPrivate in_reaper;

static gboolean
reap_cb (gpointer data)
{
  g_private_set (&in_reaper, GINT_TO_POINTER (TRUE));
  g_object_unref (data);
  g_private_set (&in_reaper, NULL);

  return G_SOURCE_REMOVE;
}

/* Takes tree_lock for a dispose, or gives up after a short while. A binding
 * may dispose a task while holding its own lock (Python's GIL), and the
 * holder of tree_lock may be waiting for that lock (a toggle notification):
 * waiting here could deadlock. The timer thread, which holds no binding
 * lock, may wait. */
static gboolean
lock_for_dispose (void)
{
  if (g_private_get (&in_reaper) != NULL)
    {
      g_mutex_lock (&tree_lock);
      return TRUE;
    }

  for (guint i = 0; i < 10000; i++)
    {
      if (g_mutex_trylock (&tree_lock))
        return TRUE;
      g_thread_yield ();
    }

  return FALSE;
}

/* Returns FALSE if the task was handed to the timer thread, which drops it
 * again later: the caller must not chain up then. */
gboolean
killable_tree_dispose (KillableTask *self)
{
  KillableTreeNode *priv = NODE (self);
  GQueue children = G_QUEUE_INIT;
  GList *link;
  KillableTask *failed_child;

  /* Nobody can reach a task without a parent (it would hold a reference)
   * nor children (they would point to it) but through a reference: no lock
   * is needed. */
  if (g_atomic_pointer_get (&priv->parent) == NULL &&
      g_atomic_int_get (&priv->children.length) == 0 &&
      g_atomic_pointer_get (&priv->failed_child) == NULL)
    {
      g_clear_error (&priv->completion_reason);
      g_clear_object (&priv->children_model);
      return TRUE;
    }

  if (!lock_for_dispose ())
    {
      /* Resurrected for the timer thread: this reference does not toggle,
       * a binding's toggle reference is gone when dispose runs. */
      g_object_ref (self);
      killable_timer_unref (killable_timer_add (0, reap_cb, self, NULL));
      return FALSE;
    }

  while ((link = g_queue_pop_head_link (&priv->children)) != NULL)
    {
      KillableTask *child = link->data;

      NODE (child)->parent = NULL;
      NODE (child)->counted_in_parent = FALSE;
      g_queue_push_tail (&children, child);
    }
  priv->n_live_children = 0;
  failed_child = g_steal_pointer (&priv->failed_child);
  g_clear_error (&priv->completion_reason);

  g_mutex_unlock (&tree_lock);

  if (failed_child != NULL)
    g_queue_push_tail (&children, failed_child);
  release_tasks (&children);

  g_clear_object (&priv->children_model);

  return TRUE;
}

/* The owner-side mirror {{{ */

static GPtrArray *
snapshot_children (KillableTask *self)
{
  GPtrArray *ret = g_ptr_array_new_with_free_func (g_object_unref);

  g_mutex_lock (&tree_lock);
  for (GList *l = NODE (self)->children.head; l != NULL; l = l->next)
    g_ptr_array_add (ret, g_object_ref (l->data));
  g_mutex_unlock (&tree_lock);

  return ret;
}

/* Brings the model up to date with one splice of the part that changed,
 * so that views (GtkTreeListModel) keep the rows that did not. */
void
killable_tree_sync_model (KillableTask *self)
{
  GListModel *model = G_LIST_MODEL (NODE (self)->children_model);
  g_autoptr(GPtrArray) now = NULL;
  guint n_old, prefix = 0, suffix = 0;

  if (model == NULL)
    return;

  now = snapshot_children (self);
  n_old = g_list_model_get_n_items (model);

  while (prefix < n_old && prefix < now->len)
    {
      g_autoptr(GObject) item = g_list_model_get_item (model, prefix);

      if (item != g_ptr_array_index (now, prefix))
        break;
      prefix++;
    }

  while (suffix < n_old - prefix && suffix < now->len - prefix)
    {
      g_autoptr(GObject) item = g_list_model_get_item (model, n_old - 1 - suffix);

      if (item != g_ptr_array_index (now, now->len - 1 - suffix))
        break;
      suffix++;
    }

  if (prefix + suffix == n_old && prefix + suffix == now->len)
    return;

  g_list_store_splice (G_LIST_STORE (model), prefix, n_old - prefix - suffix,
                       now->pdata + prefix, now->len - prefix - suffix);
}

/**
 * killable_task_get_children:
 * @self: a task
 *
 * Gets the children of @self as a list model of [class@Killable.Task]. The
 * model belongs to the owner's main context: it changes, and emits
 * [signal@Gio.ListModel::items-changed], only there, when that context is
 * iterated, so it can back a GTK view directly. Unless
 * [property@Killable.Task:retain-children] is set, children leave it once
 * they are terminal.
 *
 * Call it from the thread of the task's owner context.
 *
 * Returns: (transfer none): the children
 *
 * Since: 1.0
 */
GListModel *
killable_task_get_children (KillableTask *self)
{
  KillableTreeNode *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  priv = NODE (self);
  if (priv->children_model == NULL)
    {
      g_autoptr(GPtrArray) now = NULL;
      GListStore *store = g_list_store_new (KILLABLE_TYPE_TASK);

      /* Published before the snapshot: a change made after the snapshot
       * queues a sync, one made before is in it. */
      g_atomic_pointer_set (&priv->children_model, store);
      now = snapshot_children (self);
      g_list_store_splice (store, 0, 0, now->pdata, now->len);
    }

  return G_LIST_MODEL (priv->children_model);
}

/* }}} */

/**
 * killable_task_dup_parent: (get-property parent)
 * @self: a task
 *
 * Gets the parent of @self.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer full) (nullable): the parent, or %NULL
 *
 * Since: 1.0
 */
KillableTask *
killable_task_dup_parent (KillableTask *self)
{
  KillableTask *ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  g_mutex_lock (&tree_lock);
  ret = NODE (self)->parent != NULL ? g_object_ref (NODE (self)->parent) : NULL;
  g_mutex_unlock (&tree_lock);

  return ret;
}

/**
 * killable_task_get_child_policy:
 * @self: a task
 *
 * Gets [property@Killable.Task:child-policy].
 *
 * This function is thread-safe.
 *
 * Returns: the policy
 *
 * Since: 1.0
 */
KillableChildPolicy
killable_task_get_child_policy (KillableTask *self)
{
  KillableChildPolicy ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), KILLABLE_CHILD_POLICY_FAIL_FAST);

  g_mutex_lock (&tree_lock);
  ret = NODE (self)->child_policy;
  g_mutex_unlock (&tree_lock);

  return ret;
}

/**
 * killable_task_set_child_policy:
 * @self: a task
 * @policy: the policy
 *
 * Sets [property@Killable.Task:child-policy].
 *
 * This function is thread-safe; `notify::child-policy` is emitted in the
 * calling thread.
 *
 * Since: 1.0
 */
void
killable_task_set_child_policy (KillableTask        *self,
                                KillableChildPolicy  policy)
{
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (policy == KILLABLE_CHILD_POLICY_FAIL_FAST ||
                    policy == KILLABLE_CHILD_POLICY_ISOLATE);

  g_mutex_lock (&tree_lock);
  changed = NODE (self)->child_policy != (int) policy;
  NODE (self)->child_policy = policy;
  g_mutex_unlock (&tree_lock);

  if (changed)
    killable_task_emit_setter (self, KILLABLE_EMIT_CHILD_POLICY);
}

/**
 * killable_task_get_retain_children:
 * @self: a task
 *
 * Gets [property@Killable.Task:retain-children].
 *
 * This function is thread-safe.
 *
 * Returns: whether finished children are kept
 *
 * Since: 1.0
 */
gboolean
killable_task_get_retain_children (KillableTask *self)
{
  gboolean ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  g_mutex_lock (&tree_lock);
  ret = NODE (self)->retain_children;
  g_mutex_unlock (&tree_lock);

  return ret;
}

/**
 * killable_task_set_retain_children:
 * @self: a task
 * @retain: whether finished children stay in the children list
 *
 * Sets [property@Killable.Task:retain-children]. It applies to children
 * that finish from now on.
 *
 * This function is thread-safe; `notify::retain-children` is emitted in
 * the calling thread.
 *
 * Since: 1.0
 */
void
killable_task_set_retain_children (KillableTask *self,
                                   gboolean      retain)
{
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_TASK (self));

  g_mutex_lock (&tree_lock);
  changed = NODE (self)->retain_children != !!retain;
  NODE (self)->retain_children = !!retain;
  g_mutex_unlock (&tree_lock);

  if (changed)
    killable_task_emit_setter (self, KILLABLE_EMIT_RETAIN_CHILDREN);
}

gint64
killable_tree_get_deadline (KillableTask *self)
{
  gint64 ret = G_MAXINT64;

  g_mutex_lock (&tree_lock);

  for (KillableTask *t = self; t != NULL; t = NODE (t)->parent)
    {
      ret = MIN (ret, killable_task_get_own_deadline (t));
    }

  g_mutex_unlock (&tree_lock);

  return ret;
}

/* For tests: how many children @self holds right now. */
guint
killable_tree_count_children (KillableTask *self)
{
  guint ret;

  g_mutex_lock (&tree_lock);
  ret = NODE (self)->children.length;
  g_mutex_unlock (&tree_lock);

  return ret;
}

gboolean
killable_tree_has_failed_child (KillableTask *self)
{
  gboolean ret;

  g_mutex_lock (&tree_lock);
  ret = NODE (self)->failed_child != NULL;
  g_mutex_unlock (&tree_lock);

  return ret;
}

gboolean
killable_tree_has_model (KillableTask *self)
{
  return g_atomic_pointer_get (&NODE (self)->children_model) != NULL;
}

void
killable_tree_node_init (KillableTreeNode *node,
                         KillableTask     *task)
{
  node->child_policy = KILLABLE_CHILD_POLICY_FAIL_FAST;
  node->sibling_link.data = task;
}

/* For killable-fork.c: tree_lock is held across fork(), so that the child's
 * copy of every tree is consistent. */
void
killable_tree_fork_lock (gboolean lock)
{
  if (lock)
    g_mutex_lock (&tree_lock);
  else
    g_mutex_unlock (&tree_lock);
}
