/* demo-workloads.c: the real work the demos stop, interrupt and kill
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#include "demo-workloads.h"

/* Work sizes: each CPU child needs several seconds of a core, far more
 * than the demos let it run, so that it is always stopped mid-way. */
#define SHA_CHUNK_SIZE     (64 * 1024)
#define SHA_N_CHUNKS       32768          /* 2 GiB */
#define PRIMES_LIMIT       20000000
#define PRIMES_CHUNK       20000
#define CPU_READY_PROGRESS 0.05

#define TIMEOUT_USEC       (600 * G_TIME_SPAN_MILLISECOND)
#define TIMEOUT_STEPS      100
#define TIMEOUT_STEP_USEC  (50 * G_TIME_SPAN_MILLISECOND)

#define PROCESS_GRACE_USEC (300 * G_TIME_SPAN_MILLISECOND)
#define PROCESS_N_PIDS     3              /* the shell and its two sleeps */

/* The shell ignores SIGTERM, and so do the two grandchildren it starts
 * (an ignored signal stays ignored across fork and exec): only SIGKILL to
 * the whole process group ends them. Their PIDs go to the file in $1. */
static const char process_script[] =
  "trap '' TERM; "
  "sleep 1000 & echo $! >> \"$1\"; "
  "sleep 1000 & echo $! >> \"$1\"; "
  "wait";

typedef enum
{
  CPU_KIND_PARENT,
  CPU_KIND_SHA256,
  CPU_KIND_PRIMES,
} CpuKind;

/* Attached to every task the demos create, as "demo-info". Fields marked
 * (atomic) are written by the worker and read by the owner. */
typedef struct
{
  DemoWorkload       workload;
  KillableTaskState  expected_state;
  int                expected_error;

  /* CPU tree */
  CpuKind            cpu_kind;
  GPtrArray         *children;          /* (owned) parent only; a child does not
                                         * own its parent: no cycle */

  /* Blocked read */
  int                pipe_fds[2];       /* closed by the cleanup */
  int                blocked;           /* (atomic) */
  int                saw_eintr;         /* (atomic) */

  /* Stuck loop */
  int                spinning;          /* (atomic) its run() began */
  int                cleanup_ran;       /* (atomic) */

  /* Process tree */
  char              *pid_file;          /* (owned) */
  GPid               pids[PROCESS_N_PIDS];
  guint              n_pids;
} DemoInfo;

static DemoLogFunc log_func;
static gpointer log_func_data;
static int stuck_release;               /* (atomic) */

/* Logging from workers {{{ */

void
demo_workloads_set_log_func (DemoLogFunc func,
                             gpointer    user_data)
{
  log_func = func;
  log_func_data = user_data;
}

static gboolean
log_idle_cb (gpointer data)
{
  if (log_func != NULL)
    log_func (data, log_func_data);

  return G_SOURCE_REMOVE;
}

/* Never prints on the worker: the line is handed to the main context.
 * g_main_context_invoke() would run it right here when the main context
 * happens to be free, so an idle source is attached explicitly. */
G_GNUC_PRINTF (1, 2)
static void
log_from_worker (const char *format,
                 ...)
{
  g_autoptr(GSource) source = NULL;
  va_list args;
  char *message;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_static_name (source, "[demo] worker log");
  g_source_set_callback (source, log_idle_cb, message, g_free);
  g_source_attach (source, NULL);
}

/* }}} */

/* Names {{{ */

const char *
demo_workload_get_title (DemoWorkload workload)
{
  static const char * const titles[] = {
    [DEMO_WORKLOAD_CPU_TREE] = N_("CPU tree"),
    [DEMO_WORKLOAD_BLOCKED_READ] = N_("Blocked read()"),
    [DEMO_WORKLOAD_STUCK_LOOP] = N_("Stuck loop"),
    [DEMO_WORKLOAD_PROCESS_TREE] = N_("Process tree"),
    [DEMO_WORKLOAD_TIMEOUT] = N_("Timeout"),
  };

  g_return_val_if_fail (workload < DEMO_N_WORKLOADS, NULL);

  return _(titles[workload]);
}

