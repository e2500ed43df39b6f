/* torture.c: randomised stress test of libkillable
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each round builds a random tree of tasks (depth ≤ 4) with random work
 * (busy loops with killable_task_check(), killable_task_sleep(),
 * killable_task_wait_fd() on a pipe, blocking read() unblocked by a stop
 * callback or by EINTR, work that ignores stops, work that spawns
 * children, a KillableProcessTask running a program), starts it with
 * start() or run_async(), and lets two attacker threads hit the tasks
 * with random stop, stop_with_error, interrupt, kill,
 * add_child, unref, set_timeout, grace periods, stop callbacks, cleanups,
 * cancellations... The owner then ends the round by climbing the ladder
 * (stop, interrupt, kill), releases the work that ignores stops, and checks
 * the invariants:
 *
 *  - every task reaches at most one terminal state, and exactly one if it
 *    was started; a terminal state never changes; `finished` is emitted
 *    once per terminal task, never on a worker thread;
 *  - the outcome matches what the work returned (SUCCEEDED only if it
 *    returned TRUE, KILLED always with KILLABLE_ERROR_KILLED, ...), and
 *    join(), run_finish() and get_error() agree;
 *  - every cleanup and every stop callback runs at most once, a stop
 *    callback never after remove_stop_callback() returned, all stop
 *    callbacks of a task run iff its stop was requested, every
 *    GDestroyNotify runs exactly once;
 *  - a parent (not killed) is never terminal while a child it accepted is
 *    not;
 *  - nothing leaks: every task is finalized by the end of its round, the
 *    abandoned-thread count returns to 0, the worker pool returns to 0
 *    threads, the number of open file descriptors is unchanged, every
 *    program of a process task was reaped;
 *  - nothing deadlocks: a watchdog thread prints the seed and a backtrace
 *    of every thread (with gdb, when it is installed) and aborts if no
 *    operation completes for a while.
 *
 * The operations chosen depend only on the seed (printed as `# seed: N`;
 * set it with --seed=N or KILLABLE_TORTURE_SEED); their interleaving
 * depends on the scheduler, which is the point.
 *
 * Synchronisation inside this test uses pthread mutexes and condition
 * variables rather than GMutex/GCond, so that ThreadSanitizer sees it (see
 * tests/README-sanitizers.md).
 *
 * Options: --seed=N, --ops=N (default 3000), --watchdog=SECONDS (default
 * 60), --verbose, --starve-stoppers (/torture/big-tree-stop: the stopping
 * threads run at the lowest priority, as valgrind's scheduler may leave
 * them; a diagnostic, see big_tree_round()).
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE 1   /* pipe2() */
#endif

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "killable.h"

#include "test-core-util.h"
#include "killable-worker-pool-private.h"

#define MAX_DEPTH          3      /* root at 0: four levels */
#define MAX_INITIAL_TASKS  10
#define N_ATTACKERS        2

#define IS_TERMINAL(s) ((s) >= KILLABLE_TASK_STATE_SUCCEEDED)

/* Options */
static guint32 opt_seed;
static gint64 opt_ops = 3000;
static int opt_watchdog = 60;
static gboolean opt_verbose;
static gboolean opt_starve_stoppers;

/* Synchronisation visible to ThreadSanitizer {{{ */

typedef struct
{
  pthread_mutex_t mutex;
  pthread_cond_t  cond;
} Sync;

static void
sync_init (Sync *sync)
{
  pthread_condattr_t attr;

  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_mutex_init (&sync->mutex, NULL);
  pthread_cond_init (&sync->cond, &attr);
  pthread_condattr_destroy (&attr);
}

static void
sync_clear (Sync *sync)
{
  pthread_cond_destroy (&sync->cond);
  pthread_mutex_destroy (&sync->mutex);
}

static void
sync_lock (Sync *sync)
{
  pthread_mutex_lock (&sync->mutex);
}

static void
sync_unlock (Sync *sync)
{
  pthread_mutex_unlock (&sync->mutex);
}

static void
sync_broadcast (Sync *sync)
{
  pthread_cond_broadcast (&sync->cond);
}

/* Waits until @end_time (g_get_monotonic_time() clock, which is
 * CLOCK_MONOTONIC). Returns FALSE on timeout. */
static gboolean
sync_wait_until (Sync   *sync,
                 gint64  end_time)
{
  struct timespec ts;

  ts.tv_sec = end_time / G_USEC_PER_SEC;
  ts.tv_nsec = (end_time % G_USEC_PER_SEC) * 1000;

  return pthread_cond_timedwait (&sync->cond, &sync->mutex, &ts) != ETIMEDOUT;
}

/* }}} */

/* Global state and statistics {{{ */

typedef enum
{
  OP_STOP,
  OP_STOP_WITH_ERROR,
  OP_INTERRUPT,
  OP_KILL,
  OP_ADD_CHILD,
  OP_ADD_EXISTING,
  OP_UNREF,
  OP_SET_TIMEOUT,
  OP_SET_GRACE,
  OP_ADD_STOP_CB,
  OP_REMOVE_STOP_CB,
  OP_ADD_CLEANUP,
  OP_SET_PROGRESS,
  OP_CANCEL_CANCELLABLE,
  OP_CANCEL_ASYNC,
  OP_POKE,
  OP_START,
  OP_WAIT,
  OP_RUN_ASYNC,
  OP_TOGGLE_SYSCALLS,
  N_ATTACK_OPS,
  /* owner-side operations, counted too */
  OP_CREATE = N_ATTACK_OPS,
  OP_OWNER_START,
  OP_OWNER_RUN_ASYNC,
  OP_LADDER,
  OP_JOIN,
  N_OPS
} OpKind;

static const char *op_names[N_OPS] = {
  "stop", "stop_with_error", "interrupt", "kill", "add_child(new)",
  "add_child(existing)", "unref", "set_timeout", "set_grace_period",
  "add_stop_callback", "remove_stop_callback", "add_cleanup",
  "set_progress/status", "cancel(task cancellable)", "cancel(run_async cancellable)",
  "poke fd", "start", "wait", "run_async(new)", "toggle interrupt-syscalls",
  "create", "start(owner)", "run_async(owner)", "ladder step", "join",
};

/* Attack weights, out of their sum. */
static const guint op_weights[N_ATTACK_OPS] = {
  8,  /* stop */
  5,  /* stop_with_error */
  5,  /* interrupt */
  3,  /* kill */
  6,  /* add_child(new) */
  3,  /* add_child(existing) */
  3,  /* unref */
  4,  /* set_timeout */
  4,  /* set_grace_period */
  5,  /* add_stop_callback */
  4,  /* remove_stop_callback */
  4,  /* add_cleanup */
  4,  /* set_progress */
  3,  /* cancel task cancellable */
  2,  /* cancel run_async cancellable */
  4,  /* poke */
  4,  /* start */
  4,  /* wait */
  3,  /* run_async(new) */
  2,  /* toggle interrupt-syscalls */
};

typedef enum
{
  WORK_NOOP,
  WORK_BUSY,       /* loop with killable_task_check() */
  WORK_SLOW,       /* loop that checks only now and then */
  WORK_SLEEP,      /* killable_task_sleep() */
  WORK_WAIT_FD,    /* killable_task_wait_fd() on a pipe */
  WORK_FOREIGN,    /* blocking read(), unblocked by a stop callback */
  WORK_EINTR,      /* blocking read() with interrupt-syscalls */
  WORK_STUCK,      /* ignores stops until the round releases it */
  WORK_SPAWN,      /* adds and starts children, joins them */
  WORK_PROCESS,    /* a KillableProcessTask: a program, not work_func() */
  N_WORK
} WorkKind;

static const char *work_names[N_WORK] = {
  "noop", "busy", "slow", "sleep", "wait_fd", "foreign", "eintr", "stuck", "spawn", "process",
};

static const guint work_weights[N_WORK] = { 5, 25, 10, 20, 15, 8, 7, 4, 8, 8 };

/* The programs of WORK_PROCESS tasks, by planned end: it exits 0 at once
 * or sleeps until stopped; it exits 3; it ignores SIGTERM and SIGINT, so
 * that only a kill ends it early. The sleeps are bounded: a task the round
 * lost every reference to (an attacker's unref) is stopped by nobody. */
static const char *const process_success_argv[] = { "true", NULL };
static const char *const process_sleep_argv[] = { "sleep", "3", NULL };
static const char *const process_error_argv[] = { "sh", "-c", "exit 3", NULL };
static const char *const process_stubborn_argv[] = {
  "sh", "-c", "trap '' TERM INT; exec sleep 3", NULL
};

typedef enum
{
  END_SUCCESS,
  END_ERROR,
  END_FALSE,       /* FALSE without an error */
} WorkEnd;

enum
{
  RUN_NONE = 0,
  RUN_TRUE,
  RUN_FALSE_STOPPED,     /* returned the stop error of check/sleep/wait_fd */
  RUN_FALSE_ERROR,       /* the planned failure */
  RUN_FALSE_NO_ERROR,
};

typedef enum
{
  CB_PLAIN,
  CB_WAKER,        /* writes to the task's pipe (the sqlite3_interrupt pattern) */
  CB_RESTOP,       /* stops the same task again */
  CB_REMOVE_SELF,  /* removes itself while running */
  CB_STOP_OTHER,   /* stops another task of the round */
  CB_ADD_CB,       /* adds a stop callback from inside one */
  CB_SENTINEL,     /* never removed: ran iff the stop was requested */
  N_CB_KINDS
} CbKind;

typedef enum
{
  CLEANUP_PLAIN,
  CLEANUP_STOP_SELF,
  CLEANUP_ADD_NESTED,
  CLEANUP_PROGRESS,
} CleanupKind;

typedef enum
{
  START_OWNER,
  START_PARENT_WORK,
  START_NEVER,
  START_ATTACKER,
} StartMode;

#define TORTURE_ERROR (torture_error_quark ())
enum
{
  TORTURE_ERROR_PLANNED,
  TORTURE_ERROR_ATTACK,
};
GQuark torture_error_quark (void);
G_DEFINE_QUARK (torture-error-quark, torture_error)

static int ops_done;                 /* (atomic) */
static int progress;                 /* (atomic) bumped by every operation */
static int violations;               /* (atomic) */
static int op_counts[N_OPS];         /* (atomic) */
static int state_counts[KILLABLE_TASK_STATE_KILLED + 1]; /* (atomic) */
static int work_counts[N_WORK];      /* (atomic) */
static int n_created;                /* (atomic) */
static int n_finalized;              /* (atomic) */
static int n_rounds;
static int n_cleanups_ran;           /* (atomic) */
static int n_stop_cbs_ran;           /* (atomic) */
static int n_abandoned_max;          /* (atomic) */
static int n_add_child_refused;      /* (atomic) */
static int n_eintr_seen;             /* (atomic) */
static guint current_round_number;   /* (atomic) for messages */

static GThread *main_thread;
static GThread *async_thread;
static GMainContext *async_context;

static void
count_op (OpKind kind)
{
  g_atomic_int_inc (&op_counts[kind]);
  g_atomic_int_inc (&ops_done);
  g_atomic_int_inc (&progress);
}

static void violation (const char *task_name,
                       const char *format,
                       ...) G_GNUC_PRINTF (2, 3);

static Sync violation_sync;
static GHashTable *violation_kinds;   /* format → count, protected by violation_sync */

/* Reports a broken invariant: the first few of each kind are printed, all
 * are counted, and the test fails at the end. */
static void
violation (const char *task_name,
           const char *format,
           ...)
{
  va_list args;
  char *msg;
  guint n;

  g_atomic_int_inc (&violations);

  sync_lock (&violation_sync);
  if (violation_kinds == NULL)
    violation_kinds = g_hash_table_new (NULL, NULL);
  n = GPOINTER_TO_UINT (g_hash_table_lookup (violation_kinds, format));
  g_hash_table_insert (violation_kinds, (gpointer) format, GUINT_TO_POINTER (n + 1));
  sync_unlock (&violation_sync);

  if (n >= 5)
    return;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, "# VIOLATION (seed %" G_GUINT32_FORMAT ", round %u, task %s): %s\n",
           opt_seed, g_atomic_int_get (&current_round_number),
           task_name != NULL ? task_name : "-", msg);
  g_free (msg);
}

static void
print_violation_summary (void)
{
  GHashTableIter iter;
  gpointer key, value;

  if (violation_kinds == NULL)
    return;

  g_hash_table_iter_init (&iter, violation_kinds);
  while (g_hash_table_iter_next (&iter, &key, &value))
    fprintf (stderr, "# %u× VIOLATION: %s\n", GPOINTER_TO_UINT (value), (const char *) key);
  g_clear_pointer (&violation_kinds, g_hash_table_unref);
}

/* }}} */

/* Records {{{ */

typedef struct _Round Round;
typedef struct _Rec Rec;

typedef struct
{
  Rec      *rec;
  CbKind    kind;
  guint     param;          /* CB_STOP_OTHER: index of the target */
  gulong    id;             /* protected by rec->lock */
  int       ran;            /* (atomic) */
  int       freed;          /* (atomic) */
  int       removed;        /* (atomic) remove_stop_callback() returned */
} CbRec;

typedef struct
{
  Rec         *rec;
  CleanupKind  kind;
  int          ran;         /* (atomic) */
  int          freed;       /* (atomic) */
} CleanupRec;

struct _Rec
{
  Round        *round;
  guint         index;               /* in round->recs */
  char          name[48];
  WorkKind      kind;
  WorkEnd       end;
  StartMode     start_mode;
  int           depth;
  guint32       seed;                /* the worker's own random sequence */
  guint         iters;
  gboolean      commit;              /* uses set_abandonable(FALSE) */
  gboolean      via_async;
  int           pipe_rd;
  int           pipe_wr;

  KillableTask *task;                /* (unowned) identity; valid until finalized */
  Rec          *parent_rec;          /* protected by round->sync; last successful add_child */

  Sync          lock;                /* protects the arrays below */
  GPtrArray    *cbs;                 /* (element-type CbRec) owned */
  GPtrArray    *cleanups;            /* (element-type CleanupRec) owned */
  GPtrArray    *to_start;            /* (element-type KillableTask) children the work starts */
  GPtrArray    *to_start_recs;       /* (element-type Rec) their records, same order */
  CbRec        *sentinel;

  int           start_called;        /* (atomic) */
  int           start_true;          /* (atomic) start() calls that returned TRUE */
  int           run_count;           /* (atomic) */
  int           run_result;          /* (atomic) RUN_* */
  int           terminal;            /* (atomic) 0, or state + 1 */
  int           finished_count;      /* (atomic) */
  int           notify_state_count;  /* (atomic) */
  int           stop_signal_count;   /* (atomic) */
  int           finalized;           /* (atomic) */
  int           async_called;        /* (atomic) run_async() was called */
  int           async_done;          /* (atomic) */
  int           async_before_finished; /* (atomic) callback came before `finished` */
  GCancellable *async_cancellable;   /* (owned) (nullable) */
};

struct _Round
{
  guint         number;
  Sync          sync;                /* protects recs, tasks, released, refs_dropped */
  GPtrArray    *recs;                /* (element-type Rec) owned */
  GPtrArray    *tasks;               /* (element-type KillableTask) (nullable) elements: refs */
  gboolean      released;
  gboolean      refs_dropped;
  int           outstanding;         /* (atomic) tasks, cleanups and callbacks not freed yet */
  Rec          *root_rec;
};

