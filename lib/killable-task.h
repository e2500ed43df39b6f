/* killable-task.h: a unit of work that can be stopped, interrupted or killed
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined(KILLABLE_INSIDE) && !defined(KILLABLE_COMPILATION)
# error "Only <killable.h> can be included directly."
#endif

#include <gio/gio.h>

#include "killable-limiter.h"
#include "killable-version-macros.h"

G_BEGIN_DECLS

/**
 * KillableTaskState:
 * @KILLABLE_TASK_STATE_PENDING: created, not started yet.
 * @KILLABLE_TASK_STATE_RUNNING: started; its `run` is running or about to.
 * @KILLABLE_TASK_STATE_STOPPING: a stop was requested while it ran; it has
 *   not ended yet.
 * @KILLABLE_TASK_STATE_SUCCEEDED: `run` returned %TRUE (terminal).
 * @KILLABLE_TASK_STATE_FAILED: `run` failed with an error that is not a
 *   cancellation, or a child failed under
 *   %KILLABLE_CHILD_POLICY_FAIL_FAST (terminal).
 * @KILLABLE_TASK_STATE_CANCELLED: the task ended because a stop was
 *   requested: `run` reported a cancellation, or never ran (terminal).
 * @KILLABLE_TASK_STATE_KILLED: the task was killed: its owner was released
 *   at once without waiting for the work (terminal).
 *
 * The life cycle of a [class@Killable.Task]. A task moves forward only:
 * `PENDING → RUNNING → STOPPING →` one terminal state, possibly skipping
 * steps. Each transition happens once, atomically, and a terminal state
 * never changes.
 *
 * Since: 1.0
 */
typedef enum
{
  KILLABLE_TASK_STATE_PENDING,
  KILLABLE_TASK_STATE_RUNNING,
  KILLABLE_TASK_STATE_STOPPING,
  KILLABLE_TASK_STATE_SUCCEEDED,
  KILLABLE_TASK_STATE_FAILED,
  KILLABLE_TASK_STATE_CANCELLED,
  KILLABLE_TASK_STATE_KILLED,
} KillableTaskState;

/**
 * KillableChildPolicy:
 * @KILLABLE_CHILD_POLICY_FAIL_FAST: a child that fails stops its parent,
 *   and so its siblings, with %KILLABLE_ERROR_CHILD_FAILED; the parent then
 *   ends %KILLABLE_TASK_STATE_FAILED.
 * @KILLABLE_CHILD_POLICY_ISOLATE: a child's failure stays with the child.
 *
 * What a parent does when one of its children fails.
 *
 * Since: 1.0
 */
typedef enum
{
  KILLABLE_CHILD_POLICY_FAIL_FAST,
  KILLABLE_CHILD_POLICY_ISOLATE,
} KillableChildPolicy;

#define KILLABLE_TYPE_TASK (killable_task_get_type ())

KILLABLE_AVAILABLE_IN_1_0
G_DECLARE_DERIVABLE_TYPE (KillableTask, killable_task, KILLABLE, TASK, GObject)

/**
 * KillableTaskFunc:
 * @task: the running task
 * @user_data: the data given with the function
 * @error: return location for the reason the work failed
 *
 * The work of a task created with [ctor@Killable.Task.new]. It runs on the
 * task's worker thread and should call [method@Killable.Task.check] now and
 * then, or block only through the task ([method@Killable.Task.sleep],
 * [method@Killable.Task.wait_fd], GIO calls given
 * [method@Killable.Task.get_cancellable]).
 *
 * Returns: %TRUE on success, %FALSE with @error set otherwise
 *
 * Since: 1.0
 */
typedef gboolean (*KillableTaskFunc)    (KillableTask  *task,
                                         gpointer       user_data,
                                         GError       **error);

/**
 * KillableStopFunc:
 * @task: the task whose stop was requested
 * @reason: (nullable): the cause given to
 *   [method@Killable.Task.stop_with_error], or %NULL for a plain stop
 * @user_data: the data given with the callback
 *
 * A stop callback: see [method@Killable.Task.add_stop_callback]. It runs
 * synchronously in the thread that requested the stop and must not block.
 *
 * Since: 1.0
 */