DemoRung
demo_workload_get_rung (DemoWorkload workload)
{
  switch (workload)
    {
    case DEMO_WORKLOAD_CPU_TREE:
      return DEMO_RUNG_STOP;
    case DEMO_WORKLOAD_BLOCKED_READ:
      return DEMO_RUNG_INTERRUPT;
    case DEMO_WORKLOAD_STUCK_LOOP:
      return DEMO_RUNG_KILL;
    case DEMO_WORKLOAD_PROCESS_TREE:
      return DEMO_RUNG_GRACE_PERIOD;
    case DEMO_WORKLOAD_TIMEOUT:
    case DEMO_N_WORKLOADS:
    default:
      return DEMO_RUNG_TIMEOUT;
    }
}

const char *
demo_rung_get_title (DemoRung rung)
{
  switch (rung)
    {
    case DEMO_RUNG_STOP:
      return _("1 stop");
    case DEMO_RUNG_INTERRUPT:
      return _("2 interrupt");
    case DEMO_RUNG_KILL:
      return _("3 kill");
    case DEMO_RUNG_GRACE_PERIOD:
      return _("grace period");
    case DEMO_RUNG_TIMEOUT:
    default:
      return _("timeout");
    }
}

const char *
demo_state_to_string (KillableTaskState state)
{
  switch (state)
    {
    case KILLABLE_TASK_STATE_PENDING:
      return _("PENDING");
    case KILLABLE_TASK_STATE_RUNNING:
      return _("RUNNING");
    case KILLABLE_TASK_STATE_STOPPING:
      return _("STOPPING");
    case KILLABLE_TASK_STATE_SUCCEEDED:
      return _("SUCCEEDED");
    case KILLABLE_TASK_STATE_FAILED:
      return _("FAILED");
    case KILLABLE_TASK_STATE_CANCELLED:
      return _("CANCELLED");
    case KILLABLE_TASK_STATE_KILLED:
      return _("KILLED");
    default:
      return "?";
    }
}

/* }}} */

/* Info {{{ */

static void
demo_info_free (gpointer data)
{
  DemoInfo *info = data;

  g_clear_pointer (&info->children, g_ptr_array_unref);
  if (info->pid_file != NULL)
    {
      g_unlink (info->pid_file);
      g_free (info->pid_file);
    }
  g_free (info);
}

static DemoInfo *
info_new (DemoWorkload       workload,
          KillableTaskState  expected_state,
          int                expected_error)
{
  DemoInfo *info = g_new0 (DemoInfo, 1);

  info->workload = workload;
  info->expected_state = expected_state;
  info->expected_error = expected_error;
  info->pipe_fds[0] = info->pipe_fds[1] = -1;

  return info;
}

/* The info lives as long as its task. */
static void
attach_info (KillableTask *task,
             DemoInfo     *info)
{
  g_object_set_data_full (G_OBJECT (task), "demo-info", info, demo_info_free);
}

/* Creates a task whose function gets the info as its data. */
static KillableTask *
new_task (const char         *name,
          KillableTaskFunc    func,
          DemoWorkload        workload,
          KillableTaskState   expected_state,
          int                 expected_error,
          DemoInfo          **out_info)
{
  DemoInfo *info = info_new (workload, expected_state, expected_error);
  KillableTask *task = killable_task_new (name, func, info, NULL);

  attach_info (task, info);

  *out_info = info;
  return task;
}

static DemoInfo *
get_info (KillableTask *task)
{
  return g_object_get_data (G_OBJECT (task), "demo-info");
}

/* }}} */

/* CPU tree {{{ */