static void
outstanding_dec (Round *round)
{
  if (g_atomic_int_dec_and_test (&round->outstanding))
    g_main_context_wakeup (NULL);
  g_atomic_int_inc (&progress);
}

static const char *
state_name (KillableTaskState state)
{
  static const char *names[] = {
    "PENDING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "CANCELLED", "KILLED",
  };

  if ((guint) state < G_N_ELEMENTS (names))
    return names[state];
  return "INVALID";
}

/* Reads the state and checks that a terminal state never changes. */
static KillableTaskState
observe (Rec          *rec,
         KillableTask *task)
{
  int recorded = g_atomic_int_get (&rec->terminal);
  KillableTaskState state = killable_task_get_state (task);

  if (recorded != 0 && (int) state != recorded - 1)
    violation (rec->name, "terminal state %s changed to %s",
               state_name (recorded - 1), state_name (state));

  if (IS_TERMINAL (state))
    {
      const GError *error = killable_task_get_error (task);

      if (recorded == 0 &&
          !g_atomic_int_compare_and_exchange (&rec->terminal, 0, (int) state + 1) &&
          g_atomic_int_get (&rec->terminal) != (int) state + 1)
        violation (rec->name, "two terminal states: %s and %s",
                   state_name (g_atomic_int_get (&rec->terminal) - 1), state_name (state));

      if ((state == KILLABLE_TASK_STATE_SUCCEEDED) != (error == NULL))
        violation (rec->name, "state %s with error %s", state_name (state),
                   error != NULL ? error->message : "(none)");
      /* A timeout that escalated to a kill keeps its cause. */
      if (state == KILLABLE_TASK_STATE_KILLED &&
          !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED) &&
          !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT))
        violation (rec->name, "KILLED with error %s", error != NULL ? error->message : "(none)");
    }

  return state;
}

/* start(), counted: it returns TRUE at most once per task. */
static gboolean
rec_start (Rec           *rec,
           KillableTask  *task,
           GError       **error)
{
  g_atomic_int_set (&rec->start_called, 1);
  if (!killable_task_start (task, error))
    return FALSE;
  if (g_atomic_int_add (&rec->start_true, 1) != 0)
    violation (rec->name, "start() returned TRUE twice");
  return TRUE;
}

static void
cb_rec_free (gpointer data)
{
  g_free (data);
}

static void
cleanup_rec_free (gpointer data)
{
  g_free (data);
}

static void
rec_free (Rec *rec)
{
  if (rec->pipe_rd >= 0)
    close (rec->pipe_rd);
  if (rec->pipe_wr >= 0)
    close (rec->pipe_wr);
  g_ptr_array_unref (rec->cbs);
  g_ptr_array_unref (rec->cleanups);
  g_clear_pointer (&rec->to_start, g_ptr_array_unref);
  g_clear_pointer (&rec->to_start_recs, g_ptr_array_unref);
  g_clear_object (&rec->async_cancellable);
  sync_clear (&rec->lock);
  g_free (rec);
}

/* }}} */

/* Stop callbacks and cleanups {{{ */

static void stop_cb (KillableTask *task, const GError *reason, gpointer data);
static void cleanup_cb (KillableTask *task, gpointer data);

static void
stop_cb_notify (gpointer data)
{
  CbRec *cb = data;

  if (g_atomic_int_add (&cb->freed, 1) != 0)
    violation (cb->rec->name, "stop callback data freed twice");
  outstanding_dec (cb->rec->round);
}

static CbRec *
add_stop_cb (Rec          *rec,
             KillableTask *task,
             CbKind        kind,
             guint         param)
{
  CbRec *cb = g_new0 (CbRec, 1);
  gulong id;

  cb->rec = rec;
  cb->kind = kind;
  cb->param = param;
  g_atomic_int_inc (&rec->round->outstanding);

  /* Registered before it may run, so that the checks see it. */
  sync_lock (&rec->lock);
  g_ptr_array_add (rec->cbs, cb);
  sync_unlock (&rec->lock);

  id = killable_task_add_stop_callback (task, stop_cb, cb, stop_cb_notify);

  sync_lock (&rec->lock);
  cb->id = id;
  sync_unlock (&rec->lock);

  return cb;
}

static void
cleanup_notify (gpointer data)
{
  CleanupRec *c = data;

  if (g_atomic_int_add (&c->freed, 1) != 0)
    violation (c->rec->name, "cleanup data freed twice");
  if (g_atomic_int_get (&c->ran) != 1)
    violation (c->rec->name, "cleanup data freed before the cleanup ran");
  outstanding_dec (c->rec->round);
}

static void
add_cleanup (Rec          *rec,
             KillableTask *task,
             CleanupKind   kind)
{
  CleanupRec *c = g_new0 (CleanupRec, 1);

  c->rec = rec;
  c->kind = kind;
  g_atomic_int_inc (&rec->round->outstanding);

  sync_lock (&rec->lock);
  g_ptr_array_add (rec->cleanups, c);
  sync_unlock (&rec->lock);

  killable_task_add_cleanup (task, cleanup_cb, c, cleanup_notify);
}

static KillableTask *
round_dup_task (Round *round,
                guint  index)
{
  KillableTask *ret = NULL;

  sync_lock (&round->sync);
  if (index < round->tasks->len && g_ptr_array_index (round->tasks, index) != NULL)
    ret = g_object_ref (g_ptr_array_index (round->tasks, index));
  sync_unlock (&round->sync);

  return ret;
}

static void
stop_cb (KillableTask *task,
         const GError *reason,
         gpointer      data)
{
  CbRec *cb = data;
  Rec *rec = cb->rec;

  if (g_atomic_int_get (&cb->removed))
    violation (rec->name, "stop callback ran after remove_stop_callback() returned");
  if (g_atomic_int_add (&cb->ran, 1) != 0)
    violation (rec->name, "stop callback ran twice");
  if (task != rec->task)
    violation (rec->name, "stop callback got another task");
  if (!killable_task_is_stop_requested (task))
    violation (rec->name, "stop callback ran but no stop was requested");
  g_atomic_int_inc (&n_stop_cbs_ran);
  g_atomic_int_inc (&progress);

  switch (cb->kind)
    {
    case CB_WAKER:
      if (rec->pipe_wr >= 0 && write (rec->pipe_wr, "s", 1) < 0 && errno != EAGAIN)
        violation (rec->name, "write to pipe failed: %s", g_strerror (errno));
      break;

    case CB_RESTOP:
      killable_task_stop (task);
      {
        g_autoptr(GError) again = g_error_new (TORTURE_ERROR, TORTURE_ERROR_ATTACK, "restop");
        killable_task_stop_with_error (task, again);
      }
      break;

    case CB_REMOVE_SELF:
      {
        gulong id;

        sync_lock (&rec->lock);
        id = cb->id;
        sync_unlock (&rec->lock);
        /* Must not wait for itself. */
        killable_task_remove_stop_callback (task, id);
      }
      break;

    case CB_STOP_OTHER:
      {
        g_autoptr(KillableTask) other = round_dup_task (rec->round, cb->param);

        if (other != NULL)
          killable_task_stop (other);
      }
      break;

    case CB_ADD_CB:
      /* The stop was requested: runs at once, here, and 0 is returned. */
      {
        CbRec *nested = add_stop_cb (rec, task, CB_PLAIN, 0);
        gulong id;

        sync_lock (&rec->lock);
        id = nested->id;
        sync_unlock (&rec->lock);
        if (id != 0 || g_atomic_int_get (&nested->ran) != 1)
          violation (rec->name, "stop callback added after the stop did not run at once");
      }
      break;

    case CB_PLAIN:
    case CB_SENTINEL:
    case N_CB_KINDS:
    default:
      break;
    }
}

static void
cleanup_cb (KillableTask *task,
            gpointer      data)
{
  CleanupRec *c = data;
  Rec *rec = c->rec;
  KillableTask *current = killable_task_get_current ();

  if (g_atomic_int_add (&c->ran, 1) != 0)
    violation (rec->name, "cleanup ran twice");
  g_atomic_int_inc (&n_cleanups_ran);
  g_atomic_int_inc (&progress);

  if (task != rec->task)
    violation (rec->name, "cleanup got another task");

  if (current == task)
    {
      KillableTaskState state = killable_task_get_state (task);

      /* On the worker, before the terminal state (unless abandoned). */
      if (IS_TERMINAL (state) && state != KILLABLE_TASK_STATE_KILLED)
        violation (rec->name, "cleanup ran on the worker after the terminal state %s",
                   state_name (state));
    }

  /* Only on the worker: in finalize (a task that never ran) the task must
   * not be referenced again. */
  if (current == task)
    {
      switch (c->kind)
        {
        case CLEANUP_STOP_SELF:
          killable_task_stop (task);
          break;
        case CLEANUP_ADD_NESTED:
          /* The cleanups are running: a new one runs at once. */
          add_cleanup (rec, task, CLEANUP_PLAIN);
          break;
        case CLEANUP_PROGRESS:
          killable_task_set_progress (task, 1.);
          killable_task_set_status (task, "cleaning up");
          break;
        case CLEANUP_PLAIN:
        default:
          break;
        }
    }
}

/* }}} */

/* Signal handlers (owner context) {{{ */

static gboolean
on_owner_thread (void)
{
  GThread *self = g_thread_self ();

  return killable_task_get_current () == NULL &&
         (self == main_thread || self == async_thread);
}

static void
finished_cb (KillableTask *task,
             Rec          *rec)
{
  KillableTaskState state = observe (rec, task);
  int n = g_atomic_int_add (&rec->finished_count, 1);

  if (n != 0)
    violation (rec->name, "`finished` emitted %d times", n + 1);
  if (!IS_TERMINAL (state))
    violation (rec->name, "`finished` emitted in state %s", state_name (state));
  if (!on_owner_thread ())
    violation (rec->name, "`finished` emitted outside the owner's context");
  if (g_atomic_int_get (&rec->async_before_finished) && g_thread_self () == async_thread)
    violation (rec->name, "run_async() callback came before `finished` on the same context");
  g_atomic_int_inc (&progress);
}

static void
notify_state_cb (KillableTask *task,
                 GParamSpec   *pspec,
                 Rec          *rec)
{
  int n = g_atomic_int_add (&rec->notify_state_count, 1);

  observe (rec, task);
  if (n >= 3)
    violation (rec->name, "notify::state emitted %d times (at most 3 transitions)", n + 1);
  if (!on_owner_thread ())
    violation (rec->name, "notify::state emitted outside the owner's context");
}

static void
stop_requested_cb (KillableTask *task,
                   const GError *reason,
                   Rec          *rec)
{
  if (g_atomic_int_add (&rec->stop_signal_count, 1) != 0)
    violation (rec->name, "`stop-requested` emitted twice");
  if (!killable_task_is_stop_requested (task))
    violation (rec->name, "`stop-requested` emitted but no stop was requested");
  if (!on_owner_thread ())
    violation (rec->name, "`stop-requested` emitted outside the owner's context");
}

/* }}} */

/* Work {{{ */

static gboolean
round_is_released (Round *round)
{
  gboolean ret;

  sync_lock (&round->sync);
  ret = round->released;
  sync_unlock (&round->sync);

  return ret;
}

static KillableTask *create_task (Round      *round,
                                  GRand      *rand,
                                  int         depth,
                                  gboolean    allow_blocking,
                                  gboolean    via_async,
                                  Rec       **out_rec);

static gboolean
finish_work (Rec      *rec,
             GError  **error)
{
  switch (rec->end)
    {
    case END_ERROR:
      g_atomic_int_set (&rec->run_result, RUN_FALSE_ERROR);
      g_set_error (error, TORTURE_ERROR, TORTURE_ERROR_PLANNED, "planned failure of %s", rec->name);
      return FALSE;
    case END_FALSE:
      g_atomic_int_set (&rec->run_result, RUN_FALSE_NO_ERROR);
      return FALSE;
    case END_SUCCESS:
    default:
      g_atomic_int_set (&rec->run_result, RUN_TRUE);
      return TRUE;
    }
}

static gboolean is_process_failure (const GError *error);

static gboolean
stopped (Rec     *rec,
         GError **error)
{
  /* The stop's cause: a cancellation, or the reason given to
   * stop_with_error(). */
  if (error != NULL && *error != NULL && !killable_error_is_cancellation (*error) &&
      !g_error_matches (*error, TORTURE_ERROR, TORTURE_ERROR_ATTACK) &&
      !g_error_matches (*error, TORTURE_ERROR, TORTURE_ERROR_PLANNED) &&
      !is_process_failure (*error))
    violation (rec->name, "a killable wait failed with a non-cancellation error: %s",
               (*error)->message);
  g_atomic_int_set (&rec->run_result, RUN_FALSE_STOPPED);
  return FALSE;
}

/* Per thread: busy work must not share memory between threads. */
static __thread volatile guint64 sink;

static void
spin (guint n)
{
  guint64 x = sink;

  for (guint i = 0; i < n; i++)
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  sink = x;
}

/* A blocking read() of one byte. Returns 1 on data, 0 on EINTR. */
static int
blocking_read (Rec *rec)
{
  char c;
  ssize_t n = read (rec->pipe_rd, &c, 1);

  if (n == 1)
    return 1;
  if (n < 0 && errno == EINTR)
    return 0;
  violation (rec->name, "read() returned %zd: %s", n, n < 0 ? g_strerror (errno) : "EOF");
  return 1;
}

