/* killable-task-private.h: the task's private data, shared by lib/ files
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "killable-error.h"
#include "killable-task.h"
#include "killable-owner-private.h"
#include "killable-stop-state-private.h"

G_BEGIN_DECLS

typedef enum
{
  KILLABLE_ABANDON_ALLOWED   = 0,
  KILLABLE_ABANDON_COMMITTED = 1,   /* the worker said "do not abandon me" */
  KILLABLE_ABANDON_DONE      = 2,   /* abandoned: the task is KILLED */
} KillableAbandonState;

typedef struct _KillableTaskPrivate KillableTaskPrivate;

struct _KillableTaskPrivate
{
  KillableStopState   stop;              /* first: killable_task_check() reads it */

  int                 state;             /* (atomic) KillableTaskState */
  int                 abandon;           /* (atomic) KillableAbandonState */
  int                 kill_requested;    /* (atomic) */
  int                 interrupt_syscalls;/* (atomic) */
  int                 started;           /* (atomic) */
  int                 dispatched;        /* (atomic) handed to a worker thread */

  GMutex              lock;
  GCond               cond;              /* join()/wait(): terminal state reached */
  guint               n_cond_waiters;    /* protected by @lock: threads waiting on @cond */

  char               *name;              /* (owned) immutable after construction */
  KillableTaskFunc    func;              /* immutable after construction */
  gpointer            func_data;
  GDestroyNotify      func_notify;

  GCancellable       *cancellable;       /* (owned) (nullable) created lazily, protected by @lock */
  GError             *error;             /* (owned) (nullable) set once with the terminal state, then immutable */
  GSList             *cleanups;          /* (owned) LIFO, protected by @lock */
  gboolean            cleanups_done;     /* protected by @lock */
  double              progress;          /* protected by @lock */
  char               *status;            /* (owned) protected by @lock */
  gint64              grace_period;      /* protected by @lock */
  gint64              timeout;           /* protected by @lock; -1 = none */
  gint64              start_time;        /* monotonic, set once by start */
  GTask              *async_task;        /* (owned) (nullable) run_async's, protected by @lock */
  gulong              async_cancel_id;   /* protected by @lock */
  GCancellable       *async_cancellable; /* (owned) (nullable) protected by @lock */

  KillableOwner       owner;             /* protected by @lock */

  /* Timer-thread sources, protected by @lock */
  GSource            *timeout_source;
  GSource            *escalation_source;
  GSource            *interrupt_source;
  int                 escalation_step;
  gboolean            escalation_direct_kill; /* skip the interrupt rung (process tasks) */
  gint64              interrupt_delay;   /* next repeat of the interrupt signal */
  gboolean            interrupt_armed;   /* signals go to @worker while set */
  gboolean            worker_active;     /* @worker is inside run(), protected by @lock */
  gpointer            worker;            /* pthread_t of the worker, valid while @worker_active */

  /* Tree, protected by the global tree lock (killable-tree.c) */
  KillableTask       *parent;            /* (unowned) */
  GQueue              children;          /* (owned) KillableTask*, elements own a ref */
  GList               sibling_link;      /* this task's node in parent->children */
  guint               n_live_children;
  gboolean            counted_in_parent; /* counted in parent->n_live_children */
  gboolean            work_returned;     /* the work returned: new pending children are stopped */
  GError             *completion_reason; /* (owned) (nullable) the failed work's error, for new children */
  gboolean            children_closed;   /* the work returned and children ended: no new child */
  gboolean            complete_when_children_end; /* stopped while pending, children still live */
  int                 interrupt_requested; /* (atomic) set under the tree lock with the subtree */
  int                 child_policy;      /* KillableChildPolicy */
  gboolean            retain_children;
  KillableTask       *failed_child;      /* (owned) (nullable) */
  GListStore         *children_model;    /* (owned) (nullable) owner-side mirror, owner thread only */
};

KillableTaskPrivate *killable_task_get_private_data (KillableTask *self);

#define KILLABLE_TASK_STATE_IS_TERMINAL(s) ((s) >= KILLABLE_TASK_STATE_SUCCEEDED)

/* killable-task.c */
void      killable_task_request_stop_internal (KillableTask   *self,
                                               const GError   *reason,
                                               gboolean        propagate);
gboolean  killable_task_abandon               (KillableTask   *self);
gboolean  killable_task_complete_killed       (KillableTask   *self);
gboolean  killable_task_complete_pending      (KillableTask   *self);
GError   *killable_task_make_error            (KillableTask   *self,
                                               KillableError   code);

/* killable-tree.c */
void      killable_tree_lock                  (void);
void      killable_tree_unlock                (void);
GPtrArray*killable_tree_request_stop          (KillableTask   *self,
                                               const GError   *reason);
GPtrArray*killable_tree_collect_subtree       (KillableTask   *self,
                                               int             flag_offset);
gboolean  killable_tree_close_pending         (KillableTask   *self,
                                               gboolean       *child_failed);
gboolean  killable_tree_has_live_children     (KillableTask   *self);
void      killable_tree_child_ended           (KillableTask   *child);
void      killable_tree_before_completion     (KillableTask   *self,
                                               gboolean        run_failed,
                                               const GError   *run_error);
gboolean  killable_tree_dispose               (KillableTask   *self);
void      killable_tree_sync_model            (KillableTask   *self);
gint64    killable_tree_get_deadline          (KillableTask   *self);

/* killable-escalation.c */
GSource  *killable_timer_add                  (gint64          ready_time,
                                               GSourceFunc     func,
                                               gpointer        data,
                                               GDestroyNotify  notify);
void      killable_escalation_arm_timeout     (KillableTask   *self);
void      killable_escalation_start           (KillableTask   *self);
void      killable_escalation_cancel          (KillableTask   *self);

/* killable-interrupt.c */
void      killable_interrupt_worker_enter     (KillableTask   *self);
void      killable_interrupt_worker_leave     (KillableTask   *self);
void      killable_interrupt_syscalls         (KillableTask   *self);
void      killable_interrupt_abandoned_returned (void);

/* killable-error.c */
void      killable_i18n_init                  (void);

G_END_DECLS