static gboolean
sha256_run (KillableTask  *task,
            gpointer       user_data,
            GError       **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *chunk = g_malloc (SHA_CHUNK_SIZE);

  for (gsize i = 0; i < SHA_CHUNK_SIZE; i++)
    chunk[i] = (guint8) (i * 2654435761u >> 24);

  for (guint i = 0; i < SHA_N_CHUNKS; i++)
    {
      if (!killable_task_check (task, error))
        return FALSE;

      g_checksum_update (checksum, chunk, SHA_CHUNK_SIZE);
      if (i % 16 == 15)
        killable_task_set_progress (task, (double) (i + 1) / SHA_N_CHUNKS);
    }

  killable_task_set_status (task, g_checksum_get_string (checksum));

  return TRUE;
}

static gboolean
is_prime (guint64 n)
{
  if (n < 2)
    return FALSE;
  if (n % 2 == 0)
    return n == 2;
  for (guint64 d = 3; d * d <= n; d += 2)
    if (n % d == 0)
      return FALSE;
  return TRUE;
}

static gboolean
primes_run (KillableTask  *task,
            gpointer       user_data,
            GError       **error)
{
  guint64 count = 0;

  for (guint64 start = 0; start < PRIMES_LIMIT; start += PRIMES_CHUNK)
    {
      g_autofree char *status = NULL;
      char number[32];

      if (!killable_task_check (task, error))
        return FALSE;

      for (guint64 n = start; n < start + PRIMES_CHUNK; n++)
        count += is_prime (n);

      killable_task_set_progress (task, (double) (start + PRIMES_CHUNK) / PRIMES_LIMIT);
      /* A format macro inside _() would hide the string from xgettext. */
      g_snprintf (number, sizeof number, "%" G_GUINT64_FORMAT, count);
      status = g_strdup_printf (_("%s primes so far"), number);
      killable_task_set_status (task, status);
    }

  return TRUE;
}

/* The parent reports its children's mean progress until they end or it is
 * stopped (the stop reaches the children too), then collects them. */
static gboolean
cpu_parent_run (KillableTask  *task,
                gpointer       user_data,
                GError       **error)
{
  DemoInfo *info = user_data;
  g_autoptr(GError) first_error = NULL;

  for (;;)
    {
      double sum = 0.;
      gboolean all_finished = TRUE;

      for (guint i = 0; i < info->children->len; i++)
        {
          KillableTask *child = g_ptr_array_index (info->children, i);

          sum += killable_task_get_progress (child);
          all_finished &= killable_task_is_finished (child);
        }
      killable_task_set_progress (task, sum / info->children->len);

      if (all_finished ||
          !killable_task_sleep (task, 100 * G_TIME_SPAN_MILLISECOND, NULL))
        break;
    }

  for (guint i = 0; i < info->children->len; i++)
    {
      g_autoptr(GError) child_error = NULL;

      if (!killable_task_join (g_ptr_array_index (info->children, i), &child_error) &&
          first_error == NULL)
        first_error = g_steal_pointer (&child_error);
    }

  if (first_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&first_error));
      return FALSE;
    }

  return TRUE;
}

static void
cpu_cleanup (KillableTask *task,
             gpointer      user_data)
{
  log_from_worker (_("cleanup: “%s” ran on its worker"), killable_task_get_name (task));
}