static gboolean
work_func (KillableTask  *task,
           gpointer       data,
           GError       **error)
{
  Rec *rec = data;
  g_autoptr(GRand) rand = g_rand_new_with_seed (rec->seed);
  g_autoptr(GPtrArray) to_start = NULL;
  g_autoptr(GPtrArray) to_start_recs = NULL;
  KillableTaskState state;

  if (g_atomic_int_add (&rec->run_count, 1) != 0)
    violation (rec->name, "run() called twice");
  if (killable_task_get_current () != task || task != rec->task)
    violation (rec->name, "killable_task_get_current() is not the running task");
  if (!g_atomic_int_get (&rec->start_called))
    violation (rec->name, "run() without start");
  state = observe (rec, task);
  if (state != KILLABLE_TASK_STATE_RUNNING && state != KILLABLE_TASK_STATE_STOPPING &&
      state != KILLABLE_TASK_STATE_KILLED)
    violation (rec->name, "run() in state %s", state_name (state));
  g_atomic_int_inc (&work_counts[rec->kind]);
  g_atomic_int_inc (&progress);

  /* Children that this work starts itself. */
  sync_lock (&rec->lock);
  to_start = g_steal_pointer (&rec->to_start);
  to_start_recs = g_steal_pointer (&rec->to_start_recs);
  sync_unlock (&rec->lock);
  if (to_start != NULL)
    for (guint i = 0; i < to_start->len; i++)
      {
        KillableTask *child = g_ptr_array_index (to_start, i);
        Rec *child_rec = g_ptr_array_index (to_start_recs, i);

        rec_start (child_rec, child, NULL);
      }

  if (g_rand_int_range (rand, 0, 100) < 20)
    add_cleanup (rec, task, g_rand_int_range (rand, 0, 4));
  if (g_rand_int_range (rand, 0, 100) < 20)
    add_stop_cb (rec, task, CB_PLAIN, 0);

  switch (rec->kind)
    {
    case WORK_NOOP:
      break;

    case WORK_BUSY:
      for (guint i = 0; i < rec->iters; i++)
        {
          if (!killable_task_check (task, error))
            return stopped (rec, error);
          spin (50);
          if ((i & 63) == 0)
            killable_task_set_progress (task, (double) i / rec->iters);
          if ((i & 255) == 0)
            killable_task_set_status (task, (i & 256) ? "busy" : "very busy");
        }
      break;

    case WORK_SLOW:
      for (guint i = 0; i < rec->iters; i++)
        {
          spin (50);
          if ((i % 500) == 499 && !killable_task_check (task, error))
            return stopped (rec, error);
        }
      break;

    case WORK_SLEEP:
      for (guint i = 0; i < rec->iters; i++)
        {
          if (!killable_task_sleep (task, g_rand_int_range (rand, 20, 800), error))
            return stopped (rec, error);
          killable_task_set_progress (task, g_rand_double (rand));
        }
      break;

    case WORK_WAIT_FD:
      for (guint i = 0; i < rec->iters; i++)
        {
          GIOCondition cond;
          char buf[16];

          cond = killable_task_wait_fd (task, rec->pipe_rd, G_IO_IN,
                                        g_rand_int_range (rand, 0, 1500), error);
          if (cond == 0 && error != NULL && *error != NULL)
            return stopped (rec, error);
          if (cond & G_IO_IN)
            while (read (rec->pipe_rd, buf, sizeof buf) > 0)
              ;
          if (cond & (G_IO_ERR | G_IO_NVAL))
            violation (rec->name, "wait_fd reported %x", cond);
        }
      break;

    case WORK_FOREIGN:
      /* Blocks outside libkillable; the waker stop callback (or the round's
       * release, or a poke) writes to the pipe. */
      for (;;)
        {
          blocking_read (rec);
          if (!killable_task_check (task, error))
            return stopped (rec, error);
          if (round_is_released (rec->round))
            break;
        }
      break;

    case WORK_EINTR:
      /* interrupt-syscalls: interrupt() makes read() fail with EINTR. */
      for (;;)
        {
          if (blocking_read (rec) == 0)
            g_atomic_int_inc (&n_eintr_seen);
          if (!killable_task_check (task, error))
            return stopped (rec, error);
          if (round_is_released (rec->round))
            break;
        }
      break;

    case WORK_STUCK:
      /* Ignores every stop: only kill() releases its owner. */
      sync_lock (&rec->round->sync);
      while (!rec->round->released)
        pthread_cond_wait (&rec->round->sync.cond, &rec->round->sync.mutex);
      sync_unlock (&rec->round->sync);
      break;

    case WORK_SPAWN:
      {
        g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func (g_object_unref);
        guint n = g_rand_int_range (rand, 1, 4);

        for (guint i = 0; i < n; i++)
          {
            g_autoptr(GError) local_error = NULL;
            Rec *child_rec = NULL;
            KillableTask *child = create_task (rec->round, rand, rec->depth + 1,
                                               FALSE, FALSE, &child_rec);

            if (!killable_task_add_child (task, child, &local_error))
              {
                g_autoptr(KillableTask) other_parent = killable_task_dup_parent (child);
                gboolean child_is_ancestor = FALSE;

                /* The new task is registered before this add: an attacker
                 * may have made it the parent (or an ancestor) of this very
                 * task, and then the add is rightly refused as a cycle. */
                for (KillableTask *t = killable_task_dup_parent (task); t != NULL;)
                  {
                    KillableTask *up = killable_task_dup_parent (t);

                    child_is_ancestor = child_is_ancestor || t == child;
                    g_object_unref (t);
                    t = up;
                  }

                /* Only a killed (abandoned) worker may see this, an attacker
                 * that gave the new task another parent first, or one that
                 * made it an ancestor of this task. */
                if (killable_task_get_state (task) != KILLABLE_TASK_STATE_KILLED &&
                    other_parent == NULL && !child_is_ancestor)
                  violation (rec->name, "add_child from the worker failed: %s",
                             local_error->message);
              }
            else
              {
                sync_lock (&rec->round->sync);
                child_rec->parent_rec = rec;
                sync_unlock (&rec->round->sync);
              }
            rec_start (child_rec, child, NULL);
            g_ptr_array_add (children, child);
          }

        for (guint i = 0; i < children->len; i++)
          {
            g_autoptr(GError) child_error = NULL;
            KillableTask *child = g_ptr_array_index (children, i);

            /* join() from another task's worker: allowed. The children
             * only run work that ends by itself or on a stop. */
            killable_task_join (child, &child_error);
            if (!IS_TERMINAL (killable_task_get_state (child)))
              violation (rec->name, "join() returned before the child was terminal");
          }

        if (!killable_task_check (task, error))
          return stopped (rec, error);
      }
      break;

    case N_WORK:
    default:
      g_assert_not_reached ();
    }

  if (rec->commit)
    {
      /* A short section that must not be abandoned. */
      if (!killable_task_set_abandonable (task, FALSE))
        return stopped (rec, error);
      spin (2000);
      if (!killable_task_set_abandonable (task, TRUE))
        return stopped (rec, error);
    }

  return finish_work (rec, error);
}

static void
rec_finalized (gpointer data)
{
  Rec *rec = data;
  g_autoptr(GPtrArray) to_start = NULL;
  g_autoptr(GPtrArray) to_start_recs = NULL;
  int terminal = g_atomic_int_get (&rec->terminal);
  int sentinel_ran;

  if (g_atomic_int_add (&rec->finalized, 1) != 0)
    violation (rec->name, "finalized twice");
  g_atomic_int_inc (&n_finalized);

  /* Emissions hold a reference on the task: they were all dispatched. */
  if (terminal != 0 && g_atomic_int_get (&rec->finished_count) != 1)
    violation (rec->name, "terminal (%s) but `finished` emitted %d times",
               state_name (terminal - 1), g_atomic_int_get (&rec->finished_count));
  if (terminal == 0 && g_atomic_int_get (&rec->finished_count) != 0)
    violation (rec->name, "`finished` emitted for a task never seen terminal");
  if (terminal == 0 && g_atomic_int_get (&rec->run_count) != 0)
    violation (rec->name, "finalized after its work ran but never terminal");
  if (terminal == 0 && g_atomic_int_get (&rec->start_called))
    violation (rec->name, "finalized after start() but never terminal");
  if (g_atomic_int_get (&rec->notify_state_count) == 0 && terminal != 0)
    violation (rec->name, "terminal but no notify::state");
  if (g_atomic_int_get (&rec->async_called) && g_atomic_int_get (&rec->async_done) != 1)
    violation (rec->name, "run_async() callback called %d times",
               g_atomic_int_get (&rec->async_done));

  /* Cleanups ran before func's notify (in finalize at the latest). */
  sync_lock (&rec->lock);
  for (guint i = 0; i < rec->cleanups->len; i++)
    {
      CleanupRec *c = g_ptr_array_index (rec->cleanups, i);

      if (g_atomic_int_get (&c->ran) != 1)
        violation (rec->name, "cleanup %u ran %d times", i, g_atomic_int_get (&c->ran));
    }

  /* All stop callbacks fire together: each ran iff the sentinel did,
   * unless it was removed. */
  sentinel_ran = rec->sentinel != NULL ? g_atomic_int_get (&rec->sentinel->ran) : 0;
  if (g_atomic_int_get (&rec->stop_signal_count) != sentinel_ran)
    violation (rec->name, "`stop-requested` emitted %d times, stop callbacks fired %d times",
               g_atomic_int_get (&rec->stop_signal_count), sentinel_ran);
  for (guint i = 0; i < rec->cbs->len; i++)
    {
      CbRec *cb = g_ptr_array_index (rec->cbs, i);
      int ran = g_atomic_int_get (&cb->ran);

      if (g_atomic_int_get (&cb->removed) ? ran > sentinel_ran : ran != sentinel_ran)
        violation (rec->name, "stop callback %u (kind %d) ran %d times, sentinel %d",
                   i, cb->kind, ran, sentinel_ran);
    }
  to_start = g_steal_pointer (&rec->to_start);
  to_start_recs = g_steal_pointer (&rec->to_start_recs);
  sync_unlock (&rec->lock);

  outstanding_dec (rec->round);
  /* Drops the children the work never started (it never ran). */
}

static void
pick_work (Rec      *rec,
           GRand    *rand,
           gboolean  allow_blocking)
{
  guint total = 0, r;
  int kind;

  for (kind = 0; kind < N_WORK; kind++)
    total += work_weights[kind];

  for (;;)
    {
      r = g_rand_int_range (rand, 0, total);
      for (kind = 0; r >= work_weights[kind]; kind++)
        r -= work_weights[kind];

      if (kind == WORK_SPAWN && rec->depth >= MAX_DEPTH)
        continue;
      if (!allow_blocking &&
          (kind == WORK_FOREIGN || kind == WORK_EINTR || kind == WORK_STUCK || kind == WORK_SPAWN ||
           kind == WORK_PROCESS))
        continue;
      break;
    }

  rec->kind = kind;
  switch (kind)
    {
    case WORK_BUSY:
      rec->iters = g_rand_int_range (rand, 10, 3000);
      break;
    case WORK_SLOW:
      rec->iters = g_rand_int_range (rand, 100, 3000);
      break;
    case WORK_SLEEP:
    case WORK_WAIT_FD:
      rec->iters = g_rand_int_range (rand, 1, 6);
      break;
    default:
      rec->iters = 0;
      break;
    }

  r = g_rand_int_range (rand, 0, 100);
  rec->end = r < 80 ? END_SUCCESS : r < 97 ? END_ERROR : END_FALSE;
  rec->commit = kind != WORK_STUCK && g_rand_int_range (rand, 0, 100) < 10;
}

/* Creates a task with random work and settings, registered in @round.
 * Returns a new reference. */
static KillableTask *
create_task (Round     *round,
             GRand     *rand,
             int        depth,
             gboolean   allow_blocking,
             gboolean   via_async,
             Rec      **out_rec)
{
  Rec *rec = g_new0 (Rec, 1);
  KillableTask *task;
  guint n;

  rec->round = round;
  rec->depth = depth;
  rec->via_async = via_async;   /* before it is published: OP_START skips it */
  rec->seed = g_rand_int (rand);
  rec->pipe_rd = rec->pipe_wr = -1;
  sync_init (&rec->lock);
  rec->cbs = g_ptr_array_new_with_free_func (cb_rec_free);
  rec->cleanups = g_ptr_array_new_with_free_func (cleanup_rec_free);
  pick_work (rec, rand, allow_blocking);

  if (rec->kind == WORK_WAIT_FD || rec->kind == WORK_FOREIGN || rec->kind == WORK_EINTR)
    {
      int fds[2];

      if (pipe2 (fds, O_CLOEXEC) != 0)
        g_error ("pipe2: %s", g_strerror (errno));
      rec->pipe_rd = fds[0];
      rec->pipe_wr = fds[1];
      /* Writers never block; only the wait_fd reader drains without
       * blocking. */
      fcntl (rec->pipe_wr, F_SETFL, O_NONBLOCK);
      if (rec->kind == WORK_WAIT_FD)
        fcntl (rec->pipe_rd, F_SETFL, O_NONBLOCK);
    }

  sync_lock (&round->sync);
  rec->index = round->recs->len;
  g_snprintf (rec->name, sizeof rec->name, "r%u-t%u-%s", round->number, rec->index,
              work_names[rec->kind]);
  g_ptr_array_add (round->recs, rec);
  g_ptr_array_add (round->tasks, NULL);
  sync_unlock (&round->sync);

  g_atomic_int_inc (&round->outstanding);
  g_atomic_int_inc (&n_created);
  count_op (OP_CREATE);

  if (rec->kind == WORK_PROCESS)
    {
      g_autoptr(GError) error = NULL;
      const char *const *argv;

      switch (rec->end)
        {
        case END_SUCCESS:
          argv = g_rand_boolean (rand) ? process_success_argv : process_sleep_argv;
          break;
        case END_ERROR:
          argv = process_error_argv;
          break;
        default:
          argv = process_stubborn_argv;
          break;
        }
      task = KILLABLE_TASK (killable_process_task_new (argv, &error));
      g_assert_no_error (error);
      /* rec_finalized() when the task is finalized, after its cleanups (as
       * for the work's GDestroyNotify of the other tasks). */
      g_object_set_data_full (G_OBJECT (task), "torture-finalized", rec, rec_finalized);
      g_atomic_int_inc (&work_counts[WORK_PROCESS]);
    }
  else
    {
      task = killable_task_new (rec->name, work_func, rec, rec_finalized);
    }
  rec->task = task;
  g_object_set_data (G_OBJECT (task), "torture-rec", rec);

  g_signal_connect (task, "finished", G_CALLBACK (finished_cb), rec);
  g_signal_connect (task, "notify::state", G_CALLBACK (notify_state_cb), rec);
  g_signal_connect (task, "stop-requested", G_CALLBACK (stop_requested_cb), rec);

  if (rec->kind == WORK_EINTR || g_rand_int_range (rand, 0, 100) < 20)
    killable_task_set_interrupt_syscalls (task, TRUE);
  if (g_rand_int_range (rand, 0, 100) < 15)
    killable_task_set_grace_period (task, g_rand_int_range (rand, 0, 3000));
  if (g_rand_int_range (rand, 0, 100) < 8)
    killable_task_set_timeout (task, g_rand_int_range (rand, 0, 5000));
  if (g_rand_boolean (rand))
    killable_task_set_child_policy (task, KILLABLE_CHILD_POLICY_ISOLATE);
  if (g_rand_int_range (rand, 0, 100) < 30)
    killable_task_set_retain_children (task, TRUE);

  rec->sentinel = add_stop_cb (rec, task, CB_SENTINEL, 0);
  if (rec->kind == WORK_FOREIGN)
    add_stop_cb (rec, task, CB_WAKER, 0);
  n = g_rand_int_range (rand, 0, 3);
  for (guint i = 0; i < n; i++)
    {
      CbKind kind = g_rand_int_range (rand, CB_PLAIN, CB_SENTINEL);

      add_stop_cb (rec, task, kind, g_rand_int_range (rand, 0, MAX_INITIAL_TASKS));
    }
  n = g_rand_int_range (rand, 0, 4);
  for (guint i = 0; i < n; i++)
    add_cleanup (rec, task, g_rand_int_range (rand, 0, 4));

  sync_lock (&round->sync);
  if (!round->refs_dropped)
    g_ptr_array_index (round->tasks, rec->index) = g_object_ref (task);
  sync_unlock (&round->sync);

  if (out_rec != NULL)
    *out_rec = rec;

  return task;
}

/* }}} */

/* The run_async thread {{{ */

typedef struct
{
  KillableTask *task;   /* (owned) */
  Rec          *rec;
  GCancellable *cancellable; /* (owned) (nullable) */
} AsyncRequest;

static Sync async_sync;
static GQueue async_requests = G_QUEUE_INIT;   /* protected by async_sync */
static gboolean async_quit;                     /* protected by async_sync */

static void
async_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      data)
{
  Rec *rec = data;
  KillableTask *task = KILLABLE_TASK (source);
  g_autoptr(GError) error = NULL;
  KillableTaskState state;
  gboolean ok;

  ok = killable_task_run_finish (task, result, &error);
  state = observe (rec, task);

  if (g_thread_self () != async_thread)
    violation (rec->name, "run_async() callback outside the caller's context");
  if (g_atomic_int_add (&rec->async_done, 1) != 0)
    violation (rec->name, "run_async() callback called twice");
  if (!IS_TERMINAL (state))
    violation (rec->name, "run_async() callback in state %s", state_name (state));
  if (ok != (state == KILLABLE_TASK_STATE_SUCCEEDED))
    violation (rec->name, "run_finish() returned %d in state %s", ok, state_name (state));
  if (!ok)
    {
      const GError *task_error = killable_task_get_error (task);

      if (task_error == NULL || error == NULL ||
          !g_error_matches (error, task_error->domain, task_error->code))
        violation (rec->name, "run_finish() error %s differs from the task's %s",
                   error != NULL ? error->message : "(none)",
                   task_error != NULL ? task_error->message : "(none)");
    }
  if (g_atomic_int_get (&rec->finished_count) == 0)
    g_atomic_int_set (&rec->async_before_finished, 1);
  g_atomic_int_inc (&progress);
}

