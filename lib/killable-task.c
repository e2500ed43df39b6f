/* killable-task.c: a unit of work that can be stopped, interrupted or killed
 *
 * Owns: the GObject (properties, signals), the state machine, start, join,
 * run_async, results, cleanups, the worker's record (for EINTR), abandon
 * and the abandoned-thread count, the current task. Its private struct
 * embeds the sub-states of the modules it drives (stop state, owner, tree
 * node), each guarded by its own module's lock.
 * Memory: a pending task carries only what it needs before it runs (160
 * bytes of private data on x86-64); what matters once it runs (cancellable,
 * error, cleanups, progress, status, async, the worker's record, result,
 * waiters, limiter, and the escalation module's state) is in a run block
 * allocated at the start or on first use (get_run()), never freed before
 * finalize. New per-task state that a pending task does not need goes
 * there.
 * Locks: KillableTaskPrivate.lock guards the fields marked so below (in
 * the run block too); the state, abandon, dispatched and lazy-error bytes,
 * the bits byte and the run block pointer are atomic. Under it the owner
 * lock may be taken (emissions are queued under it, see complete_full());
 * no user code runs under it.
 * Called by: the public API, killable-tree.c and subclasses in lib/
 * (through killable-task-private.h). Calls: killable-tree.c (task and tree
 * call each other), and the leaves: stop state, owner, escalation, signal,
 * worker pool, error, timer (the signal a shield held back).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "killable-enums.h"
#include "killable-text-private.h"
#include "killable-error-private.h"
#include "killable-escalation-private.h"
#include "killable-fork-private.h"
#include "killable-limiter-private.h"
#include "killable-signal-private.h"
#include "killable-task-private.h"
#include "killable-sync-private.h"
#include "killable-timer-private.h"
#include "killable-worker-pool-private.h"

/**
 * KillableTask:
 *
 * A unit of work on a thread of its own that can be stopped cooperatively,
 * interrupted, or killed, with cleanup that always runs.
 *
 * The work is the [vfunc@Killable.Task.run] virtual function (override it in
 * a subclass) or the function given to [ctor@Killable.Task.new]. Start it
 * with [method@Killable.Task.start] and wait for it with
 * [method@Killable.Task.join], or use [method@Killable.Task.run_async] from
 * a main loop.
 *
 * ```c
 * static gboolean
 * count (KillableTask *task, gpointer data, GError **error)
 * {
 *   for (guint i = 0; i < 1000; i++)
 *     {
 *       if (!killable_task_sleep (task, 10 * G_TIME_SPAN_MILLISECOND, error))
 *         return FALSE;
 *       killable_task_set_progress (task, (i + 1) / 1000.);
 *     }
 *   return TRUE;
 * }
 *
 * g_autoptr(KillableTask) task = killable_task_new ("count", count, NULL, NULL);
 * g_autoptr(GError) error = NULL;
 *
 * killable_task_start (task, NULL);
 * killable_task_stop (task);
 * if (!killable_task_join (task, &error))
 *   g_print ("%s\n", error->message);   // Task “count” was stopped
 * ```
 *
 * ## The ladder
 *
 * 1. [method@Killable.Task.stop] asks the work to stop: the
 *    [property@Killable.Task:cancellable] is cancelled, stop callbacks run,
 *    every [method@Killable.Task.sleep] and [method@Killable.Task.wait_fd]
 *    returns at once and [method@Killable.Task.check] starts failing.
 * 2. [method@Killable.Task.interrupt] also forces the worker: a C worker
 *    that set [property@Killable.Task:interrupt-syscalls] sees its blocking
 *    system call fail with `EINTR`; the Python override raises an
 *    exception in the worker.
 * 3. [method@Killable.Task.kill] releases the owner at once: the task is
 *    %KILLABLE_TASK_STATE_KILLED and its thread is abandoned, still running
 *    until its work returns; its late result is dropped and its cleanups
 *    still run then. A [class@Killable.ProcessTask] gets `SIGKILL` instead.
 *
 * With [property@Killable.Task:grace-period] set, a stopped task that has
 * not ended climbs the ladder by itself, one rung per grace period.
 *
 * ## Pausing
 *
 * [method@Killable.Task.pause] pauses a task and [method@Killable.Task.resume]
 * resumes it; [property@Killable.Task:paused] tells which. In a task that
 * runs a function, the pause is cooperative: while paused,
 * [method@Killable.Task.check], [method@Killable.Task.sleep] and
 * [method@Killable.Task.wait_fd] block (the stop flag of
 * [method@Killable.Task.get_stop_flag] is non-zero meanwhile, so the C
 * inline check takes the slow path). A [class@Killable.ProcessTask] is
 * frozen (`cgroup.freeze`, or `SIGSTOP` to what it contains). A stop lifts
 * the pause first, so a paused task stops as promptly as a running one.
 *
 * ## Thread safety
 *
 * Every function may be called from any thread unless its documentation
 * names one. The work and the cleanups run on the task's worker thread; stop
 * callbacks run in the thread that requested the stop. Signals and property
 * notifications are emitted on the *owner's main context* (the
 * thread-default main context of the thread that called
 * [method@Killable.Task.start] or [method@Killable.Task.run_async]), never
 * on a worker thread, so GTK and GJS handlers are safe. They are queued only
 * when something is connected to them, and emitted when that context is
 * iterated.
 *
 * ## Signal handlers
 *
 * No libkillable function may be called from a POSIX signal handler: none
 * is async-signal-safe (they take locks, allocate and emit signals; a
 * handler that interrupts a thread holding one of those locks deadlocks).
 * To stop tasks on `SIGINT` or `SIGTERM`, let the main loop dispatch the
 * signal, with `g_unix_signal_add()` or
 * `killable_task_stop_on_unix_signals()` (Since 1.2), and call
 * [method@Killable.Task.stop] from there.
 *
 * ## fork()
 *
 * After `fork()`, the child can start tasks, its timeouts fire and its
 * process tasks run: the library's locks are held across the fork and its
 * thread cache and timer thread start afresh in the child. Tasks that were
 * running in the parent are not running in the child (only the forking
 * thread crosses a fork); their timers do not fire there. As with any
 * GLib program, another thread of the application that is inside GLib at
 * the fork may leave one of GLib's locks held in the child.
 *
 * Since: 1.0
 */

enum {
  PROP_0,
  PROP_NAME,
  PROP_STATE,
  PROP_PROGRESS,
  PROP_STATUS,
  PROP_ERROR,
  PROP_GRACE_PERIOD,
  PROP_INTERRUPT_SYSCALLS,
  PROP_TIMEOUT,
  PROP_PARENT,
  PROP_CHILDREN,
  PROP_CHILD_POLICY,
  PROP_RETAIN_CHILDREN,
  PROP_CANCELLABLE,
  PROP_LIMITER,
  PROP_PAUSED,
  N_PROPS
};

enum {
  STOP_REQUESTED,
  FINISHED,
  N_SIGNALS
};

typedef struct
{
  KillableCleanupFunc func;
  gpointer            user_data;
  GDestroyNotify      notify;
} Cleanup;

typedef enum
{
  KILLABLE_ABANDON_ALLOWED   = 0,
  KILLABLE_ABANDON_COMMITTED = 1,   /* the worker said "do not abandon me" */
  KILLABLE_ABANDON_DONE      = 2,   /* abandoned: the task is KILLED */
} KillableAbandonState;

/* The name and the work function, in one small allocation: a pointer in
 * the task instead of four. Set during construction, then immutable. From
 * malloc(), not the slice allocator of GLib 2.74: its thread cache costs
 * ~150 fewer instructions per task created and freed, for 14 more bytes
 * with a short name. */
typedef struct
{
  KillableTaskFunc    func;
  gpointer            data;
  GDestroyNotify      notify;
  char                name[];            /* NUL-terminated */
} KillableTaskWork;

static KillableTaskWork *
work_new (const char *name)
{
  gsize len = strlen (name) + 1;
  KillableTaskWork *work = g_malloc (G_STRUCT_OFFSET (KillableTaskWork, name) + len);

  work->func = NULL;
  work->data = NULL;
  work->notify = NULL;
  memcpy (work->name, name, len);

  return work;
}

static void
work_free (KillableTaskWork *work)
{
  g_free (work);
}

/* The run block: what only matters once the task runs (or for some tasks
 * only), so that a pending task stays small. Allocated at the start or on
 * first use (get_run()), published with an atomic pointer store (the first
 * of two racing allocations wins), never freed before finalize: readers may
 * keep pointers into it. Every path that may run before the start copes
 * with its absence (peek_run() returns NULL): the getters then return the
 * defaults (progress 0, status NULL, no error, timeout and grace period
 * -1, no cleanup, no waiter, no limiter). */
typedef struct
{
  GCond               cond;              /* join()/wait(): terminal state reached, with the task's @lock */
  guint               n_cond_waiters;    /* task lock: threads waiting on @cond */

  /* The worker, for the EINTR path: signals go to @worker only while it is
   * inside run() and armed, so that a cached idle thread or another task's
   * work never gets one. Protected by the task lock. */
  guint               worker_active : 1;
  guint               interrupt_armed : 1;
  guint               queued : 1;        /* task lock: waiting in the limiter's queue */
  guint               holds_permit : 1;  /* task lock: holds one of the limiter's permits */
  guint8              release;           /* (atomic) ReleaseBits: who drops the worker's reference */
  pthread_t           worker;

  GCancellable       *cancellable;       /* (owned) (nullable) created lazily, protected by the task lock */
  GError             *error;             /* (owned) (nullable) set once with the terminal state (or built
                                          * on first read when the task's @error_lazy), then immutable */
  GSList             *cleanups;          /* (owned) LIFO, protected by the task lock */
  double              progress;          /* protected by the task lock */
  char               *status;            /* (owned) protected by the task lock */
  GTask              *async_task;        /* (owned) (nullable) run_async's, protected by the task lock */
  gulong              async_cancel_id;   /* protected by the task lock */
  GCancellable       *async_cancellable; /* (owned) (nullable) protected by the task lock */

  GValue              result;            /* protected by the task lock: set by return_value() */
  GSList             *waiters;           /* (owned) (element-type GTask) wait_async()'s, task lock */
  KillableLimiter    *limiter;           /* (owned) (nullable) set before the start, then immutable */

  KillableEscalation  escalation;        /* the escalation module's state */
} KillableTaskRun;

/* The flags are single bytes, each read and written atomically (one
 * instruction on every target GLib supports): 8 bytes for what were eight
 * ints. */
typedef struct
{
  /* The node, the stop state and the flags share the first 64 bytes: the
   * walk of a big stop reads the node and sets the stop flag of each task
   * on its way down, and reads them with the flags on its way up; on a
   * tree far larger than the caches, each line is a miss. */
  KillableTreeNode    node;              /* the tree's state */
  KillableStopState   stop;              /* killable_task_check() reads it (through its offset) */

  guint8              state;             /* (atomic) KillableTaskState */
  guint8              abandon;           /* (atomic) KillableAbandonState */
  guint8              dispatched;        /* (atomic) 1: handed to a worker thread, 2: the worker is done */
  guint8              error_lazy;        /* (atomic) LazyError: a stopped pending task's error is the
                                          * stop's outcome, built from the state and the stop reason
                                          * when first read */
  guint8              bits;              /* (atomic) KillableTaskBits */
  guint8              cleanups_done;     /* protected by @lock */
  guint8              group;             /* immutable after construction: new_group() */
  guint8              tree_bits;         /* the tree module's flags and marks: a byte that
                                          * was padding (killable_task_get_tree_bits()) */

  GMutex              lock;              /* the task lock */
  KillableTaskRun    *run;               /* (owned) (nullable) (atomic) see get_run() */

  KillableTaskWork   *work;              /* (owned) the name and the work function, immutable after construction */

  KillableOwner       owner;             /* the owner module's state */
} KillableTaskPrivate;

/* The boolean flags of KillableTaskPrivate.bits, changed with atomic or
 * and and. */
typedef enum
{
  BIT_STARTED            = 1 << 0,  /* set once by start() or run_async() */
  BIT_INTERRUPT_SYSCALLS = 1 << 1,  /* the interrupt-syscalls property */
  BIT_KILL_ESCALATED     = 1 << 2,  /* killed by a grace-period escalation */
  BIT_PAUSED             = 1 << 3,  /* the paused property; changed under pause_lock */
  BIT_DIRECT_KILL        = 1 << 4,  /* the grace escalation goes straight to kill */
} KillableTaskBits;

#define bit_get(priv, bit)     ((__atomic_load_n (&(priv)->bits, __ATOMIC_SEQ_CST) & (bit)) != 0)
/* Both return whether @bit was set before. */
#define bit_set(priv, bit)     ((__atomic_fetch_or (&(priv)->bits, (guint8) (bit), __ATOMIC_SEQ_CST) & (bit)) != 0)
#define bit_clear(priv, bit)   ((__atomic_fetch_and (&(priv)->bits, (guint8) ~(bit), __ATOMIC_SEQ_CST) & (bit)) != 0)

/* (Named so that the criticals of g_return_if_fail() keep saying
 * "started".) */
#define is_started(priv)       bit_get ((priv), BIT_STARTED)

/* The task's name: set at construction (the type name by default). */
#define task_name(priv)        ((priv)->work != NULL ? (const char *) (priv)->work->name : "")

/* The byte-sized flags: atomic loads, stores and exchanges, sequentially
 * consistent as g_atomic_int_*() are. */
#define flag_get(p)            __atomic_load_n ((p), __ATOMIC_SEQ_CST)
#define flag_set(p, v)         __atomic_store_n ((p), (guint8) (v), __ATOMIC_SEQ_CST)
#define flag_exchange(p, v)    __atomic_exchange_n ((p), (guint8) (v), __ATOMIC_SEQ_CST)

static inline gboolean
flag_cas (guint8 *p,
          guint8  old,
          guint8  value)
{
  return __atomic_compare_exchange_n (p, &old, value, FALSE, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

G_DEFINE_TYPE_WITH_PRIVATE (KillableTask, killable_task, G_TYPE_OBJECT)

static GType task_type;     /* KILLABLE_TYPE_TASK, without a call */

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];
static guint notify_signal_id;
/* The task whose work runs on this thread: a thread-local variable, not a
 * GPrivate (no destructor is needed, and a worker sets and clears it for
 * every task: a g_private_set() costs a call and a lookup). */
static __thread KillableTask *current_task;
/* The name killable_task_new() gives the task it is constructing: set
 * around its g_object_new() call, read by set_property() (the construct-only
 * "name" property is set, to NULL, during every construction). Cheaper
 * than a "name" argument, which g_object_new() looks up by name. */
static __thread const char *new_name;
static int abandoned_threads;    /* (atomic) */
/* Serializes pause(), resume() and the pause a stop lifts, across all
 * tasks (rare calls): the set_paused vfunc runs under it, nothing else. */
static GMutex pause_lock;

gssize killable_task_tree_node_offset;
gssize killable_task_tree_bits_offset;
gssize killable_task_stop_state_offset;
gssize killable_task_work_offset;
/* Exported for the inline check (killable-task.h) */
_KillableTaskFastPath _killable_task_fast_path = { 0, 1 };

static const GError *peek_error (KillableTask *self);
static gboolean interrupt_internal (KillableTask *self,
                                    gboolean      self_default);
static void killable_task_real_interrupt (KillableTask *self);

static GError *
make_error (KillableTask  *self,
            KillableError  code)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  return killable_error_new_for_task (code, task_name (priv));
}

/* The lazy reason's builder (killable_stop_state_set_lazy()): the
 * INTERRUPTED error about the task whose stop state @state is. */
static GError *
build_interrupted_reason (KillableStopState *state)
{
  KillableTask *self = (KillableTask *) ((guint8 *) state - killable_task_stop_state_offset);

  return make_error (self, KILLABLE_ERROR_INTERRUPTED);
}

static gboolean escalation_cb (GObject                 *object,
                               KillableEscalationEvent  event,
                               guint                    step);
static gint64 default_grace_period (KillableTask *self);

/* The run block, or NULL while nothing needed it. */
static inline KillableTaskRun *
peek_run (KillableTaskPrivate *priv)
{
  return g_atomic_pointer_get (&priv->run);
}