static KillableTask *
cpu_tree_new (void)
{
  KillableTask *parent;
  DemoInfo *info;
  static const struct
  {
    const char *name;
    CpuKind     kind;
  } children[] = {
    { "sha256-1", CPU_KIND_SHA256 },
    { "sha256-2", CPU_KIND_SHA256 },
    { "primes-1", CPU_KIND_PRIMES },
    { "primes-2", CPU_KIND_PRIMES },
  };

  parent = new_task ("cpu-tree", cpu_parent_run, DEMO_WORKLOAD_CPU_TREE,
                     KILLABLE_TASK_STATE_CANCELLED, KILLABLE_ERROR_STOPPED, &info);
  info->cpu_kind = CPU_KIND_PARENT;
  info->children = g_ptr_array_new_with_free_func (g_object_unref);
  /* Finished children stay in the children model, for the views. */
  killable_task_set_retain_children (parent, TRUE);
  killable_task_add_cleanup (parent, cpu_cleanup, info, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      KillableTask *child;
      DemoInfo *child_info;

      child = new_task (children[i].name,
                        children[i].kind == CPU_KIND_SHA256 ? sha256_run : primes_run,
                        DEMO_WORKLOAD_CPU_TREE,
                        KILLABLE_TASK_STATE_CANCELLED, KILLABLE_ERROR_STOPPED, &child_info);
      child_info->cpu_kind = children[i].kind;
      killable_task_add_cleanup (child, cpu_cleanup, child_info, NULL);
      /* Cannot fail: a new child under a new parent. */
      killable_task_add_child (parent, child, NULL);
      g_ptr_array_add (info->children, child);
    }

  return parent;
}

/* }}} */

/* Blocked read {{{ */

static gboolean
blocked_read_run (KillableTask  *task,
                  gpointer       user_data,
                  GError       **error)
{
  DemoInfo *info = user_data;
  char byte;

  killable_task_set_status (task, _("blocked in read() on a silent pipe"));
  g_atomic_int_set (&info->blocked, 1);

  /* A plain blocking read(): no poll, no timeout, no cancellable. Only the
   * interrupt signal gets it out, with EINTR. */
  for (;;)
    {
      ssize_t n = read (info->pipe_fds[0], &byte, 1);
      int saved_errno = errno;

      if (n >= 0)
        return TRUE;

      if (saved_errno != EINTR)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       _("read() failed: %s"), g_strerror (saved_errno));
          return FALSE;
        }

      g_atomic_int_set (&info->saw_eintr, 1);
      log_from_worker (_("“%s”: read() failed with EINTR"), killable_task_get_name (task));
      if (!killable_task_check (task, error))
        return FALSE;
    }
}

static void
blocked_read_cleanup (KillableTask *task,
                      gpointer      user_data)
{
  DemoInfo *info = user_data;

  for (guint i = 0; i < 2; i++)
    if (info->pipe_fds[i] >= 0)
      {
        close (info->pipe_fds[i]);
        info->pipe_fds[i] = -1;
      }
  log_from_worker (_("cleanup: “%s” closed its pipe"), killable_task_get_name (task));
}

static KillableTask *
blocked_read_new (GError **error)
{
  KillableTask *task;
  DemoInfo *info;
  int fds[2];

  if (!g_unix_open_pipe (fds, FD_CLOEXEC, error))
    return NULL;

  /* Expected: CANCELLED. The reason is the first stop's (the demos stop
   * first, to show that a stop alone does not unblock read()). */
  task = new_task ("read-pipe", blocked_read_run, DEMO_WORKLOAD_BLOCKED_READ,
                   KILLABLE_TASK_STATE_CANCELLED, -1, &info);
  info->pipe_fds[0] = fds[0];
  info->pipe_fds[1] = fds[1];
  killable_task_set_interrupt_syscalls (task, TRUE);
  killable_task_add_cleanup (task, blocked_read_cleanup, info, NULL);

  return task;
}

/* }}} */

/* Stuck loop {{{ */

/* Stands for a library call that never returns control and never looks
 * at the task: it only ends when the demo sets stuck_release, at exit. It
 * naps between bursts so as not to hog a core while it is abandoned. */
static gboolean
stuck_loop_run (KillableTask  *task,
                gpointer       user_data,
                GError       **error)
{
  DemoInfo *info = user_data;
  volatile guint64 sink = 0;

  killable_task_set_status (task, _("spinning; never checks the task"));
  /* Ready for the rung once the loop runs: a stop that came before the
   * worker entered run() would end the task CANCELLED without running it. */
  g_atomic_int_set (&info->spinning, 1);

  while (!g_atomic_int_get (&stuck_release))
    {
      for (guint i = 0; i < 100000; i++)
        sink += i;
      g_usleep (G_TIME_SPAN_MILLISECOND);
    }

  return TRUE;
}