static gpointer
async_thread_main (gpointer data)
{
  g_main_context_push_thread_default (async_context);

  for (;;)
    {
      AsyncRequest *req;

      sync_lock (&async_sync);
      while ((req = g_queue_pop_head (&async_requests)) != NULL)
        {
          sync_unlock (&async_sync);
          killable_task_run_async (req->task, req->cancellable, async_done_cb, req->rec);
          g_object_unref (req->task);
          g_clear_object (&req->cancellable);
          g_free (req);
          sync_lock (&async_sync);
        }
      if (async_quit)
        {
          sync_unlock (&async_sync);
          break;
        }
      sync_unlock (&async_sync);

      g_main_context_iteration (async_context, TRUE);
    }

  /* Dispatch what is left. */
  while (g_main_context_iteration (async_context, FALSE))
    ;
  g_main_context_pop_thread_default (async_context);

  return NULL;
}

static void
post_run_async (Rec          *rec,
                KillableTask *task,
                GCancellable *cancellable)
{
  AsyncRequest *req = g_new0 (AsyncRequest, 1);

  req->task = g_object_ref (task);
  req->rec = rec;
  req->cancellable = cancellable != NULL ? g_object_ref (cancellable) : NULL;
  g_assert_true (rec->via_async);
  g_atomic_int_set (&rec->start_called, 1);
  g_atomic_int_set (&rec->async_called, 1);

  sync_lock (&async_sync);
  g_queue_push_tail (&async_requests, req);
  sync_unlock (&async_sync);
  g_main_context_wakeup (async_context);
}

/* }}} */

/* Attackers {{{ */

typedef struct
{
  guint  id;
  GRand *rand;
} Attacker;

static Sync attack_sync;
static Round *attack_round;      /* protected by attack_sync */
static guint attack_generation;  /* protected by attack_sync */
static guint attack_done;        /* protected by attack_sync */
static gboolean attack_quit;     /* protected by attack_sync */

static Rec *
round_get_rec (Round *round,
               guint  index)
{
  Rec *ret = NULL;

  sync_lock (&round->sync);
  if (round->recs->len > 0)
    ret = g_ptr_array_index (round->recs, index % round->recs->len);
  sync_unlock (&round->sync);

  return ret;
}

static OpKind
pick_op (GRand *rand)
{
  guint total = 0, r;
  int op;

  for (op = 0; op < N_ATTACK_OPS; op++)
    total += op_weights[op];
  r = g_rand_int_range (rand, 0, total);
  for (op = 0; r >= op_weights[op]; op++)
    r -= op_weights[op];

  return op;
}

static void
check_structure (Rec          *child_rec,
                 KillableTask *parent,
                 Rec          *parent_rec,
                 KillableTask *child)
{
  /* The parent first: a child never goes back from terminal. */
  KillableTaskState pstate = killable_task_get_state (parent);
  KillableTaskState cstate = killable_task_get_state (child);

  if (IS_TERMINAL (pstate) && pstate != KILLABLE_TASK_STATE_KILLED && !IS_TERMINAL (cstate))
    violation (child_rec->name,
               "structured completion: parent %s is %s (start called %d, work ran %d) "
               "while this accepted child is %s",
               parent_rec->name, state_name (pstate),
               g_atomic_int_get (&parent_rec->start_called),
               g_atomic_int_get (&parent_rec->run_count), state_name (cstate));
}

static void
attack_one (Attacker *att,
            Round    *round)
{
  GRand *rand = att->rand;
  OpKind op = pick_op (rand);
  guint index = g_rand_int (rand);
  guint param = g_rand_int (rand);
  Rec *rec = round_get_rec (round, index);
  g_autoptr(KillableTask) task = NULL;

  if (rec == NULL)
    return;
  task = round_dup_task (round, rec->index);
  count_op (op);

  if (task == NULL && op != OP_RUN_ASYNC)
    return;   /* dropped by an earlier unref */

  switch (op)
    {
    case OP_STOP:
      killable_task_stop (task);
      break;

    case OP_STOP_WITH_ERROR:
      {
        g_autoptr(GError) reason = NULL;

        if (param & 1)
          reason = g_error_new (TORTURE_ERROR, TORTURE_ERROR_ATTACK, "attacked by %u", att->id);
        else
          reason = g_error_new (KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT, "fake timeout");
        killable_task_stop_with_error (task, reason);
      }
      break;

    case OP_INTERRUPT:
      killable_task_interrupt (task);
      break;

    case OP_KILL:
      killable_task_kill (task);
      /* At once, unless a worker of the subtree is in a (short) section
       * that must not be abandoned. */
      if (!killable_task_wait (task, TEST_LIMIT_USEC (10 * G_USEC_PER_SEC)))
        violation (rec->name, "not terminal 10 s after kill()");
      observe (rec, task);
      break;

    case OP_ADD_CHILD:
      {
        g_autoptr(GError) error = NULL;
        g_autoptr(KillableTask) child = NULL;
        Rec *child_rec = NULL;
        gboolean accepted;

        if (rec->depth >= MAX_DEPTH)
          break;
        child = create_task (round, rand, rec->depth + 1, TRUE, FALSE, &child_rec);
        accepted = killable_task_add_child (task, child, &error);
        if (accepted)
          {
            sync_lock (&round->sync);
            child_rec->parent_rec = rec;
            sync_unlock (&round->sync);
            check_structure (child_rec, task, rec, child);
          }
        else
          {
            g_autoptr(KillableTask) other_parent = killable_task_dup_parent (child);

            g_atomic_int_inc (&n_add_child_refused);
            /* Refused once the parent's work returned and its children
             * ended: it is terminal, or about to be (cleanups). Or the
             * other attacker gave the new task a parent first. */
            if (other_parent == NULL && !killable_task_wait (task, TEST_LIMIT_USEC (10 * G_USEC_PER_SEC)))
              violation (rec->name, "add_child refused by a parent that does not end: %s",
                         error->message);
          }
        g_clear_error (&error);
        if (param % 10 < 7)
          {
            /* The other attacker may have started it already. */
            if (!rec_start (child_rec, child, &error) &&
                !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED))
              violation (child_rec->name, "start of a new task failed: %s", error->message);
            if (accepted)
              check_structure (child_rec, task, rec, child);
          }
      }
      break;

    case OP_ADD_EXISTING:
      {
        g_autoptr(GError) error = NULL;
        Rec *child_rec = round_get_rec (round, param);
        g_autoptr(KillableTask) child = round_dup_task (round, child_rec->index);
        g_autoptr(KillableTask) old_parent = NULL;

        if (child == NULL)
          break;
        old_parent = killable_task_dup_parent (child);
        if (killable_task_add_child (task, child, &error))
          {
            g_autoptr(KillableTask) new_parent = killable_task_dup_parent (child);

            /* (old_parent may have released it meanwhile: it was
             * terminal then.) */
            if (old_parent != NULL && !IS_TERMINAL (killable_task_get_state (child)))
              violation (child_rec->name, "add_child accepted a live task that had a parent");
            /* (A child that ended meanwhile was released by @task and may
             * have been added elsewhere by another attacker since.) */
            if (new_parent != task && new_parent != NULL &&
                !IS_TERMINAL (killable_task_get_state (child)))
              violation (child_rec->name, "dup_parent after add_child is another task");
            sync_lock (&round->sync);
            child_rec->parent_rec = rec;
            sync_unlock (&round->sync);
            check_structure (child_rec, task, rec, child);
          }
        else
          {
            g_atomic_int_inc (&n_add_child_refused);
            if (!g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED))
              violation (rec->name, "add_child refused with an unexpected error: %s",
                         error->message);
          }
      }
      break;

    case OP_UNREF:
      if (rec != round->root_rec)
        {
          KillableTask *owned;

          sync_lock (&round->sync);
          owned = g_ptr_array_index (round->tasks, rec->index);
          g_ptr_array_index (round->tasks, rec->index) = NULL;
          sync_unlock (&round->sync);
          if (owned != NULL)
            g_object_unref (owned);
        }
      break;

    case OP_SET_TIMEOUT:
      killable_task_set_timeout (task, param % 4 == 0 ? -1 : (gint64) (param % 5000));
      break;

    case OP_SET_GRACE:
      killable_task_set_grace_period (task, param % 3 == 0 ? -1 : (gint64) (param % 3000));
      break;

    case OP_ADD_STOP_CB:
      add_stop_cb (rec, task, param % CB_SENTINEL, param / 7 % MAX_INITIAL_TASKS);
      break;

    case OP_REMOVE_STOP_CB:
      {
        CbRec *cb = NULL;
        gulong id = 0;

        sync_lock (&rec->lock);
        if (rec->cbs->len > 0)
          {
            cb = g_ptr_array_index (rec->cbs, param % rec->cbs->len);
            id = cb->id;
          }
        sync_unlock (&rec->lock);
        if (cb != NULL && cb->kind != CB_SENTINEL && cb->kind != CB_WAKER && id != 0)
          {
            killable_task_remove_stop_callback (task, id);
            g_atomic_int_set (&cb->removed, 1);
          }
      }
      break;

    case OP_ADD_CLEANUP:
      /* Not CLEANUP_STOP_SELF from here: it only acts on the worker. */
      add_cleanup (rec, task, param % 4);
      break;

    case OP_SET_PROGRESS:
      killable_task_set_progress (task, (param % 1001) / 1000.);
      if (param & 1)
        killable_task_set_status (task, (param & 2) ? "attacked" : NULL);
      break;

    case OP_CANCEL_CANCELLABLE:
      {
        gint64 end;

        g_cancellable_cancel (killable_task_get_cancellable (task));
        /* At once, unless another thread is cancelling it right now: then
         * g_cancellable_cancel() returns before that thread's handlers
         * (which stop the task) ran. */
        end = g_get_monotonic_time () + TEST_LIMIT_USEC (10 * G_USEC_PER_SEC);
        while (!killable_task_is_stop_requested (task) && g_get_monotonic_time () < end)
          g_thread_yield ();
        if (!killable_task_is_stop_requested (task))
          violation (rec->name, "cancelling the task's cancellable did not stop it");
      }
      break;

    case OP_CANCEL_ASYNC:
      {
        g_autoptr(GCancellable) cancellable = NULL;

        sync_lock (&rec->lock);
        if (rec->async_cancellable != NULL)
          cancellable = g_object_ref (rec->async_cancellable);
        sync_unlock (&rec->lock);
        if (cancellable != NULL)
          g_cancellable_cancel (cancellable);
      }
      break;

    case OP_POKE:
      if (rec->pipe_wr >= 0 && write (rec->pipe_wr, "p", 1) < 0 && errno != EAGAIN)
        violation (rec->name, "write to pipe failed: %s", g_strerror (errno));
      break;

    case OP_START:
      if (!rec->via_async)
        {
          g_autoptr(GError) error = NULL;

          /* Fails with "already started" if it was; TRUE at most once. */
          if (!rec_start (rec, task, &error) &&
              !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED))
            violation (rec->name, "start() failed with an unexpected error: %s", error->message);
        }
      break;

    case OP_WAIT:
      if (killable_task_wait (task, param % 1000))
        {
          if (!IS_TERMINAL (observe (rec, task)))
            violation (rec->name, "wait() returned TRUE before the terminal state");
        }
      else
        observe (rec, task);
      break;

    case OP_RUN_ASYNC:
      {
        g_autoptr(KillableTask) child = NULL;
        g_autoptr(GCancellable) cancellable = g_cancellable_new ();
        Rec *child_rec = NULL;

        child = create_task (round, rand, MIN (rec->depth + 1, MAX_DEPTH), TRUE, TRUE, &child_rec);
        if (task != NULL && (param & 1) && rec->depth < MAX_DEPTH)
          {
            if (killable_task_add_child (task, child, NULL))
              {
                sync_lock (&round->sync);
                child_rec->parent_rec = rec;
                sync_unlock (&round->sync);
              }
          }
        sync_lock (&child_rec->lock);
        child_rec->async_cancellable = g_object_ref (cancellable);
        sync_unlock (&child_rec->lock);
        post_run_async (child_rec, child, cancellable);
      }
      break;

    case OP_TOGGLE_SYSCALLS:
      if (rec->kind != WORK_EINTR)
        killable_task_set_interrupt_syscalls (task, !killable_task_get_interrupt_syscalls (task));
      break;

    default:
      g_assert_not_reached ();
    }

  if (task != NULL)
    observe (rec, task);
}

static gpointer
attacker_main (gpointer data)
{
  Attacker *att = data;
  guint seen = 0;

  for (;;)
    {
      Round *round;
      guint n;

      sync_lock (&attack_sync);
      while (attack_generation == seen && !attack_quit)
        pthread_cond_wait (&attack_sync.cond, &attack_sync.mutex);
      if (attack_quit)
        {
          sync_unlock (&attack_sync);
          break;
        }
      seen = attack_generation;
      round = attack_round;
      sync_unlock (&attack_sync);

      g_clear_pointer (&att->rand, g_rand_free);
      att->rand = g_rand_new_with_seed_array ((const guint32[]) { opt_seed, round->number, att->id + 1 }, 3);

      n = g_rand_int_range (att->rand, 4, 16);
      for (guint i = 0; i < n; i++)
        {
          attack_one (att, round);
          /* Jitter, not synchronisation: spreads the attacks over the
           * life of the work. */
          if (g_rand_boolean (att->rand))
            spin (g_rand_int_range (att->rand, 0, 20000));
          else
            g_thread_yield ();
        }

      sync_lock (&attack_sync);
      attack_done++;
      sync_broadcast (&attack_sync);
      sync_unlock (&attack_sync);
    }

  g_clear_pointer (&att->rand, g_rand_free);
  return NULL;
}

/* }}} */

/* Watchdog {{{ */

static Sync watchdog_sync;
static gboolean watchdog_quit;   /* protected by watchdog_sync */

static void
dump_threads_and_abort (const char *why)
{
  g_autofree char *gdb = g_find_program_in_path ("gdb");

  fprintf (stderr, "# seed: %" G_GUINT32_FORMAT "\n# WATCHDOG: %s\n", opt_seed, why);
  fprintf (stderr, "# reproduce with: torture --seed=%" G_GUINT32_FORMAT " --ops=%" G_GINT64_FORMAT "\n",
           opt_seed, opt_ops);
  fflush (stderr);

  if (gdb != NULL)
    {
      g_autofree char *pid = g_strdup_printf ("%d", (int) getpid ());
      const char *argv[] = { gdb, "-p", pid, "-batch", "-nx",
                             "-ex", "set print thread-events off",
                             "-ex", "thread apply all bt", NULL };
      GPid child;
      g_autoptr(GError) error = NULL;

      /* gdb's output goes to our stderr: stdout is the TAP stream. */
      if (g_spawn_async_with_fds (NULL, (char **) argv, NULL,
                                  G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &child,
                                  -1, STDERR_FILENO, STDERR_FILENO, &error))
        waitpid (child, NULL, 0);
      else
        fprintf (stderr, "# could not run gdb: %s\n", error->message);
    }
  else
    {
      fprintf (stderr, "# gdb not found: no backtrace\n");
    }

  abort ();
}

