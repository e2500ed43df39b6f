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

typedef struct _TaskStack TaskStack;

/* A small stack of tasks on the C stack, spilling to the heap only past
 * its inline slots: the re-entrancy queues below cost no allocation per
 * step (a GQueue cost a list node per push). */
#define TASK_STACK_INLINE 16

struct _TaskStack
{
  guint         len;
  GPtrArray    *spill;   /* (owned) (nullable) past the inline slots */
  gpointer      items[TASK_STACK_INLINE];
};

static void
task_stack_push (TaskStack *stack,
                 gpointer   item)
{
  if (stack->len < TASK_STACK_INLINE)
    {
      stack->items[stack->len++] = item;
      return;
    }
  if (stack->spill == NULL)
    stack->spill = g_ptr_array_new ();
  g_ptr_array_add (stack->spill, item);
}

static gpointer
task_stack_pop (TaskStack *stack)
{
  if (stack->spill != NULL && stack->spill->len > 0)
    return g_ptr_array_steal_index_fast (stack->spill, stack->spill->len - 1);
  if (stack->len > 0)
    return stack->items[--stack->len];
  return NULL;
}

static void
task_stack_clear (TaskStack *stack)
{
  g_clear_pointer (&stack->spill, g_ptr_array_unref);
}

/* Drops references on tasks without recursion: a task's dispose drops its
 * children, whose dispose drops theirs... With a chain 100 000 deep that
 * would be 100 000 nested finalizers. The outermost call on a thread owns a
 * stack; nested calls push onto it and return. */
/* Fairness of tree_lock: a stop of a large tree holds it in batches, and
 * every thread takes it often. A thread that had to wait for it is
 * counted; a long pass lets such a waiter have the lock between batches
 * (tree_lock_yield()) and waits until it took it, for a bounded while: a
 * waiter is not starved by a pass that releases and takes the lock again
 * (GMutex is not fair: the releasing thread usually wins the race against
 * the woken one). */
static int tree_lock_waiters;    /* (atomic) threads blocked in tree_lock_acquire() */
static int tree_lock_handoffs;  /* (atomic) how many of them got the lock */

/* How many tasks a stop visits per hold of tree_lock when a thread waits. */
#define TREE_LOCK_BATCH 256

/* A long pass that lets a waiter in sleeps on handoff_cond until the
 * waiter took tree_lock (it signals it then), for at most
 * TREE_LOCK_HANDOFF_USEC: sleeping, not spinning, leaves the CPU to the
 * waiter on a loaded machine. */
static GMutex handoff_lock;
static GCond handoff_cond;
static int handoff_wanted;      /* (atomic) a pass waits on handoff_cond */

#define TREE_LOCK_HANDOFF_USEC 2000

/* Takes tree_lock, counting the threads that have to wait for it. */
static void
tree_lock_acquire (void)
{
  if (G_LIKELY (g_mutex_trylock (&tree_lock)))
    return;

  g_atomic_int_inc (&tree_lock_waiters);
  g_mutex_lock (&tree_lock);
  g_atomic_int_add (&tree_lock_waiters, -1);
  g_atomic_int_inc (&tree_lock_handoffs);
  if (g_atomic_int_get (&handoff_wanted))
    {
      g_mutex_lock (&handoff_lock);
      g_cond_broadcast (&handoff_cond);
      g_mutex_unlock (&handoff_lock);
    }
}

/* Between batches of a long pass, with tree_lock held: lets a waiting
 * thread have it. Returns TRUE if the lock was released (the tree may have
 * changed meanwhile). */
static gboolean
tree_lock_yield (void)
{
  int seen;
  gint64 end;

  if (G_LIKELY (g_atomic_int_get (&tree_lock_waiters) == 0))
    return FALSE;

  seen = g_atomic_int_get (&tree_lock_handoffs);
  end = g_get_monotonic_time () + TREE_LOCK_HANDOFF_USEC;
  /* Set before the release: a waiter can only take the lock after it. */
  g_atomic_int_set (&handoff_wanted, 1);
  g_mutex_unlock (&tree_lock);

  g_mutex_lock (&handoff_lock);
  while (g_atomic_int_get (&tree_lock_handoffs) == seen &&
         g_atomic_int_get (&tree_lock_waiters) > 0)
    if (!g_cond_wait_until (&handoff_cond, &handoff_lock, end))
      break;
  g_mutex_unlock (&handoff_lock);

  g_atomic_int_set (&handoff_wanted, 0);
  g_mutex_lock (&tree_lock);

  return TRUE;
}