static void
stuck_loop_cleanup (KillableTask *task,
                    gpointer      user_data)
{
  DemoInfo *info = user_data;

  g_atomic_int_set (&info->cleanup_ran, 1);
  log_from_worker (_("cleanup: abandoned “%s” returned at last; its cleanup ran"),
                   killable_task_get_name (task));
}

static KillableTask *
stuck_loop_new (void)
{
  KillableTask *task;
  DemoInfo *info;

  task = new_task ("stuck-loop", stuck_loop_run, DEMO_WORKLOAD_STUCK_LOOP,
                   KILLABLE_TASK_STATE_KILLED, KILLABLE_ERROR_KILLED, &info);
  killable_task_add_cleanup (task, stuck_loop_cleanup, info, NULL);

  return task;
}

/**
 * demo_stuck_loops_release:
 *
 * Lets every stuck loop return, so that their abandoned threads finish and
 * run their cleanups. Any thread.
 */
void
demo_stuck_loops_release (void)
{
  g_atomic_int_set (&stuck_release, 1);
}

gboolean
demo_stuck_loop_cleanup_ran (KillableTask *task)
{
  DemoInfo *info = get_info (task);

  g_return_val_if_fail (info != NULL && info->workload == DEMO_WORKLOAD_STUCK_LOOP, FALSE);

  return g_atomic_int_get (&info->cleanup_ran);
}

/* }}} */

/* Process tree {{{ */

static KillableTask *
process_tree_new (GError **error)
{
  g_autoptr(KillableProcessTask) process = NULL;
  g_autofree char *pid_file = NULL;
  DemoInfo *info;
  int fd;

  fd = g_file_open_tmp ("killable-demo-XXXXXX.pids", &pid_file, error);
  if (fd < 0)
    return NULL;
  close (fd);

  {
    const char * const argv[] = { "/bin/sh", "-c", process_script, "sh", pid_file, NULL };

    /* killable_process_task_new() with a name: the default would be "sh". */
    process = g_initable_new (KILLABLE_TYPE_PROCESS_TASK, NULL, error,
                              "argv", argv,
                              "name", "process-tree",
                              NULL);
  }
  if (process == NULL)
    {
      g_unlink (pid_file);
      return NULL;
    }

  info = info_new (DEMO_WORKLOAD_PROCESS_TREE, KILLABLE_TASK_STATE_KILLED, KILLABLE_ERROR_KILLED);
  info->pid_file = g_steal_pointer (&pid_file);
  attach_info (KILLABLE_TASK (process), info);

  killable_process_task_set_flags (process, KILLABLE_PROCESS_FLAGS_STDOUT_SILENCE);
  /* SIGTERM is ignored: the stop's SIGTERM, then SIGKILL one grace period
   * later (a process task escalates straight to the kill). */
  killable_task_set_grace_period (KILLABLE_TASK (process), PROCESS_GRACE_USEC);

  return KILLABLE_TASK (g_steal_pointer (&process));
}

/* Reads the PIDs the script wrote, once both grandchildren are there. */
static gboolean
process_tree_read_pids (DemoInfo     *info,
                        KillableTask *task)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  GPid shell;
  guint n = 0;

  if (info->n_pids == PROCESS_N_PIDS)
    return TRUE;

  shell = killable_process_task_get_pid (KILLABLE_PROCESS_TASK (task));
  if (shell <= 0 || !g_file_get_contents (info->pid_file, &contents, NULL, NULL))
    return FALSE;

  /* Only whole lines: the last piece has no newline yet (or is empty). */
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL && lines[i + 1] != NULL; i++)
    if (*lines[i] != '\0' && n < PROCESS_N_PIDS - 1)
      {
        gint64 pid = g_ascii_strtoll (lines[i], NULL, 10);

        if (pid > 0)
          info->pids[1 + n++] = (GPid) pid;
      }

  if (n < PROCESS_N_PIDS - 1)
    return FALSE;

  info->pids[0] = shell;
  info->n_pids = PROCESS_N_PIDS;

  return TRUE;
}