static gpointer
watchdog_main (gpointer data)
{
  int last = g_atomic_int_get (&progress);
  gint64 last_change = g_get_monotonic_time ();

  sync_lock (&watchdog_sync);
  while (!watchdog_quit)
    {
      int now_progress;

      sync_wait_until (&watchdog_sync, g_get_monotonic_time () + G_USEC_PER_SEC);
      now_progress = g_atomic_int_get (&progress);
      if (now_progress != last)
        {
          last = now_progress;
          last_change = g_get_monotonic_time ();
        }
      else if (g_get_monotonic_time () - last_change > TEST_LIMIT_USEC ((gint64) opt_watchdog * G_USEC_PER_SEC))
        {
          g_autofree char *why = g_strdup_printf ("no progress for %d s in round %u: deadlock?",
                                                  opt_watchdog,
                                                  g_atomic_int_get (&current_round_number));
          sync_unlock (&watchdog_sync);
          dump_threads_and_abort (why);
        }
    }
  sync_unlock (&watchdog_sync);

  return NULL;
}

/* }}} */

/* Rounds {{{ */

static gboolean
wakeup_cb (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Iterates the default context until *@counter is 0 or @timeout_usec
 * passed. */
static gboolean
iterate_until_zero (int    *counter,
                    gint64  timeout_usec)
{
  gint64 end = g_get_monotonic_time () + timeout_usec;
  GSource *tick = g_timeout_source_new (50);

  g_source_set_callback (tick, wakeup_cb, NULL, NULL);
  g_source_attach (tick, NULL);

  while (g_atomic_int_get (counter) != 0 && g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, TRUE);

  g_source_destroy (tick);
  g_source_unref (tick);

  return g_atomic_int_get (counter) == 0;
}

/* stop → interrupt → kill, each after a short wait. */
static void
ladder (Rec          *rec,
        KillableTask *task,
        gint64        wait_usec)
{
  if (killable_task_wait (task, 0))
    return;

  count_op (OP_LADDER);
  killable_task_stop (task);
  if (killable_task_wait (task, wait_usec))
    return;

  count_op (OP_LADDER);
  killable_task_interrupt (task);
  if (killable_task_wait (task, wait_usec))
    return;

  count_op (OP_LADDER);
  killable_task_kill (task);
  /* A worker inside set_abandonable(FALSE) is abandoned when it leaves
   * the section, which is short: the task (or its parent) ends then. */
  if (!killable_task_wait (task, TEST_LIMIT_USEC (10 * G_USEC_PER_SEC)))
    violation (rec->name, "not terminal 10 s after kill()");
}

/* The error of a WORK_PROCESS task whose program failed as planned (exit
 * status 3): also the cause with which a failing parent, or a failing
 * sibling under FAIL_FAST, stops the others. */
static gboolean
is_process_failure (const GError *error)
{
  /* A non-zero exit is reported in G_SPAWN_EXIT_ERROR, with the code. */
  return g_error_matches (error, G_SPAWN_EXIT_ERROR, 3) &&
         strstr (error->message, "exited with status 3") != NULL;
}

/* The outcome of a WORK_PROCESS task agrees with how its program ended. */
static void
check_process_outcome (Rec                 *rec,
                       KillableProcessTask *task,
                       KillableTaskState    state,
                       const GError        *error)
{
  gboolean exited = killable_process_task_get_if_exited (task);
  gboolean signaled = killable_process_task_get_if_signaled (task);
  int status = exited ? killable_process_task_get_exit_status (task) : -1;

  if (exited && signaled)
    violation (rec->name, "the program both exited and was signaled");

  switch (state)
    {
    case KILLABLE_TASK_STATE_SUCCEEDED:
      if (!exited || status != 0)
        violation (rec->name, "SUCCEEDED but the program did not exit 0 (exited %d, status %d)",
                   exited, status);
      break;
    case KILLABLE_TASK_STATE_FAILED:
      /* Its own exit status 3, or a failed child under FAIL_FAST. */
      if (!(exited && status == 3) &&
          !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED))
        violation (rec->name, "FAILED (%s) but the program exited %d with %d",
                   error->message, exited, status);
      if (rec->end != END_ERROR &&
          !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED))
        violation (rec->name, "FAILED (%s), a program that cannot fail", error->message);
      break;
    case KILLABLE_TASK_STATE_CANCELLED:
      if (!killable_error_is_cancellation (error) &&
          !g_error_matches (error, TORTURE_ERROR, TORTURE_ERROR_ATTACK) &&
          !g_error_matches (error, TORTURE_ERROR, TORTURE_ERROR_PLANNED) &&
          !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED) &&
          !is_process_failure (error))
        violation (rec->name, "CANCELLED with %s", error->message);
      break;
    case KILLABLE_TASK_STATE_KILLED:
      /* A timeout whose grace period escalated to a kill keeps its cause. */
      if (!g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED) &&
          !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT))
        violation (rec->name, "KILLED with %s", error->message);
      break;
    default:
      g_assert_not_reached ();
    }
}

static void
check_outcome (Rec          *rec,
               KillableTask *task)
{
  g_autoptr(GError) error = NULL;
  KillableTaskState state = observe (rec, task);
  const GError *task_error;
  gboolean ok;
  int run_result = g_atomic_int_get (&rec->run_result);

  if (!IS_TERMINAL (state))
    {
      violation (rec->name, "not terminal at the end of the round (%s)", state_name (state));
      return;
    }

  count_op (OP_JOIN);
  ok = killable_task_join (task, &error);
  task_error = killable_task_get_error (task);
  g_atomic_int_inc (&state_counts[state]);

  if (ok != (state == KILLABLE_TASK_STATE_SUCCEEDED))
    violation (rec->name, "join() returned %d in state %s", ok, state_name (state));
  if (!ok && (error == NULL || task_error == NULL ||
              !g_error_matches (error, task_error->domain, task_error->code) ||
              g_strcmp0 (error->message, task_error->message) != 0))
    violation (rec->name, "join() error differs from the error property");

  if (rec->kind == WORK_PROCESS)
    {
      check_process_outcome (rec, KILLABLE_PROCESS_TASK (task), state, error);
      return;
    }

  switch (state)
    {
    case KILLABLE_TASK_STATE_SUCCEEDED:
      if (run_result != RUN_TRUE)
        violation (rec->name, "SUCCEEDED but the work returned %d", run_result);
      break;
    case KILLABLE_TASK_STATE_FAILED:
      if (run_result == RUN_TRUE || run_result == RUN_FALSE_STOPPED || run_result == RUN_NONE)
        {
          /* Only a failed child under FAIL_FAST explains it. */
          if (!g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED))
            violation (rec->name, "FAILED (%s) but the work returned %d",
                       error->message, run_result);
        }
      else if (run_result == RUN_FALSE_ERROR &&
               !g_error_matches (error, TORTURE_ERROR, TORTURE_ERROR_PLANNED) &&
               !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED))
        violation (rec->name, "FAILED with %s instead of the work's error", error->message);
      break;
    case KILLABLE_TASK_STATE_CANCELLED:
      /* A planned failure counts as the stop's cause when a failing
       * parent stopped this task with an error of the same domain and
       * code: libkillable matches the cause by domain and code. */
      /* A work that returned TRUE after a stop ends CANCELLED (the stop
       * came before it and its subtree ended). */
      if ((run_result == RUN_FALSE_ERROR &&
           !g_error_matches (error, TORTURE_ERROR, TORTURE_ERROR_PLANNED)))
        violation (rec->name, "CANCELLED but the work returned %d (%s)", run_result,
                   error->message);
      /* The cause of the stop: a cancellation, an attacker's reason, or
       * the error of a parent whose work failed. */
      if (!killable_error_is_cancellation (error) &&
          !g_error_matches (error, TORTURE_ERROR, TORTURE_ERROR_ATTACK) &&
          !g_error_matches (error, TORTURE_ERROR, TORTURE_ERROR_PLANNED) &&
          !is_process_failure (error))
        violation (rec->name, "CANCELLED with %s", error->message);
      break;
    case KILLABLE_TASK_STATE_KILLED:
      break;
    default:
      g_assert_not_reached ();
    }
}

static void
round_run (guint number)
{
  Round *round = g_new0 (Round, 1);
  g_autoptr(GRand) rand = g_rand_new_with_seed_array ((const guint32[]) { opt_seed, number, 0 }, 3);
  g_autoptr(GPtrArray) plan_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) plan_recs = g_ptr_array_new ();
  g_autoptr(GPtrArray) start_modes = g_ptr_array_new ();
  KillableTask *root;
  guint n_tasks;
  gboolean root_async = g_rand_int_range (rand, 0, 100) < 30;
  gboolean natural_end = g_rand_int_range (rand, 0, 100) < 30;

  g_atomic_int_set (&current_round_number, number);
  round->number = number;
  sync_init (&round->sync);
  round->recs = g_ptr_array_new ();
  round->tasks = g_ptr_array_new ();

  /* The tree: each task after the root gets a random earlier parent whose
   * depth allows it. */
  n_tasks = g_rand_int_range (rand, 1, MAX_INITIAL_TASKS + 1);
  for (guint i = 0; i < n_tasks; i++)
    {
      Rec *rec = NULL;
      Rec *parent_rec = NULL;
      KillableTask *parent = NULL;
      KillableTask *task;
      StartMode mode = START_OWNER;

      if (i > 0)
        {
          guint p;

          do
            p = g_rand_int_range (rand, 0, i);
          while (((Rec *) g_ptr_array_index (plan_recs, p))->depth >= MAX_DEPTH);
          parent_rec = g_ptr_array_index (plan_recs, p);
          parent = g_ptr_array_index (plan_tasks, p);
          switch (g_rand_int_range (rand, 0, 20))
            {
            case 0: case 1: case 2:
              mode = START_NEVER;
              break;
            case 3: case 4: case 5: case 6: case 7:
              mode = START_PARENT_WORK;
              break;
            case 8: case 9:
              mode = START_ATTACKER;
              break;
            default:
              mode = START_OWNER;
              break;
            }
        }

      task = create_task (round, rand, parent_rec != NULL ? parent_rec->depth + 1 : 0,
                          TRUE, i == 0 && root_async, &rec);
      if (parent != NULL)
        {
          g_autoptr(GError) error = NULL;

          if (!killable_task_add_child (parent, task, &error))
            violation (rec->name, "add_child to a pending parent failed: %s", error->message);
          rec->parent_rec = parent_rec;
          if (mode == START_PARENT_WORK)
            {
              sync_lock (&parent_rec->lock);
              if (parent_rec->to_start == NULL)
                {
                  parent_rec->to_start = g_ptr_array_new_with_free_func (g_object_unref);
                  parent_rec->to_start_recs = g_ptr_array_new ();
                }
              g_ptr_array_add (parent_rec->to_start, g_object_ref (task));
              g_ptr_array_add (parent_rec->to_start_recs, rec);
              sync_unlock (&parent_rec->lock);
            }
        }
      g_ptr_array_add (plan_tasks, task);
      g_ptr_array_add (plan_recs, rec);
      g_ptr_array_add (start_modes, GUINT_TO_POINTER (mode));
    }

  root = g_ptr_array_index (plan_tasks, 0);
  round->root_rec = g_ptr_array_index (plan_recs, 0);

  /* Start: the root, then the children the owner starts. */
  if (root_async)
    {
      g_autoptr(GCancellable) cancellable = g_cancellable_new ();

      sync_lock (&round->root_rec->lock);
      round->root_rec->async_cancellable = g_object_ref (cancellable);
      sync_unlock (&round->root_rec->lock);
      count_op (OP_OWNER_RUN_ASYNC);
      post_run_async (round->root_rec, root, cancellable);
    }
  else
    {
      g_autoptr(GError) error = NULL;

      count_op (OP_OWNER_START);
      if (!rec_start (round->root_rec, root, &error))
        violation (round->root_rec->name, "start() failed: %s", error->message);
    }

  for (guint i = 1; i < plan_tasks->len; i++)
    if (GPOINTER_TO_UINT (g_ptr_array_index (start_modes, i)) == START_OWNER)
      {
        Rec *rec = g_ptr_array_index (plan_recs, i);

        count_op (OP_OWNER_START);
        rec_start (rec, g_ptr_array_index (plan_tasks, i), NULL);
      }

  /* Let the attackers loose and wait for them. */
  sync_lock (&attack_sync);
  attack_round = round;
  attack_done = 0;
  attack_generation++;
  sync_broadcast (&attack_sync);
  while (attack_done < N_ATTACKERS)
    pthread_cond_wait (&attack_sync.cond, &attack_sync.mutex);
  attack_round = NULL;
  sync_unlock (&attack_sync);

  /* End the round: the root first, then whatever is not terminal. */
  if (natural_end)
    killable_task_wait (root, 50 * G_TIME_SPAN_MILLISECOND);
  ladder (round->root_rec, root, 10 * G_TIME_SPAN_MILLISECOND);

  {
    g_autoptr(GPtrArray) tasks = g_ptr_array_new_with_free_func (g_object_unref);
    g_autoptr(GPtrArray) recs = g_ptr_array_new ();

    /* Now nobody else adds tasks to this round (the attackers are done,
     * and the remaining workers spawn only tasks that end by themselves). */
    sync_lock (&round->sync);
    for (guint i = 0; i < round->tasks->len; i++)
      if (g_ptr_array_index (round->tasks, i) != NULL)
        {
          g_ptr_array_add (tasks, g_object_ref (g_ptr_array_index (round->tasks, i)));
          g_ptr_array_add (recs, g_ptr_array_index (round->recs, i));
        }
    sync_unlock (&round->sync);

    for (guint i = 0; i < tasks->len; i++)
      {
        Rec *rec = g_ptr_array_index (recs, i);
        KillableTask *task = g_ptr_array_index (tasks, i);
        Rec *parent_rec;

        sync_lock (&round->sync);
        parent_rec = rec->parent_rec;
        sync_unlock (&round->sync);
        if (parent_rec != NULL)
          {
            g_autoptr(KillableTask) parent = round_dup_task (round, parent_rec->index);

            if (parent != NULL)
              check_structure (rec, parent, parent_rec, task);
          }
      }

    for (guint i = 0; i < tasks->len; i++)
      {
        Rec *rec = g_ptr_array_index (recs, i);
        KillableTask *task = g_ptr_array_index (tasks, i);

        ladder (rec, task, 5 * G_TIME_SPAN_MILLISECOND);

        if (!rec->via_async && !g_atomic_int_get (&rec->start_called) &&
            g_rand_boolean (rand))
          {
            g_autoptr(GError) error = NULL;

            /* Stopped while pending: start() returns TRUE and runs
             * nothing (or "already started", if a killed parent's worker
             * that is still running started it meanwhile). */
            count_op (OP_OWNER_START);
            if (!rec_start (rec, task, &error) &&
                !g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED))
              violation (rec->name, "start() of a task stopped while pending failed: %s",
                         error->message);
            if (g_atomic_int_get (&rec->run_count) != 0)
              violation (rec->name, "the work of a task stopped while pending ran");
          }
      }

    /* Release the work that ignores stops; abandoned threads return. */
    {
      int abandoned = (int) killable_get_abandoned_thread_count ();

      if (abandoned > g_atomic_int_get (&n_abandoned_max))
        g_atomic_int_set (&n_abandoned_max, abandoned);
    }
    sync_lock (&round->sync);
    round->released = TRUE;
    sync_broadcast (&round->sync);
    for (guint i = 0; i < round->recs->len; i++)
      {
        Rec *rec = g_ptr_array_index (round->recs, i);

        if (rec->pipe_wr >= 0 && write (rec->pipe_wr, "r", 1) < 0 && errno != EAGAIN)
          violation (rec->name, "write to pipe failed: %s", g_strerror (errno));
      }
    sync_unlock (&round->sync);

    for (guint i = 0; i < tasks->len; i++)
      {
        Rec *rec = g_ptr_array_index (recs, i);
        KillableTask *task = g_ptr_array_index (tasks, i);

        /* Killed tasks in a commit section end once released. */
        if (!killable_task_wait (task, TEST_LIMIT_USEC (10 * G_USEC_PER_SEC)))
          violation (rec->name, "not terminal 10 s after the release");
        check_outcome (rec, task);
      }
  }

  /* Drop every reference the round holds, then wait until every task,
   * cleanup and stop callback of the round was freed. */
  {
    g_autoptr(GPtrArray) refs = g_ptr_array_new_with_free_func (g_object_unref);

    sync_lock (&round->sync);
    round->refs_dropped = TRUE;
    for (guint i = 0; i < round->tasks->len; i++)
      if (g_ptr_array_index (round->tasks, i) != NULL)
        g_ptr_array_add (refs, g_steal_pointer (&g_ptr_array_index (round->tasks, i)));
    sync_unlock (&round->sync);
  }
  g_clear_pointer (&plan_tasks, g_ptr_array_unref);

  if (!iterate_until_zero (&round->outstanding, TEST_LIMIT_USEC (20 * G_USEC_PER_SEC)))
    {
      violation (NULL, "round %u: %d tasks, cleanups or stop callbacks not freed 20 s after the end",
                 number, g_atomic_int_get (&round->outstanding));
      for (guint i = 0; i < round->recs->len; i++)
        {
          Rec *rec = g_ptr_array_index (round->recs, i);

          if (!g_atomic_int_get (&rec->finalized))
            {
              fprintf (stderr, "#   not finalized: %s (terminal %d, run %d)\n", rec->name,
                       g_atomic_int_get (&rec->terminal) - 1, g_atomic_int_get (&rec->run_count));
              /* A process task's program, which may still run. */
              if (rec->kind == WORK_PROCESS)
                fprintf (stderr, "#     its program: pid %d, state %s, exited %d, signaled %d\n",
                         killable_process_task_get_pid (KILLABLE_PROCESS_TASK (rec->task)),
                         state_name (killable_task_get_state (rec->task)),
                         killable_process_task_get_if_exited (KILLABLE_PROCESS_TASK (rec->task)),
                         killable_process_task_get_if_signaled (KILLABLE_PROCESS_TASK (rec->task)));
            }
        }
      /* Leak the round rather than free what is still used. */
      return;
    }

  for (guint i = 0; i < round->recs->len; i++)
    {
      Rec *rec = g_ptr_array_index (round->recs, i);

      for (guint j = 0; j < rec->cbs->len; j++)
        {
          CbRec *cb = g_ptr_array_index (rec->cbs, j);

          if (g_atomic_int_get (&cb->freed) != 1)
            violation (rec->name, "stop callback %u freed %d times", j, cb->freed);
        }
      rec_free (rec);
    }
  g_ptr_array_unref (round->recs);
  g_ptr_array_unref (round->tasks);
  sync_clear (&round->sync);
  g_free (round);
}