/* Sets the stop flag of @root and its descendants; @won collects (with a
 * reference) the tasks whose request this call made, parents before
 * children. A task already stopped is not descended into: its subtree was
 * stopped with it.
 *
 * With @may_yield, the lock may be released between batches for a waiting
 * thread (tree_lock_yield()). The walk keeps, per task on its path (held
 * in @won), a cursor in its children; across a release the child under a
 * cursor is referenced (its parent may release it meanwhile): if it left,
 * the walk starts that children list again, skipping stopped tasks. Dropping
 * the lock mid-way is safe for the stop invariant: a task whose flag is set
 * has only children whose flags are set or that this walk will visit;
 * add_child() on a stopped parent stops the newcomer itself. References
 * taken for a release go to @drop, released by the caller outside the
 * lock. */
typedef struct
{
  KillableTask *task;   /* (unowned) held in @won */
  GList        *next;   /* the next child to visit */
} WalkFrame;

static void
request_stop_locked (KillableTask *root,
                     const GError *reason,
                     GPtrArray    *won,
                     gboolean      may_yield,
                     GPtrArray    *drop)
{
  g_autoptr(GArray) frames = NULL;
  guint visited = 0;

  if (!killable_stop_state_request (STOP (root), reason))
    return;

  g_ptr_array_add (won, g_object_ref (root));
  if (NODE (root)->children.head == NULL)
    return;

  frames = g_array_new (FALSE, FALSE, sizeof (WalkFrame));
  g_array_append_vals (frames, &(WalkFrame) { root, NODE (root)->children.head }, 1);

  while (frames->len > 0)
    {
      WalkFrame *frame = &g_array_index (frames, WalkFrame, frames->len - 1);
      KillableTask *child;

      if (frame->next == NULL)
        {
          g_array_set_size (frames, frames->len - 1);
          continue;
        }

      child = frame->next->data;
      frame->next = frame->next->next;

      if (killable_stop_state_is_requested (STOP (child)) ||
          !killable_stop_state_request (STOP (child), reason))
        continue;

      g_ptr_array_add (won, g_object_ref (child));
      if (NODE (child)->children.head != NULL)
        g_array_append_vals (frames, &(WalkFrame) { child, NODE (child)->children.head }, 1);

      if (may_yield && ++visited % TREE_LOCK_BATCH == 0 &&
          g_atomic_int_get (&tree_lock_waiters) > 0)
        {
          /* Cannot toggle a binding's reference: each child is held by
           * its parent as well (see the top of this file). */
          for (guint i = 0; i < frames->len; i++)
            {
              WalkFrame *f = &g_array_index (frames, WalkFrame, i);

              if (f->next != NULL)
                g_ptr_array_add (drop, g_object_ref (f->next->data));
            }
          tree_lock_yield ();
          for (guint i = 0; i < frames->len; i++)
            {
              WalkFrame *f = &g_array_index (frames, WalkFrame, i);

              /* The child is alive (referenced), and so is its link; if
               * it left its parent, start the list again. */
              if (f->next != NULL && NODE (f->next->data)->parent != f->task)
                f->next = NODE (f->task)->children.head;
            }
        }
    }
}

/* The batched end of a stop: walks @won (parents before children)
 * backwards, so children come first, and ends at once each pending task
 * that nothing observes and that has no live child left
 * (killable_task_end_pending_locked()): its parent's count drops, it leaves
 * its parent. Its slot in @won is then tagged: ENDED, and LEFT when the
 * parent's reference became the caller's too. The others take the usual
 * path. Holds the lock in batches when a thread waits. @notify collects
 * (referenced) parents whose children model needs a sync, @steps
 * (referenced) parents to end now. */
#define ENDED_TAG ((guintptr) 1)
#define LEFT_TAG  ((guintptr) 2)

static void
end_pending_locked (GPtrArray *won,
                    GPtrArray *steps,
                    GPtrArray *notify)
{
  guint visited = 0;

  G_STATIC_ASSERT (G_ALIGNOF (GObject) >= 4);

  for (guint i = won->len; i-- > 0;)
    {
      KillableTask *task = g_ptr_array_index (won, i);
      KillableTreeNode *node = NODE (task);
      KillableTask *parent = node->parent;
      guintptr tags = ENDED_TAG;

      if (++visited % TREE_LOCK_BATCH == 0)
        tree_lock_yield ();

      if (node->n_live_children > 0 || node->failed_child != NULL ||
          (parent != NULL &&
           killable_tree_node_has_mark (NODE (parent), KILLABLE_TREE_MARK_KILL)) ||
          !killable_task_end_pending_locked (task))
        continue;

      /* As killable_tree_close_pending() and child_ended() do. */
      node->complete_when_children_end = FALSE;
      node->children_closed = TRUE;

      if (parent != NULL)
        {
          if (node->counted_in_parent &&
              (node->counted_in_parent = FALSE, --NODE (parent)->n_live_children == 0))
            {
              g_cond_broadcast (&tree_cond);
              if (NODE (parent)->complete_when_children_end)
                {
                  NODE (parent)->complete_when_children_end = FALSE;
                  g_ptr_array_add (steps, g_object_ref (parent));
                }
            }

          if (killable_tree_has_model (parent) &&
              (notify->len == 0 || g_ptr_array_index (notify, notify->len - 1) != parent))
            g_ptr_array_add (notify, g_object_ref (parent));

          if (!NODE (parent)->retain_children)
            {
              g_queue_unlink (&NODE (parent)->children, &node->sibling_link);
              node->parent = NULL;
              tags |= LEFT_TAG;
            }
        }

      g_ptr_array_index (won, i) = (gpointer) ((guintptr) task | tags);
    }
}

