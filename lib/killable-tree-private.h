/* killable-tree-private.h: a task's place in its tree
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>

#include "killable-task.h"

G_BEGIN_DECLS

/* Set on a whole subtree under the tree lock by kill() and interrupt(), so
 * that a child added later is killed or interrupted too. Two bits of a
 * task's tree byte (see below); killable-tree.c has the other six. */
typedef enum
{
  KILLABLE_TREE_MARK_INTERRUPT = 1 << 0,
  KILLABLE_TREE_MARK_KILL      = 1 << 1,
} KillableTreeMark;

typedef struct _KillableTree KillableTree;
typedef struct _KillableTreeParent KillableTreeParent;

/* Every field is protected by the lock of the task's tree (killable-tree.c:
 * each tree has its own). @tree_or_block and @parent are also read
 * atomically before that lock is known. The children are an intrusive
 * list of tasks: a child keeps its links here; what only a parent needs
 * (its children list, counts, completion reason, failed child, children
 * model) is in a KillableTreeParent block, allocated under the tree lock
 * when the task first needs it (its first child, its children model) and
 * freed only at finalize. @tree_or_block is the task's KillableTree (NULL:
 * a lone task) while it has no block, then the block (with the low bit
 * set), which holds the tree. Four pointers: the node is in every pending
 * task (issue 13). Its flags are not here but in the task's tree byte
 * (killable_task_get_tree_bits()), a byte of KillableTaskPrivate that was
 * padding. */
typedef struct
{
  guintptr            tree_or_block;  /* (atomic) see above */
  KillableTask       *parent;         /* (unowned) (atomic) */
  KillableTask       *prev_sibling;   /* (unowned) */
  KillableTask       *next_sibling;   /* (unowned) */
} KillableTreeNode;

/* A task's tree byte: KillableTreeMark and killable-tree.c's flags. Every
 * writer holds the task's tree lock; the store is atomic, for the readers
 * of a mark without the lock. */
static inline gboolean
killable_tree_bits_have_mark (const guint8    *bits,
                              KillableTreeMark  mark)
{
  return (__atomic_load_n (bits, __ATOMIC_ACQUIRE) & mark) != 0;
}

void       killable_tree_node_init         (KillableTreeNode *node,
                                            KillableTask     *task);
void       killable_tree_node_clear        (KillableTreeNode *node);
GPtrArray *killable_tree_request_stop      (KillableTask     *self,
                                            const GError     *reason);
GPtrArray *killable_tree_collect_subtree   (KillableTask     *self,
                                            KillableTreeMark  mark);
gboolean   killable_tree_interrupt_leaf    (KillableTask     *self,
                                            const GError     *reason,
                                            gboolean         *won);
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

/* For tests: while set, a batched stop (killable_tree_request_stop())
 * releases its tree lock at each point where it would let a waiting thread
 * have it (every TREE_LOCK_BATCH tasks it stopped), waiter or not, and
 * calls @hook there, on its own thread, without the lock. NULL turns it
 * off. Set it while no stop runs. */
typedef void (*KillableTreeYieldHook) (gpointer data);

void       killable_tree_set_yield_hook    (KillableTreeYieldHook hook,
                                            gpointer              data);

/* For tests: how many threads wait in @task's tree for a live-children
 * count to drop to 0 (killable_tree_before_completion()). */
guint      killable_tree_count_cond_waiters (KillableTask    *task);

G_END_DECLS