/* }}} */

/* Main {{{ */

static guint
count_fds (void)
{
  DIR *dir = opendir ("/proc/self/fd");
  struct dirent *entry;
  guint n = 0;

  g_assert_nonnull (dir);
  while ((entry = readdir (dir)) != NULL)
    if (entry->d_name[0] != '.')
      n++;
  closedir (dir);

  return n - 1;   /* the directory's own fd */
}

/* Processes whose parent is this one, zombies included: the programs of
 * process tasks, all reaped by the end. */
static guint
count_children (void)
{
  DIR *dir = opendir ("/proc");
  struct dirent *entry;
  guint n = 0;

  g_assert_nonnull (dir);
  while ((entry = readdir (dir)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *contents = NULL;
      const char *paren;
      int ppid;
      char state;

      if (!g_ascii_isdigit (entry->d_name[0]))
        continue;
      path = g_strdup_printf ("/proc/%s/stat", entry->d_name);
      if (!g_file_get_contents (path, &contents, NULL, NULL))
        continue;
      paren = strrchr (contents, ')');
      if (paren != NULL && sscanf (paren + 1, " %c %d", &state, &ppid) == 2 &&
          ppid == getpid ())
        {
          fprintf (stderr, "#   child %s of the test is left, state %c\n", entry->d_name, state);
          n++;
        }
    }
  closedir (dir);

  return n;
}

static void
list_fds (void)
{
  DIR *dir = opendir ("/proc/self/fd");
  struct dirent *entry;

  while ((entry = readdir (dir)) != NULL)
    if (entry->d_name[0] != '.')
      {
        g_autofree char *path = g_strdup_printf ("/proc/self/fd/%s", entry->d_name);
        g_autofree char *target = g_file_read_link (path, NULL);

        fprintf (stderr, "#   fd %s -> %s\n", entry->d_name, target != NULL ? target : "?");
      }
  closedir (dir);
}

typedef struct
{
  int fd;
  int finalized;   /* (atomic) */
} WarmUp;

static gboolean
warmup_work (KillableTask *task,
             gpointer      data,
             GError      **error)
{
  WarmUp *w = data;

  /* Creates (and keeps until finalize) the task's wake-up fd. */
  killable_task_wait_fd (task, w->fd, G_IO_IN, 0, NULL);
  return TRUE;
}

static void
warmup_finalized (gpointer data)
{
  WarmUp *w = data;

  g_atomic_int_set (&w->finalized, 1);
}

static void
warm_up (void)
{
  KillableTask *task;
  WarmUp w = { -1, 0 };
  int fds[2];
  gint64 end;

  /* Lazily created process-wide resources (the default main context, the
   * timer thread's context and its wake-up fd, GTask's context) exist
   * before the fds are counted. */
  g_main_context_default ();
  g_type_ensure (G_TYPE_TASK);   /* its class_init creates GLib's task context */
  g_assert_no_errno (pipe2 (fds, O_CLOEXEC));
  w.fd = fds[0];
  task = killable_task_new ("warm-up", warmup_work, &w, warmup_finalized);
  killable_task_set_timeout (task, G_USEC_PER_SEC);
  g_assert_true (killable_task_start (task, NULL));
  g_assert_true (killable_task_join (task, NULL));
  g_object_unref (task);

  /* Per-task fds go with the task, which its worker may finalize a moment
   * after join(). */
  end = g_get_monotonic_time () + TEST_LIMIT_USEC (10 * G_USEC_PER_SEC);
  while (!g_atomic_int_get (&w.finalized) && g_get_monotonic_time () < end)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_thread_yield ();
    }
  g_assert_true (g_atomic_int_get (&w.finalized));
  close (fds[0]);
  close (fds[1]);

  /* And whatever process tasks create lazily. */
  {
    g_autoptr(GError) error = NULL;
    KillableProcessTask *process = killable_process_task_new (process_success_argv, &error);

    g_assert_no_error (error);
    g_assert_true (killable_task_start (KILLABLE_TASK (process), NULL));
    g_assert_true (killable_task_join (KILLABLE_TASK (process), NULL));
    g_object_unref (process);
  }
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
test_torture (void)
{
  Attacker attackers[N_ATTACKERS];
  GThread *attacker_threads[N_ATTACKERS];
  GThread *watchdog;
  guint fds_before, fds_after;
  gint64 start_time = g_get_monotonic_time ();
  gint64 end;
  guint round_number = 0;

  g_test_message ("seed: %" G_GUINT32_FORMAT, opt_seed);
  g_test_message ("reproduce with: --seed=%" G_GUINT32_FORMAT " --ops=%" G_GINT64_FORMAT,
                  opt_seed, opt_ops);

  main_thread = g_thread_self ();
  sync_init (&attack_sync);
  sync_init (&async_sync);
  sync_init (&watchdog_sync);
  sync_init (&violation_sync);

  warm_up ();
  fds_before = count_fds ();
  if (opt_verbose)
    list_fds ();

  watchdog = g_thread_new ("torture-watchdog", watchdog_main, NULL);

  async_context = g_main_context_new ();
  async_thread = g_thread_new ("torture-async", async_thread_main, NULL);

  for (guint i = 0; i < N_ATTACKERS; i++)
    {
      attackers[i].id = i;
      attackers[i].rand = NULL;
      attacker_threads[i] = g_thread_new ("torture-attacker", attacker_main, &attackers[i]);
    }

  while (g_atomic_int_get (&ops_done) < opt_ops)
    {
      round_run (round_number++);
      n_rounds++;
      if (opt_verbose && round_number % 100 == 0)
        g_printerr ("# round %u, %d operations\n", round_number, g_atomic_int_get (&ops_done));
    }

  /* Stop the helpers. */
  sync_lock (&attack_sync);
  attack_quit = TRUE;
  sync_broadcast (&attack_sync);
  sync_unlock (&attack_sync);
  for (guint i = 0; i < N_ATTACKERS; i++)
    g_thread_join (attacker_threads[i]);

  sync_lock (&async_sync);
  async_quit = TRUE;
  sync_unlock (&async_sync);
  g_main_context_wakeup (async_context);
  g_thread_join (async_thread);
  g_main_context_unref (async_context);

  print_violation_summary ();

  /* Every abandoned thread returned. */
  end = g_get_monotonic_time () + TEST_LIMIT_USEC (10 * G_USEC_PER_SEC);
  while (killable_get_abandoned_thread_count () != 0 && g_get_monotonic_time () < end)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_thread_yield ();
    }
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, 0);

  /* The thread cache empties. */
  killable_worker_pool_set_idle_timeout (0);
  end = g_get_monotonic_time () + TEST_LIMIT_USEC (10 * G_USEC_PER_SEC);
  while (killable_worker_pool_get_n_threads () != 0 && g_get_monotonic_time () < end)
    g_thread_yield ();
  g_assert_cmpuint (killable_worker_pool_get_n_threads (), ==, 0);

  while (g_main_context_iteration (NULL, FALSE))
    ;

  fds_after = count_fds ();
  if (fds_after != fds_before)
    list_fds ();
  /* Every program of a process task ended and was reaped. */
  g_assert_cmpuint (count_children (), ==, 0);

  sync_lock (&watchdog_sync);
  watchdog_quit = TRUE;
  sync_broadcast (&watchdog_sync);
  sync_unlock (&watchdog_sync);
  g_thread_join (watchdog);

  /* Figures. */
  g_test_message ("seed %" G_GUINT32_FORMAT ": %d operations in %u rounds, %.1f s",
                  opt_seed, g_atomic_int_get (&ops_done), n_rounds,
                  (g_get_monotonic_time () - start_time) / (double) G_USEC_PER_SEC);
  g_test_message ("tasks created %d, finalized %d; cleanups run %d; stop callbacks run %d; "
                  "add_child refused %d; EINTR seen %d; abandoned threads before a release, max %d",
                  n_created, n_finalized, n_cleanups_ran, n_stop_cbs_ran,
                  n_add_child_refused, n_eintr_seen, n_abandoned_max);
  {
    GString *s = g_string_new ("outcomes:");

    for (int i = KILLABLE_TASK_STATE_SUCCEEDED; i <= KILLABLE_TASK_STATE_KILLED; i++)
      g_string_append_printf (s, " %s %d", state_name (i), state_counts[i]);
    g_test_message ("%s", s->str);
    g_string_truncate (s, 0);
    g_string_append (s, "work run:");
    for (int i = 0; i < N_WORK; i++)
      g_string_append_printf (s, " %s %d", work_names[i], work_counts[i]);
    g_test_message ("%s", s->str);
    g_string_truncate (s, 0);
    g_string_append (s, "operations:");
    for (int i = 0; i < N_OPS; i++)
      g_string_append_printf (s, " %s %d;", op_names[i], op_counts[i]);
    g_test_message ("%s", s->str);
    g_string_free (s, TRUE);
  }

  g_assert_cmpint (n_finalized, ==, n_created);
  /* Not more: a descriptor of the warm-up may still have been closing when
   * the count before was taken (ThreadSanitizer, 5 after against 6). */
  g_assert_cmpuint (fds_after, <=, fds_before);
  g_assert_cmpint (g_atomic_int_get (&violations), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&ops_done), >=, opt_ops);

  sync_clear (&attack_sync);
  sync_clear (&async_sync);
  sync_clear (&watchdog_sync);
  sync_clear (&violation_sync);
}

static gboolean
parse_uint64 (const char *value,
              guint64     max,
              guint64    *out)
{
  g_autoptr(GError) error = NULL;

  if (!g_ascii_string_to_unsigned (value, 10, 0, max, out, &error))
    {
      g_printerr ("torture: %s\n", error->message);
      return FALSE;
    }
  return TRUE;
}

/* Big trees: the batched stop {{{ */

/* A stop of a big tree sets the flags and ends the pending tasks that
 * nothing observes in batches under the lock of that tree (each tree has
 * its own), letting waiting threads in between batches (killable-tree.c).
 * This case builds several big random trees (wide fans and deep chains,
 * some tasks with stop callbacks, handlers, retain-children or a running
 * work) and stops their roots from as many threads at once, while a hog
 * thread keeps taking the trees' locks (so that each stop releases its lock
 * between batches), an attacker adds children, starts pending tasks and
 * stops branches, and a mover works across the trees: it adds small
 * subtrees of their own (joining two trees), adds finished tasks that left
 * their parent to another tree (reparenting), and adds a root under
 * another tree. Then it checks: every task is terminal; a task never
 * started is CANCELLED with KILLABLE_ERROR_STOPPED (the lazily built
 * error) or KILLED; each stop callback ran once; no parent ended before a
 * child; every task is finalized at the end. */

#define BIG_N_TREES 4

typedef struct
{
  GPtrArray *tasks;          /* (owned) every task of the trees, roots first */
  GPtrArray *roots;          /* (owned) */
  KillableTask **hogged;     /* (owned) the tasks of the trees as built (held by @tasks) */
  guint      n_hogged;
  GRand     *rand;           /* the attacker's and the mover's, seeded, under @sync */
  guint      max_tasks;      /* the attacker and the mover create no task past it */
  int        capped;         /* (atomic) a creation was refused at @max_tasks: the hog,
                              * the attacker and the mover stop */
  int        quit;           /* (atomic) */
  int        hog_ops;        /* (atomic) */
  int        moves;          /* (atomic) moves that were accepted */
  int        cb_runs;        /* (atomic) */
  int        finalized;      /* (atomic) */
  Sync       sync;
} BigTree;

static gboolean
big_sleep_work (KillableTask  *task,
                gpointer       data,
                GError       **error)
{
  return killable_task_sleep (task, G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC, error);
}

static gboolean
big_noop_work (KillableTask  *task,
               gpointer       data,
               GError       **error)
{
  return TRUE;
}

static void
big_finalized (gpointer data)
{
  g_atomic_int_inc (&((BigTree *) data)->finalized);
}

