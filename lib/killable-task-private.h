/* killable-task-private.h: what lib/ files may use of a task
 *
 * The task's private struct is defined in killable-task.c and read nowhere
 * else. Other modules reach the sub-states they own inside it (the tree
 * node, the stop state) through the accessors below, and subclasses in
 * lib/ use the protected helpers.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "killable-task.h"
#include "killable-owner-private.h"
#include "killable-stop-state-private.h"
#include "killable-tree-private.h"

G_BEGIN_DECLS

#define KILLABLE_TASK_STATE_IS_TERMINAL(s) ((s) >= KILLABLE_TASK_STATE_SUCCEEDED)

/* Offsets from a task's instance pointer, final once the class exists. */
extern gssize killable_task_tree_node_offset;
extern gssize killable_task_tree_bits_offset;
extern gssize killable_task_stop_state_offset;
extern gssize killable_task_work_offset;

/* The tree module's byte (see killable_tree_bits_have_mark()). */
static inline guint8 *
killable_task_get_tree_bits (KillableTask *self)
{
  return (guint8 *) self + killable_task_tree_bits_offset;
}

static inline KillableTreeNode *
killable_task_get_tree_node (KillableTask *self)
{
  return (KillableTreeNode *) ((guint8 *) self + killable_task_tree_node_offset);
}

static inline KillableStopState *
killable_task_get_stop_state (KillableTask *self)
{
  return (KillableStopState *) ((guint8 *) self + killable_task_stop_state_offset);
}

/* The block that holds the task's name and work function (malloc()'d,
 * set at construction, freed at finalize): for killable-tree.c's
 * prefetches only (a hint: its contents are the task's). */
static inline gconstpointer
killable_task_peek_work_block (KillableTask *self)
{
  return *(gconstpointer *) ((guint8 *) self + killable_task_work_offset);
}

/* For killable-tree.c */
void      killable_task_request_stop_internal (KillableTask   *self,
                                               const GError   *reason,
                                               gboolean        propagate);
gboolean  killable_task_complete_pending      (KillableTask   *self,
                                               guint           extra_emissions);
gboolean  killable_task_end_pending_locked    (KillableTask   *self);
void      killable_task_end_pending_finish    (KillableTask   *self);
void      killable_task_queue_emissions       (KillableTask   *self,
                                               guint           emissions);
void      killable_task_emit_setter           (KillableTask   *self,
                                               guint           emissions);
gint64    killable_task_get_own_deadline      (KillableTask   *self);

/* For killable-application.c */
gboolean  killable_task_has_abandoned_thread  (KillableTask   *self);
void      killable_task_set_abandoned_returned_func (void (*func) (void));

/* For tests: whether the task's run block (what only a started task, or
 * one that needed it, has) was allocated. */
gboolean  killable_task_has_run_block         (KillableTask   *self);

/* Protected: for subclasses in lib/ */
gboolean  killable_task_is_started            (KillableTask   *self);
void      killable_task_set_default_name      (KillableTask   *self,
                                               const char     *name);
void      killable_task_set_escalation_direct_kill (KillableTask *self,
                                                    gboolean      direct_kill);
void      killable_task_class_set_default_grace_period (KillableTaskClass *klass,
                                                        gint64             grace_usec);

G_END_DECLS