guint
demo_process_tree_get_pids (KillableTask *task,
                            GPid         *pids,
                            guint         n_pids)
{
  DemoInfo *info = get_info (task);

  g_return_val_if_fail (info != NULL && info->workload == DEMO_WORKLOAD_PROCESS_TREE, 0);

  process_tree_read_pids (info, task);
  for (guint i = 0; i < MIN (n_pids, info->n_pids); i++)
    pids[i] = info->pids[i];

  return info->n_pids;
}

/**
 * demo_pid_is_alive:
 * @pid: a process ID
 *
 * Whether @pid names a live process. A zombie is dead: it only waits for
 * its parent (or init, for an orphan) to reap it.
 *
 * Returns: %TRUE if /proc/@pid exists and is not a zombie
 */
gboolean
demo_pid_is_alive (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *contents = NULL;
  const char *end;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return FALSE;

  /* pid (comm) S ...: the state follows the last ')'. */
  end = strrchr (contents, ')');
  if (end == NULL || end[1] == '\0')
    return TRUE;

  return end[2] != 'Z' && end[2] != 'X';
}

/* }}} */

/* Timeout {{{ */

static gboolean
timeout_run (KillableTask  *task,
             gpointer       user_data,
             GError       **error)
{
  killable_task_set_status (task, _("sleeping through killable_task_sleep()"));

  for (guint i = 0; i < TIMEOUT_STEPS; i++)
    {
      if (!killable_task_sleep (task, TIMEOUT_STEP_USEC, error))
        return FALSE;
      killable_task_set_progress (task, (double) (i + 1) / TIMEOUT_STEPS);
    }

  return TRUE;
}

static KillableTask *
timeout_new (void)
{
  KillableTask *task;
  DemoInfo *info;

  task = new_task ("sleeper", timeout_run, DEMO_WORKLOAD_TIMEOUT,
                   KILLABLE_TASK_STATE_CANCELLED, KILLABLE_ERROR_TIMED_OUT, &info);
  /* 5 s of work, a 0.6 s limit. */
  killable_task_set_timeout (task, TIMEOUT_USEC);

  return task;
}

/* }}} */

/* Public {{{ */

KillableTask *
demo_workload_new (DemoWorkload   workload,
                   GError       **error)
{
  switch (workload)
    {
    case DEMO_WORKLOAD_CPU_TREE:
      return cpu_tree_new ();
    case DEMO_WORKLOAD_BLOCKED_READ:
      return blocked_read_new (error);
    case DEMO_WORKLOAD_STUCK_LOOP:
      return stuck_loop_new ();
    case DEMO_WORKLOAD_PROCESS_TREE:
      return process_tree_new (error);
    case DEMO_WORKLOAD_TIMEOUT:
      return timeout_new ();
    case DEMO_N_WORKLOADS:
    default:
      g_return_val_if_reached (NULL);
    }
}

gboolean
demo_workload_start (KillableTask  *task,
                     GError       **error)
{
  DemoInfo *info = get_info (task);

  g_return_val_if_fail (info != NULL, FALSE);

  if (!killable_task_start (task, error))
    return FALSE;

  if (info->children != NULL)
    for (guint i = 0; i < info->children->len; i++)
      if (!killable_task_start (g_ptr_array_index (info->children, i), error))
        return FALSE;

  return TRUE;
}

KillableTaskState
demo_task_get_expected_state (KillableTask *task)
{
  DemoInfo *info = get_info (task);

  g_return_val_if_fail (info != NULL, KILLABLE_TASK_STATE_SUCCEEDED);

  return info->expected_state;
}