static G_GNUC_NO_INLINE KillableTaskRun *
get_run_slow (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  gint64 grace;
  /* g_new0() is calloc(), which glibc serves without its thread cache:
   * malloc() and a memset() cost less, on every start. */
  KillableTaskRun *fresh = g_malloc (sizeof (KillableTaskRun));

  memset (fresh, 0, sizeof (KillableTaskRun));
  g_cond_init (&fresh->cond);
  killable_escalation_init (&fresh->escalation, (GObject *) self, escalation_cb);
  grace = default_grace_period (self);
  if (grace != -1)
    killable_escalation_set_grace_period (&fresh->escalation, grace);

  /* With or without the task lock: the first allocation wins. */
  if (!g_atomic_pointer_compare_and_exchange (&priv->run, NULL, fresh))
    {
      killable_escalation_clear (&fresh->escalation);
      g_cond_clear (&fresh->cond);
      g_free (fresh);
      return g_atomic_pointer_get (&priv->run);
    }

  /* Allocated after the end (a timeout set or a start after a stop while
   * pending): no timer may be armed any more. The end reads the block
   * after it published the state (close_escalation()): of the two, at
   * least one sees the other, and closing twice is harmless. */
  if (KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    killable_escalation_close (&fresh->escalation);

  return fresh;
}

/* The run block, allocated on first use. Any thread, any lock. */
static inline KillableTaskRun *
get_run (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run = g_atomic_pointer_get (&priv->run);

  if (G_LIKELY (run != NULL))
    return run;

  return get_run_slow (self);
}

/* At the end, after the terminal state was published: with no block yet,
 * no timer was ever armed, and one allocated from now on starts closed
 * (see get_run_slow()). */
static void
close_escalation (KillableTask *self)
{
  KillableTaskRun *run = peek_run (killable_task_get_instance_private (self));

  if (run != NULL)
    killable_escalation_close (&run->escalation);
}

static gboolean
is_group (KillableTaskPrivate *priv)
{
  /* group is set before the task is shared, and never changes. */
  return priv->group;
}

/* Emission (owner context) {{{ */

static gboolean
has_notify_handler (KillableTask *self,
                    int           prop)
{
  /* With a detail, GLib matches only handlers connected with that detail:
   * a plain "notify" handler is asked for separately. */
  return g_signal_has_handler_pending (self, notify_signal_id,
                                       g_param_spec_get_name_quark (properties[prop]),
                                       FALSE) ||
         g_signal_has_handler_pending (self, notify_signal_id, 0, FALSE);
}

/* The emissions that are notify signals. */
#define NOTIFY_EMISSIONS \
  (KILLABLE_EMIT_STATE_RUNNING | KILLABLE_EMIT_STATE_STOPPING | KILLABLE_EMIT_STATE_TERMINAL | \
   KILLABLE_EMIT_PROGRESS | KILLABLE_EMIT_STATUS | KILLABLE_EMIT_ERROR | KILLABLE_EMIT_PARENT | \
   KILLABLE_EMIT_SETTERS)

/* The notifications of owner-side setters, emission → property. */
static const struct {
  guint emission;
  int   prop;
} setter_props[] = {
  { KILLABLE_EMIT_TIMEOUT, PROP_TIMEOUT },
  { KILLABLE_EMIT_GRACE_PERIOD, PROP_GRACE_PERIOD },
  { KILLABLE_EMIT_INTERRUPT_SYSCALLS, PROP_INTERRUPT_SYSCALLS },
  { KILLABLE_EMIT_CHILD_POLICY, PROP_CHILD_POLICY },
  { KILLABLE_EMIT_RETAIN_CHILDREN, PROP_RETAIN_CHILDREN },
  { KILLABLE_EMIT_LIMITER, PROP_LIMITER },
  { KILLABLE_EMIT_PAUSED, PROP_PAUSED },
};

KILLABLE_STOP_PATH static guint
filter_emissions (GObject *object,
                  guint    emissions)
{
  /* Only ever given tasks (killable-owner.c calls back with the object
   * its KillableOwner is in): no checked casts on this path, taken twice
   * by every task. */
  KillableTask *self = (KillableTask *) object;
  KillableTaskClass *klass = (KillableTaskClass *) ((GTypeInstance *) object)->g_class;
  guint wanted = emissions & KILLABLE_EMIT_ASYNC_RETURN;
  gboolean any_handler = FALSE;

  /* First one look for any unblocked handler of any signal on the task
   * (no G_SIGNAL_MATCH_ID: GLib then walks the task's own handler lists,
   * whatever the signal or detail). Each look takes GLib's global signal
   * lock; a task that nobody watches, the common case in a large tree,
   * needs no other. */
  if (emissions & ~(KILLABLE_EMIT_ASYNC_RETURN | KILLABLE_EMIT_CHILDREN))
    any_handler = g_signal_handler_find (self, G_SIGNAL_MATCH_UNBLOCKED,
                                         0, 0, NULL, NULL, NULL) != 0;
  /* What no connected handler decides: class handlers and the children
   * model. Nobody connected: that is all (no walk over every kind of
   * notification). */
  if ((emissions & KILLABLE_EMIT_STOP_REQUESTED) && klass->stop_requested != NULL)
    wanted |= KILLABLE_EMIT_STOP_REQUESTED;
  if ((emissions & KILLABLE_EMIT_CHILDREN) && killable_tree_has_model (self))
    wanted |= KILLABLE_EMIT_CHILDREN;
  if ((emissions & KILLABLE_EMIT_FINISHED) && klass->finished != NULL)
    wanted |= KILLABLE_EMIT_FINISHED;
  if (!any_handler)
    return wanted;

  if ((emissions & ~wanted & KILLABLE_EMIT_STOP_REQUESTED) &&
      g_signal_has_handler_pending (self, signals[STOP_REQUESTED], 0, FALSE))
    wanted |= KILLABLE_EMIT_STOP_REQUESTED;

  if ((emissions & (KILLABLE_EMIT_STATE_RUNNING | KILLABLE_EMIT_STATE_STOPPING |
                    KILLABLE_EMIT_STATE_TERMINAL)) &&
      has_notify_handler (self, PROP_STATE))
    wanted |= emissions & (KILLABLE_EMIT_STATE_RUNNING | KILLABLE_EMIT_STATE_STOPPING |
                           KILLABLE_EMIT_STATE_TERMINAL);

  if ((emissions & KILLABLE_EMIT_PROGRESS) && has_notify_handler (self, PROP_PROGRESS))
    wanted |= KILLABLE_EMIT_PROGRESS;
  if ((emissions & KILLABLE_EMIT_STATUS) && has_notify_handler (self, PROP_STATUS))
    wanted |= KILLABLE_EMIT_STATUS;
  if ((emissions & KILLABLE_EMIT_ERROR) && has_notify_handler (self, PROP_ERROR))
    wanted |= KILLABLE_EMIT_ERROR;
  if ((emissions & KILLABLE_EMIT_PARENT) && has_notify_handler (self, PROP_PARENT))
    wanted |= KILLABLE_EMIT_PARENT;
  for (guint i = 0; i < G_N_ELEMENTS (setter_props); i++)
    if ((emissions & setter_props[i].emission) && has_notify_handler (self, setter_props[i].prop))
      wanted |= setter_props[i].emission;

  if ((emissions & ~wanted & KILLABLE_EMIT_FINISHED) &&
      g_signal_has_handler_pending (self, signals[FINISHED], 0, FALSE))
    wanted |= KILLABLE_EMIT_FINISHED;

  return wanted;
}

/* Takes run_async()'s GTask, once, and disconnects its cancellable. */
static GTask *
steal_async_task (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run = peek_run (priv);
  g_autoptr(GCancellable) cancellable = NULL;
  GTask *task;
  gulong cancel_id;

  /* run_async() allocated the block before it set async_task. */
  if (run == NULL)
    return NULL;

  g_mutex_lock (&priv->lock);
  task = g_steal_pointer (&run->async_task);
  cancellable = g_steal_pointer (&run->async_cancellable);
  cancel_id = run->async_cancel_id;
  run->async_cancel_id = 0;
  g_mutex_unlock (&priv->lock);

  /* The outcome run_async() announced is taken. */
  if (task != NULL)
    killable_owner_expect (&priv->owner, -1);

  if (cancel_id != 0)
    g_cancellable_disconnect (cancellable, cancel_id);

  return task;
}

static void
async_return (KillableTask *self)
{
  g_autoptr(GTask) task = steal_async_task (self);

  if (task == NULL)
    return;

  if (peek_error (self) != NULL)
    g_task_return_error (task, g_error_copy (peek_error (self)));
  else
    g_task_return_boolean (task, TRUE);
}

static void
emit (GObject *object,
      guint    emissions)
{
  KillableTask *self = (KillableTask *) object;   /* a task: see filter_emissions() */

  if (emissions & KILLABLE_EMIT_STOP_REQUESTED)
    {
      KillableTaskPrivate *priv = killable_task_get_instance_private (self);
      g_autoptr(GError) reason = killable_stop_state_dup_reason (&priv->stop);

      g_signal_emit (self, signals[STOP_REQUESTED], 0, reason);
    }

  /* One notification per transition, in order; the value read in a handler
   * is the current state, which may be later than the transition. */
  if (emissions & KILLABLE_EMIT_STATE_RUNNING)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
  if (emissions & KILLABLE_EMIT_STATE_STOPPING)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
  if (emissions & KILLABLE_EMIT_PROGRESS)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PROGRESS]);
  if (emissions & KILLABLE_EMIT_STATUS)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATUS]);
  if (emissions & KILLABLE_EMIT_PARENT)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PARENT]);
  if (emissions & KILLABLE_EMIT_CHILDREN)
    killable_tree_sync_model (self);
  if (emissions & KILLABLE_EMIT_STATE_TERMINAL)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
  if (emissions & KILLABLE_EMIT_ERROR)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ERROR]);
  if (emissions & KILLABLE_EMIT_FINISHED)
    g_signal_emit (self, signals[FINISHED], 0);
  for (guint i = 0; i < G_N_ELEMENTS (setter_props); i++)
    if (emissions & setter_props[i].emission)
      g_object_notify_by_pspec (G_OBJECT (self), properties[setter_props[i].prop]);
  if (emissions & KILLABLE_EMIT_ASYNC_RETURN)
    async_return (self);
}

static const KillableOwnerFuncs owner_funcs = {
  .filter = filter_emissions,
  .emit = emit,
};

void
killable_task_queue_emissions (KillableTask *self,
                               guint         emissions)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  killable_owner_queue (&priv->owner, emissions);
}

/* A setter changed a property: its notification reaches handlers on the
 * owner's thread, at once when that is the calling thread. */
void
killable_task_emit_setter (KillableTask *self,
                           guint         emissions)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  killable_owner_emit (&priv->owner, emissions);
}

/* }}} */

/* State machine {{{ */

static void limiter_task_ended (KillableTask    *self,
                                KillableLimiter *limiter,
                                gboolean         was_queued,
                                gboolean         had_permit);

/* wait_async()'s waiters: each GTask's data is its cancellable's source
 * (or NULL). */
static void
return_waiters (GSList       *waiters,
                const GError *error)
{
  while (waiters != NULL)
    {
      GTask *waiter = waiters->data;
      GSource *source = g_task_get_task_data (waiter);

      waiters = g_slist_delete_link (waiters, waiters);
      if (source != NULL)
        g_source_destroy (source);
      if (error != NULL)
        g_task_return_error (waiter, g_error_copy (error));
      else
        g_task_return_boolean (waiter, TRUE);
      g_object_unref (waiter);
    }
}

/* Moves to a terminal state, once. Returns FALSE (and frees @error) when the
 * task already had one, e.g. when it was killed before its work returned. */
static gboolean
complete_full (KillableTask      *self,
               gboolean           only_if_pending,
               KillableTaskState  state,
               GError            *error,
               int                error_lazy,
               guint              extra_emissions)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run;
  guint emissions;
  GSList *waiters = NULL;
  KillableLimiter *limiter = NULL;
  gboolean was_queued = FALSE, had_permit = FALSE;

  g_assert (KILLABLE_TASK_STATE_IS_TERMINAL (state));

  /* A task that ends with an error of its own keeps it in the run block;
   * one that ends lazily (a stopped pending task) may have none. Read
   * under the lock: run_async() and wait_async() allocate it, then add
   * under the lock what the end must see. */
  if (error != NULL)
    (void) get_run (self);

  g_mutex_lock (&priv->lock);
  run = peek_run (priv);

  for (;;)
    {
      int old = flag_get (&priv->state);

      if (KILLABLE_TASK_STATE_IS_TERMINAL (old) ||
          (only_if_pending && old != KILLABLE_TASK_STATE_PENDING))
        {
          g_mutex_unlock (&priv->lock);
          g_clear_error (&error);
          return FALSE;
        }

      /* error is published before the state: a reader that sees the
       * terminal state sees the error (or that it is to be built). */
      if (run != NULL)
        run->error = error;
      flag_set (&priv->error_lazy, error_lazy);
      if (flag_cas (&priv->state, old, state))
        break;
      if (run != NULL)
        run->error = NULL;
      flag_set (&priv->error_lazy, FALSE);
    }

  if (run != NULL)
    {
      /* g_cond_broadcast() is a system call even without waiters (GLib
       * 2.74), and a stop of a large tree completes every task: only when
       * someone waits (counted under this lock in wait_until()). */
      if (run->n_cond_waiters > 0)
        g_cond_broadcast (&run->cond);
      run->interrupt_armed = FALSE;
    }
  /* The children model is brought up to date before finished is emitted. */
  emissions = KILLABLE_EMIT_STATE_TERMINAL | KILLABLE_EMIT_FINISHED | KILLABLE_EMIT_CHILDREN |
              extra_emissions;
  if (error != NULL || error_lazy)
    emissions |= KILLABLE_EMIT_ERROR;
  if (run != NULL && run->async_task != NULL)
    emissions |= KILLABLE_EMIT_ASYNC_RETURN;

  /* Queued under the lock that run_async() takes to look at the state, so
   * its callback never overtakes finished; and before the parent learns of
   * the end (and may end in turn), so that a child's finished is always
   * emitted before its parent's. */
  killable_owner_queue (&priv->owner, emissions);

  if (run != NULL)
    {
      waiters = g_steal_pointer (&run->waiters);
      limiter = run->limiter;
      was_queued = run->queued;
      had_permit = run->holds_permit;
      run->queued = FALSE;
      run->holds_permit = FALSE;
    }

  g_mutex_unlock (&priv->lock);

  close_escalation (self);
  /* The error is built (if lazy) only for a waiter that gets it. */
  if (waiters != NULL)
    return_waiters (waiters, peek_error (self));
  if (was_queued || had_permit)
    limiter_task_ended (self, limiter, was_queued, had_permit);
  killable_tree_child_ended (self);

  return TRUE;
}

static gboolean
complete (KillableTask      *self,
          KillableTaskState  state,
          GError            *error)
{
  return complete_full (self, FALSE, state, error, FALSE, 0);
}

static GError *dup_stop_outcome (KillableTask *self);

/* Killed: the error says why (KILLED, or TIMED_OUT for a timeout that
 * escalated to a kill). */
static gboolean
complete_killed (KillableTask *self)
{
  return complete (self, KILLABLE_TASK_STATE_KILLED, dup_stop_outcome (self));
}

static void
run_cleanups (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run;
  GSList *cleanups = NULL;

  /* add_cleanup() allocates the block under the lock before it adds. */
  g_mutex_lock (&priv->lock);
  run = peek_run (priv);
  if (run != NULL)
    cleanups = g_steal_pointer (&run->cleanups);
  priv->cleanups_done = TRUE;
  g_mutex_unlock (&priv->lock);

  /* Prepended as added: the list is already last-in first-out. */
  while (cleanups != NULL)
    {
      Cleanup *cleanup = cleanups->data;

      cleanups = g_slist_delete_link (cleanups, cleanups);
      cleanup->func (self, cleanup->user_data);
      /* On the owner's context, not here on the worker, while a main loop
       * runs it (a GJS closure must not be freed off its thread). */
      killable_owner_release (&priv->owner, cleanup->notify, cleanup->user_data);
      g_free (cleanup);
    }
}

/* The error a stopped task ends with: the stop's cause (STOPPED for a plain
 * stop), or KILLED once a kill was requested, even after a plain stop (a
 * process task, or a worker in a section that must not be abandoned, is
 * killed without being abandoned and still ends KILLED). A timeout keeps
 * its cause through the kill its grace period escalated to: code that
 * catches TIMED_OUT sees it, and the state (KILLED) tells how it ended. */
static GError *
dup_stop_outcome_full (KillableTask      *self,
                       KillableTaskState *state)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  GError *error = killable_stop_state_dup_reason (&priv->stop);
  /* Read once: a kill racing with this must not give the state of a kill
   * with the error of a stop (KILLED with "was stopped"). */
  gboolean kill_marked = killable_tree_bits_have_mark (&priv->tree_bits, KILLABLE_TREE_MARK_KILL);

  if (kill_marked &&
      !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED) &&
      !(bit_get (priv, BIT_KILL_ESCALATED) &&
        g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT)))
    {
      g_clear_error (&error);
      error = make_error (self, KILLABLE_ERROR_KILLED);
    }

  if (error == NULL)
    error = make_error (self, KILLABLE_ERROR_STOPPED);

  if (state != NULL)
    *state = kill_marked || g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED)
               ? KILLABLE_TASK_STATE_KILLED : KILLABLE_TASK_STATE_CANCELLED;

  return error;
}

/* The errors a stopped pending task may end with, built when first read:
 * a stop of a large tree ends every pending task, and most of those errors
 * are never read (building one costs a translation lookup and two
 * allocations). Which one is decided at the end (lazy_stop_outcome(), as
 * dup_stop_outcome() would); the reason is immutable once the stop was
 * requested. */
typedef enum
{
  LAZY_ERROR_NONE = 0,
  LAZY_ERROR_KILLED,    /* KILLABLE_ERROR_KILLED, made for the task */
  LAZY_ERROR_STOPPED,   /* KILLABLE_ERROR_STOPPED, made for the task */
  LAZY_ERROR_REASON,    /* a copy of the stop's reason */
} LazyError;

/* dup_stop_outcome_full() without building the error:
 * which error (a LazyError) and which state. */
static LazyError
lazy_stop_outcome (KillableTask      *self,
                   KillableTaskState *state)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  const GError *reason = killable_stop_state_peek_reason (&priv->stop);
  gboolean kill_mark = killable_tree_bits_have_mark (&priv->tree_bits, KILLABLE_TREE_MARK_KILL);

  if (kill_mark &&
      !g_error_matches (reason, KILLABLE_ERROR, KILLABLE_ERROR_KILLED) &&
      !(bit_get (priv, BIT_KILL_ESCALATED) &&
        g_error_matches (reason, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT)))
    {
      *state = KILLABLE_TASK_STATE_KILLED;
      return LAZY_ERROR_KILLED;
    }

  *state = kill_mark || g_error_matches (reason, KILLABLE_ERROR, KILLABLE_ERROR_KILLED)
             ? KILLABLE_TASK_STATE_KILLED : KILLABLE_TASK_STATE_CANCELLED;

  return reason == NULL ? LAZY_ERROR_STOPPED : LAZY_ERROR_REASON;
}

static GError *
build_lazy_error (KillableTask *self,
                  LazyError     lazy)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  switch (lazy)
    {
    case LAZY_ERROR_KILLED:
      return make_error (self, KILLABLE_ERROR_KILLED);
    case LAZY_ERROR_STOPPED:
      return make_error (self, KILLABLE_ERROR_STOPPED);
    case LAZY_ERROR_REASON:
      return killable_stop_state_dup_reason (&priv->stop);
    case LAZY_ERROR_NONE:
    default:
      g_assert_not_reached ();
    }
}

/* The terminal error (call only once the state is terminal). */
static const GError *
peek_error (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run = peek_run (priv);
  GError *error = run != NULL ? g_atomic_pointer_get (&run->error) : NULL;
  LazyError lazy;

  if (error == NULL && (lazy = flag_get (&priv->error_lazy)) != LAZY_ERROR_NONE)
    {
      GError *fresh = build_lazy_error (self, lazy);

      /* Built on first read, so kept in the run block. Two first readers
       * may race: one error wins, immutable from then. */
      run = get_run (self);
      if (!g_atomic_pointer_compare_and_exchange (&run->error, NULL, fresh))
        g_error_free (fresh);
      error = g_atomic_pointer_get (&run->error);
    }

  return error;
}

static GError *
dup_stop_outcome (KillableTask *self)
{
  return dup_stop_outcome_full (self, NULL);
}

/* A group task (killable_task_new_group()) that was started ends when it
 * has no live child: at its start, when its last child ends, when it is
 * stopped or killed. Its outcome is the one its child policy gives. */
