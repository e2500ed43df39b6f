/* killable-tree-private.h: a task's place in its tree
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>

#include "killable-task.h"

G_BEGIN_DECLS

/* Set on a whole subtree under the tree lock by kill() and interrupt(), so
 * that a child added later is killed or interrupted too. */
typedef enum
{
  KILLABLE_TREE_MARK_INTERRUPT = 1 << 0,
  KILLABLE_TREE_MARK_KILL      = 1 << 1,
} KillableTreeMark;

typedef struct _KillableTree KillableTree;

/* Every field is protected by the lock of the task's tree (killable-tree.c:
 * each tree has its own), except @marks (also atomic) and @children_model
 * (owner thread only). @tree and @parent are also read atomically before
 * that lock is known. The children are an intrusive list of tasks. */
typedef struct
{
  KillableTree *tree;               /* (atomic) (nullable) NULL: a lone task */
  KillableTask *parent;             /* (unowned) (atomic) */
  KillableTask *first_child;        /* (owned) each child holds a ref */
  KillableTask *last_child;         /* (unowned) */
  KillableTask *prev_sibling;       /* (unowned) */
  KillableTask *next_sibling;       /* (unowned) */
  guint         n_children;         /* (atomic) */
  guint         n_live_children;
  guint         counted_in_parent : 1; /* counted in parent->n_live_children */
  guint         work_returned : 1;  /* the work returned: new pending children are stopped */
  guint         children_closed : 1;/* the work returned and children ended: no new child */
  guint         complete_when_children_end : 1; /* stopped while pending, children still live */
  guint         retain_children : 1;
  int           marks;              /* (atomic) KillableTreeMark */
  int           child_policy;       /* KillableChildPolicy */
  GError       *completion_reason;  /* (owned) (nullable) the failed work's error, for new children */
  KillableTask *failed_child;       /* (owned) (nullable) */
  GListStore   *children_model;     /* (owned) (nullable) owner-side mirror, owner thread only */
} KillableTreeNode;

static inline gboolean
killable_tree_node_has_mark (KillableTreeNode *node,
                             KillableTreeMark  mark)
{
  return (g_atomic_int_get (&node->marks) & mark) != 0;
}

void       killable_tree_node_init         (KillableTreeNode *node,
                                            KillableTask     *task);
GPtrArray *killable_tree_request_stop      (KillableTask     *self,
                                            const GError     *reason);
GPtrArray *killable_tree_collect_subtree   (KillableTask     *self,
                                            KillableTreeMark  mark);
gboolean   killable_tree_close_pending     (KillableTask     *self,
                                            gboolean         *child_failed);
gboolean   killable_tree_has_live_children (KillableTask     *self);
gboolean   killable_tree_has_failed_child  (KillableTask     *self);
gboolean   killable_tree_has_model         (KillableTask     *self);
void       killable_tree_child_ended       (KillableTask     *child);
void       killable_tree_before_completion (KillableTask     *self,
                                            gboolean          run_failed,
                                            const GError     *run_error);
gboolean   killable_tree_dispose           (KillableTask     *self);
void       killable_tree_sync_model        (KillableTask     *self);
gint64     killable_tree_get_deadline      (KillableTask     *self);
guint      killable_tree_count_children    (KillableTask     *self);

void       killable_tree_fork_lock         (gboolean          lock);

G_END_DECLS