int
demo_task_get_expected_error (KillableTask *task)
{
  DemoInfo *info = get_info (task);

  g_return_val_if_fail (info != NULL, -1);

  return info->expected_error;
}

gboolean
demo_task_is_ready (KillableTask *task)
{
  DemoInfo *info = get_info (task);

  g_return_val_if_fail (info != NULL, FALSE);

  switch (info->workload)
    {
    case DEMO_WORKLOAD_CPU_TREE:
      if (info->children == NULL)
        return killable_task_get_progress (task) >= CPU_READY_PROGRESS;
      /* The parent is ready when every child made some progress. */
      for (guint i = 0; i < info->children->len; i++)
        if (killable_task_get_progress (g_ptr_array_index (info->children, i)) < CPU_READY_PROGRESS)
          return FALSE;
      return TRUE;
    case DEMO_WORKLOAD_BLOCKED_READ:
      return g_atomic_int_get (&info->blocked);
    case DEMO_WORKLOAD_PROCESS_TREE:
      return process_tree_read_pids (info, task);
    case DEMO_WORKLOAD_STUCK_LOOP:
      return g_atomic_int_get (&info->spinning);
    case DEMO_WORKLOAD_TIMEOUT:
    case DEMO_N_WORKLOADS:
    default:
      return killable_task_get_state (task) != KILLABLE_TASK_STATE_PENDING;
    }
}

gboolean
demo_blocked_read_saw_eintr (KillableTask *task)
{
  DemoInfo *info = get_info (task);

  g_return_val_if_fail (info != NULL && info->workload == DEMO_WORKLOAD_BLOCKED_READ, FALSE);

  return g_atomic_int_get (&info->saw_eintr);
}

/* }}} */

/* Waiting on the main loop {{{ */

typedef struct
{
  DemoPredicate  predicate;
  gpointer       data;
  GMainLoop     *loop;
  guint          check_id;
  guint          timeout_id;
} Waiter;

static gboolean
waiter_check_cb (gpointer user_data)
{
  Waiter *waiter = user_data;

  if (waiter->predicate == NULL || !waiter->predicate (waiter->data))
    return G_SOURCE_CONTINUE;

  g_main_loop_quit (waiter->loop);
  waiter->check_id = 0;
  return G_SOURCE_REMOVE;
}

static gboolean
waiter_timeout_cb (gpointer user_data)
{
  Waiter *waiter = user_data;

  g_main_loop_quit (waiter->loop);
  waiter->timeout_id = 0;
  return G_SOURCE_REMOVE;
}

/* Runs a nested main loop until @predicate holds or @timeout_ms passed, so
 * that notifications, redraws and log lines keep coming meanwhile. With a
 * %NULL predicate it just lets @timeout_ms pass. While it runs, *@running
 * (if given) holds the loop, for a caller that must be able to quit it
 * (Ctrl+C). Returns whether @predicate holds at the end. */
gboolean
demo_main_loop_wait (DemoPredicate   predicate,
                     gpointer        data,
                     guint           timeout_ms,
                     GMainLoop     **running)
{
  g_autoptr(GMainLoop) loop = NULL;
  Waiter waiter = { predicate, data, NULL, 0, 0 };

  if (predicate != NULL && predicate (data))
    return TRUE;

  loop = g_main_loop_new (NULL, FALSE);
  waiter.loop = loop;
  waiter.check_id = g_timeout_add (5, waiter_check_cb, &waiter);
  waiter.timeout_id = g_timeout_add (timeout_ms, waiter_timeout_cb, &waiter);

  if (running != NULL)
    *running = loop;
  g_main_loop_run (loop);
  if (running != NULL)
    *running = NULL;

  g_clear_handle_id (&waiter.check_id, g_source_remove);
  g_clear_handle_id (&waiter.timeout_id, g_source_remove);

  return predicate == NULL || predicate (data);
}

/* }}} */