typedef void     (*KillableStopFunc)    (KillableTask  *task,
                                         const GError  *reason,
                                         gpointer       user_data);

/**
 * KillableCleanupFunc:
 * @task: the task that ended
 * @user_data: the data given with the function
 *
 * A cleanup handler: see [method@Killable.Task.add_cleanup].
 *
 * Since: 1.0
 */
typedef void     (*KillableCleanupFunc) (KillableTask  *task,
                                         gpointer       user_data);

/**
 * KillableTaskClass:
 * @parent_class: the parent class
 * @run: the work. Runs on the worker thread; returns %TRUE on success or
 *   %FALSE with the error set. The default calls the function given to
 *   [ctor@Killable.Task.new], or fails if there is none.
 * @interrupt: the forced path of [method@Killable.Task.interrupt], called
 *   in the interrupting thread after the stop was requested. The default
 *   makes a blocked system call of the worker return `EINTR` when
 *   [property@Killable.Task:interrupt-syscalls] is set. Bindings chain up
 *   and add their own (the Python override raises an asynchronous
 *   exception).
 * @kill: the last rung, called in the killing thread after the stop was
 *   requested. The default abandons the worker thread (see
 *   [method@Killable.Task.kill]); [class@Killable.ProcessTask] sends
 *   `SIGKILL` to its process group.
 * @stop_requested: class handler of [signal@Killable.Task::stop-requested].
 * @finished: class handler of [signal@Killable.Task::finished].
 *
 * The class of [class@Killable.Task]. Subclasses override @run; they chain
 * up in @interrupt and @kill.
 *
 * Since: 1.0
 */
/**
 * KillableTaskClass::run:
 * @self: the task
 * @error: return location for the reason the work failed
 *
 * The work of the task. It runs once, on the task's worker thread, and
 * should call [method@Killable.Task.check] now and then, or block only
 * through the task ([method@Killable.Task.sleep],
 * [method@Killable.Task.wait_fd], GIO calls given
 * [method@Killable.Task.get_cancellable]). The default calls the function
 * given to [ctor@Killable.Task.new], or fails if there is none.
 *
 * Returns: %TRUE on success, %FALSE with @error set otherwise
 *
 * Since: 1.0
 */

/**
 * KillableTaskClass::stop_requested:
 * @self: the task
 * @reason: (nullable): the cause given to
 *   [method@Killable.Task.stop_with_error], or %NULL for a plain stop
 *
 * Class handler of [signal@Killable.Task::stop-requested], run on the
 * owner's main context after a stop of the task was requested.
 *
 * Since: 1.0
 */

/**
 * KillableTaskClass::finished:
 * @self: the task
 *
 * Class handler of [signal@Killable.Task::finished], run once on the
 * owner's main context after the task reached its terminal state.
 *
 * Since: 1.0
 */

/**
 * KillableTaskClass::set_paused:
 * @self: the task
 * @paused: %TRUE to pause, %FALSE to resume
 *
 * Applies a pause or a resume: the default makes
 * [method@Killable.Task.check], [method@Killable.Task.sleep] and
 * [method@Killable.Task.wait_fd] block while paused;
 * [class@Killable.ProcessTask] freezes its program instead. Called by
 * [method@Killable.Task.pause] and [method@Killable.Task.resume] only when
 * the state changes, serialized with every other pause and resume (under a
 * lock: do not call either from it), never for a task whose stop was
 * requested (a stop lifts the pause by itself).
 *
 * Returns: %TRUE if the task is now paused (@paused %TRUE) or resumed; %FALSE
 *   to refuse a pause (the task is being stopped)
 *
 * Since: 1.2
 */

struct _KillableTaskClass
{
  GObjectClass parent_class;

  gboolean (*run)            (KillableTask  *self,
                              GError       **error);
  void     (*interrupt)      (KillableTask  *self);
  void     (*kill)           (KillableTask  *self);

  void     (*stop_requested) (KillableTask  *self,
                              const GError  *reason);
  void     (*finished)       (KillableTask  *self);

  gboolean (*set_paused)     (KillableTask  *self,
                              gboolean       paused);