static void
big_stop_cb (KillableTask *task,
             const GError *reason,
             gpointer      data)
{
  int *runs = g_object_get_data (G_OBJECT (task), "big-cb-runs");

  g_atomic_int_inc (runs);
  g_atomic_int_inc (&((BigTree *) data)->cb_runs);
}

static void
big_notify_cb (GObject    *object,
               GParamSpec *pspec,
               gpointer    data)
{
}

/* Whether the hog, the attacker and the mover go on: until the round
 * ends, or until the round ran so long that they would have grown the
 * trees past @bt->max_tasks (see big_tree_round()). */
static gboolean
big_interfering (BigTree *bt)
{
  return !g_atomic_int_get (&bt->quit) && !g_atomic_int_get (&bt->capped);
}

/* Under @bt->sync, before the attacker or the mover creates @n_new tasks:
 * whether that would pass @bt->max_tasks. Then nothing is created, and
 * the interference stops (big_interfering()). */
static gboolean
big_at_bound (BigTree *bt,
              guint    n_new)
{
  if (bt->tasks->len + n_new <= bt->max_tasks)
    return FALSE;
  g_atomic_int_inc (&bt->capped);
  return TRUE;
}

/* Takes the lock of a tree being stopped, again and again: a task of the
 * trees as built, in turn (a lone task would take none of theirs). */
static gpointer
big_hog_main (gpointer data)
{
  BigTree *bt = data;

  for (guint i = 0; big_interfering (bt); i = (i + 7919) % bt->n_hogged)
    {
      KillableTask *parent = killable_task_dup_parent (bt->hogged[i]);

      g_clear_object (&parent);
      g_atomic_int_inc (&bt->hog_ops);
      g_atomic_int_inc (&progress);
    }

  return NULL;
}

static KillableTask *
big_new_task (BigTree    *bt,
              const char *name)
{
  KillableTask *task = killable_task_new (name, big_noop_work, bt, big_finalized);

  g_ptr_array_add (bt->tasks, task);
  return task;
}

/* Across the trees, under @bt->sync: joins, reparents, moves. Any of them
 * may be refused (a finished parent, a cycle, a parent already): fine. */
static gpointer
big_mover_main (gpointer data)
{
  BigTree *bt = data;

  while (big_interfering (bt))
    {
      KillableTask *target;
      gboolean moved = FALSE;

      sync_lock (&bt->sync);
      target = g_ptr_array_index (bt->tasks, g_rand_int_range (bt->rand, 0, bt->tasks->len));
      switch (g_rand_int_range (bt->rand, 0, 3))
        {
        case 0:
          {
            /* A small tree of its own (a parent that was lone joins its
             * child's tree), then moved under @target: its tree joins
             * @target's. */
            KillableTask *top;
            guint n;

            /* At most 5: a top, 3 children, one above. */
            if (big_at_bound (bt, 5))
              break;
            top = big_new_task (bt, "mini");
            n = g_rand_int_range (bt->rand, 1, 4);

            for (guint i = 0; i < n; i++)
              g_assert_true (killable_task_add_child (top, big_new_task (bt, "mini-child"), NULL));
            if (g_rand_boolean (bt->rand))
              {
                KillableTask *above = big_new_task (bt, "mini-top");

                g_assert_true (killable_task_add_child (above, top, NULL));
                top = above;
              }
            moved = killable_task_add_child (target, top, NULL);
          }
          break;
        case 1:
          {
            /* A finished task that left its parent goes to another one
             * (and leaves it again at once, unless retained). */
            KillableTask *task = g_ptr_array_index (bt->tasks, g_rand_int_range (bt->rand, 0, bt->tasks->len));
            g_autoptr(KillableTask) parent = killable_task_dup_parent (task);

            if (parent == NULL && IS_TERMINAL (killable_task_get_state (task)))
              moved = killable_task_add_child (target, task, NULL);
          }
          break;
        default:
          /* A whole tree under another one (or under itself: refused). */
          moved = killable_task_add_child (target,
                                           g_ptr_array_index (bt->roots, g_rand_int_range (bt->rand, 0, bt->roots->len)),
                                           NULL);
          break;
        }
      sync_unlock (&bt->sync);
      if (moved)
        g_atomic_int_inc (&bt->moves);
      g_atomic_int_inc (&progress);
    }

  return NULL;
}

static gpointer
big_stopper_main (gpointer data)
{
  /* This thread only (Linux: a thread's own nice value). */
  if (opt_starve_stoppers)
    (void) setpriority (PRIO_PROCESS, 0, 19);
  killable_task_stop (data);
  g_atomic_int_inc (&progress);
  return NULL;
}

static gpointer
big_attacker_main (gpointer data)
{
  BigTree *bt = data;

  while (big_interfering (bt))
    {
      KillableTask *task;
      guint n;

      sync_lock (&bt->sync);
      n = bt->tasks->len;
      task = g_object_ref (g_ptr_array_index (bt->tasks, g_rand_int_range (bt->rand, 0, n)));
      switch (g_rand_int_range (bt->rand, 0, 4))
        {
        case 0:
          if (big_at_bound (bt, 1))
            break;
          {
            KillableTask *child = killable_task_new ("late", big_noop_work, bt, big_finalized);

            /* Refused once @task finished: fine. */
            killable_task_add_child (task, child, NULL);
            g_ptr_array_add (bt->tasks, child);
          }
          break;
        case 1:
          if (killable_task_get_state (task) == KILLABLE_TASK_STATE_PENDING)
            killable_task_start (task, NULL);
          break;
        case 2:
          killable_task_stop (task);
          break;
        default:
          killable_task_is_stop_requested (task);
          break;
        }
      sync_unlock (&bt->sync);
      g_object_unref (task);
      g_atomic_int_inc (&progress);
    }

  return NULL;
}

static void
big_tree_round (guint32 seed,
                guint   size)
{
  BigTree bt = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  GThread *hog, *attacker, *mover, *stoppers[BIG_N_TREES];
  GPtrArray *members[BIG_N_TREES];   /* the tasks of each tree as built */
  guint n_cbs = 0, n_cancelled = 0;

  bt.tasks = g_ptr_array_new_with_free_func (g_object_unref);
  bt.roots = g_ptr_array_new ();
  bt.rand = g_rand_new_with_seed (seed ^ 0x5bd1e995);
  /* The attacker and the mover create tasks while the stops run, and the
   * round lasts until the stops end: without a bound, a scheduler that
   * leaves the stopping threads little time (valgrind's runs one thread at
   * a time, unfairly; --starve-stoppers) lets them grow the trees faster
   * than the stops end them, and the longer round grows them more (a
   * fresh-clone CI run under valgrind went past 15 minutes and 4 GB). Four
   * times the built size is never reached when the stops get their share
   * (rounds end at one to two times it). When it is, the round has run
   * long: the three threads that keep taking the trees' locks stop there
   * (they alone would still starve the stops under valgrind: a run that
   * stopped only creating took 66 s, 4 times a usual one), and the stops
   * end undisturbed. */
  bt.max_tasks = 4 * size;
  sync_init (&bt.sync);

  for (guint t = 0; t < BIG_N_TREES; t++)
    {
      KillableTask *root = killable_task_new ("big-root", big_sleep_work, &bt, big_finalized);

      g_ptr_array_add (bt.tasks, root);
      g_ptr_array_add (bt.roots, root);
      members[t] = g_ptr_array_new ();
      g_ptr_array_add (members[t], root);
      g_assert_true (killable_task_start (root, NULL));
    }

  /* Random shape: each new task goes under a random earlier one of its
   * tree, or under the newest of it (chains). The first tree is as big as
   * the others together. */
  for (guint i = BIG_N_TREES; i < size; i++)
    {
      guint tree = g_rand_int_range (rand, 0, 2 * BIG_N_TREES - 2);
      gboolean running = g_rand_int_range (rand, 0, 50) == 0;
      KillableTask *task = killable_task_new ("big", running ? big_sleep_work : big_noop_work,
                                              &bt, big_finalized);
      GPtrArray *m;
      KillableTask *parent;

      m = members[tree < BIG_N_TREES - 1 ? tree + 1 : 0];
      parent = g_rand_boolean (rand)
                 ? g_ptr_array_index (m, m->len - 1)
                 : g_ptr_array_index (m, g_rand_int_range (rand, 0, m->len));

      switch (g_rand_int_range (rand, 0, 20))
        {
        case 0:
          g_object_set_data_full (G_OBJECT (task), "big-cb-runs", g_new0 (int, 1), g_free);
          killable_task_add_stop_callback (task, big_stop_cb, &bt, NULL);
          n_cbs++;
          break;
        case 1:
          g_signal_connect (task, "notify::state", G_CALLBACK (big_notify_cb), NULL);
          break;
        case 2:
          killable_task_set_retain_children (task, TRUE);
          break;
        case 3:
          killable_task_get_cancellable (task);
          break;
        default:
          break;
        }
      g_assert_true (killable_task_add_child (parent, task, NULL));
      if (running)
        killable_task_start (task, NULL);
      g_ptr_array_add (bt.tasks, task);
      g_ptr_array_add (m, task);
    }
  for (guint t = 0; t < BIG_N_TREES; t++)
    g_ptr_array_unref (members[t]);

  bt.n_hogged = bt.tasks->len;
  bt.hogged = g_memdup2 (bt.tasks->pdata, bt.n_hogged * sizeof (gpointer));
  hog = g_thread_new ("big-hog", big_hog_main, &bt);
  attacker = g_thread_new ("big-attacker", big_attacker_main, &bt);
  mover = g_thread_new ("big-mover", big_mover_main, &bt);

  /* The trees are stopped at once, each from a thread of its own. */
  for (guint t = 0; t < BIG_N_TREES; t++)
    stoppers[t] = g_thread_new ("big-stopper", big_stopper_main, g_ptr_array_index (bt.roots, t));
  for (guint t = 0; t < BIG_N_TREES; t++)
    {
      g_thread_join (stoppers[t]);
      /* A guard, not a timing: a stopped tree that does not end is a bug. */
      if (!killable_task_wait (g_ptr_array_index (bt.roots, t), TEST_LIMIT_USEC (60 * G_USEC_PER_SEC)))
        violation ("big-root", "the stopped tree did not end");
    }

  g_atomic_int_set (&bt.quit, 1);
  g_thread_join (hog);
  g_thread_join (attacker);
  g_thread_join (mover);

  /* Every task of the trees (late ones and small trees refused by a
   * finished parent and never started are pending: stop the ones without a
   * parent first, their subtrees with them). */
  for (guint i = 0; i < bt.tasks->len; i++)
    {
      KillableTask *task = g_ptr_array_index (bt.tasks, i);
      g_autoptr(KillableTask) parent = killable_task_dup_parent (task);

      if (parent == NULL && killable_task_get_state (task) == KILLABLE_TASK_STATE_PENDING)
        killable_task_stop (task);
    }
  for (guint i = 0; i < bt.tasks->len; i++)
    {
      KillableTask *task = g_ptr_array_index (bt.tasks, i);
      g_autoptr(KillableTask) parent = killable_task_dup_parent (task);
      KillableTaskState state;

      /* Structured completion: a parent (not killed) never ends before its
       * child (check_structure()). The child is looked at first: one that
       * is not terminal has not left its parent (only a terminal task
       * leaves), so a terminal parent seen after it ended first. (A child
       * seen terminal while its parent is not is no violation: the parent
       * ends after it, maybe an instant later on another thread; each
       * parent is waited for on its own.) */
      if (parent != NULL && !IS_TERMINAL (killable_task_get_state (task)))
        {
          KillableTaskState pstate = killable_task_get_state (parent);

          if (IS_TERMINAL (pstate) && pstate != KILLABLE_TASK_STATE_KILLED)
            violation (killable_task_get_name (task), "not terminal while its parent is");
        }

      if (!killable_task_wait (task, 10 * G_USEC_PER_SEC))
        {
          violation (killable_task_get_name (task), "not terminal after the stop");
          continue;
        }
      state = killable_task_get_state (task);

      if (state == KILLABLE_TASK_STATE_CANCELLED)
        {
          const GError *error = killable_task_get_error (task);

          if (!g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED))
            violation (killable_task_get_name (task), "cancelled with %s",
                       error != NULL ? error->message : "no error");
          if (!killable_task_is_stop_requested (task))
            violation (killable_task_get_name (task), "cancelled without a stop");
        }
      else if (state != KILLABLE_TASK_STATE_SUCCEEDED && state != KILLABLE_TASK_STATE_KILLED &&
               state != KILLABLE_TASK_STATE_FAILED)
        violation (killable_task_get_name (task), "ended %d", state);

      if (state == KILLABLE_TASK_STATE_CANCELLED)
        n_cancelled++;

      /* A stop callback ran once iff its task was stopped (one that ended
       * first, started by the attacker, may never be). */
      {
        int *runs = g_object_get_data (G_OBJECT (task), "big-cb-runs");

        if (runs != NULL &&
            g_atomic_int_get (runs) != (killable_task_is_stop_requested (task) ? 1 : 0))
          violation (killable_task_get_name (task), "stop callback ran %d times, stop requested: %d",
                     g_atomic_int_get (runs), killable_task_is_stop_requested (task));
      }
    }

  g_test_message ("big trees (seed %" G_GUINT32_FORMAT "): %u tasks in %u trees, %u cancelled, "
                  "%d of %u stop callbacks ran, %d hog operations, %d moves across trees, "
                  "interference stopped at %u tasks: %s",
                  seed, bt.tasks->len, BIG_N_TREES, n_cancelled, g_atomic_int_get (&bt.cb_runs), n_cbs,
                  g_atomic_int_get (&bt.hog_ops), g_atomic_int_get (&bt.moves),
                  bt.max_tasks, g_atomic_int_get (&bt.capped) ? "yes" : "no");

  size = bt.tasks->len;
  g_free (bt.hogged);
  g_ptr_array_unref (bt.roots);
  g_ptr_array_unref (bt.tasks);
  /* Queued emissions hold their task until the owner context (this
   * thread's) dispatches them; a worker drops its reference right after
   * the end. */
  TEST_POLL_UNTIL ((g_main_context_iteration (NULL, FALSE),
                    (guint) g_atomic_int_get (&bt.finalized) == size));
  g_rand_free (bt.rand);
  sync_clear (&bt.sync);
}

static void
test_big_tree_stop (void)
{
  guint rounds = test_under_valgrind () ? 1 : 4;

  for (guint i = 0; i < rounds; i++)
    big_tree_round (opt_seed + i, test_under_valgrind () ? 400 : 8000);

  g_assert_cmpint (g_atomic_int_get (&violations), ==, 0);
}

/* }}} */

/* The worker pool: many short tasks from several threads {{{ */

/* Several starter threads start short tasks as fast as they can (work that
 * returns at once, fails, spins with check(), sleeps a moment, starts and
 * joins a child, or meets others at a barrier), and each then joins it,
 * stops and joins it, abandons it (drops its reference unjoined) or hands
 * it to another starter, which joins or stops it. Checks: each task's work
 * ran at most once, and once if it was not stopped; its cleanup ran exactly
 * once (the end of a started task); join() agrees with the state; every
 * task is finalized; the tasks of a barrier all arrive (a job queued behind
 * a running one would never run: a barrier waits forever); at the end every
 * worker is idle and /proc/self/task holds exactly the threads from before
 * plus the pool's idle ones, and none once the pool emptied. */

#define POOL_STARTERS 4

typedef enum
{
  POOL_WORK_RETURN,
  POOL_WORK_FAIL,
  POOL_WORK_SPIN,
  POOL_WORK_SLEEP,
  POOL_WORK_NESTED,
  POOL_WORK_BARRIER,
  N_POOL_WORK
} PoolWork;