static void run_parent_step (KillableTask *parent,
                             int           step);
static gboolean release_session_begin (TaskStack *session);
static void     release_session_end   (TaskStack *session,
                                       gboolean   owner);

/* Stops @self's subtree: sets every flag (request_stop_locked()), ends the
 * pending tasks that nothing observes in the same pass, children first
 * (end_pending_locked()), and returns the other tasks whose request this
 * call made, parents first, for killable_task_request_stop_internal(). */
GPtrArray *
killable_tree_request_stop (KillableTask *self,
                            const GError *reason)
{
  GPtrArray *won = g_ptr_array_new ();
  g_autoptr(GPtrArray) drop = g_ptr_array_new ();
  g_autoptr(GPtrArray) steps = g_ptr_array_new ();
  g_autoptr(GPtrArray) notify = g_ptr_array_new ();
  GPtrArray *rest;
  TaskStack session;
  gboolean own_session;

  g_object_ref (self);
  tree_lock_acquire ();
  request_stop_locked (self, reason, won, TRUE, drop);
  end_pending_locked (won, steps, notify);
  g_mutex_unlock (&tree_lock);

  for (guint i = 0; i < steps->len; i++)
    run_parent_step (g_ptr_array_index (steps, i), 0 /* STEP_COMPLETE_PENDING */);
  for (guint i = 0; i < notify->len; i++)
    {
      killable_task_queue_emissions (g_ptr_array_index (notify, i), KILLABLE_EMIT_CHILDREN);
      g_object_unref (g_ptr_array_index (notify, i));
    }

  /* The tasks ended here are released (the parent's reference too when
   * they left it), in one release session; the others are returned, in
   * order, with their references. */
  rest = g_ptr_array_new_with_free_func (g_object_unref);
  own_session = release_session_begin (&session);
  for (guint i = 0; i < won->len; i++)
    {
      guintptr item = (guintptr) g_ptr_array_index (won, i);
      KillableTask *task = (KillableTask *) (item & ~(ENDED_TAG | LEFT_TAG));

      if ((item & ENDED_TAG) == 0)
        {
          g_ptr_array_add (rest, task);
          continue;
        }
      killable_task_end_pending_finish (task);
      if (item & LEFT_TAG)
        g_object_unref (task);
      g_object_unref (task);
    }
  for (guint i = 0; i < drop->len; i++)
    g_object_unref (g_ptr_array_index (drop, i));
  g_object_unref (self);
  release_session_end (&session, own_session);
  g_ptr_array_unref (won);

  return rest;
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

  tree_lock_acquire ();

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

  tree_lock_acquire ();
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

  tree_lock_acquire ();
  ret = NODE (self)->n_live_children > 0;
  g_mutex_unlock (&tree_lock);

  return ret;
}

/* A release session: while it runs on a thread, the references dropped
 * there (g_object_unref() or release_tasks()) that end in a dispose
 * queue the children instead of recursing. Returns TRUE if this call
 * started it (then release_session_end() runs the queue). */
static gboolean
release_session_begin (TaskStack *session)
{
  if (g_private_get (&release_queue) != NULL)
    return FALSE;

  session->len = 0;
  session->spill = NULL;
  g_private_set (&release_queue, session);

  return TRUE;
}

static void
release_session_end (TaskStack *session,
                     gboolean   owner)
{
  KillableTask *task;

  if (!owner)
    return;

  while ((task = task_stack_pop (session)) != NULL)
    g_object_unref (task);
  g_private_set (&release_queue, NULL);
  task_stack_clear (session);
}