static gboolean
complete_group (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskState state = KILLABLE_TASK_STATE_SUCCEEDED;
  GError *error = NULL;
  gboolean child_failed;

  if (KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    return TRUE;

  if (!killable_tree_close_pending (self, &child_failed))
    return TRUE;

  /* A stop callback may still be unblocking what the cleanups free. */
  killable_stop_state_wait_fired (&priv->stop);
  run_cleanups (self);

  if (child_failed)
    {
      state = KILLABLE_TASK_STATE_FAILED;
      error = killable_stop_state_dup_reason (&priv->stop);
    }
  else if (killable_stop_state_is_requested (&priv->stop))
    {
      error = dup_stop_outcome_full (self, &state);
    }

  complete (self, state, error);
  return TRUE;
}

/* Ends a task that never started and was stopped, with the state its stop
 * reason says; @extra_emissions are queued with the completion's (one
 * look at the handlers). With live children it ends when the last of them
 * does (killable_tree_child_ended() calls this again) and queues
 * @extra_emissions now. Returns FALSE if the task is no longer pending
 * (start() won the race); @extra_emissions are then not queued. */
gboolean
killable_task_complete_pending (KillableTask *self,
                                guint         extra_emissions)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskState state;
  LazyError lazy;
  gboolean child_failed;
  int old = flag_get (&priv->state);

  /* A started group has no worker: it ends here too. */
  if (old != KILLABLE_TASK_STATE_PENDING)
    {
      if (!KILLABLE_TASK_STATE_IS_TERMINAL (old) && is_group (priv))
        return complete_group (self);
      return FALSE;
    }

  if (!killable_tree_close_pending (self, &child_failed))
    {
      if (extra_emissions != 0)
        killable_owner_queue (&priv->owner, extra_emissions);
      return TRUE;
    }

  /* As dup_stop_outcome_full() decides, without building the error. */
  lazy = lazy_stop_outcome (self, &state);
  if (state != KILLABLE_TASK_STATE_KILLED && child_failed)
    state = KILLABLE_TASK_STATE_FAILED;

  return complete_full (self, TRUE, state, NULL, lazy, extra_emissions);
}

/* For the tree's batched stop (killable_tree_request_stop()), under the
 * tree lock, on the thread whose request set @self's flag: ends @self at
 * once when it is a pending task that nothing observes: no stop callback
 * to fire, no cancellable, no run_async() call, no handler of any signal,
 * no class handler, no children model (so no emission is due). The tree
 * checked that it has no live child and no failed child. Runs no user code
 * and takes only @self's lock (a leaf under the tree lock) and GLib's
 * signal lock. Returns FALSE, doing nothing, when any of that does not
 * hold: the caller then takes the usual path (request_stop_internal()).
 * After the tree lock is released, the caller calls
 * killable_task_end_pending_finish(). */
gboolean
killable_task_end_pending_locked (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskClass *klass = (KillableTaskClass *) ((GTypeInstance *) self)->g_class;
  KillableTaskRun *run;
  KillableTaskState state;
  LazyError lazy;

  /* What filter_emissions() would keep of a completion's emissions, read
   * directly: class handlers, the children model, any unblocked handler. */
  if (flag_get (&priv->state) != KILLABLE_TASK_STATE_PENDING ||
      killable_stop_state_has_callbacks_to_fire (&priv->stop) ||
      is_group (priv) ||
      klass->stop_requested != NULL || klass->finished != NULL ||
      killable_tree_has_model (self) ||
      g_signal_handler_find (self, G_SIGNAL_MATCH_UNBLOCKED, 0, 0, NULL, NULL, NULL) != 0)
    return FALSE;

  lazy = lazy_stop_outcome (self, &state);

  g_mutex_lock (&priv->lock);
  /* A cancellable, run_async()'s GTask, wait_async() waiters, a limiter,
   * a join() or wait() waiting: the usual path. */
  run = peek_run (priv);
  if (run != NULL &&
      (run->cancellable != NULL || run->async_task != NULL || run->waiters != NULL ||
       run->limiter != NULL || run->n_cond_waiters > 0))
    {
      g_mutex_unlock (&priv->lock);
      return FALSE;
    }
  /* As complete_full() does (under the same lock), with the error built
   * when read: published before the state. Only start() changes the state
   * without this lock; if it won, the task runs and completes normally. */
  flag_set (&priv->error_lazy, lazy);
  if (!flag_cas (&priv->state, KILLABLE_TASK_STATE_PENDING, state))
    {
      flag_set (&priv->error_lazy, LAZY_ERROR_NONE);
      g_mutex_unlock (&priv->lock);
      return FALSE;
    }
  g_mutex_unlock (&priv->lock);

  return TRUE;
}

/* After killable_task_end_pending_locked(), outside the tree lock. */
void
killable_task_end_pending_finish (KillableTask *self)
{
  close_escalation (self);
}

/* The stop request, rung 1. With @propagate, the whole subtree gets the
 * same @reason; the tree code calls back with @propagate FALSE for each
 * descendant whose flag it already set under the tree lock. */
KILLABLE_STOP_PATH void
killable_task_request_stop_internal (KillableTask *self,
                                     const GError *reason,
                                     gboolean      propagate)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  g_autoptr(GPtrArray) subtree = NULL;
  KillableTaskRun *run;
  GCancellable *cancellable;
  guint emissions = KILLABLE_EMIT_STOP_REQUESTED;

  if (propagate)
    {
      /* Sets the flag of self and every descendant under the tree lock, so
       * that a child added concurrently is either seen here or sees its
       * stopped parent. Returns the tasks whose request this call made. */
      subtree = killable_tree_request_stop (self, reason);
      for (guint i = 0; i < subtree->len; i++)
        killable_task_request_stop_internal (g_ptr_array_index (subtree, i), reason, FALSE);
      return;
    }

  /* Published once (see get_cancellable(), which reads the flag after
   * publishing it: one of the two cancels it), alive as long as the task. */
  run = peek_run (priv);
  cancellable = run != NULL ? g_atomic_pointer_get (&run->cancellable) : NULL;
  if (cancellable != NULL)
    g_cancellable_cancel (cancellable);

  /* A stop lifts a pause: the stop state cleared its bit (check(), sleep()
   * and wait_fd() see the stop), a process task thaws its program before
   * signalling it. */
  if (bit_get (priv, BIT_PAUSED))
    {
      g_mutex_lock (&pause_lock);
      if (bit_get (priv, BIT_PAUSED))
        {
          (void) bit_clear (priv, BIT_PAUSED);
          emissions |= KILLABLE_EMIT_PAUSED;
        }
      g_mutex_unlock (&pause_lock);
    }

  /* Callbacks before anything can end the task (here for a pending task,
   * on the worker otherwise, which waits for them). */
  killable_stop_state_fire (&priv->stop, self);

  /* A task that has not started ends here and now (or when its live
   * children have ended), unless start() wins the race to leave PENDING;
   * then it is stopped like a running task. */
  if (flag_get (&priv->state) == KILLABLE_TASK_STATE_PENDING &&
      killable_task_complete_pending (self, emissions))
    return;

  if (flag_cas (&priv->state, KILLABLE_TASK_STATE_RUNNING,
                                         KILLABLE_TASK_STATE_STOPPING))
    emissions |= KILLABLE_EMIT_STATE_STOPPING;

  killable_owner_queue (&priv->owner, emissions);
  /* No block: no grace period was set, nothing to escalate. */
  run = peek_run (priv);
  if (run != NULL)
    killable_escalation_begin_grace (&run->escalation);
}

/* }}} */

/* The forced rungs: EINTR, abandon, escalation {{{ */

/* The worker's signal mask while it runs the work. */
typedef struct
{
  sigset_t  old;
  gboolean  restore;
} WorkerSignals;

/* The interrupt signal this worker thread was last seen to have unblocked
 * in its own mask (seen by the pthread_sigmask() of a worker_enter() that
 * found it unblocked already), or 0: not seen, or seen blocked. */
static __thread int worker_unblocked_signum;

static void
worker_enter (KillableTask  *self,
              WorkerSignals *mask)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  /* start() allocated it. */
  KillableTaskRun *run = get_run (self);
  int signum = killable_signal_get_current ();

  /* The interrupt signal reaches the work whatever mask this thread got
   * (an application that blocks every signal before it creates threads, a
   * previous task on this cached thread); the mask is restored after.
   * pthread_sigmask() is a system call (0.4–0.7 µs here, a sixth of a
   * short task's round trip): it is skipped when this thread was seen
   * with the signal unblocked (the usual mask: nothing to change, nothing
   * to restore), unless the task has interrupt-syscalls set at its start:
   * then the mask is looked at again, so that a previous task's work that
   * blocked the signal and left it so does not disable the interrupt. A
   * thread seen with it blocked (the application's mask) looks every
   * time, and restores. */
  mask->restore = FALSE;
  if (worker_unblocked_signum != signum || bit_get (priv, BIT_INTERRUPT_SYSCALLS))
    {
      mask->restore = killable_signal_unblock (signum, &mask->old);
      worker_unblocked_signum = mask->restore ? 0 : signum;
    }

  g_mutex_lock (&priv->lock);
  run->worker = pthread_self ();
  run->worker_active = TRUE;
  g_mutex_unlock (&priv->lock);
}

static void
worker_leave (KillableTask  *self,
              WorkerSignals *mask)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run = get_run (self);

  g_mutex_lock (&priv->lock);
  run->worker_active = FALSE;
  run->interrupt_armed = FALSE;
  g_mutex_unlock (&priv->lock);

  if (mask->restore)
    killable_signal_restore (&mask->old);
}

/* Shields (killable_task_shield_begin()): a task's shield is qdata, so
 * that only a task whose work shields pays for it (created by the worker,
 * freed with the task). @depth is changed by the worker only, @deferred
 * by whoever sends the interrupt signal; both under priv->lock. */
typedef struct
{
  guint    depth;
  gboolean deferred;   /* an interrupt signal was held back */
} TaskShield;

static GQuark shield_quark_value;   /* set in class_init */

static inline GQuark
shield_quark (void)
{
  return shield_quark_value;
}

/* Call with priv->lock held: whether a shield holds the interrupt signal
 * back now (then recorded, and sent when the outermost shield ends). */
static gboolean
shield_defers_locked (KillableTask *self)
{
  TaskShield *shield = g_object_get_qdata (G_OBJECT (self), shield_quark ());

  if (shield == NULL || shield->depth == 0)
    return FALSE;
  shield->deferred = TRUE;
  return TRUE;
}

/* Sends the interrupt signal to the worker if it is still inside run()
 * and armed, and not shielded. Returns whether it is worth sending again
 * (a shielded worker gets it when the shield ends: the repeats go on). */
static gboolean
send_interrupt (KillableTask *self,
                int           signum,
                gboolean      arm)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run = peek_run (priv);
  gboolean ret;

  /* No block: no worker ever entered run(). */
  if (run == NULL)
    return FALSE;

  g_mutex_lock (&priv->lock);
  if (arm && run->worker_active &&
      !KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    run->interrupt_armed = TRUE;
  ret = run->worker_active && run->interrupt_armed &&
        flag_get (&priv->abandon) != KILLABLE_ABANDON_DONE;
  if (ret && !shield_defers_locked (self))
    ret = killable_signal_send (run->worker, signum);
  g_mutex_unlock (&priv->lock);

  return ret;
}

/* Rung 2 for C workers that opted in: their blocking system call fails
 * with EINTR. A signal that arrives just before the worker blocks is lost,
 * so it is sent again, with a growing delay, until the task ends or its
 * work returns (KILLABLE_ESCALATION_REPEAT). */
KILLABLE_STOP_PATH static void
interrupt_syscalls (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  int signum;

  if (!bit_get (priv, BIT_INTERRUPT_SYSCALLS))
    return;

  signum = killable_signal_ensure_handler ();
  if (signum == 0)
    return;

  if (send_interrupt (self, signum, TRUE))
    killable_escalation_start_repeat (&get_run (self)->escalation);
}

/* The default kill: abandon the worker. Returns FALSE if the worker is in a
 * section that must not be abandoned; it is interrupted instead, and
 * abandoned when it leaves the section. */
static gboolean
abandon (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  /* No thread to abandon: a pending task just ends (after its children). */
  if (killable_task_complete_pending (self, 0))
    return TRUE;

  /* A parent is released after its children: with children still live
   * (one in a section that must not be abandoned), it is abandoned when
   * the last of them ends (killable_tree_child_ended()). */
  if (killable_tree_has_live_children (self))
    return FALSE;

  if (!flag_cas (&priv->abandon, KILLABLE_ABANDON_ALLOWED,
                                          KILLABLE_ABANDON_DONE))
    {
      if (flag_get (&priv->abandon) == KILLABLE_ABANDON_COMMITTED)
        KILLABLE_TASK_GET_CLASS (self)->interrupt (self);
      return FALSE;
    }

  /* Counted before the state changes, so that a worker returning at this
   * very moment (its complete() then fails) never takes the count below 0. */
  g_atomic_int_inc (&abandoned_threads);
  if (!complete_killed (self))
    g_atomic_int_dec_and_test (&abandoned_threads);

  return TRUE;
}

/* The last rung reached by the grace period: the kill keeps the cause of
 * the stop it escalates (a timeout stays TIMED_OUT), for the whole
 * subtree, marked before the kill so that no task ends in between. An
 * explicit kill() says KILLED. */
static void
kill_escalated (KillableTask *self)
{
  g_autoptr(GPtrArray) subtree = killable_tree_collect_subtree (self, 0);

  for (guint i = 0; i < subtree->len; i++)
    {
      KillableTaskPrivate *tpriv = killable_task_get_instance_private (g_ptr_array_index (subtree, i));

      (void) bit_set (tpriv, BIT_KILL_ESCALATED);
    }

  killable_task_kill (self);
}

/* The escalation module keeps time; the task decides the rungs. */
static gboolean
escalation_cb (GObject                 *object,
               KillableEscalationEvent  event,
               guint                    step)
{
  KillableTask *self = KILLABLE_TASK (object);
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  gboolean direct_kill;

  if (KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    return FALSE;

  switch (event)
    {
    case KILLABLE_ESCALATION_TIMEOUT:
      {
        g_autoptr(GError) reason = make_error (self, KILLABLE_ERROR_TIMED_OUT);

        killable_task_stop_with_error (self, reason);
        return FALSE;
      }

    case KILLABLE_ESCALATION_GRACE:
      direct_kill = bit_get (priv, BIT_DIRECT_KILL);

      if (step == 1 && !direct_kill)
        {
          killable_task_interrupt (self);
          return TRUE;
        }
      kill_escalated (self);
      return FALSE;

    case KILLABLE_ESCALATION_REPEAT:
      {
        /* Again through the check: never into an application's handler. */
        int signum = killable_signal_ensure_handler ();

        return signum != 0 && send_interrupt (self, signum, FALSE);
      }

    default:
      g_assert_not_reached ();
    }
}

gint64
killable_task_get_own_deadline (KillableTask *self)
{
  KillableTaskRun *run = peek_run (killable_task_get_instance_private (self));

  /* No block: no timeout, and not started. */
  return run != NULL ? killable_escalation_get_deadline (&run->escalation) : G_MAXINT64;
}

/**
 * killable_get_abandoned_thread_count:
 *
 * Gets how many threads of killed tasks are still running their work. Each
 * goes back to the thread cache when its work returns, after running the
 * task's cleanups.
 *
 * This function is thread-safe.
 *
 * Returns: the number of abandoned threads still running
 *
 * Since: 1.0
 */
guint
killable_get_abandoned_thread_count (void)
{
  return (guint) g_atomic_int_get (&abandoned_threads);
}

/* }}} */

/* Protected helpers for subclasses in lib/ {{{ */

KILLABLE_STOP_PATH gboolean
killable_task_is_started (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  return is_started (priv);
}

gboolean
killable_task_has_run_block (KillableTask *self)
{
  return peek_run (killable_task_get_instance_private (self)) != NULL;
}

/* During construction (constructed()): replaces the name if the caller
 * gave none (it is then the type name). */
void
killable_task_set_default_name (KillableTask *self,
                                const char   *name)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  if (g_strcmp0 (task_name (priv), G_OBJECT_TYPE_NAME (self)) == 0)
    {
      KillableTaskWork *old = priv->work;

      priv->work = work_new (name != NULL ? name : "");
      if (old != NULL)
        {
          priv->work->func = old->func;
          priv->work->data = old->data;
          priv->work->notify = old->notify;
          work_free (old);
        }
    }
}

/* The grace escalation goes from stop straight to kill (no interrupt rung):
 * for process tasks, whose stop already is a signal. */
void
killable_task_set_escalation_direct_kill (KillableTask *self,
                                          gboolean      direct_kill)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  if (direct_kill)
    (void) bit_set (priv, BIT_DIRECT_KILL);
  else
    (void) bit_clear (priv, BIT_DIRECT_KILL);
}

/* The grace period of the tasks of @klass (and its subclasses) until one
 * is set on the task: kept with the type, so that a pending task needs no
 * run block for it. Call from class_init. */
static GQuark default_grace_quark;

void
killable_task_class_set_default_grace_period (KillableTaskClass *klass,
                                              gint64             grace_usec)
{
  gint64 *value = g_new (gint64, 1);

  if (default_grace_quark == 0)
    default_grace_quark = g_quark_from_static_string ("killable-default-grace-period");
  *value = grace_usec;
  /* Kept for the life of the type, as a type is. */
  g_type_set_qdata (G_TYPE_FROM_CLASS (klass), default_grace_quark, value);
}

static gint64
default_grace_period (KillableTask *self)
{
  GType type = G_OBJECT_TYPE (self);

  for (; type != task_type && default_grace_quark != 0; type = g_type_parent (type))
    {
      gint64 *value = g_type_get_qdata (type, default_grace_quark);

      if (value != NULL)
        return *value;
    }

  return -1;
}

/* }}} */

/* Worker {{{ */

/* @stopped_before_end: a stop was requested before the work returned and
 * the children ended (a stop that comes while the cleanups run does not
 * change the outcome). */
static KillableTaskState
decide_outcome (KillableTask  *self,
                gboolean       ret,
                gboolean       stopped_before_end,
                GError       **error)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  GError *run_error = *error;

  /* A failed child under FAIL_FAST fails its parent, whatever the parent's
   * own work returned. */
  if (killable_tree_has_failed_child (self))
    {
      g_clear_error (error);
      *error = killable_stop_state_dup_reason (&priv->stop);
      return KILLABLE_TASK_STATE_FAILED;
    }

  /* Stopped before it and its subtree ended: cancelled, with the stop's
   * cause, even if its own work returned TRUE (its children, stopped with
   * it, did not finish). A worker that passes on what check()/sleep() gave
   * it (the stop's own cause, whatever its domain) ends by cancellation
   * too. */
  if ((ret ? stopped_before_end : killable_stop_state_is_requested (&priv->stop)) &&
      (ret || run_error == NULL || killable_error_is_cancellation (run_error) ||
       killable_stop_state_reason_matches (&priv->stop, run_error->domain, run_error->code)))
    {
      /* The cause, not the symptom: join() returns why the task was stopped
       * rather than the G_IO_ERROR_CANCELLED of the call that noticed it. */
      g_clear_error (error);
      KillableTaskState state;

      *error = dup_stop_outcome_full (self, &state);
      return state;
    }

  if (ret)
    {
      g_clear_error (error);
      return KILLABLE_TASK_STATE_SUCCEEDED;
    }

  if (run_error == NULL)
    {
      /* Also what a binding that cannot run code off its own thread gives:
       * GJS refuses to call a JavaScript function on a worker and returns
       * FALSE without an error. Say so. */
      g_autofree char *what = g_strdup_printf (_("Task “%s” failed without giving a reason"),
                                               task_name (priv));

      *error = g_error_new (KILLABLE_ERROR, KILLABLE_ERROR_FAILED, "%s %s", what,
                            _("(its work returned FALSE without an error, or could not "
                              "be run: a language binding that cannot run code on a "
                              "worker thread, such as GJS, does that)"));
      return KILLABLE_TASK_STATE_FAILED;
    }

  if (killable_error_is_cancellation (run_error))
    return KILLABLE_TASK_STATE_CANCELLED;

  return KILLABLE_TASK_STATE_FAILED;
}