typedef struct
{
  Sync sync;
  int  size;
  int  arrived;   /* protected by sync */
} PoolBarrier;

typedef struct _PoolRec PoolRec;

struct _PoolRec
{
  PoolWork     work;
  PoolBarrier *barrier;     /* POOL_WORK_BARRIER: shared, owned by the starter */
  PoolRec     *parent;      /* of a child started by POOL_WORK_NESTED */
  int          runs;        /* (atomic) */
  int          cleanups;    /* (atomic) */
  int          finalized;   /* (atomic) */
  int          stopped;     /* (atomic) a stop was requested by the test */
};

typedef struct
{
  Sync       sync;
  GQueue     handed;        /* protected by sync: tasks (owned) for another starter */
  GPtrArray *recs;          /* protected by sync: every PoolRec (owned) */
  int        quit;          /* (atomic) */
  int        started;       /* (atomic) */
} PoolTorture;

static PoolTorture pool_torture;

static KillableTask *pool_new_task (PoolWork     work,
                                    PoolBarrier *barrier,
                                    PoolRec     *parent);

static gboolean
pool_work (KillableTask  *task,
           gpointer       data,
           GError       **error)
{
  PoolRec *rec = data;

  g_atomic_int_inc (&rec->runs);
  g_atomic_int_inc (&progress);

  switch (rec->work)
    {
    case POOL_WORK_RETURN:
      return TRUE;
    case POOL_WORK_FAIL:
      g_set_error_literal (error, TEST_ERROR, 1, "pool work failed");
      return FALSE;
    case POOL_WORK_SPIN:
      for (int i = 0; i < 200; i++)
        {
          if (!killable_task_check (task, error))
            return FALSE;
          spin (50);
        }
      return TRUE;
    case POOL_WORK_SLEEP:
      return killable_task_sleep (task, 100, error);
    case POOL_WORK_NESTED:
      {
        KillableTask *child = pool_new_task (POOL_WORK_SPIN, NULL, rec);
        gboolean ok;

        if (killable_task_add_child (task, child, NULL))
          {
            g_assert_true (killable_task_start (child, NULL));
            ok = killable_task_join (child, error);
          }
        else
          {
            /* Refused: this task is being stopped. The child never runs
             * (its cleanup runs in finalize). */
            ok = killable_task_check (task, error);
            if (ok)
              violation ("pool-child", "add_child() refused while the parent was not stopped");
          }
        g_object_unref (child);
        return ok;
      }
    case POOL_WORK_BARRIER:
      {
        PoolBarrier *b = rec->barrier;
        gint64 end = g_get_monotonic_time () + TEST_GUARD_USEC;
        gboolean all = TRUE;

        sync_lock (&b->sync);
        b->arrived++;
        sync_broadcast (&b->sync);
        while (b->arrived < b->size && all)
          all = sync_wait_until (&b->sync, end) || b->arrived >= b->size;
        sync_unlock (&b->sync);
        if (!all)
          violation ("pool-barrier", "only %d of %d barrier tasks ran at once: a job waited behind another",
                     b->arrived, b->size);
        return TRUE;
      }
    default:
      g_assert_not_reached ();
    }
}

static void
pool_cleanup (KillableTask *task,
              gpointer      data)
{
  g_atomic_int_inc (&((PoolRec *) data)->cleanups);
}

static void
pool_finalized (gpointer  data,
                GObject  *object)
{
  g_atomic_int_inc (&((PoolRec *) data)->finalized);
}

static KillableTask *
pool_new_task (PoolWork     work,
               PoolBarrier *barrier,
               PoolRec     *parent)
{
  PoolRec *rec = g_new0 (PoolRec, 1);
  KillableTask *task;

  rec->work = work;
  rec->barrier = barrier;
  rec->parent = parent;
  sync_lock (&pool_torture.sync);
  g_ptr_array_add (pool_torture.recs, rec);
  sync_unlock (&pool_torture.sync);

  task = killable_task_new ("pool", pool_work, rec, NULL);
  g_object_set_data (G_OBJECT (task), "pool-rec", rec);
  g_object_weak_ref (G_OBJECT (task), pool_finalized, rec);
  killable_task_add_cleanup (task, pool_cleanup, rec, NULL);

  return task;
}

/* Joins @task (owned) and checks what join() says against its state. */
static void
pool_join (KillableTask *task,
           gboolean      stop)
{
  PoolRec *rec = g_object_get_data (G_OBJECT (task), "pool-rec");
  g_autoptr(GError) error = NULL;
  KillableTaskState state;
  gboolean ok;

  if (stop)
    {
      g_atomic_int_set (&rec->stopped, 1);
      killable_task_stop (task);
    }
  ok = killable_task_join (task, &error);
  state = killable_task_get_state (task);
  if (ok != (state == KILLABLE_TASK_STATE_SUCCEEDED) || ok == (error != NULL))
    violation ("pool", "join() returned %d (error %s) in state %s", ok,
               error != NULL ? error->message : "none", state_name (state));
  if (!g_atomic_int_get (&rec->stopped) &&
      state != (rec->work == POOL_WORK_FAIL ? KILLABLE_TASK_STATE_FAILED : KILLABLE_TASK_STATE_SUCCEEDED))
    violation ("pool", "not stopped, ended %s", state_name (state));
  g_object_unref (task);
}

static void
pool_count_started (int n)
{
  int now = g_atomic_int_add (&pool_torture.started, n) + n;

  /* Every 1000 tasks, and at the end. */
  if (now / 1000 != (now - n) / 1000)
    {
      sync_lock (&pool_torture.sync);
      sync_broadcast (&pool_torture.sync);
      sync_unlock (&pool_torture.sync);
    }
}

static gpointer
pool_starter_main (gpointer data)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (opt_seed ^ GPOINTER_TO_UINT (data));

  while (!g_atomic_int_get (&pool_torture.quit))
    {
      KillableTask *task, *other = NULL;
      guint op = g_rand_int_range (rand, 0, 100);

      g_atomic_int_inc (&progress);

      /* Now and then a barrier: all its tasks must run at once. */
      if (op < 3)
        {
          PoolBarrier barrier;
          KillableTask *tasks[12];
          int size = g_rand_int_range (rand, 2, G_N_ELEMENTS (tasks) + 1);

          sync_init (&barrier.sync);
          barrier.size = size;
          barrier.arrived = 0;
          for (int i = 0; i < size; i++)
            {
              tasks[i] = pool_new_task (POOL_WORK_BARRIER, &barrier, NULL);
              g_assert_true (killable_task_start (tasks[i], NULL));
            }
          for (int i = 0; i < size; i++)
            pool_join (tasks[i], FALSE);
          sync_clear (&barrier.sync);
          pool_count_started (size);
          continue;
        }

      task = pool_new_task (g_rand_int_range (rand, 0, POOL_WORK_BARRIER), NULL, NULL);
      g_assert_true (killable_task_start (task, NULL));
      pool_count_started (1);

      if (op < 35)
        pool_join (task, FALSE);
      else if (op < 55)
        pool_join (task, TRUE);
      else if (op < 75)
        {
          /* Abandoned: it still ends, and is finalized. */
          if (g_rand_boolean (rand))
            {
              g_atomic_int_set (&((PoolRec *) g_object_get_data (G_OBJECT (task), "pool-rec"))->stopped, 1);
              killable_task_stop (task);
            }
          g_object_unref (task);
        }
      else
        {
          /* To another starter; and maybe take one handed over. */
          sync_lock (&pool_torture.sync);
          g_queue_push_tail (&pool_torture.handed, task);
          if (g_queue_get_length (&pool_torture.handed) > 1)
            other = g_queue_pop_head (&pool_torture.handed);
          sync_unlock (&pool_torture.sync);
          if (other != NULL)
            pool_join (other, g_rand_boolean (rand));
        }
    }

  return NULL;
}

static guint
count_threads (void)
{
  DIR *dir = opendir ("/proc/self/task");
  struct dirent *entry;
  guint n = 0;

  g_assert_nonnull (dir);
  while ((entry = readdir (dir)) != NULL)
    if (entry->d_name[0] != '.')
      n++;
  closedir (dir);

  return n;
}

static void
test_pool (void)
{
  GThread *starters[POOL_STARTERS];
  KillableTask *task;
  guint threads_before, n_pool;
  gint64 end;
  /* A multiple of 1000: see pool_count_started(). */
  int target = test_under_valgrind () ? 2000 : MAX (20, (int) (opt_ops * 4 / 1000)) * 1000;

  /* From an empty pool (an earlier case may have left idle threads, or set
   * the idle timeout to 0). */
  killable_worker_pool_set_idle_timeout (0);
  TEST_POLL_UNTIL (killable_worker_pool_get_n_threads () == 0);
  /* ... and gone from the process: an exiting worker is still counted by
   * count_threads() until it is joined (under valgrind, 13 counted here
   * against 3 later). */
  TEST_POLL_UNTIL (killable_worker_pool_reap_exited () == 0);
  killable_worker_pool_set_idle_timeout (15 * G_USEC_PER_SEC);
  threads_before = count_threads ();

  sync_init (&pool_torture.sync);
  g_queue_init (&pool_torture.handed);
  pool_torture.recs = g_ptr_array_new_with_free_func (g_free);
  g_atomic_int_set (&pool_torture.quit, 0);

  for (guint i = 0; i < POOL_STARTERS; i++)
    starters[i] = g_thread_new ("pool-starter", pool_starter_main, GUINT_TO_POINTER (i + 1));
  /* The starters run until this many tasks were started (a guard, not a
   * timing: a stall of 3 guards is a deadlock, and the barriers report it
   * first). */
  sync_lock (&pool_torture.sync);
  while (g_atomic_int_get (&pool_torture.started) < target)
    {
      int before = g_atomic_int_get (&pool_torture.started);

      if (!sync_wait_until (&pool_torture.sync, g_get_monotonic_time () + 3 * TEST_GUARD_USEC) &&
          g_atomic_int_get (&pool_torture.started) == before)
        {
          violation ("pool", "no task started for %.0f s: stalled at %d of %d", 3 * TEST_GUARD_USEC / 1e6,
                     before, target);
          g_assert_cmpint (g_atomic_int_get (&violations), ==, 0);
        }
    }
  sync_unlock (&pool_torture.sync);
  g_atomic_int_set (&pool_torture.quit, 1);
  for (guint i = 0; i < POOL_STARTERS; i++)
    g_thread_join (starters[i]);
  while ((task = g_queue_pop_head (&pool_torture.handed)) != NULL)
    pool_join (task, FALSE);

  /* Abandoned tasks end on their own; then each record is complete. */
  for (guint i = 0; i < pool_torture.recs->len; i++)
    {
      PoolRec *rec = g_ptr_array_index (pool_torture.recs, i);

      TEST_POLL_UNTIL (g_atomic_int_get (&rec->finalized) == 1);
      gboolean stopped = g_atomic_int_get (&rec->stopped) ||
                         (rec->parent != NULL && g_atomic_int_get (&rec->parent->stopped));

      if (g_atomic_int_get (&rec->runs) > 1 || (g_atomic_int_get (&rec->runs) == 0 && !stopped))
        violation ("pool", "work %d ran %d times (stopped: %d)", rec->work,
                   g_atomic_int_get (&rec->runs), g_atomic_int_get (&rec->stopped));
      if (g_atomic_int_get (&rec->cleanups) != 1)
        violation ("pool", "cleanup ran %d times", g_atomic_int_get (&rec->cleanups));
    }

  /* No thread leaked: every worker goes idle, and the process has the
   * threads it had before plus the idle workers... */
  TEST_POLL_UNTIL (killable_worker_pool_get_n_idle () == killable_worker_pool_get_n_threads ());
  n_pool = killable_worker_pool_get_n_threads ();
  end = g_get_monotonic_time () + TEST_GUARD_USEC;
  while (count_threads () != threads_before + n_pool && g_get_monotonic_time () < end)
    g_thread_yield ();   /* a worker that left a moment ago may still be exiting */
  if (count_threads () != threads_before + n_pool)
    violation ("pool", "%u threads, expected %u + %u idle workers",
               count_threads (), threads_before, n_pool);

  /* ... and just those from before once the idle workers left. */
  killable_worker_pool_set_idle_timeout (0);
  TEST_POLL_UNTIL (killable_worker_pool_get_n_threads () == 0);
  end = g_get_monotonic_time () + TEST_GUARD_USEC;
  while (count_threads () != threads_before && g_get_monotonic_time () < end)
    g_thread_yield ();
  if (count_threads () != threads_before)
    violation ("pool", "%u threads after the pool emptied, %u before", count_threads (), threads_before);

  g_test_message ("pool: %d tasks started from %d threads (%u records), at most %u idle workers at the end",
                  g_atomic_int_get (&pool_torture.started), POOL_STARTERS, pool_torture.recs->len, n_pool);

  g_ptr_array_unref (pool_torture.recs);
  sync_clear (&pool_torture.sync);
  g_assert_cmpint (g_atomic_int_get (&violations), ==, 0);
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  const char *env_seed = g_getenv ("KILLABLE_TORTURE_SEED");
  gboolean have_seed = FALSE;
  int j = 1;

  /* Our options first: g_test_init() must not see them. */
  for (int i = 1; i < argc; i++)
    {
      guint64 v;

      if (g_str_has_prefix (argv[i], "--seed="))
        {
          if (!parse_uint64 (argv[i] + 7, G_MAXUINT32, &v))
            return 2;
          opt_seed = (guint32) v;
          have_seed = TRUE;
        }
      else if (g_str_has_prefix (argv[i], "--ops="))
        {
          if (!parse_uint64 (argv[i] + 6, G_MAXINT, &v))
            return 2;
          opt_ops = (gint64) v;
        }
      else if (g_str_has_prefix (argv[i], "--watchdog="))
        {
          if (!parse_uint64 (argv[i] + 11, 100000, &v) || v == 0)
            return 2;
          opt_watchdog = (int) v;
        }
      else if (g_str_equal (argv[i], "--starve-stoppers"))
        opt_starve_stoppers = TRUE;
      else if (g_str_equal (argv[i], "--verbose"))
        {
          opt_verbose = TRUE;
          argv[j++] = argv[i];
        }
      else
        argv[j++] = argv[i];
    }
  argc = j;
  argv[argc] = NULL;

  if (!have_seed && env_seed != NULL && *env_seed != '\0')
    {
      guint64 v;

      if (!parse_uint64 (env_seed, G_MAXUINT32, &v))
        return 2;
      opt_seed = (guint32) v;
      have_seed = TRUE;
    }
  if (!have_seed)
    opt_seed = g_random_int ();

  /* gdb, run by the watchdog, may attach to us even under Yama. */
#ifdef PR_SET_PTRACER
  prctl (PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
#endif

  /* Before anything else, so that a crash report always has it (stdout is
   * the TAP stream: g_test_message() repeats it there). */
  fprintf (stderr, "# seed: %" G_GUINT32_FORMAT "\n", opt_seed);

  g_test_init (&argc, &argv, NULL);
  g_test_summary ("Random trees of tasks (and process tasks) attacked from several threads; invariants checked after every operation.");
  g_test_add_func ("/torture/random", test_torture);
  g_test_add_func ("/torture/big-tree-stop", test_big_tree_stop);
  g_test_add_func ("/torture/pool", test_pool);

  return g_test_run ();
}

/* }}} */