static void
release_tasks (KillableTask **tasks,
               guint          n_tasks)
{
  TaskStack *queue = g_private_get (&release_queue);
  TaskStack local;
  KillableTask *task;

  if (queue != NULL)
    {
      for (guint i = 0; i < n_tasks; i++)
        task_stack_push (queue, tasks[i]);
      return;
    }

  local.len = 0;
  local.spill = NULL;
  for (guint i = 0; i < n_tasks; i++)
    task_stack_push (&local, tasks[i]);

  g_private_set (&release_queue, &local);
  while ((task = task_stack_pop (&local)) != NULL)
    g_object_unref (task);
  g_private_set (&release_queue, NULL);
  task_stack_clear (&local);
}

/* The end of a child can end its parent (stopped while pending, or killed
 * while a child could not be abandoned), whose end can end its own parent:
 * on a chain 100 000 deep that must not nest. Same trampoline as above:
 * the outermost call on a thread runs the queued steps in a loop (the step
 * is in the pointer's low bit: a task is aligned). */
typedef enum { STEP_COMPLETE_PENDING = 0, STEP_KILL = 1 } ParentStep;

static GPrivate parent_steps;

static void
run_parent_step (KillableTask *parent,   /* (transfer full) */
                 int           step)
{
  TaskStack *queue = g_private_get (&parent_steps);
  TaskStack local;
  gpointer item;

  G_STATIC_ASSERT (G_ALIGNOF (GObject) >= 2);

  if (queue != NULL)
    {
      task_stack_push (queue, (gpointer) ((guintptr) parent | step));
      return;
    }

  local.len = 0;
  local.spill = NULL;
  task_stack_push (&local, (gpointer) ((guintptr) parent | step));
  g_private_set (&parent_steps, &local);

  while ((item = task_stack_pop (&local)) != NULL)
    {
      KillableTask *task = (KillableTask *) ((guintptr) item & ~(guintptr) 1);

      switch ((ParentStep) ((guintptr) item & 1))
        {
        case STEP_COMPLETE_PENDING:
          killable_task_complete_pending (task, 0);
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
  task_stack_clear (&local);
}

static void
release_task (KillableTask *task)
{
  release_tasks (&task, 1);
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

  tree_lock_acquire ();

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
      request_stop_locked (child, reason, won, FALSE, NULL);
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
      request_stop_locked (child, reason, won, FALSE, NULL);
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

  tree_lock_acquire ();

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
      request_stop_locked (parent, reason, won, FALSE, NULL);
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

  tree_lock_acquire ();

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

  /* Stopped: the stop that set our flag stops every child (it may still be
   * on its way, holding this lock in batches: walking a large children
   * list here would only hold the lock longer and race it). */
  for (GList *l = killable_stop_state_is_requested (STOP (self)) ? NULL : priv->children.head;
       l != NULL; l = l->next)
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
  tree_lock_acquire ();
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
      tree_lock_acquire ();
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
  g_autoptr(GPtrArray) children = NULL;
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

  children = g_ptr_array_sized_new (priv->children.length + 1);
  while ((link = g_queue_pop_head_link (&priv->children)) != NULL)
    {
      KillableTask *child = link->data;

      NODE (child)->parent = NULL;
      NODE (child)->counted_in_parent = FALSE;
      g_ptr_array_add (children, child);
    }
  priv->n_live_children = 0;
  failed_child = g_steal_pointer (&priv->failed_child);
  g_clear_error (&priv->completion_reason);

  g_mutex_unlock (&tree_lock);

  if (failed_child != NULL)
    g_ptr_array_add (children, failed_child);
  release_tasks ((KillableTask **) children->pdata, children->len);

  g_clear_object (&priv->children_model);

  return TRUE;
}

/* The owner-side mirror {{{ */

static GPtrArray *
snapshot_children (KillableTask *self)
{
  GPtrArray *ret = g_ptr_array_new_with_free_func (g_object_unref);

  tree_lock_acquire ();
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

  tree_lock_acquire ();
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

  tree_lock_acquire ();
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

  tree_lock_acquire ();
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

  tree_lock_acquire ();
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

  tree_lock_acquire ();
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

  tree_lock_acquire ();

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

  tree_lock_acquire ();
  ret = NODE (self)->children.length;
  g_mutex_unlock (&tree_lock);

  return ret;
}

gboolean
killable_tree_has_failed_child (KillableTask *self)
{
  gboolean ret;

  tree_lock_acquire ();
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
 * copy of every tree is consistent; so is handoff_lock (taken after it, as
 * tree_lock_acquire() does), which a yielding stop may hold. */
void
killable_tree_fork_lock (gboolean lock)
{
  if (lock)
    {
      tree_lock_acquire ();
      g_mutex_lock (&handoff_lock);
    }
  else
    {
      g_mutex_unlock (&handoff_lock);
      g_mutex_unlock (&tree_lock);
    }
}