/* Called each time an abandoned thread returns (killable-application.c
 * sets it: a function pointer, so that this file does not call that one). */
static void (*abandoned_returned_func) (void);   /* (atomic) */

void
killable_task_set_abandoned_returned_func (void (*func) (void))
{
  g_atomic_pointer_set (&abandoned_returned_func, func);
}

static void
notify_abandoned_returned (void)
{
  void (*func) (void) = g_atomic_pointer_get (&abandoned_returned_func);

  if (func != NULL)
    func ();
}

/* Whether @self was killed and its abandoned thread is still running its
 * work. */
gboolean
killable_task_has_abandoned_thread (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  return flag_get (&priv->abandon) == KILLABLE_ABANDON_DONE &&
         flag_get (&priv->dispatched) == 1;
}

/* Set on a worker thread while it completes its task: a limiter permit
 * that the end returns is passed on with the thread (see dispatch()).
 * Thread-local, as current_task. */
static __thread KillableTask **handoff;

/* The worker's reference on its task, and a joiner (KillableTaskRun.release):
 * a joiner that waits says it takes that reference (RELEASE_JOINER); the
 * worker, done with the task, then gives it (RELEASE_GIVEN) instead of
 * dropping it. The task's last reference so goes on the joiner's thread,
 * whose caller holds one, rather than on the worker: a worker never
 * finalizes a joined task (user code: dispose, weak references, a binding's
 * toggle reference) and is back among the idle threads right after the
 * end, ready for the next task, rather than a sleeping thread being woken
 * for it. */
typedef enum
{
  RELEASE_JOINER = 1 << 0,   /* a joiner takes the worker's reference */
  RELEASE_DONE   = 1 << 1,   /* the worker is done with the task */
  RELEASE_GIVEN  = 1 << 2,   /* ... and gave its reference to the joiner */
} ReleaseBits;

/* The worker, done with @self: TRUE if its reference went to a joiner,
 * FALSE if it is the caller's to drop. */
static gboolean
worker_release (KillableTask *self)
{
  KillableTaskRun *run = peek_run (killable_task_get_instance_private (self));
  guint8 old, bits;

  /* start() allocated it. */
  if (G_UNLIKELY (run == NULL))
    return FALSE;

  old = flag_get (&run->release);
  do
    bits = old | RELEASE_DONE | ((old & RELEASE_JOINER) ? RELEASE_GIVEN : 0);
  while (!__atomic_compare_exchange_n (&run->release, &old, bits, FALSE,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));

  return (bits & RELEASE_GIVEN) != 0;
}

/* Runs one task; returns the next one to run on this thread (with a
 * reference), or NULL. */
static KillableTask *
worker_run_one (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  g_autoptr(GError) error = NULL;
  KillableTaskState state;
  WorkerSignals mask;
  gboolean ret = FALSE;
  gboolean stopped_before_end, given;
  KillableTask *next = NULL;

  current_task = self;

  worker_enter (self, &mask);
  if (!killable_stop_state_is_requested (&priv->stop))
    ret = KILLABLE_TASK_GET_CLASS (self)->run (self, &error);
  worker_leave (self, &mask);

  /* From here on the worker calls GObject (emissions, the last unref): a
   * fork waits until it is done (see killable-fork.c). */
  killable_worker_pool_section_enter ();

  if (ret && error != NULL)
    {
      g_critical ("%s: run() of task “%s” returned TRUE and set an error: %s",
                  G_STRFUNC, task_name (priv), error->message);
      g_clear_error (&error);
    }

  /* Structured completion: children end before their parent does. */
  killable_tree_before_completion (self, !ret, error);
  stopped_before_end = killable_stop_state_is_requested (&priv->stop);

  /* A stop callback may still be unblocking what the cleanups free. */
  killable_stop_state_wait_fired (&priv->stop);

  run_cleanups (self);

  state = decide_outcome (self, ret, stopped_before_end, &error);
  handoff = &next;
  if (!complete (self, state, g_steal_pointer (&error)))
    {
      /* Killed before its work returned: the late result is dropped, and
       * the thread is no longer abandoned. */
      if (flag_get (&priv->abandon) == KILLABLE_ABANDON_DONE)
        g_atomic_int_dec_and_test (&abandoned_threads);
    }
  /* 2: the worker is done with the task (see killable_task_has_abandoned_thread()). */
  flag_set (&priv->dispatched, 2);
  if (flag_get (&priv->abandon) == KILLABLE_ABANDON_DONE)
    notify_abandoned_returned ();

  /* The last look at the task: its reference goes to a joiner, if one
   * takes it (as early as can be: the joiner waits for it); otherwise it
   * is dropped here, once this thread no longer names the task as its
   * current one (the last reference runs dispose and finalize). */
  given = worker_release (self);
  handoff = NULL;
  current_task = NULL;
  if (!given)
    g_object_unref (self);
  killable_worker_pool_section_leave ();

  return next;
}

static void
worker_run (gpointer data,
            gpointer unused)
{
  KillableTask *next = data;

  /* A task waiting for a limiter's permit that this thread's task gave
   * back runs here, next: a limit of N uses at most N threads. */
  while (next != NULL)
    next = worker_run_one (next);
}

/* A task that just became RUNNING: on this thread next if it is a worker
 * handing over its limiter permit, else on a thread of the pool. Takes a
 * reference of its own. */
static gboolean
dispatch (KillableTask  *self,
          GError       **error)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTask **slot = handoff;
  GError *local_error = NULL;

  killable_owner_queue (&priv->owner, KILLABLE_EMIT_STATE_RUNNING);

  flag_set (&priv->dispatched, 1);
  if (slot != NULL && *slot == NULL)
    {
      *slot = g_object_ref (self);
      return TRUE;
    }

  if (!killable_worker_pool_run (worker_run, g_object_ref (self), &local_error))
    {
      g_object_unref (self);
      run_cleanups (self);
      if (!complete (self, KILLABLE_TASK_STATE_FAILED, g_error_copy (local_error)) &&
          flag_get (&priv->abandon) == KILLABLE_ABANDON_DONE)
        g_atomic_int_dec_and_test (&abandoned_threads);
      g_propagate_error (error, local_error);
      return FALSE;
    }

  return TRUE;
}

/* Limiter permits {{{ */

/* @self (transfer full) was given a permit by its limiter: it runs, or, if
 * it ended meanwhile (stopped while it waited), it gives the permit back
 * (returns FALSE: the caller passes it on). */
static gboolean
grant_permit (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *block = get_run (self);
  gboolean run;

  g_mutex_lock (&priv->lock);
  block->queued = FALSE;
  run = flag_cas (&priv->state, KILLABLE_TASK_STATE_PENDING,
                                           KILLABLE_TASK_STATE_RUNNING);
  block->holds_permit = run;
  g_mutex_unlock (&priv->lock);

  if (run)
    dispatch (self, NULL);
  g_object_unref (self);

  return run;
}

/* A permit came back: to the first waiting task that can still use it. */
static void
pass_permit (KillableLimiter *limiter)
{
  GObject *next;

  while ((next = killable_limiter_release (limiter)) != NULL)
    if (grant_permit (KILLABLE_TASK (next)))
      break;
}

static void
pass_permit_after_job (gpointer data,
                       gpointer unused)
{
  KillableLimiter *limiter = data;

  pass_permit (limiter);
  g_object_unref (limiter);
}

static void
limiter_task_ended (KillableTask    *self,
                    KillableLimiter *limiter,
                    gboolean         was_queued,
                    gboolean         had_permit)
{
  /* Still waiting: leave the queue. If the limiter already took it out to
   * give it a permit, grant_permit() sees the end and passes it on. */
  if (was_queued)
    killable_limiter_remove (limiter, G_OBJECT (self));
  if (!had_permit)
    return;

  /* On the task's own worker, the permit comes back once this thread is
   * idle in the pool again: a task that then gets it runs on an idle
   * thread, and a limit of N never needs an N + 1st thread. */
  if (killable_task_get_current () == self &&
      killable_worker_pool_after_job (pass_permit_after_job, g_object_ref (limiter)))
    return;

  pass_permit (limiter);
}

/* }}} */

static gboolean
start_internal (KillableTask  *self,
                GMainContext  *context,
                GError       **error)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run;
  KillableLimiter *limiter;

  if (bit_set (priv, BIT_STARTED))
    {
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("Task “%s” was already started"), task_name (priv));
      return FALSE;
    }

  killable_owner_set_context (&priv->owner, context);
  /* The block is allocated at the start: what follows needs it. */
  run = get_run (self);
  killable_escalation_start (&run->escalation);

  /* A group has no work and no thread: it ends when its children have. */
  if (is_group (priv))
    {
      if (flag_cas (&priv->state, KILLABLE_TASK_STATE_PENDING,
                                             KILLABLE_TASK_STATE_RUNNING))
        {
          killable_owner_queue (&priv->owner, KILLABLE_EMIT_STATE_RUNNING);
          killable_task_complete_pending (self, 0);
        }
      return TRUE;
    }

  g_mutex_lock (&priv->lock);
  limiter = run->limiter;
  if (limiter != NULL)
    run->queued = TRUE;
  g_mutex_unlock (&priv->lock);

  /* Beyond its limiter's limit, it stays PENDING in the limiter's queue
   * until a permit comes back (pass_permit()). */
  if (limiter != NULL)
    {
      if (killable_limiter_acquire_or_queue (limiter, G_OBJECT (self)) &&
          !grant_permit (g_object_ref (self)))
        pass_permit (limiter);
      return TRUE;
    }

  /* Stopped or killed before it started: it is already terminal and has
   * nothing to run. */
  if (!flag_cas (&priv->state, KILLABLE_TASK_STATE_PENDING,
                                          KILLABLE_TASK_STATE_RUNNING))
    return TRUE;

  return dispatch (self, error);
}

/* }}} */

/* GObject {{{ */

static gboolean
killable_task_real_run (KillableTask  *self,
                        GError       **error)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  if (priv->work == NULL || priv->work->func == NULL)
    {
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("Task “%s” has no work: give a function to killable_task_new() "
                     "or override run()"),
                   task_name (priv));
      return FALSE;
    }

  return priv->work->func (self, priv->work->data, error);
}

static void
killable_task_real_interrupt (KillableTask *self)
{
  interrupt_syscalls (self);
}

static gboolean
killable_task_real_set_paused (KillableTask *self,
                               gboolean      paused)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  return killable_stop_state_set_paused (&priv->stop, paused);
}

static void
killable_task_real_kill (KillableTask *self)
{
  abandon (self);
}

static void
cancellable_cancelled_cb (GCancellable *cancellable,
                          KillableTask *self)
{
  /* Someone cancelled the task's cancellable directly: that is a stop. */
  killable_task_stop (self);
}

static void
killable_task_dispose (GObject *object)
{
  KillableTask *self = (KillableTask *)object;

  /* Under ThreadSanitizer: every thread's use of the task happens before
   * its end, whoever drops the last reference. */
  KILLABLE_SYNC_DISPOSING (self);
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  /* A task whose work never ran runs its cleanups here, where the object
   * is still alive: a cleanup may call stop() or kill() on it. (A task
   * with a worker is never disposed before the worker ran them: the
   * worker holds a reference.) */
  if (!flag_get (&priv->dispatched))
    run_cleanups (self);

  /* FALSE: handed to the timer thread, disposed again from there. */
  if (!killable_tree_dispose (self))
    return;

  ((GObjectClass *) killable_task_parent_class)->dispose (object);
}

static void
killable_task_finalize (GObject *object)
{
  KillableTask *self = (KillableTask *)object;
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run;

  /* A task that never ran its work still runs its cleanups, once. */
  if (!priv->cleanups_done)
    run_cleanups (self);

  /* Read after the cleanups: one of them may have allocated it. */
  run = peek_run (priv);
  if (run != NULL && run->cancellable != NULL)
    {
      g_signal_handlers_disconnect_by_func (run->cancellable, cancellable_cancelled_cb, self);
      g_clear_object (&run->cancellable);
    }

  /* The last reference may go on a worker: the owner's data is released
   * on the owner's context (see killable_owner_release()). */
  if (priv->work != NULL)
    killable_owner_release (&priv->owner, priv->work->notify, priv->work->data);

  run = peek_run (priv);
  if (run != NULL)
    {
      g_assert (run->async_task == NULL);
      g_assert (run->waiters == NULL);
      /* G_IS_VALUE() is a call into GType; a zeroed GValue has no type. */
      if (G_VALUE_TYPE (&run->result) != G_TYPE_INVALID)
        g_value_unset (&run->result);
      g_clear_object (&run->limiter);
      g_clear_pointer (&run->status, g_free);
      g_clear_error (&run->error);
      killable_escalation_clear (&run->escalation);
      g_cond_clear (&run->cond);
      g_clear_pointer (&priv->run, g_free);
    }

  g_clear_pointer (&priv->work, work_free);
  /* Before the owner: removing the stop callbacks releases their data
   * through it. */
  killable_stop_state_clear (&priv->stop);
  killable_owner_clear (&priv->owner);
  killable_tree_node_clear (&priv->node);
  g_mutex_clear (&priv->lock);

  ((GObjectClass *) killable_task_parent_class)->finalize (object);
}