  /*< private >*/
  gpointer _reserved[11];
};

/* Owner side */
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_pause                 (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_resume                (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_2
gboolean            killable_task_is_paused             (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
KillableTask       *killable_task_new                   (const char           *name,
                                                         KillableTaskFunc      func,
                                                         gpointer              user_data,
                                                         GDestroyNotify        notify);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_start                 (KillableTask         *self,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_run_async             (KillableTask         *self,
                                                         GCancellable         *cancellable,
                                                         GAsyncReadyCallback   callback,
                                                         gpointer              user_data);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_run_finish            (KillableTask         *self,
                                                         GAsyncResult         *result,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_join                  (KillableTask         *self,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_wait                  (KillableTask         *self,
                                                         gint64                timeout_usec);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_stop                  (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_stop_with_error       (KillableTask         *self,
                                                         const GError         *reason);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_interrupt             (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_kill                  (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_set_timeout           (KillableTask         *self,
                                                         gint64                timeout_usec);
KILLABLE_AVAILABLE_IN_1_0
gint64              killable_task_get_timeout           (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
gint64              killable_task_get_deadline          (KillableTask         *self);

/* Properties */
KILLABLE_AVAILABLE_IN_1_0
const char         *killable_task_get_name              (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
KillableTaskState   killable_task_get_state             (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_is_finished           (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
double              killable_task_get_progress          (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_set_progress          (KillableTask         *self,
                                                         double                progress);
KILLABLE_AVAILABLE_IN_1_0
char               *killable_task_dup_status            (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_set_status            (KillableTask         *self,
                                                         const char           *status);
KILLABLE_AVAILABLE_IN_1_0
const GError       *killable_task_get_error             (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
gint64              killable_task_get_grace_period      (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_set_grace_period      (KillableTask         *self,
                                                         gint64                grace_usec);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_get_interrupt_syscalls(KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_set_interrupt_syscalls(KillableTask         *self,
                                                         gboolean              interrupt_syscalls);
KILLABLE_AVAILABLE_IN_1_0
GCancellable       *killable_task_get_cancellable       (KillableTask         *self);

/* Worker side */
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_check                 (KillableTask         *self,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_is_stop_requested     (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_sleep                 (KillableTask         *self,
                                                         gint64                usec,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_0
GIOCondition        killable_task_wait_fd               (KillableTask         *self,
                                                         int                   fd,
                                                         GIOCondition          condition,
                                                         gint64                timeout_usec,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_add_cleanup           (KillableTask         *self,
                                                         KillableCleanupFunc   func,
                                                         gpointer              user_data,
                                                         GDestroyNotify        notify);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_set_abandonable       (KillableTask         *self,
                                                         gboolean              abandonable);
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_shield_begin          (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_2
gboolean            killable_task_shield_end            (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
KillableTask       *killable_task_get_current           (void);

/* Fast path (C) */
KILLABLE_AVAILABLE_IN_1_2
const int          *killable_task_get_stop_flag         (KillableTask         *self);

/* Not API: what the inline below reads, set by the library when the class
 * is created. @stop_flag_offset is the distance in bytes from a task
 * instance to its stop flag: read at run time, never compiled into callers,
 * so no layout is frozen. @always_slow is a word that is never zero: the
 * inline reads it for a %NULL task, which then takes the slow path (and its
 * critical). Callers see the struct const, so that a loop computes the
 * flag's address once; loaded before the class exists, the offset reads 0,
 * the instance's class pointer, which is never zero either. */
#ifndef __GI_SCANNER__
typedef struct
{
  gssize stop_flag_offset;
  int    always_slow;
} _KillableTaskFastPath;

# ifdef KILLABLE_COMPILATION
KILLABLE_AVAILABLE_IN_1_2
_KillableTaskFastPath       _killable_task_fast_path;
# else
KILLABLE_AVAILABLE_IN_1_2
const _KillableTaskFastPath _killable_task_fast_path;
# endif
#endif

/* killable_task_check() for C callers: one relaxed load of the task's stop
 * flag while it is zero (the g_once_init_enter() pattern); anything else,
 * and a %NULL task, goes to the exported function, which is what bindings
 * and the introspection scanner see. The flag's address depends only on
 * the task, so a loop computes it once. Define KILLABLE_NO_INLINE_CHECK to
 * always call the function. */
#ifndef __GI_SCANNER__
#if !defined(KILLABLE_COMPILATION) && !defined(KILLABLE_NO_INLINE_CHECK) && \
    defined(__GNUC__)
# define killable_task_check(self, error)                                    \
  (G_GNUC_EXTENSION ({                                                       \
    KillableTask *_killable_check_self = (self);                             \
    guintptr _killable_check_slow =                                          \
      (guintptr) &_killable_task_fast_path.always_slow;                      \
    const int *_killable_check_flag = (const int *) (const void *)           \
      (_killable_check_slow + (guintptr) (_killable_check_self != NULL) *    \
       ((guintptr) _killable_check_self +                                    \
        (guintptr) _killable_task_fast_path.stop_flag_offset -               \
        _killable_check_slow));                                              \
    __builtin_expect (__atomic_load_n (_killable_check_flag,                 \
                                       __ATOMIC_RELAXED) == 0, 1)            \
      ? TRUE                                                                 \
      : (killable_task_check) (_killable_check_self, (error));               \
  }))
#endif
#endif /* __GI_SCANNER__ */

/* Stop callbacks */
KILLABLE_AVAILABLE_IN_1_0
gulong              killable_task_add_stop_callback     (KillableTask         *self,
                                                         KillableStopFunc      func,
                                                         gpointer              user_data,
                                                         GDestroyNotify        notify);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_remove_stop_callback  (KillableTask         *self,
                                                         gulong                id);

/* Trees */
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_add_child             (KillableTask         *self,
                                                         KillableTask         *child,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_0
KillableTask       *killable_task_dup_parent            (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
GListModel         *killable_task_get_children          (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
KillableChildPolicy killable_task_get_child_policy      (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_set_child_policy      (KillableTask         *self,
                                                         KillableChildPolicy   policy);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_task_get_retain_children   (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_0
void                killable_task_set_retain_children   (KillableTask         *self,
                                                         gboolean              retain);

/* Application integration */
KILLABLE_AVAILABLE_IN_1_2
KillableTask       *killable_task_new_group             (const char           *name);
KILLABLE_AVAILABLE_IN_1_2
gboolean            killable_task_is_group              (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_return_value          (KillableTask         *self,
                                                         const GValue         *value);
KILLABLE_AVAILABLE_IN_1_2
gboolean            killable_task_propagate_value       (KillableTask         *self,
                                                         GValue               *value,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_wait_async            (KillableTask         *self,
                                                         GCancellable         *cancellable,
                                                         GAsyncReadyCallback   callback,
                                                         gpointer              user_data);
KILLABLE_AVAILABLE_IN_1_2
gboolean            killable_task_wait_finish           (KillableTask         *self,
                                                         GAsyncResult         *result,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_set_limiter           (KillableTask         *self,
                                                         KillableLimiter      *limiter);
KILLABLE_AVAILABLE_IN_1_2
KillableLimiter    *killable_task_get_limiter           (KillableTask         *self);
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_bind_application      (KillableTask         *self,
                                                         GApplication         *application);
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_shutdown_async        (KillableTask         *self,
                                                         gint64                grace_usec,
                                                         GCancellable         *cancellable,
                                                         GAsyncReadyCallback   callback,
                                                         gpointer              user_data);
KILLABLE_AVAILABLE_IN_1_2
gboolean            killable_task_shutdown_finish       (KillableTask         *self,
                                                         GAsyncResult         *result,
                                                         GError              **error);
KILLABLE_AVAILABLE_IN_1_2
void                killable_task_stop_on_unix_signals  (KillableTask         *self);

/* Process-wide */
KILLABLE_AVAILABLE_IN_1_0
guint               killable_get_abandoned_thread_count (void);
KILLABLE_AVAILABLE_IN_1_0
int                 killable_get_interrupt_signal       (void);
KILLABLE_AVAILABLE_IN_1_0
gboolean            killable_set_interrupt_signal       (int                   signum,
                                                         GError              **error);

G_END_DECLS