static void
killable_task_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  KillableTask *self = KILLABLE_TASK (object);

  switch (prop_id)
    {
    case PROP_NAME:
      g_value_set_string (value, killable_task_get_name (self));
      break;
    case PROP_STATE:
      g_value_set_enum (value, killable_task_get_state (self));
      break;
    case PROP_PROGRESS:
      g_value_set_double (value, killable_task_get_progress (self));
      break;
    case PROP_STATUS:
      g_value_take_string (value, killable_task_dup_status (self));
      break;
    case PROP_ERROR:
      g_value_set_boxed (value, killable_task_get_error (self));
      break;
    case PROP_GRACE_PERIOD:
      g_value_set_int64 (value, killable_task_get_grace_period (self));
      break;
    case PROP_INTERRUPT_SYSCALLS:
      g_value_set_boolean (value, killable_task_get_interrupt_syscalls (self));
      break;
    case PROP_TIMEOUT:
      g_value_set_int64 (value, killable_task_get_timeout (self));
      break;
    case PROP_PARENT:
      g_value_take_object (value, killable_task_dup_parent (self));
      break;
    case PROP_CHILDREN:
      g_value_set_object (value, killable_task_get_children (self));
      break;
    case PROP_CHILD_POLICY:
      g_value_set_enum (value, killable_task_get_child_policy (self));
      break;
    case PROP_RETAIN_CHILDREN:
      g_value_set_boolean (value, killable_task_get_retain_children (self));
      break;
    case PROP_CANCELLABLE:
      g_value_set_object (value, killable_task_get_cancellable (self));
      break;
    case PROP_LIMITER:
      g_value_set_object (value, killable_task_get_limiter (self));
      break;
    case PROP_PAUSED:
      g_value_set_boolean (value, killable_task_is_paused (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
killable_task_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  KillableTask *self = (KillableTask *) object;   /* GObject gives a task */
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_NAME:
      {
        const char *name = g_value_get_string (value);

        g_assert (priv->work == NULL);
        /* No name given: from killable_task_new() (new_name), else the
         * type name. */
        if (name == NULL)
          name = new_name != NULL ? new_name : G_OBJECT_TYPE_NAME (object);
        priv->work = work_new (name);
      }
      break;
    case PROP_GRACE_PERIOD:
      killable_task_set_grace_period (self, g_value_get_int64 (value));
      break;
    case PROP_INTERRUPT_SYSCALLS:
      killable_task_set_interrupt_syscalls (self, g_value_get_boolean (value));
      break;
    case PROP_TIMEOUT:
      killable_task_set_timeout (self, g_value_get_int64 (value));
      break;
    case PROP_CHILD_POLICY:
      killable_task_set_child_policy (self, g_value_get_enum (value));
      break;
    case PROP_RETAIN_CHILDREN:
      killable_task_set_retain_children (self, g_value_get_boolean (value));
      break;
    case PROP_LIMITER:
      killable_task_set_limiter (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
killable_task_class_init (KillableTaskClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = killable_task_dispose;
  object_class->finalize = killable_task_finalize;
  object_class->get_property = killable_task_get_property;
  object_class->set_property = killable_task_set_property;

  klass->run = killable_task_real_run;
  klass->interrupt = killable_task_real_interrupt;
  klass->kill = killable_task_real_kill;
  klass->set_paused = killable_task_real_set_paused;

  shield_quark_value = g_quark_from_static_string ("killable-task-shield");

  /* Before any task exists: the library's locks are held across fork(). */
  killable_fork_init (killable_tree_fork_lock);

  /**
   * KillableTask:name:
   *
   * A name for messages, debugging and the thread-safe
   * [method@Killable.Task.get_name]. Defaults to the type name.
   *
   * Since: 1.0
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:state:
   *
   * Where the task is in its life cycle. Reading it is thread-safe and
   * gives the current state; `notify::state` is emitted on the owner's main
   * context once per transition, in order.
   *
   * Since: 1.0
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL,
                       KILLABLE_TYPE_TASK_STATE, KILLABLE_TASK_STATE_PENDING,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:progress:
   *
   * How far the work is, from 0 to 1, as set by the worker with
   * [method@Killable.Task.set_progress]. Notifications are coalesced: at
   * most one is pending at a time.
   *
   * Since: 1.0
   */
  properties[PROP_PROGRESS] =
    g_param_spec_double ("progress", NULL, NULL, 0., 1., 0.,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:status: (getter dup_status)
   *
   * A short human-readable text about what the worker is doing, set with
   * [method@Killable.Task.set_status].
   *
   * Since: 1.0
   */
  properties[PROP_STATUS] =
    g_param_spec_string ("status", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:error:
   *
   * Why the task did not succeed, once it is terminal: the error of its
   * work, or the cause of its stop. %NULL before and on success.
   *
   * Since: 1.0
   */
  properties[PROP_ERROR] =
    g_param_spec_boxed ("error", NULL, NULL, G_TYPE_ERROR,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:grace-period:
   *
   * How long, in microseconds, a stopped task may take to end before it is
   * interrupted, and then again before it is killed. -1 (the default for
   * thread tasks) never escalates. A parent's escalation reaches its whole
   * subtree.
   *
   * Since: 1.0
   */
  properties[PROP_GRACE_PERIOD] =
    g_param_spec_int64 ("grace-period", NULL, NULL, -1, G_MAXINT64, -1,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:interrupt-syscalls:
   *
   * Whether [method@Killable.Task.interrupt] makes the blocking system
   * call of a C worker fail with `EINTR`, by sending the worker thread the
   * signal [func@Killable.get_interrupt_signal] until the task ends. Set
   * it only for work that handles `EINTR`.
   *
   * Since: 1.0
   */
  properties[PROP_INTERRUPT_SYSCALLS] =
    g_param_spec_boolean ("interrupt-syscalls", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:timeout:
   *
   * The task's time limit in microseconds, counted from its start, or -1
   * for none. See [method@Killable.Task.set_timeout].
   *
   * Since: 1.0
   */
  properties[PROP_TIMEOUT] =
    g_param_spec_int64 ("timeout", NULL, NULL, -1, G_MAXINT64, -1,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:parent: (getter dup_parent)
   *
   * The task this one was added to with [method@Killable.Task.add_child].
   *
   * Since: 1.0
   */
  properties[PROP_PARENT] =
    g_param_spec_object ("parent", NULL, NULL, KILLABLE_TYPE_TASK,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:children:
   *
   * The children, as a [iface@Gio.ListModel] of [class@Killable.Task] that
   * changes only on the owner's main context. See
   * [method@Killable.Task.get_children].
   *
   * Since: 1.0
   */
  properties[PROP_CHILDREN] =
    g_param_spec_object ("children", NULL, NULL, G_TYPE_LIST_MODEL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:child-policy:
   *
   * What the task does when one of its children fails.
   *
   * Since: 1.0
   */
  properties[PROP_CHILD_POLICY] =
    g_param_spec_enum ("child-policy", NULL, NULL,
                       KILLABLE_TYPE_CHILD_POLICY, KILLABLE_CHILD_POLICY_FAIL_FAST,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:retain-children:
   *
   * Whether finished children stay in [property@Killable.Task:children].
   * By default (%FALSE) a child is released as soon as it is terminal, so a
   * long-running parent that spawns many short children does not grow.
   *
   * Since: 1.0
   */
  properties[PROP_RETAIN_CHILDREN] =
    g_param_spec_boolean ("retain-children", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:cancellable:
   *
   * The task's [class@Gio.Cancellable], cancelled when a stop is requested.
   * Cancelling it stops the task.
   *
   * Since: 1.0
   */
  properties[PROP_CANCELLABLE] =
    g_param_spec_object ("cancellable", NULL, NULL, G_TYPE_CANCELLABLE,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:limiter: (setter set_limiter) (getter get_limiter)
   *
   * The [class@Killable.Limiter] that limits how many tasks like this one
   * run at once, or %NULL. Set it before the start; see
   * [method@Killable.Task.set_limiter].
   *
   * Since: 1.2
   */
  properties[PROP_LIMITER] =
    g_param_spec_object ("limiter", NULL, NULL, KILLABLE_TYPE_LIMITER,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableTask:paused: (getter is_paused)
   *
   * Whether the task is paused: [method@Killable.Task.pause] was called,
   * and neither [method@Killable.Task.resume] nor a stop came after it.
   * The notification reaches handlers on the owner's main context: at once
   * when the owner's thread paused or resumed the task, queued otherwise
   * (and when a stop lifted the pause).
   *
   * Since: 1.2
   */
  properties[PROP_PAUSED] =
    g_param_spec_boolean ("paused", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * KillableTask::stop-requested:
   * @self: the task
   * @reason: (nullable): the cause given to
   *   [method@Killable.Task.stop_with_error], or %NULL for a plain stop
   *
   * Emitted on the owner's main context after a stop of the task was
   * requested (directly, through an ancestor, by a timeout or an
   * escalation). Code that must react in the stopping thread itself uses
   * [method@Killable.Task.add_stop_callback] instead.
   *
   * Since: 1.0
   */
  /* Not G_SIGNAL_TYPE_STATIC_SCOPE: GJS then wraps the reason without a
   * copy, and a handler that keeps it (in a Map, say) reads freed memory
   * once the emission returns. */
  signals[STOP_REQUESTED] =
    g_signal_new ("stop-requested",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (KillableTaskClass, stop_requested),
                  NULL, NULL,
                  NULL,
                  G_TYPE_NONE, 1, G_TYPE_ERROR);

  /**
   * KillableTask::finished:
   * @self: the task
   *
   * Emitted once on the owner's main context after the task reached its
   * terminal state. For a parent, it comes after its children's.
   *
   * Since: 1.0
   */
  signals[FINISHED] =
    g_signal_new ("finished",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (KillableTaskClass, finished),
                  NULL, NULL,
                  NULL,
                  G_TYPE_NONE, 0);

  notify_signal_id = g_signal_lookup ("notify", G_TYPE_OBJECT);
  task_type = G_TYPE_FROM_CLASS (klass);
  killable_task_tree_node_offset =
    KillableTask_private_offset + G_STRUCT_OFFSET (KillableTaskPrivate, node);
  killable_task_tree_bits_offset =
    KillableTask_private_offset + G_STRUCT_OFFSET (KillableTaskPrivate, tree_bits);
  killable_task_stop_state_offset =
    KillableTask_private_offset + G_STRUCT_OFFSET (KillableTaskPrivate, stop);
  killable_task_work_offset =
    KillableTask_private_offset + G_STRUCT_OFFSET (KillableTaskPrivate, work);
  killable_owner_setup (&owner_funcs,
                        KillableTask_private_offset + G_STRUCT_OFFSET (KillableTaskPrivate, owner));
  _killable_task_fast_path.stop_flag_offset = killable_task_stop_state_offset +
    G_STRUCT_OFFSET (KillableStopState, requested);
  killable_stop_state_set_lazy (KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED,
                                build_interrupted_reason);

  killable_i18n_init ();
}

static void
killable_task_init (KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);

  killable_stop_state_init (&priv->stop);
  g_mutex_init (&priv->lock);
  killable_owner_init (&priv->owner);
  killable_tree_node_init (&priv->node, self);
  priv->state = KILLABLE_TASK_STATE_PENDING;
}

/* }}} */

/* Public API: owner side {{{ */

/**
 * killable_task_new:
 * @name: (nullable): a name for messages and debugging
 * @func: (scope notified) (closure user_data) (destroy notify): the work
 * @user_data: data for @func
 * @notify: (nullable): frees @user_data when the task is finalized
 *
 * Creates a pending task whose work is @func. Start it with
 * [method@Killable.Task.start] or [method@Killable.Task.run_async].
 *
 * This function is thread-safe. The task's owner context is the caller's
 * thread-default main context until the task is started.
 *
 * Returns: (transfer full): a new task
 *
 * Since: 1.0
 */
KillableTask *
killable_task_new (const char       *name,
                   KillableTaskFunc  func,
                   gpointer          user_data,
                   GDestroyNotify    notify)
{
  KillableTask *self;
  KillableTaskPrivate *priv;

  g_return_val_if_fail (func != NULL, NULL);
  g_return_val_if_fail (name == NULL || g_utf8_validate (name, -1, NULL), NULL);

  /* The name reaches set_property() without a "name" argument (see
   * new_name): g_object_new() then looks up no pspec by name. */
  new_name = name;
  self = g_object_new (KILLABLE_TYPE_TASK, NULL);
  new_name = NULL;
  priv = killable_task_get_instance_private (self);
  priv->work->func = func;
  priv->work->data = user_data;
  priv->work->notify = notify;

  return self;
}

/**
 * killable_task_start:
 * @self: a pending task
 * @error: return location for a #GError
 *
 * Runs the task's work on a worker thread: an idle thread of the
 * process-wide cache, or a new one, never behind another task. The task
 * holds a reference on itself until its work has returned, so the caller
 * may drop its own.
 *
 * The caller's thread-default main context becomes the task's owner
 * context: signals and notifications are emitted there.
 *
 * A task that was stopped before it started is already terminal: this
 * returns %TRUE and runs nothing. Starting a task twice is an error.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE if the task was started (or had already ended); %FALSE
 *   with @error set if it was already started or no thread could be created
 *
 * Since: 1.0
 */
gboolean
killable_task_start (KillableTask  *self,
                     GError       **error)
{
  GMainContext *context;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* No reference: the thread-default context lives at least as long as
   * this call (the owner takes its own if it changes). */
  context = g_main_context_get_thread_default ();
  if (context == NULL)
    context = g_main_context_default ();

  return start_internal (self, context, error);
}

static void
async_cancelled_cb (GCancellable *cancellable,
                    KillableTask *self)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  g_autoptr(GError) reason = NULL;

  /* The caller's own cancellable is the cause: run_finish() (and join())
   * then give G_IO_ERROR_CANCELLED, the error GIO code expects from a
   * cancel it asked for. */
  reason = g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                        _("Task “%s” was cancelled by its caller"), task_name (priv));
  killable_task_stop_with_error (self, reason);
}

static void
async_return_error (KillableTask *self,
                    GError       *error)
{
  g_autoptr(GTask) task = steal_async_task (self);

  if (task != NULL)
    g_task_return_error (task, error);
  else
    g_error_free (error);
}

/**
 * killable_task_run_async:
 * @self: a pending task
 * @cancellable: (nullable): cancelling it stops the task
 * @callback: (scope async) (closure user_data): called on the caller's
 *   thread-default main context when the task is terminal
 * @user_data: data for @callback
 *
 * Starts the task like [method@Killable.Task.start] and calls @callback on
 * the caller's thread-default main context once it is terminal (after its
 * [signal@Killable.Task::finished] signal). Get the outcome with
 * [method@Killable.Task.run_finish].
 *
 * Call it from the thread that owns that context.
 *
 * Since: 1.0
 */
void
killable_task_run_async (KillableTask        *self,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  KillableTaskPrivate *priv;
  g_autoptr(GMainContext) context = NULL;
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  KillableTaskRun *run;
  gboolean already_terminal;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  priv = killable_task_get_instance_private (self);
  task = g_task_new (self, NULL, callback, user_data);
  /* The function, not the macro: the macro also names the GTask, and GLib
   * 2.74 copies a name into each GTask (a malloc and a free per call, ~3 %
   * of a run_async() round trip with 64 in flight). The source tag says
   * whose it is. */
  (g_task_set_source_tag) (task, killable_task_run_async);

  if (is_started (priv))
    {
      g_task_return_new_error (task, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                               _("Task “%s” was already started"), task_name (priv));
      return;
    }

  /* The result is reported on this thread's context: set first, so that
   * emissions of an end racing with this call go there too. */
  context = g_main_context_ref_thread_default ();
  killable_owner_set_context (&priv->owner, context);

  /* complete() looks at async_task under the same lock: either it sees it,
   * or the task was already terminal here (stopped while pending). */
  run = get_run (self);
  g_mutex_lock (&priv->lock);
  run->async_task = g_object_ref (task);
  already_terminal = KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state));
  g_mutex_unlock (&priv->lock);
  /* Until steal_async_task() takes it, the owner's main loop expects an
   * outcome (it spins a moment for it before it polls). */
  killable_owner_expect (&priv->owner, 1);

  /* Connected before the start: an already cancelled cancellable stops the
   * task while it is still pending, so its work never runs. */
  if (cancellable != NULL)
    {
      gulong id = g_cancellable_connect (cancellable, G_CALLBACK (async_cancelled_cb),
                                         self, NULL);

      g_mutex_lock (&priv->lock);
      if (run->async_task != NULL)
        {
          run->async_cancellable = g_object_ref (cancellable);
          run->async_cancel_id = id;
          id = 0;
        }
      g_mutex_unlock (&priv->lock);

      if (id != 0)
        g_cancellable_disconnect (cancellable, id);
    }

  if (!start_internal (self, context, &error))
    {
      /* Started meanwhile from another thread: report that. */
      async_return_error (self, g_steal_pointer (&error));
      return;
    }

  if (already_terminal)
    killable_owner_queue (&priv->owner, KILLABLE_EMIT_ASYNC_RETURN);
}

/**
 * killable_task_run_finish:
 * @self: a task
 * @result: the result given to the callback of
 *   [method@Killable.Task.run_async]
 * @error: return location for a #GError
 *
 * Gets the outcome of [method@Killable.Task.run_async]: the same as
 * [method@Killable.Task.join] would return.
 *
 * Returns: %TRUE if the task succeeded
 *
 * Since: 1.0
 */
gboolean
killable_task_run_finish (KillableTask  *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* For killable_worker_pool_spin_until(): @data is the private struct. */
static gboolean
state_is_terminal (gconstpointer data)
{
  const KillableTaskPrivate *priv = data;

  return KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state));
}

/* @data is the run block. */
static gboolean
worker_released (gconstpointer data)
{
  const KillableTaskRun *run = data;

  return (flag_get (&run->release) & RELEASE_DONE) != 0;
}

/* A joiner that starts to wait takes the worker's reference (see
 * worker_release()): only of a task on a worker (not a group, nor one
 * waiting for a limiter's permit), unless another joiner did or the worker
 * is done. */
static gboolean
joiner_enter (KillableTaskPrivate *priv,
              KillableTaskRun     *run)
{
  return flag_get (&priv->dispatched) == 1 &&
         __atomic_compare_exchange_n (&run->release, &(guint8) { 0 }, RELEASE_JOINER, FALSE,
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* The joiner is done waiting (@ended: the task is terminal). A worker
 * that is still finishing the task is waited for a moment (when a spin
 * pays), so that its reference comes here; the reference, if given, is
 * dropped: the caller of join() holds one. */
static void
joiner_leave (KillableTask    *self,
              KillableTaskRun *run,
              gboolean         ended)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  guint8 old;

  /* Not for an abandoned worker: it is still running the work. */
  if (ended && !worker_released (run) && flag_get (&priv->abandon) != KILLABLE_ABANDON_DONE)
    (void) killable_worker_pool_spin_until (KILLABLE_WORKER_POOL_SPIN_RELEASE,
                                            worker_released, run);

  old = flag_get (&run->release);
  while (!__atomic_compare_exchange_n (&run->release, &old,
                                       old & ~(RELEASE_JOINER | RELEASE_GIVEN), FALSE,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
    ;

  if (old & RELEASE_GIVEN)
    g_object_unref (self);
}

static gboolean
wait_until (KillableTask *self,
            gint64        end_time)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run;
  gboolean ret, takes;

  /* Already over: no block needed. */
  if (KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    return TRUE;

  /* Allocated before the lock: complete_full() reads it under the lock. */
  run = get_run (self);
  /* With every CPU running a job, the worker rather finalizes the task
   * itself, in parallel with this thread (many tasks in flight): the
   * hand-over only pays for a joiner that keeps a worker waiting for its
   * next task. */
  takes = killable_worker_pool_has_free_cpu () && joiner_enter (priv, run);

  /* join(): a short task often ends within microseconds, and a moment of
   * spinning (adaptive, see the pool) spares two context switches. */
  if (end_time < 0 &&
      killable_worker_pool_spin_until (KILLABLE_WORKER_POOL_SPIN_JOIN, state_is_terminal, priv))
    {
      if (takes)
        joiner_leave (self, run, TRUE);
      return TRUE;
    }

  g_mutex_lock (&priv->lock);
  while (!KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    {
      gboolean woken = TRUE;

      /* Counted so that complete_full() broadcasts only to waiters. */
      run->n_cond_waiters++;
      if (end_time < 0)
        g_cond_wait (&run->cond, &priv->lock);
      else
        woken = g_cond_wait_until (&run->cond, &priv->lock, end_time);
      run->n_cond_waiters--;
      if (!woken)
        break;
    }
  ret = KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state));
  g_mutex_unlock (&priv->lock);

  if (takes)
    joiner_leave (self, run, ret);

  return ret;
}

/**
 * killable_task_join:
 * @self: a started task
 * @error: return location for a #GError
 *
 * Blocks until the task is terminal and returns its outcome: %TRUE if it
 * succeeded; otherwise %FALSE with @error set to the error of its work, or
 * to the cause of its stop (the reason given to
 * [method@Killable.Task.stop_with_error], %KILLABLE_ERROR_STOPPED,
 * %KILLABLE_ERROR_TIMED_OUT, %KILLABLE_ERROR_KILLED, ...). A killed task
 * returns at once, without waiting for its abandoned thread.
 *
 * Joining a task that was never started, or from its own worker thread, is
 * a programming error: it would never return.
 *
 * This function is thread-safe; it does not iterate any main context.
 *
 * Returns: %TRUE if the task succeeded
 *
 * Since: 1.0
 */
gboolean
killable_task_join (KillableTask  *self,
                    GError       **error)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  priv = killable_task_get_instance_private (self);
  g_return_val_if_fail (is_started (priv) ||
                        KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)),
                        FALSE);
  g_return_val_if_fail (killable_task_get_current () != self, FALSE);

  wait_until (self, -1);

  if (peek_error (self) != NULL)
    {
      g_propagate_error (error, g_error_copy (peek_error (self)));
      return FALSE;
    }

  return TRUE;
}

/**
 * killable_task_wait:
 * @self: a task
 * @timeout_usec: how long to wait, in microseconds; -1 waits forever
 *
 * Blocks until the task is terminal or @timeout_usec passed.
 *
 * This function is thread-safe; it does not iterate any main context.
 *
 * Returns: %TRUE if the task is terminal
 *
 * Since: 1.0
 */
gboolean
killable_task_wait (KillableTask *self,
                    gint64        timeout_usec)
{
  gint64 end_time;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (timeout_usec >= -1, FALSE);

  if (timeout_usec < 0)
    {
      g_return_val_if_fail (killable_task_get_current () != self, FALSE);
      return wait_until (self, -1);
    }

  end_time = killable_time_add (g_get_monotonic_time (), timeout_usec);
  /* "Practically never" from its own worker is the wait (-1) above. */
  g_return_val_if_fail (end_time < G_MAXINT64 / 2 || killable_task_get_current () != self, FALSE);

  return wait_until (self, end_time);
}

/**
 * killable_task_stop:
 * @self: a task
 *
 * Asks the task, and every descendant, to stop: rung 1 of the ladder. The
 * [property@Killable.Task:cancellable] is cancelled, stop callbacks run in
 * this thread, blocked [method@Killable.Task.sleep] and
 * [method@Killable.Task.wait_fd] calls return, and
 * [method@Killable.Task.check] fails from now on. A task that was not
 * started yet ends %KILLABLE_TASK_STATE_CANCELLED at once.
 *
 * Only the first stop request of a task has an effect.
 *
 * This function is thread-safe and does not block (stop callbacks aside).
 *
 * Since: 1.0
 */
void
killable_task_stop (KillableTask *self)
{
  g_return_if_fail (KILLABLE_IS_TASK (self));

  killable_task_request_stop_internal (self, NULL, TRUE);
}

/**
 * killable_task_stop_with_error:
 * @self: a task
 * @reason: (nullable): why; %NULL is a plain stop
 *
 * Like [method@Killable.Task.stop], with a cause. The cause reaches every
 * descendant, stop callbacks and the
 * [signal@Killable.Task::stop-requested] signal, and it is what
 * [method@Killable.Task.join] returns and the
 * [property@Killable.Task:error] holds when the work ends by cancellation.
 *
 * This function is thread-safe.
 *
 * Since: 1.0
 */
void
killable_task_stop_with_error (KillableTask *self,
                               const GError *reason)
{
  g_return_if_fail (KILLABLE_IS_TASK (self));

  killable_task_request_stop_internal (self, reason, TRUE);
}

/**
 * killable_task_interrupt:
 * @self: a task
 *
 * Rung 2: stops the task (with %KILLABLE_ERROR_INTERRUPTED as the cause,
 * unless it was already stopped), then forces the worker of the task and of
 * each descendant through [vfunc@Killable.Task.interrupt]: a blocked system
 * call returns `EINTR` if [property@Killable.Task:interrupt-syscalls] is
 * set, the Python override raises an exception in the worker.
 *
 * This function is thread-safe.
 *
 * Since: 1.0
 */
void
killable_task_interrupt (KillableTask *self)
{
  g_return_if_fail (KILLABLE_IS_TASK (self));

  (void) interrupt_internal (self, FALSE);
}

/* Forces @task's worker through its interrupt vfunc, or with
 * @default_handler the default handler in its place, unless @task ended.
 * Returns whether the default handler ran. */
KILLABLE_STOP_PATH static gboolean
interrupt_one (KillableTask *task,
               gboolean      default_handler)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (task);

  if (KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    return FALSE;
  if (default_handler)
    {
      killable_task_real_interrupt (task);
      return TRUE;
    }
  KILLABLE_TASK_GET_CLASS (task)->interrupt (task);
  return FALSE;
}

/* killable_task_interrupt(); with @self_default, @self gets the default
 * handler instead of its vfunc (see _killable_task_interrupt_self_default()).
 * Returns whether @self's vfunc would have run (it had not ended). */
KILLABLE_STOP_PATH static gboolean
interrupt_internal (KillableTask *self,
                    gboolean      self_default)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  g_autoptr(GPtrArray) subtree = NULL;
  gboolean self_live = FALSE;
  gboolean won = FALSE;

  /* A started leaf, the usual target: the flag and the mark in one hold of
   * the tree lock, no array (this call's cold cost grows with the code and
   * data it touches: a Python owner pays it right after it took the GIL
   * back from the busy worker). The reason is the lazy one (below). */
  if (killable_tree_interrupt_leaf (self, &killable_stop_state_lazy_reason, &won))
    {
      if (won)
        killable_task_request_stop_internal (self, &killable_stop_state_lazy_reason, FALSE);
      return interrupt_one (self, self_default);
    }

  /* A task already stopped has its stopped descendants (a stop reaches
   * every descendant, and a child added later to a stopped parent is
   * stopped): the request would change nothing, so the reason (a
   * translation lookup and two allocations) is not built. Else the reason
   * is the lazy one (built when first read: most interrupts of a busy
   * leaf have nobody reading it before the worker gets its exception,
   * and its cold build was a quarter of the call); the tree builds it for
   * a task with descendants, whose reason names @self. */
  if (!killable_stop_state_is_requested (&priv->stop))
    killable_task_request_stop_internal (self, &killable_stop_state_lazy_reason, TRUE);

  /* Marked under the tree lock, so a child added later is interrupted too.
   * @self comes first. */
  subtree = killable_tree_collect_subtree (self, KILLABLE_TREE_MARK_INTERRUPT);
  for (guint i = 0; i < subtree->len; i++)
    self_live |= interrupt_one (g_ptr_array_index (subtree, i), i == 0 && self_default);

  return self_live;
}

/* _killable_task_interrupt_self_default:
 * @self: a task whose interrupt vfunc chains up to the default handler,
 *   then does the binding's own part
 *
 * For the Python override; exported, but in no public header and not in
 * the GIR: not API. killable_task_interrupt(), except that @self gets the
 * default handler (EINTR for a worker that opted in) in place of its
 * vfunc; the caller does its vfunc's own part after this returns. A
 * Python caller of Task.interrupt() then does not go through C back into
 * Python (PyGObject's vfunc marshalling was most of the call's cost). The
 * descendants' vfuncs run as usual.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE where @self's vfunc would have run (@self had not ended)
 */
_KILLABLE_EXTERN gboolean _killable_task_interrupt_self_default (KillableTask *self);

KILLABLE_STOP_PATH gboolean
_killable_task_interrupt_self_default (KillableTask *self)
{
  /* Its one caller passes the task its worker record holds (and holds
   * it): no type check, which for a Python subclass's instance is a call
   * into GType's code on this cold path. */
  g_return_val_if_fail (self != NULL, FALSE);

  return interrupt_internal (self, TRUE);
}

/**
 * killable_task_kill:
 * @self: a task
 *
 * Rung 3: stops the task (with %KILLABLE_ERROR_KILLED as the cause, unless
 * it was already stopped) and releases its owner at once, for the task and
 * each descendant, through [vfunc@Killable.Task.kill].
 *
 * For a thread task, the task becomes %KILLABLE_TASK_STATE_KILLED now and
 * [method@Killable.Task.join] returns %KILLABLE_ERROR_KILLED; its thread is
 * *abandoned*: it keeps running until its work returns (it is never
 * cancelled with `pthread_cancel`, which corrupts shared state), then its
 * late result is dropped and its cleanups run. Abandoned threads are
 * counted by [func@Killable.get_abandoned_thread_count]. A worker inside a
 * section marked with [method@Killable.Task.set_abandonable] is not
 * abandoned until it leaves it; it is interrupted instead.
 *
 * For a [class@Killable.ProcessTask], its process group gets `SIGKILL`.
 *
 * This function is thread-safe.
 *
 * Since: 1.0
 */
void
killable_task_kill (KillableTask *self)
{
  g_autoptr(GError) reason = NULL;
  g_autoptr(GPtrArray) subtree = NULL;

  g_return_if_fail (KILLABLE_IS_TASK (self));

  reason = make_error (self, KILLABLE_ERROR_KILLED);
  killable_task_request_stop_internal (self, reason, TRUE);

  /* Marked under the tree lock, so a child added later is killed too. */
  subtree = killable_tree_collect_subtree (self, KILLABLE_TREE_MARK_KILL);
  /* Deepest first: a parent is released after its children. */
  for (guint i = subtree->len; i > 0; i--)
    {
      KillableTask *task = g_ptr_array_index (subtree, i - 1);

      if (!KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (task)))
        KILLABLE_TASK_GET_CLASS (task)->kill (task);
    }
}

/**
 * killable_task_set_timeout:
 * @self: a task
 * @timeout_usec: the time limit in microseconds, counted from the start of
 *   the task, or -1 for none
 *
 * Gives the task a time limit. When it passes, the task is stopped as with
 * [method@Killable.Task.stop_with_error] and %KILLABLE_ERROR_TIMED_OUT, in
 * libkillable's timer thread (where stop callbacks then run). The stop
 * reaches the children, so a child's effective deadline is the earliest of
 * its own and its ancestors' (see [method@Killable.Task.get_deadline]).
 *
 * May be called before or after the start; a limit that already passed
 * stops the task at once.
 *
 * This function is thread-safe.
 *
 * Since: 1.0
 */
void
killable_task_set_timeout (KillableTask *self,
                           gint64        timeout_usec)
{
  KillableTaskPrivate *priv;
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (timeout_usec >= -1);

  priv = killable_task_get_instance_private (self);

  /* The default on a task without a block: nothing to store. */
  if (timeout_usec == -1 && peek_run (priv) == NULL)
    return;
  changed = killable_escalation_set_timeout (&get_run (self)->escalation, timeout_usec);

  if (changed)
    killable_task_emit_setter (self, KILLABLE_EMIT_TIMEOUT);
}

/**
 * killable_task_get_timeout:
 * @self: a task
 *
 * Gets the time limit set with [method@Killable.Task.set_timeout].
 *
 * This function is thread-safe.
 *
 * Returns: the limit in microseconds, or -1
 *
 * Since: 1.0
 */
gint64
killable_task_get_timeout (KillableTask *self)
{
  KillableTaskRun *run;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), -1);

  run = peek_run (killable_task_get_instance_private (self));
  return run != NULL ? killable_escalation_get_timeout (&run->escalation) : -1;
}

/**
 * killable_task_get_deadline:
 * @self: a task
 *
 * Gets the effective deadline of the task, on the g_get_monotonic_time()
 * clock: the earliest of its own and its started ancestors' time limits.
 *
 * This function is thread-safe.
 *
 * Returns: the deadline, or %G_MAXINT64 if there is none
 *
 * Since: 1.0
 */
gint64
killable_task_get_deadline (KillableTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_TASK (self), G_MAXINT64);

  return killable_tree_get_deadline (self);
}

/* }}} */

/* Public API: properties {{{ */

/**
 * killable_task_get_name:
 * @self: a task
 *
 * Gets the task's name.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer none): the name
 *
 * Since: 1.0
 */
const char *
killable_task_get_name (KillableTask *self)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  priv = killable_task_get_instance_private (self);
  return task_name (priv);
}

/**
 * killable_task_get_state:
 * @self: a task
 *
 * Gets the task's current state.
 *
 * This function is thread-safe.
 *
 * Returns: the state
 *
 * Since: 1.0
 */
KillableTaskState
killable_task_get_state (KillableTask *self)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), KILLABLE_TASK_STATE_PENDING);

  priv = killable_task_get_instance_private (self);
  return flag_get (&priv->state);
}

/**
 * killable_task_is_finished:
 * @self: a task
 *
 * Whether the task reached a terminal state.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE if the state is terminal
 *
 * Since: 1.0
 */
gboolean
killable_task_is_finished (KillableTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  return KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (self));
}

/**
 * killable_task_get_progress:
 * @self: a task
 *
 * Gets the progress last set with [method@Killable.Task.set_progress].
 *
 * This function is thread-safe.
 *
 * Returns: a value from 0 to 1
 *
 * Since: 1.0
 */
double
killable_task_get_progress (KillableTask *self)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *run;
  double ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), 0.);

  priv = killable_task_get_instance_private (self);
  run = peek_run (priv);
  if (run == NULL)
    return 0.;
  g_mutex_lock (&priv->lock);
  ret = run->progress;
  g_mutex_unlock (&priv->lock);

  return ret;
}

/**
 * killable_task_set_progress:
 * @self: a task
 * @progress: from 0 to 1; clamped
 *
 * Reports how far the work is. `notify::progress` follows on the owner's
 * main context, coalesced: however often the worker calls this, at most
 * one notification is pending.
 *
 * This function is thread-safe; it is meant for the worker.
 *
 * Since: 1.0
 */
void
killable_task_set_progress (KillableTask *self,
                            double        progress)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *run;
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (!isnan (progress));

  priv = killable_task_get_instance_private (self);
  progress = CLAMP (progress, 0., 1.);

  /* 0, the default, needs no block. */
  if (progress == 0. && peek_run (priv) == NULL)
    return;
  run = get_run (self);
  g_mutex_lock (&priv->lock);
  changed = run->progress != progress;
  run->progress = progress;
  g_mutex_unlock (&priv->lock);

  if (changed)
    killable_owner_queue (&priv->owner, KILLABLE_EMIT_PROGRESS);
}

/**
 * killable_task_dup_status: (get-property status)
 * @self: a task
 *
 * Gets the status text last set with [method@Killable.Task.set_status].
 *
 * This function is thread-safe.
 *
 * Returns: (transfer full) (nullable): a copy of the status
 *
 * Since: 1.0
 */
char *
killable_task_dup_status (KillableTask *self)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *run;
  char *ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  priv = killable_task_get_instance_private (self);
  run = peek_run (priv);
  if (run == NULL)
    return NULL;
  g_mutex_lock (&priv->lock);
  ret = g_strdup (run->status);
  g_mutex_unlock (&priv->lock);

  return ret;
}

/**
 * killable_task_set_status:
 * @self: a task
 * @status: (nullable): a short human-readable text
 *
 * Reports what the worker is doing; `notify::status` follows on the owner's
 * main context, coalesced.
 *
 * This function is thread-safe; it is meant for the worker.
 *
 * Since: 1.0
 */
void
killable_task_set_status (KillableTask *self,
                          const char   *status)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *run;
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (status == NULL || g_utf8_validate (status, -1, NULL));

  priv = killable_task_get_instance_private (self);

  /* NULL, the default, needs no block. */
  if (status == NULL && peek_run (priv) == NULL)
    return;
  run = get_run (self);
  g_mutex_lock (&priv->lock);
  changed = g_strcmp0 (run->status, status) != 0;
  if (changed)
    {
      g_free (run->status);
      run->status = g_strdup (status);
    }
  g_mutex_unlock (&priv->lock);

  if (changed)
    killable_owner_queue (&priv->owner, KILLABLE_EMIT_STATUS);
}

/**
 * killable_task_get_error:
 * @self: a task
 *
 * Gets why the task did not succeed. It is set once, with the terminal
 * state, and never changes after.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer none) (nullable): the error, or %NULL while the task
 *   is not terminal or if it succeeded
 *
 * Since: 1.0
 */
const GError *
killable_task_get_error (KillableTask *self)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  priv = killable_task_get_instance_private (self);
  if (!KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    return NULL;

  return peek_error (self);
}

/**
 * killable_task_get_grace_period:
 * @self: a task
 *
 * Gets [property@Killable.Task:grace-period].
 *
 * This function is thread-safe.
 *
 * Returns: the grace period in microseconds, or -1
 *
 * Since: 1.0
 */
gint64
killable_task_get_grace_period (KillableTask *self)
{
  KillableTaskRun *run;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), -1);

  run = peek_run (killable_task_get_instance_private (self));
  return run != NULL ? killable_escalation_get_grace_period (&run->escalation)
                     : default_grace_period (self);
}

/**
 * killable_task_set_grace_period:
 * @self: a task
 * @grace_usec: microseconds, or -1 to never escalate
 *
 * Sets [property@Killable.Task:grace-period]. A change applies to the next
 * escalation step.
 *
 * This function is thread-safe; `notify::grace-period` is emitted in the
 * calling thread.
 *
 * Since: 1.0
 */
void
killable_task_set_grace_period (KillableTask *self,
                                gint64        grace_usec)
{
  KillableTaskPrivate *priv;
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (grace_usec >= -1);

  priv = killable_task_get_instance_private (self);
  /* The default on a task without a block: nothing to store. */
  if (peek_run (priv) == NULL && grace_usec == default_grace_period (self))
    return;
  changed = killable_escalation_set_grace_period (&get_run (self)->escalation, grace_usec);

  if (changed)
    killable_task_emit_setter (self, KILLABLE_EMIT_GRACE_PERIOD);
}

/**
 * killable_task_get_interrupt_syscalls:
 * @self: a task
 *
 * Gets [property@Killable.Task:interrupt-syscalls].
 *
 * This function is thread-safe.
 *
 * Returns: whether interrupt() makes blocking system calls fail with EINTR
 *
 * Since: 1.0
 */
gboolean
killable_task_get_interrupt_syscalls (KillableTask *self)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  priv = killable_task_get_instance_private (self);
  return bit_get (priv, BIT_INTERRUPT_SYSCALLS);
}

/**
 * killable_task_set_interrupt_syscalls:
 * @self: a task
 * @interrupt_syscalls: whether interrupt() makes blocking system calls of
 *   the worker fail with `EINTR`
 *
 * Sets [property@Killable.Task:interrupt-syscalls].
 *
 * This function is thread-safe; `notify::interrupt-syscalls` is emitted in
 * the calling thread.
 *
 * Since: 1.0
 */
void
killable_task_set_interrupt_syscalls (KillableTask *self,
                                      gboolean      interrupt_syscalls)
{
  KillableTaskPrivate *priv;
  int old;

  g_return_if_fail (KILLABLE_IS_TASK (self));

  priv = killable_task_get_instance_private (self);
  old = interrupt_syscalls ? bit_set (priv, BIT_INTERRUPT_SYSCALLS)
                           : bit_clear (priv, BIT_INTERRUPT_SYSCALLS);
  if (old != !!interrupt_syscalls)
    killable_task_emit_setter (self, KILLABLE_EMIT_INTERRUPT_SYSCALLS);
}

/**
 * killable_task_get_cancellable:
 * @self: a task
 *
 * Gets the task's cancellable, to pass to GIO calls made by the worker: they
 * then fail with %G_IO_ERROR_CANCELLED as soon as a stop is requested.
 * Cancelling it stops the task.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer none): the cancellable, alive as long as the task
 *
 * Since: 1.0
 */
GCancellable *
killable_task_get_cancellable (KillableTask *self)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *run;
  GCancellable *ret;
  gboolean cancel = FALSE;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  priv = killable_task_get_instance_private (self);

  run = get_run (self);
  g_mutex_lock (&priv->lock);
  if (run->cancellable == NULL)
    {
      /* Created on demand: most tasks never need one. Published before
       * the flag is read; a stop reads the flag's change before it reads
       * this (request_stop_internal()): one of the two cancels it. */
      ret = g_cancellable_new ();
      g_signal_connect_object (ret, "cancelled",
                               G_CALLBACK (cancellable_cancelled_cb), self, 0);
      g_atomic_pointer_set (&run->cancellable, ret);
      cancel = killable_stop_state_is_requested (&priv->stop);
    }
  ret = run->cancellable;
  g_mutex_unlock (&priv->lock);

  if (cancel)
    g_cancellable_cancel (ret);

  return ret;
}

/* }}} */

/* Public API: worker side {{{ */

static gboolean
set_stop_error (KillableTask  *self,
                GError       **error)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  GError *reason;

  if (error == NULL)
    return FALSE;

  /* A GError is a GSlice block (GLib 2.74): on a worker, a fork waits
   * until it is built (see killable-fork.c). */
  killable_worker_pool_section_enter ();
  reason = killable_stop_state_dup_reason (&priv->stop);
  if (reason == NULL)
    reason = make_error (self, KILLABLE_ERROR_STOPPED);
  killable_worker_pool_section_leave ();
  g_propagate_error (error, reason);

  return FALSE;
}

/**
 * killable_task_check:
 * @self: a task
 * @error: return location for a #GError
 *
 * Checks whether a stop was requested. Call it often in long work; it costs
 * one atomic load while the task is not stopped. While the task is paused
 * ([method@Killable.Task.pause]) it blocks until the task is resumed or
 * stopped.
 *
 * In C (GCC or Clang) this is also a header inline: it reads the word of
 * [method@Killable.Task.get_stop_flag] and calls the function only when the
 * word is not zero, so a hot loop pays one load, a test and a branch. The
 * inline does not check the type of @self (only %NULL goes to the
 * function's critical); define `KILLABLE_NO_INLINE_CHECK` before including
 * `<killable.h>` to always call the function.
 *
 * This function is thread-safe; it is meant for the worker.
 *
 * Returns: %TRUE to go on; %FALSE with @error set to the stop's cause
 *   (%KILLABLE_ERROR_STOPPED for a plain stop) once a stop was requested
 *
 * Since: 1.0
 */
static G_GNUC_NO_INLINE gboolean
check_slow (KillableTask  *self,
            GError       **error)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  priv = killable_task_get_instance_private (self);
  /* Blocks while paused. */
  if (killable_stop_state_wait_paused (&priv->stop))
    return TRUE;

  return set_stop_error (self, error);
}

gboolean
killable_task_check (KillableTask  *self,
                     GError       **error)
{
  /* Called in hot loops by bindings (C callers get the header inline): a
   * leaf with an exact-type comparison (two loads, no call) and the flag's
   * load; subclasses, bad input and a non-zero flag (stopped, paused) take
   * the full path. */
  if (G_LIKELY (self != NULL && G_TYPE_FROM_INSTANCE (self) == task_type &&
                !killable_stop_state_needs_slow_path (
                   &((KillableTaskPrivate *) killable_task_get_instance_private (self))->stop)))
    return TRUE;

  return check_slow (self, error);
}

/**
 * killable_task_get_stop_flag:
 * @self: a task
 *
 * The address of the task's stop flag, for fast paths that cannot call
 * [method@Killable.Task.check] (the C inline of that function reads it; a
 * binding may read it through a foreign-function interface without taking
 * its interpreter lock).
 *
 * The word is an `int` read with a relaxed atomic load. It stays at the same
 * address for the task's whole life (until the task is finalized). Zero
 * means "go on". Non-zero means "take the slow path": call
 * [method@Killable.Task.check], which tells why (a stop was requested, or
 * the task is paused and check() waits) and sets the error. Do not compare
 * it with any other value: its bits are not API. Never write to it.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer none) (not nullable): the address of the flag, valid
 *   while @self is alive
 *
 * Since: 1.2
 */
const int *
killable_task_get_stop_flag (KillableTask *self)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  priv = killable_task_get_instance_private (self);
  return &priv->stop.requested;
}

/**
 * killable_task_is_stop_requested:
 * @self: a task
 *
 * Whether a stop was requested (directly, through an ancestor, by the
 * timeout or by a cancellation of the task's cancellable).
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE once a stop was requested
 *
 * Since: 1.0
 */
gboolean
killable_task_is_stop_requested (KillableTask *self)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  priv = killable_task_get_instance_private (self);
  return killable_stop_state_is_requested (&priv->stop);
}

/* Pause {{{ */

static void
set_paused (KillableTask *self,
            gboolean      paused)
{
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskClass *klass = KILLABLE_TASK_GET_CLASS (self);
  gboolean changed = FALSE;

  g_mutex_lock (&pause_lock);
  /* A stopped or finished task is not paused: its stop must get through. */
  if (!bit_get (priv, BIT_PAUSED) != !paused &&
      !(paused && (killable_stop_state_is_requested (&priv->stop) ||
                   killable_task_is_finished (self))))
    {
      /* Published before the vfunc looks at the stop flag, so that a stop
       * requested meanwhile sees it and lifts it (after this lock). */
      gboolean accepted;

      if (paused)
        (void) bit_set (priv, BIT_PAUSED);
      else
        (void) bit_clear (priv, BIT_PAUSED);
      accepted = klass->set_paused == NULL || klass->set_paused (self, paused);
      /* A stop that came in between lifts the pause (a process task's
       * stop signal thaws it). */
      if (paused && (!accepted || killable_stop_state_is_requested (&priv->stop)))
        (void) bit_clear (priv, BIT_PAUSED);
      else
        changed = TRUE;
    }
  g_mutex_unlock (&pause_lock);

  if (changed)
    killable_owner_emit (&priv->owner, KILLABLE_EMIT_PAUSED);
}

/**
 * killable_task_pause:
 * @self: a task
 *
 * Pauses the task. In a task that runs a function or overrides
 * [vfunc@Killable.Task.run], [method@Killable.Task.check],
 * [method@Killable.Task.sleep] and [method@Killable.Task.wait_fd] block
 * from now on until the task is resumed or stopped (the pause is
 * cooperative: work between two of those calls goes on). A
 * [class@Killable.ProcessTask] is frozen instead. A pending task may be
 * paused: it is paused as soon as it starts.
 *
 * Pausing a paused task, a task whose stop was requested or a finished
 * task does nothing. A stop, interrupt or kill of a paused task resumes it
 * first, so that the stop is seen.
 *
 * This function is thread-safe; the [property@Killable.Task:paused]
 * notification is emitted at once when called on the owner's thread,
 * otherwise on the owner's main context.
 *
 * Since: 1.2
 */
void
killable_task_pause (KillableTask *self)
{
  g_return_if_fail (KILLABLE_IS_TASK (self));

  set_paused (self, TRUE);
}

/**
 * killable_task_resume:
 * @self: a task
 *
 * Resumes a task paused with [method@Killable.Task.pause]: the worker's
 * blocked [method@Killable.Task.check], [method@Killable.Task.sleep] or
 * [method@Killable.Task.wait_fd] goes on, a process task's processes are
 * thawed. Resuming a task that is not paused does nothing.
 *
 * This function is thread-safe; the [property@Killable.Task:paused]
 * notification is emitted at once when called on the owner's thread,
 * otherwise on the owner's main context.
 *
 * Since: 1.2
 */
void
killable_task_resume (KillableTask *self)
{
  g_return_if_fail (KILLABLE_IS_TASK (self));

  set_paused (self, FALSE);
}

/**
 * killable_task_is_paused: (get-property paused)
 * @self: a task
 *
 * Whether the task is paused: [method@Killable.Task.pause] was called, and
 * neither [method@Killable.Task.resume] nor a stop came after it.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE if the task is paused
 *
 * Since: 1.2
 */
gboolean
killable_task_is_paused (KillableTask *self)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  priv = killable_task_get_instance_private (self);
  return bit_get (priv, BIT_PAUSED);
}

/* }}} */

/**
 * killable_task_sleep:
 * @self: a task
 * @usec: how long to sleep, in microseconds
 * @error: return location for a #GError
 *
 * Sleeps for @usec, or until a stop is requested, whichever comes first:
 * unlike g_usleep(), a stop wakes it at once. While the task is paused it
 * does not return (but for a stop); @usec keeps running meanwhile, so a
 * sleep that ended while paused returns as soon as the task is resumed.
 *
 * This function is thread-safe; it is meant for the worker.
 *
 * Returns: %TRUE if it slept the whole time; %FALSE with @error set to the
 *   stop's cause if a stop was requested
 *
 * Since: 1.0
 */
gboolean
killable_task_sleep (KillableTask  *self,
                     gint64         usec,
                     GError       **error)
{
  KillableTaskPrivate *priv;
  gint64 end_time;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (usec >= 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = killable_task_get_instance_private (self);
  end_time = killable_time_add (g_get_monotonic_time (), usec);

  if (!killable_stop_state_sleep (&priv->stop, end_time))
    return set_stop_error (self, error);

  return TRUE;
}

/**
 * killable_task_wait_fd:
 * @self: a task
 * @fd: a file descriptor
 * @condition: what to wait for (%G_IO_IN, %G_IO_OUT, ...)
 * @timeout_usec: how long to wait in microseconds, or -1 to wait until the
 *   fd is ready or a stop is requested
 * @error: return location for a #GError
 *
 * Waits until @fd satisfies @condition, the timeout passes, or a stop is
 * requested. %G_IO_ERR, %G_IO_HUP and %G_IO_NVAL are always reported.
 * While the task is paused it does not return (but for a stop): @fd is
 * polled again after the resume; the timeout keeps running meanwhile.
 *
 * This function is thread-safe; it is meant for the worker.
 *
 * Returns: the conditions @fd satisfies; 0 on timeout (with no error), or 0
 *   with @error set to the stop's cause, or to a %G_IO_ERROR if polling
 *   failed
 *
 * Since: 1.0
 */
GIOCondition
killable_task_wait_fd (KillableTask  *self,
                       int            fd,
                       GIOCondition   condition,
                       gint64         timeout_usec,
                       GError       **error)
{
  KillableTaskPrivate *priv;
  gint64 end_time = -1;
  GIOCondition ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), 0);
  g_return_val_if_fail (fd >= 0, 0);
  g_return_val_if_fail (timeout_usec >= -1, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  priv = killable_task_get_instance_private (self);

  if (timeout_usec >= 0)
    end_time = killable_time_add (g_get_monotonic_time (), timeout_usec);

  if (!killable_stop_state_wait_fd (&priv->stop, fd, condition, end_time, &ret, error))
    return set_stop_error (self, error);

  return ret;
}

/* The waits of the Python override, with the stop's cause as a code {{{
 *
 * Exported, but in no public header and not in the GIR: not API. A stopped
 * wait of a Python worker raises its TaskCancelled at once; the GError (a
 * translation lookup, a formatted message, two allocations, then a
 * GLib.Error built from it) was most of the way from the stop to the
 * worker's except. These return the code of the stop's cause instead; the
 * override builds the error only when someone reads it (through
 * killable_task_check(), which then returns the same error at once).
 *
 * The code: %_KILLABLE_STOP_CODE_NONE when the wait ended without a stop,
 * the #KillableError code of the stop's cause when it is of that domain
 * (%KILLABLE_ERROR_STOPPED for a plain stop), %_KILLABLE_STOP_CODE_OTHER
 * for a cause of another domain (stop_with_error()). */

#define _KILLABLE_STOP_CODE_NONE  (-1)
#define _KILLABLE_STOP_CODE_OTHER (-2)

static int
stop_code (KillableTaskPrivate *priv)
{
  const GError *reason;

  if (!killable_stop_state_is_requested (&priv->stop))
    return _KILLABLE_STOP_CODE_NONE;

  reason = killable_stop_state_peek_reason (&priv->stop);
  if (reason == NULL)
    return KILLABLE_ERROR_STOPPED;
  if (reason->domain == KILLABLE_ERROR && reason->code >= 0)
    return reason->code;

  return _KILLABLE_STOP_CODE_OTHER;
}

/* _killable_task_get_stop_code:
 * @self: a task
 *
 * The code of the stop's cause (see above), or %_KILLABLE_STOP_CODE_NONE
 * while no stop was requested. Blocks nothing, takes no lock (the cause
 * is immutable once the flag is set): a binding may call it holding its
 * interpreter lock.
 *
 * This function is thread-safe.
 */
_KILLABLE_EXTERN int _killable_task_get_stop_code (KillableTask *self);

int
_killable_task_get_stop_code (KillableTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_TASK (self), _KILLABLE_STOP_CODE_NONE);

  return stop_code (killable_task_get_instance_private (self));
}

/* _killable_task_sleep_code:
 * @self: a task
 * @usec: how long to sleep, in microseconds
 *
 * killable_task_sleep(), returning the code of the stop's cause instead of
 * a GError: %_KILLABLE_STOP_CODE_NONE if it slept the whole time.
 *
 * This function is thread-safe; it is meant for the worker.
 */
_KILLABLE_EXTERN int _killable_task_sleep_code (KillableTask *self,
                                                gint64        usec);

int
_killable_task_sleep_code (KillableTask *self,
                           gint64        usec)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), _KILLABLE_STOP_CODE_NONE);
  g_return_val_if_fail (usec >= 0, _KILLABLE_STOP_CODE_NONE);

  priv = killable_task_get_instance_private (self);
  if (!killable_stop_state_sleep (&priv->stop,
                                  killable_time_add (g_get_monotonic_time (), usec)))
    return stop_code (priv);

  return _KILLABLE_STOP_CODE_NONE;
}

/* _killable_task_wait_fd_code:
 * @self: a task
 * @fd: a file descriptor
 * @condition: what to wait for
 * @timeout_usec: how long to wait in microseconds, or -1
 * @out: (out): the conditions @fd satisfies (0 on a timeout or a stop)
 * @error: return location for a polling failure (a %G_IO_ERROR) only
 *
 * killable_task_wait_fd(), returning the code of the stop's cause instead
 * of a GError: %_KILLABLE_STOP_CODE_NONE when @fd was ready, the timeout
 * passed, or polling failed (then with @error set).
 *
 * This function is thread-safe; it is meant for the worker.
 */
_KILLABLE_EXTERN int _killable_task_wait_fd_code (KillableTask  *self,
                                                  int            fd,
                                                  GIOCondition   condition,
                                                  gint64         timeout_usec,
                                                  GIOCondition  *out,
                                                  GError       **error);

int
_killable_task_wait_fd_code (KillableTask  *self,
                             int            fd,
                             GIOCondition   condition,
                             gint64         timeout_usec,
                             GIOCondition  *out,
                             GError       **error)
{
  KillableTaskPrivate *priv;
  gint64 end_time = -1;

  g_return_val_if_fail (out != NULL, _KILLABLE_STOP_CODE_NONE);
  *out = 0;
  g_return_val_if_fail (KILLABLE_IS_TASK (self), _KILLABLE_STOP_CODE_NONE);
  g_return_val_if_fail (fd >= 0, _KILLABLE_STOP_CODE_NONE);
  g_return_val_if_fail (timeout_usec >= -1, _KILLABLE_STOP_CODE_NONE);
  g_return_val_if_fail (error == NULL || *error == NULL, _KILLABLE_STOP_CODE_NONE);

  priv = killable_task_get_instance_private (self);
  if (timeout_usec >= 0)
    end_time = killable_time_add (g_get_monotonic_time (), timeout_usec);

  if (!killable_stop_state_wait_fd (&priv->stop, fd, condition, end_time, out, error))
    return stop_code (priv);

  return _KILLABLE_STOP_CODE_NONE;
}

/* }}} */

/**
 * killable_task_add_cleanup:
 * @self: a task
 * @func: (scope notified) (closure user_data) (destroy notify): the cleanup
 * @user_data: data for @func
 * @notify: (nullable): frees @user_data after @func ran
 *
 * Adds a cleanup handler. Cleanups run exactly once, last added first, on
 * the worker thread after the work returned and the children ended,
 * whatever the outcome: also when the task was killed (when its abandoned
 * thread finally returns), and in finalize for a task that never ran. The
 * task is terminal only after its cleanups ran, so
 * [method@Killable.Task.join] returns after them (unless the task was
 * killed).
 *
 * Added after the cleanups already ran, @func runs at once in the calling
 * thread.
 *
 * This function is thread-safe.
 *
 * Since: 1.0
 */
void
killable_task_add_cleanup (KillableTask        *self,
                           KillableCleanupFunc  func,
                           gpointer             user_data,
                           GDestroyNotify       notify)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *run;
  Cleanup *cleanup;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (func != NULL);

  priv = killable_task_get_instance_private (self);

  /* Before the lock: run_cleanups() reads it under the lock. */
  run = get_run (self);
  g_mutex_lock (&priv->lock);
  if (!priv->cleanups_done)
    {
      cleanup = g_new0 (Cleanup, 1);
      cleanup->func = func;
      cleanup->user_data = user_data;
      cleanup->notify = notify;
      run->cleanups = g_slist_prepend (run->cleanups, cleanup);
      g_mutex_unlock (&priv->lock);
      return;
    }
  g_mutex_unlock (&priv->lock);

  func (self, user_data);
  killable_owner_release (&priv->owner, notify, user_data);
}

/**
 * killable_task_set_abandonable:
 * @self: the current task
 * @abandonable: %FALSE before the worker makes changes others can see,
 *   %TRUE after
 *
 * Marks where the worker may be abandoned by
 * [method@Killable.Task.kill]. Set to %FALSE, the task is not abandoned
 * (kill interrupts it instead) until it is set back to %TRUE; a kill
 * requested meanwhile abandons it then.
 *
 * Like g_task_set_return_on_cancel(), this is the commit point of the
 * work: when it returns %FALSE the task was already abandoned, its result
 * will be dropped, and the worker must not make its changes visible.
 *
 * Call it from the task's worker thread.
 *
 * Returns: %FALSE if the task was already abandoned
 *
 * Since: 1.0
 */
gboolean
killable_task_set_abandonable (KillableTask *self,
                               gboolean      abandonable)
{
  KillableTaskPrivate *priv;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (killable_task_get_current () == self, FALSE);

  priv = killable_task_get_instance_private (self);

  if (!abandonable)
    {
      if (flag_cas (&priv->abandon, KILLABLE_ABANDON_ALLOWED,
                                             KILLABLE_ABANDON_COMMITTED))
        return TRUE;
      return flag_get (&priv->abandon) != KILLABLE_ABANDON_DONE;
    }

  if (flag_cas (&priv->abandon, KILLABLE_ABANDON_COMMITTED,
                                         KILLABLE_ABANDON_ALLOWED))
    {
      /* A kill that waited for the end of the section happens now. */
      if (killable_tree_bits_have_mark (&priv->tree_bits, KILLABLE_TREE_MARK_KILL))
        KILLABLE_TASK_GET_CLASS (self)->kill (self);
    }

  return flag_get (&priv->abandon) != KILLABLE_ABANDON_DONE;
}

/**
 * killable_task_shield_begin:
 * @self: the current task
 *
 * Begins a region of the work that an interrupt must not break into: until
 * the matching [method@Killable.Task.shield_end], the interrupt signal of
 * [method@Killable.Task.interrupt] (see
 * [property@Killable.Task:interrupt-syscalls]) is not sent to the worker,
 * so no system call of the region fails with `EINTR` because of it; it is
 * held back and sent when the outermost shield ends. The Python override's
 * `Killable.shield()` calls it, and also holds back the exception that
 * interrupt() raises in a Python worker.
 *
 * A shield defers interrupts only. A stop still reaches the region:
 * [method@Killable.Task.check], [method@Killable.Task.sleep] and the other
 * waits on the task still fail at once, the cancellable is cancelled.
 * Shields nest: each call needs its own call of
 * [method@Killable.Task.shield_end].
 *
 * Call it from the task's worker thread, inside the work.
 *
 * Since: 1.2
 */
void
killable_task_shield_begin (KillableTask *self)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *run;
  TaskShield *shield;
  gboolean flush;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (killable_task_get_current () == self);

  priv = killable_task_get_instance_private (self);

  /* Only this thread sets it: no other can race to create it. */
  shield = g_object_get_qdata (G_OBJECT (self), shield_quark ());
  if (shield == NULL)
    {
      shield = g_new0 (TaskShield, 1);
      g_object_set_qdata_full (G_OBJECT (self), shield_quark (), shield, g_free);
    }

  g_mutex_lock (&priv->lock);
  run = peek_run (priv);   /* the worker's: allocated when it entered run() */
  flush = shield->depth == 0 && run != NULL && run->interrupt_armed;
  if (shield->depth < G_MAXUINT)
    shield->depth++;
  g_mutex_unlock (&priv->lock);

  /* A signal sent just before the shield may still be pending for this
   * thread: a system call delivers it on its return (to the handler, which
   * does nothing), so that it cannot break the first blocking call of the
   * region. */
  if (flush)
    {
      sigset_t pending;

      sigpending (&pending);
    }
}

/* In a library thread, right after a shield ended: the signal it held back. */
static gboolean
send_held_back_cb (gpointer data)
{
  KillableTask *self = data;
  int signum = killable_signal_ensure_handler ();

  if (signum != 0)
    send_interrupt (self, signum, FALSE);

  return G_SOURCE_REMOVE;
}

/**
 * killable_task_shield_end:
 * @self: the current task
 *
 * Ends the region begun by the matching
 * [method@Killable.Task.shield_begin]. When the outermost shield ends, an
 * interrupt signal held back meanwhile is sent at once, from a library
 * thread (a signal the worker sent itself would be delivered before its
 * next system call, not during it), then repeated as after any interrupt,
 * until the work returns. So a blocking system call that the worker
 * enters after the shield fails with `EINTR` at once, or, if it entered it
 * only after that signal came, at the next repeat (the repeats are 1 ms
 * apart at first, at most 50 ms later on). Handle `EINTR` as for any
 * interrupt.
 *
 * Call it from the task's worker thread, inside the work.
 *
 * Returns: %TRUE if this ended the outermost shield and an interrupt
 *   signal was held back during the region (it is being sent now)
 *
 * Since: 1.2
 */
gboolean
killable_task_shield_end (KillableTask *self)
{
  KillableTaskPrivate *priv;
  TaskShield *shield;
  gboolean deferred = FALSE;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (killable_task_get_current () == self, FALSE);

  priv = killable_task_get_instance_private (self);
  shield = g_object_get_qdata (G_OBJECT (self), shield_quark ());
  g_return_val_if_fail (shield != NULL && shield->depth > 0, FALSE);

  g_mutex_lock (&priv->lock);
  if (--shield->depth == 0)
    {
      deferred = shield->deferred;
      shield->deferred = FALSE;
    }
  g_mutex_unlock (&priv->lock);

  if (deferred)
    {
      KillableTimer *timer = killable_timer_add (0, send_held_back_cb,
                                                 g_object_ref (self), g_object_unref);

      killable_timer_unref (timer);
    }

  return deferred;
}

/**
 * killable_task_get_current:
 *
 * Gets the task whose work runs on the calling thread.
 *
 * Returns: (transfer none) (nullable): the task, or %NULL outside a worker
 *
 * Since: 1.0
 */
KillableTask *
killable_task_get_current (void)
{
  return current_task;
}

typedef struct
{
  KillableStopFunc  func;
  gpointer          user_data;
  GDestroyNotify    notify;
  KillableOwner    *owner;     /* alive: the stop state is cleared before it */
} StopCallbackData;

static void
stop_callback_trampoline (KillableTask *task,
                          const GError *reason,
                          gpointer      user_data)
{
  StopCallbackData *data = user_data;

  data->func (task, reason, data->user_data);
}

static void
stop_callback_data_free (gpointer user_data)
{
  StopCallbackData *data = user_data;

  killable_owner_release (data->owner, data->notify, data->user_data);
  g_free (data);
}

/* Everything but the common case: a bad argument, or a @notify (the data
 * is then released on the owner's context: a stop from a timer or a
 * worker must not free a GJS closure there). */
static G_GNUC_NO_INLINE gulong
add_stop_callback_full (KillableTask     *self,
                        KillableStopFunc  func,
                        gpointer          user_data,
                        GDestroyNotify    notify)
{
  KillableTaskPrivate *priv;
  StopCallbackData *data;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), 0);
  g_return_val_if_fail (func != NULL, 0);

  priv = killable_task_get_instance_private (self);

  if (notify == NULL)
    return killable_stop_state_add_callback (&priv->stop, self, func, user_data, NULL);

  data = g_new (StopCallbackData, 1);
  data->func = func;
  data->user_data = user_data;
  data->notify = notify;
  data->owner = &priv->owner;

  return killable_stop_state_add_callback (&priv->stop, self, stop_callback_trampoline,
                                           data, stop_callback_data_free);
}

/**
 * killable_task_add_stop_callback:
 * @self: a task
 * @func: (scope notified) (closure user_data) (destroy notify): the callback
 * @user_data: data for @func
 * @notify: (nullable): frees @user_data once @func ran or was removed
 *
 * Adds a callback run when a stop of the task is requested. It runs
 * synchronously, exactly once, in the thread that requested the stop (or
 * stopped an ancestor, or in the timer thread for a timeout), before the
 * request returns. It is the place to unblock a foreign library
 * (`sqlite3_interrupt()`, `curl`'s abort, closing a socket); it must not
 * block nor wait for the worker. The callbacks of one task run in the
 * order they were added (as the handlers of #GCancellable::cancelled do).
 *
 * If a stop was already requested, @func runs at once in the calling thread
 * and 0 is returned.
 *
 * This function is thread-safe.
 *
 * Returns: an id for [method@Killable.Task.remove_stop_callback], or 0 if
 *   @func already ran
 *
 * Since: 1.0
 */
gulong
killable_task_add_stop_callback (KillableTask     *self,
                                 KillableStopFunc  func,
                                 gpointer          user_data,
                                 GDestroyNotify    notify)
{
  /* Scoped callbacks are added and removed in loops: the common case (the
   * exact type, no notify) calls nothing on its way to the inline add, so
   * that it saves no register. */
  if (G_LIKELY (self != NULL && G_TYPE_FROM_INSTANCE (self) == task_type &&
                func != NULL && notify == NULL))
    {
      KillableTaskPrivate *priv = killable_task_get_instance_private (self);

      return killable_stop_state_add_callback (&priv->stop, self, func, user_data, NULL);
    }

  return add_stop_callback_full (self, func, user_data, notify);
}

/* A subclass, or a bad argument. */
static G_GNUC_NO_INLINE void
remove_stop_callback_full (KillableTask *self,
                           gulong        id)
{
  KillableTaskPrivate *priv;

  g_return_if_fail (KILLABLE_IS_TASK (self));

  if (id == 0)
    return;

  priv = killable_task_get_instance_private (self);
  killable_stop_state_remove_callback (&priv->stop, id);
}

/**
 * killable_task_remove_stop_callback:
 * @self: a task
 * @id: an id returned by [method@Killable.Task.add_stop_callback]
 *
 * Removes a stop callback so that it does not run. If it is running in
 * another thread, waits until it returned; called from within the callback
 * itself, it does not wait. After it returns, the callback is not running
 * and will never run, so its data may be freed. Unknown and 0 ids are
 * ignored (the callback already ran).
 *
 * This function is thread-safe.
 *
 * Since: 1.0
 */
void
killable_task_remove_stop_callback (KillableTask *self,
                                    gulong        id)
{
  /* As add: the common case calls nothing before the inline remove, whose
   * only call (the notify, if any) comes last. */
  if (G_LIKELY (self != NULL && G_TYPE_FROM_INSTANCE (self) == task_type))
    {
      KillableTaskPrivate *priv = killable_task_get_instance_private (self);

      if (id != 0)
        killable_stop_state_remove_callback (&priv->stop, id);
      return;
    }

  remove_stop_callback_full (self, id);
}

/* }}} */

/* Public API: application integration {{{ */

/**
 * killable_task_new_group:
 * @name: (nullable): a name for messages and debugging
 *
 * Creates a pending *group task*: a task with no work of its own, which
 * holds children ([method@Killable.Task.add_child]). Started, it takes no
 * thread (and no [class@Killable.Limiter] permit); it ends when it has no
 * live child left: at once if it has none, otherwise when the last of them
 * ends. Add its first children before starting it.
 *
 * Its outcome is the one its [property@Killable.Task:child-policy] gives:
 * under %KILLABLE_CHILD_POLICY_FAIL_FAST a failed child fails it with
 * %KILLABLE_ERROR_CHILD_FAILED (and stops the other children); under
 * %KILLABLE_CHILD_POLICY_ISOLATE it succeeds whatever its children did.
 * Stopped, it stops its children and ends %KILLABLE_TASK_STATE_CANCELLED
 * with the stop's cause once they have ended. Its cleanups run in the
 * thread that ends it.
 *
 * ```c
 * g_autoptr(KillableTask) downloads = killable_task_new_group ("downloads");
 *
 * for (guint i = 0; i < n_urls; i++)
 *   {
 *     g_autoptr(KillableTask) task = killable_task_new ("get", download, urls[i], NULL);
 *
 *     killable_task_add_child (downloads, task, NULL);
 *     killable_task_start (task, NULL);
 *   }
 * killable_task_run_async (downloads, cancellable, downloads_done_cb, self);
 * ```
 *
 * This function is thread-safe.
 *
 * Returns: (transfer full): a new group task
 *
 * Since: 1.2
 */
KillableTask *
killable_task_new_group (const char *name)
{
  KillableTask *self;
  KillableTaskPrivate *priv;

  self = g_object_new (KILLABLE_TYPE_TASK, "name", name, NULL);
  priv = killable_task_get_instance_private (self);
  /* Before the task is shared: immutable from here. */
  priv->group = TRUE;

  return self;
}

/**
 * killable_task_is_group:
 * @self: a task
 *
 * Whether @self was created with [ctor@Killable.Task.new_group].
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE for a group task
 *
 * Since: 1.2
 */
gboolean
killable_task_is_group (KillableTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  return is_group (killable_task_get_instance_private (self));
}

/**
 * killable_task_return_value:
 * @self: a task
 * @value: the result of the work
 *
 * Gives the task's result, as g_task_return_value() does for a #GTask. The
 * worker calls it before its work returns %TRUE; the owner gets a copy with
 * [method@Killable.Task.propagate_value] once the task succeeded. A later
 * call replaces the value; a value given after the end (by an abandoned
 * worker, say) is dropped.
 *
 * This function is thread-safe; it is meant for the worker.
 *
 * Since: 1.2
 */
void
killable_task_return_value (KillableTask *self,
                            const GValue *value)
{
  KillableTaskPrivate *priv;
  GValue old = G_VALUE_INIT;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (G_IS_VALUE (value));

  priv = killable_task_get_instance_private (self);

  g_mutex_lock (&priv->lock);
  if (!KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    {
      KillableTaskRun *extra = get_run (self);

      /* Freed outside the lock: a boxed or object value may run user code. */
      old = extra->result;
      memset (&extra->result, 0, sizeof (GValue));
      g_value_init (&extra->result, G_VALUE_TYPE (value));
      g_value_copy (value, &extra->result);
    }
  g_mutex_unlock (&priv->lock);

  if (G_IS_VALUE (&old))
    g_value_unset (&old);
}

/**
 * killable_task_propagate_value:
 * @self: a terminal task
 * @value: (out caller-allocates) (optional): return location for a copy
 *   of the result; an unset (zero-filled) #GValue
 * @error: return location for a #GError
 *
 * Gets the outcome of a task that ended and, if it succeeded, the value its
 * worker gave [method@Killable.Task.return_value], as
 * g_task_propagate_value() does. @value stays unset when the task succeeded
 * without a value. Call it after [method@Killable.Task.join],
 * [method@Killable.Task.run_finish] or [method@Killable.Task.wait_finish];
 * it may be called any number of times.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE if the task succeeded; %FALSE with @error set as
 *   [method@Killable.Task.join] sets it otherwise
 *
 * Since: 1.2
 */
gboolean
killable_task_propagate_value (KillableTask  *self,
                               GValue        *value,
                               GError       **error)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *run;
  GValue copy = G_VALUE_INIT;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (value == NULL || !G_IS_VALUE (value), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = killable_task_get_instance_private (self);
  g_return_val_if_fail (KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)),
                        FALSE);

  if (peek_error (self) != NULL)
    {
      g_propagate_error (error, g_error_copy (peek_error (self)));
      return FALSE;
    }

  if (value == NULL)
    return TRUE;

  /* Terminal: return_value() no longer changes the result. Copied under
   * the lock, which the last return_value() released. */
  g_mutex_lock (&priv->lock);
  run = peek_run (priv);
  if (run != NULL && G_IS_VALUE (&run->result))
    {
      g_value_init (&copy, G_VALUE_TYPE (&run->result));
      g_value_copy (&run->result, &copy);
    }
  g_mutex_unlock (&priv->lock);

  *value = copy;

  return TRUE;
}

static gboolean
wait_cancelled_cb (GCancellable *cancellable,
                   gpointer      user_data)
{
  GTask *waiter = user_data;
  KillableTask *self = g_task_get_source_object (waiter);
  KillableTaskPrivate *priv = killable_task_get_instance_private (self);
  KillableTaskRun *run;
  gboolean found = FALSE;

  /* Abandons this wait only: the task goes on. Whoever takes the waiter
   * out of the list (this, or the end of the task) returns it. */
  g_mutex_lock (&priv->lock);
  run = peek_run (priv);
  if (run != NULL && g_slist_find (run->waiters, waiter) != NULL)
    {
      run->waiters = g_slist_remove (run->waiters, waiter);
      found = TRUE;
    }
  g_mutex_unlock (&priv->lock);

  if (found)
    {
      g_task_return_error_if_cancelled (waiter);
      g_object_unref (waiter);
    }

  return G_SOURCE_REMOVE;
}

/**
 * killable_task_wait_async:
 * @self: a task
 * @cancellable: (nullable): cancelling it abandons this wait, not the task
 * @callback: (scope async) (closure user_data): called on the caller's
 *   thread-default main context once the task is terminal
 * @user_data: data for @callback
 *
 * Waits, without blocking, for a task that someone else started (or will
 * start, or stop) to end: the asynchronous [method@Killable.Task.join]. Any
 * number of waits may be pending on a task, each on its own thread's
 * thread-default main context. Get the outcome with
 * [method@Killable.Task.wait_finish] and the result with
 * [method@Killable.Task.propagate_value].
 *
 * Cancelling @cancellable makes this wait finish with
 * %G_IO_ERROR_CANCELLED; the task itself is not stopped (use
 * [method@Killable.Task.run_async] for a cancellable that stops it).
 *
 * This function is thread-safe; @callback runs on the thread that owns the
 * caller's thread-default main context.
 *
 * Since: 1.2
 */
void
killable_task_wait_async (KillableTask        *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  KillableTaskPrivate *priv;
  g_autoptr(GTask) waiter = NULL;
  gboolean terminal;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  priv = killable_task_get_instance_private (self);
  waiter = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (waiter, killable_task_wait_async);
  g_task_set_name (waiter, "[killable] killable_task_wait_async");

  if (KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state)))
    {
      return_waiters (g_slist_prepend (NULL, g_steal_pointer (&waiter)), peek_error (self));
      return;
    }

  if (cancellable != NULL)
    {
      GSource *source = g_cancellable_source_new (cancellable);

      /* The source holds the waiter until it is destroyed (after it ran,
       * or by the end of the task): attached before the waiter is
       * published, so that return_waiters() always breaks the cycle. */
      g_source_set_callback (source, G_SOURCE_FUNC (wait_cancelled_cb),
                             g_object_ref (waiter), g_object_unref);
      g_source_set_static_name (source, "[killable] wait cancelled");
      g_task_set_task_data (waiter, source, (GDestroyNotify) g_source_unref);
      g_source_attach (source, g_task_get_context (waiter));
    }

  g_mutex_lock (&priv->lock);
  terminal = KILLABLE_TASK_STATE_IS_TERMINAL (flag_get (&priv->state));
  if (!terminal)
    {
      KillableTaskRun *extra = get_run (self);

      extra->waiters = g_slist_prepend (extra->waiters, g_object_ref (waiter));
    }
  g_mutex_unlock (&priv->lock);

  /* Ended meanwhile: complete_full() took the waiters before this one. */
  if (terminal)
    return_waiters (g_slist_prepend (NULL, g_steal_pointer (&waiter)), peek_error (self));
}

/**
 * killable_task_wait_finish:
 * @self: a task
 * @result: the result given to the callback of
 *   [method@Killable.Task.wait_async]
 * @error: return location for a #GError
 *
 * Gets the outcome of [method@Killable.Task.wait_async]: the same as
 * [method@Killable.Task.join] would return, or %G_IO_ERROR_CANCELLED if the
 * wait's cancellable was cancelled.
 *
 * Call it from the callback given to [method@Killable.Task.wait_async].
 *
 * Returns: %TRUE if the task succeeded
 *
 * Since: 1.2
 */
gboolean
killable_task_wait_finish (KillableTask  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, killable_task_wait_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * killable_task_set_limiter: (set-property limiter)
 * @self: a pending task, not started yet
 * @limiter: (nullable): the limiter, or %NULL for none
 *
 * Makes @self one of the tasks @limiter limits: once started, it waits
 * %KILLABLE_TASK_STATE_PENDING until it gets one of the limiter's permits.
 * Group tasks take no permit: the limiter of a group is ignored.
 *
 * This function is thread-safe; call it before the start.
 *
 * Since: 1.2
 */
void
killable_task_set_limiter (KillableTask    *self,
                           KillableLimiter *limiter)
{
  KillableTaskPrivate *priv;
  KillableLimiter *old = NULL;
  gboolean changed = FALSE;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (limiter == NULL || KILLABLE_IS_LIMITER (limiter));

  priv = killable_task_get_instance_private (self);
  g_return_if_fail (!is_started (priv));

  g_mutex_lock (&priv->lock);
  if (peek_run (priv) != NULL || limiter != NULL)
    {
      KillableTaskRun *extra = get_run (self);

      if (extra->limiter != limiter)
        {
          old = extra->limiter;
          extra->limiter = limiter != NULL ? g_object_ref (limiter) : NULL;
          changed = TRUE;
        }
    }
  g_mutex_unlock (&priv->lock);

  g_clear_object (&old);
  if (changed)
    killable_task_emit_setter (self, KILLABLE_EMIT_LIMITER);
}

/**
 * killable_task_get_limiter: (get-property limiter)
 * @self: a task
 *
 * Gets [property@Killable.Task:limiter].
 *
 * This function is thread-safe.
 *
 * Returns: (transfer none) (nullable): the limiter, or %NULL
 *
 * Since: 1.2
 */
KillableLimiter *
killable_task_get_limiter (KillableTask *self)
{
  KillableTaskPrivate *priv;
  KillableTaskRun *extra;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  priv = killable_task_get_instance_private (self);
  extra = peek_run (priv);

  /* Immutable once started; before, the setter's caller owns it. */
  return extra != NULL ? extra->limiter : NULL;
}

/* }}} */
