/* killable-process-task.c: work isolated in a process, with all it starts
 *
 * Owns: the KillableProcessTask subclass: its configuration (argv, cwd,
 * environment, flags, containment, limits), the spawn (posix_spawn in
 * GROUP mode, the libexec helper killable-reaper in REAPER and CGROUP
 * modes), the supervision of the program on the task's worker (pidfd,
 * output capture or streams), and the signals of the ladder.
 * Locks: KillableProcessTask.lock guards the fields marked so in the
 * struct; a leaf lock, never held while calling into the base class.
 * Called by: the public API and, through the class vfuncs (run, interrupt,
 * kill), killable-task.c. Calls: the base class only through its public API
 * and the protected helpers of killable-task-private.h, killable-cgroup.c,
 * killable-stop-state.c (the wake-up fd), killable-error.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <glib/gi18n-lib.h>

#include "killable-enums.h"
#include "killable-error.h"
#include "killable-cgroup-private.h"
#include "killable-process-task.h"
#include "killable-task-private.h"

#ifndef KILLABLE_REAPER_PATH
# define KILLABLE_REAPER_PATH "/usr/libexec/killable-reaper"
#endif

/**
 * KillableProcessTask:
 *
 * A task whose work is an external program, contained so that it can be
 * stopped, killed and paused with everything it started, and so that
 * nothing it started outlives it, nor the owner process.
 *
 * The program is given as an argument vector, never through a shell: no
 * quoting, globbing or word splitting happens. Set the working directory,
 * the environment and what happens to the standard streams before starting
 * the task; stdin is `/dev/null` unless
 * %KILLABLE_PROCESS_FLAGS_STDIN_INHERIT is given.
 *
 * ```c
 * const char *argv[] = { "tar", "-czf", "backup.tar.gz", "Documents", NULL };
 * g_autoptr(KillableProcessTask) task = NULL;
 * g_autoptr(GError) error = NULL;
 *
 * task = killable_process_task_new (argv, &error);
 * if (task == NULL)
 *   g_error ("%s", error->message);   // Could not find program “tar” in PATH
 *
 * killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDERR_PIPE);
 * killable_task_start (KILLABLE_TASK (task), NULL);
 * ...
 * killable_task_stop (KILLABLE_TASK (task));   // SIGTERM, SIGKILL 5 s later
 * if (!killable_task_join (KILLABLE_TASK (task), &error))
 *   g_print ("%s\n", error->message);   // Task “tar” was stopped
 * ```
 *
 * ## Containment
 *
 * [property@Killable.ProcessTask:containment] says how (see
 * #KillableContainment); the default, %KILLABLE_CONTAINMENT_AUTO, picks
 * the strongest mode available:
 *
 * - %KILLABLE_CONTAINMENT_CGROUP and %KILLABLE_CONTAINMENT_REAPER: the
 *   program runs under a helper (`killable-reaper`, in libexecdir; the
 *   `KILLABLE_REAPER_PATH` environment variable overrides where it is
 *   looked for) that holds every process the program starts, however it
 *   daemonizes. The signals below reach all of them. When the program
 *   ends while some remain, they get `SIGTERM`, then `SIGKILL` one grace
 *   period later (at once after a stop); the task ends once none is left,
 *   with the program's own outcome. When the owner process dies, even by
 *   `SIGKILL`, the helper kills them all. With a cgroup, the kill is
 *   `cgroup.kill` and the pause `cgroup.freeze`.
 * - %KILLABLE_CONTAINMENT_GROUP: the program runs in a process group of
 *   its own, and the signals go to the group. When the program ends,
 *   whatever is left in its group gets `SIGKILL`; processes that left the
 *   group (`setsid()`, `setpgid()`, as daemons do) are out of reach, and
 *   the program outlives an owner that dies without stopping it.
 *
 * ## Captured output
 *
 * With %KILLABLE_PROCESS_FLAGS_STDOUT_PIPE (or
 * %KILLABLE_PROCESS_FLAGS_STDERR_PIPE) the task reads the stream while the
 * program runs and keeps at most
 * [property@Killable.ProcessTask:capture-limit] bytes of it (64 MiB by
 * default); past it, output is read and dropped, and
 * [method@Killable.ProcessTask.get_stdout_truncated] says so, as does the
 * task's [property@Killable.Task:status]. After the program ends, the
 * pipes are read until whatever else wrote to them is gone; a process that
 * is out of reach (one that left the group, in
 * %KILLABLE_CONTAINMENT_GROUP) and keeps a pipe open is not waited for:
 * the task stops reading one grace period after the program was reaped
 * (at least 100 ms, at most 5 s), marks the output truncated and ends
 * with the program's own outcome. In the other modes nothing is out of
 * reach: the leftovers are ended as above, and the pipes close with them.
 *
 * ## The ladder for a process
 *
 * - [method@Killable.Task.stop] sends `SIGTERM` to every process of the
 *   task.
 * - [method@Killable.Task.interrupt] sends `SIGINT` to every process of
 *   the task (after the `SIGTERM` of the stop it implies), like Ctrl+C in a
 *   terminal.
 * - [method@Killable.Task.kill] sends `SIGKILL` to every process of the
 *   task. The task is not abandoned: its worker reaps the program within
 *   milliseconds, and the task ends %KILLABLE_TASK_STATE_KILLED.
 * - [method@Killable.Task.pause] freezes them; a stop resumes them first.
 * - [property@Killable.Task:grace-period] defaults to 5 seconds for a
 *   process task, and escalates from the stop straight to the kill: a
 *   program that ignores `SIGTERM` gets `SIGKILL` one grace period after
 *   the stop.
 *
 * A signal is never sent to a recycled process ID: the group (or the
 * helper) is signalled only while its leader is an unreaped child of ours, and the kernel does
 * not reuse the ID of a process, nor of the group it leads, before that
 * process is reaped. The worker is the only one to reap it (through a
 * pidfd, where the kernel has them). This needs a process that does not
 * ignore `SIGCHLD` and does not reap children it does not own (with
 * `waitpid (-1, ...)`), which are bugs with any process API.
 *
 * The child inherits no file descriptor other than its standard streams,
 * has every signal unblocked and at its default disposition, and is always
 * reaped: no zombie is left behind.
 *
 * ## Outcome
 *
 * - Exit status 0: the task succeeded.
 * - A non-zero exit status, or death by a signal, after a stop was
 *   requested: the task ended because of the stop
 *   (%KILLABLE_TASK_STATE_CANCELLED, or %KILLABLE_TASK_STATE_KILLED), with
 *   the stop's cause as its error.
 * - Otherwise: %KILLABLE_TASK_STATE_FAILED, with a message naming the
 *   program and its status: a non-zero exit status is a
 *   %G_SPAWN_EXIT_ERROR whose code is the status ("Program “sh” exited
 *   with status 3"; %KILLABLE_ERROR_FAILED before 1.2), a death by a
 *   signal %KILLABLE_ERROR_FAILED ("Program “sh” was killed by signal 9
 *   (Killed)").
 * - A program that could not be started fails with a %G_SPAWN_ERROR.
 *
 * ## Thread safety
 *
 * The setters configure the task before it starts: call them from the
 * thread that owns the task, before [method@Killable.Task.start]; after it
 * they only log a critical. The getters of the outcome
 * ([method@Killable.ProcessTask.get_exit_status],
 * [method@Killable.ProcessTask.get_stdout_bytes], ...) are thread-safe and
 * meaningful once the task is terminal.
 *
 * Since: 1.0
 */

struct _KillableProcessTask
{
  KillableTask          parent_instance;

  GMutex                lock;

  char                **argv;          /* (owned) immutable after construction */
  char                 *program;       /* (owned) (nullable) argv[0] resolved, protected by @lock */

  /* Configuration: set before the start, read by the worker. */
  char                 *cwd;           /* (owned) (nullable) protected by @lock */
  char                **envp;          /* (owned) (nullable) NULL: inherit; protected by @lock */
  KillableProcessFlags  flags;         /* protected by @lock */
  KillableContainment   containment;   /* protected by @lock; the mode in effect once resolved */
  gboolean              containment_resolved; /* protected by @lock */
  gboolean              containment_notified; /* owner thread only */
  char                 *cgroup_parent; /* (owned) (nullable) protected by @lock */
  guint64               memory_limit;  /* protected by @lock */
  guint64               max_processes; /* protected by @lock; a guint */
  guint64               capture_limit; /* protected by @lock; 0: none */

  /* Pipes asked for before the start: the program's end (-1 once given to
   * the program) and ours, as a stream. Protected by @lock. */
  int                   stdin_child_fd;
  int                   stdout_child_fd;
  int                   stderr_child_fd;
  GOutputStream        *stdin_pipe;    /* (owned) (nullable) */
  GInputStream         *stdout_pipe;   /* (owned) (nullable) */
  GInputStream         *stderr_pipe;   /* (owned) (nullable) */

  gboolean              paused;        /* protected by @lock: the program is (to be) frozen */

  /* The child: the program itself in GROUP mode (its pid is also the
   * process group ID), the reaper helper otherwise. */
  GPid                  pid;           /* protected by @lock; 0 before the spawn */
  int                   ctl_fd;        /* protected by @lock; the helper's control socket, -1 if none */
  gboolean              helper_mode;   /* protected by @lock; @pid is the helper's */
  GPid                  program_pid;   /* protected by @lock; the program under the helper, 0 if none */
  gboolean              program_ended; /* protected by @lock; the helper reported its end */
  gboolean              reaped;        /* protected by @lock; no signal is sent once set */
  /* Signals asked for, protected by @lock: sent at once if the child is
   * there, else by the worker as soon as it is. */
  gboolean              term_requested;
  gboolean              int_requested;
  gboolean              kill_requested;
  int                   wait_code;     /* protected by @lock: si_code (CLD_EXITED, ...), 0 until reaped */
  int                   wait_status;   /* protected by @lock: si_status */
  GBytes               *stdout_bytes;  /* (owned) (nullable) protected by @lock, set at the end */
  GBytes               *stderr_bytes;  /* (owned) (nullable) protected by @lock, set at the end */
  gboolean              stdout_truncated; /* protected by @lock, set at the end */
  gboolean              stderr_truncated; /* protected by @lock, set at the end */
};

enum {
  PROP_0,
  PROP_ARGV,
  PROP_CWD,
  PROP_FLAGS,
  PROP_CONTAINMENT,
  PROP_CGROUP_PARENT,
  PROP_MEMORY_LIMIT,
  PROP_MAX_PROCESSES,
  PROP_CAPTURE_LIMIT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void killable_process_task_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (KillableProcessTask, killable_process_task, KILLABLE_TYPE_TASK,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      killable_process_task_initable_iface_init))

#define DEFAULT_GRACE_PERIOD (5 * G_USEC_PER_SEC)
#define READ_CHUNK           (64 * 1024)
#define DEFAULT_CAPTURE_LIMIT (G_GUINT64_CONSTANT (64) * 1024 * 1024)
/* How long the capture pipes are read after the program (or the helper)
 * was reaped: its grace period, within these bounds. Whatever still holds
 * a pipe then is outside the containment (in GROUP mode, a process that
 * left the group); the task does not wait for it. */
#define MIN_DRAIN_PERIOD     (100 * G_TIME_SPAN_MILLISECOND)
#define MAX_DRAIN_PERIOD     (5 * G_TIME_SPAN_SECOND)

#define STDOUT_FLAGS (KILLABLE_PROCESS_FLAGS_STDOUT_PIPE | KILLABLE_PROCESS_FLAGS_STDOUT_SILENCE)
#define STDERR_FLAGS (KILLABLE_PROCESS_FLAGS_STDERR_PIPE | KILLABLE_PROCESS_FLAGS_STDERR_SILENCE | \
                      KILLABLE_PROCESS_FLAGS_STDERR_MERGE)
#define STDIN_FLAGS  (KILLABLE_PROCESS_FLAGS_STDIN_INHERIT | KILLABLE_PROCESS_FLAGS_STDIN_PIPE)
#define ALL_FLAGS    (STDOUT_FLAGS | STDERR_FLAGS | STDIN_FLAGS)

/* The control socket and the status pipe of the helper, in the helper. */
#define HELPER_CTL_FD    3
#define HELPER_STATUS_FD 4

/* Helpers {{{ */

static gboolean
flags_are_valid (KillableProcessFlags flags)
{
  guint in = flags & STDIN_FLAGS;
  guint out = flags & STDOUT_FLAGS;
  guint err = flags & STDERR_FLAGS;

  /* At most one choice per stream. */
  return (flags & ~ALL_FLAGS) == 0 &&
         (in & (in - 1)) == 0 &&
         (out & (out - 1)) == 0 &&
         (err & (err - 1)) == 0;
}

/* Every entry is NAME=VALUE with a non-empty NAME. */
static gboolean
environ_is_valid (const char * const *env)
{
  for (guint i = 0; env != NULL && env[i] != NULL; i++)
    {
      const char *eq = strchr (env[i], '=');

      if (eq == NULL || eq == env[i])
        return FALSE;
    }

  return TRUE;
}

static gboolean
was_started (KillableProcessTask *self)
{
  return killable_task_is_started (KILLABLE_TASK (self));
}

/* What execvp() searches: PATH, or without PATH confstr (_CS_PATH) —
 * never the current directory, which g_find_program_in_path() adds when
 * PATH is unset. */
static char *
find_in_path (const char *name)
{
  g_autofree char *cs_path = NULL;
  g_auto(GStrv) dirs = NULL;
  size_t n;

  if (g_getenv ("PATH") != NULL)
    return g_find_program_in_path (name);

  n = confstr (_CS_PATH, NULL, 0);
  if (n > 0)
    {
      cs_path = g_malloc (n);
      confstr (_CS_PATH, cs_path, n);
    }
  dirs = g_strsplit (cs_path != NULL ? cs_path : "/bin:/usr/bin", ":", -1);

  for (guint i = 0; dirs[i] != NULL; i++)
    {
      g_autofree char *candidate = NULL;

      if (!g_path_is_absolute (dirs[i]))
        continue;
      candidate = g_build_filename (dirs[i], name, NULL);
      if (g_file_test (candidate, G_FILE_TEST_IS_REGULAR) &&
          g_file_test (candidate, G_FILE_TEST_IS_EXECUTABLE))
        return g_steal_pointer (&candidate);
    }

  return NULL;
}

/* Finds the program argv[0] names: a name without a slash is looked up in
 * PATH, a path is made absolute against the current directory, so that a
 * later set_cwd() does not change which program runs. */
static char *
resolve_program (const char  *name,
                 GError     **error)
{
  g_autofree char *path = NULL;

  if (strchr (name, '/') == NULL)
    {
      path = find_in_path (name);
      if (path == NULL)
        {
          g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT,
                       _("Could not find program “%s” in PATH"), name);
          return NULL;
        }
      return g_steal_pointer (&path);
    }

  path = g_canonicalize_filename (name, NULL);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR) ||
      !g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT,
                   _("Program “%s” does not exist or is not executable"), name);
      return NULL;
    }

  return g_steal_pointer (&path);
}

static gboolean
ensure_program (KillableProcessTask  *self,
                GError              **error)
{
  g_autofree char *program = NULL;
  gboolean have;

  if (self->argv == NULL || self->argv[0] == NULL || self->argv[0][0] == '\0')
    {
      g_set_error_literal (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT,
                           _("No program to run: the argument vector is empty"));
      return FALSE;
    }

  g_mutex_lock (&self->lock);
  have = self->program != NULL;
  g_mutex_unlock (&self->lock);

  if (have)
    return TRUE;

  program = resolve_program (self->argv[0], error);
  if (program == NULL)
    return FALSE;

  g_mutex_lock (&self->lock);
  if (self->program == NULL)
    self->program = g_steal_pointer (&program);
  g_mutex_unlock (&self->lock);

  return TRUE;
}

static GSpawnError
spawn_error_from_errno (int errsv)
{
  switch (errsv)
    {
    case ENOENT:       return G_SPAWN_ERROR_NOENT;
    case EACCES:       return G_SPAWN_ERROR_ACCES;
    case EPERM:        return G_SPAWN_ERROR_PERM;
    case E2BIG:        return G_SPAWN_ERROR_TOO_BIG;
    case ENOEXEC:      return G_SPAWN_ERROR_NOEXEC;
    case ENAMETOOLONG: return G_SPAWN_ERROR_NAMETOOLONG;
    case ENOTDIR:      return G_SPAWN_ERROR_NOTDIR;
    case ENOMEM:       return G_SPAWN_ERROR_NOMEM;
    case ETXTBSY:      return G_SPAWN_ERROR_TXTBUSY;
    case ELOOP:        return G_SPAWN_ERROR_LOOP;
    case EMFILE:
    case ENFILE:       return G_SPAWN_ERROR_MFILE;
    case EINVAL:       return G_SPAWN_ERROR_INVAL;
    case EISDIR:       return G_SPAWN_ERROR_ISDIR;
    case EAGAIN:       return G_SPAWN_ERROR_FORK;
    default:           return G_SPAWN_ERROR_FAILED;
    }
}

/* Sends @signum to what the task holds: through the helper, or to the
 * child's process group, only while the leader is an unreaped child: until
 * it is reaped, neither its PID nor its group ID can name another process.
 * SIGSTOP and SIGCONT pause and resume. Returns FALSE if no process could be
 * signalled for lack of permission (EPERM: the program became another user,
 * as su and sudo do; in GROUP mode only, the helper runs as the owner). */
static gboolean
signal_group_locked (KillableProcessTask *self,
                     int                  signum)
{
  int errsv = 0;

  if (self->pid <= 0 || self->reaped)
    return TRUE;

  if (self->ctl_fd >= 0)
    {
      char cmd;

      switch (signum)
        {
        case SIGTERM: cmd = 'T'; break;
        case SIGINT:  cmd = 'I'; break;
        case SIGKILL: cmd = 'K'; break;
        case SIGSTOP: cmd = 'S'; break;
        default:      cmd = 'C'; break;
        }
      /* A socket, not a pipe: a helper that is gone gives EPIPE, never a
       * SIGPIPE to the application. */
      (void) send (self->ctl_fd, &cmd, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      return TRUE;
    }

  /* The group may not exist yet if the child has not reached its
   * setpgid(): the leader alone is then all there is. */
  if (kill (-self->pid, signum) < 0)
    {
      errsv = errno;
      if (errsv == ESRCH)
        errsv = kill (self->pid, signum) < 0 ? errno : 0;
    }

  /* A stopped process acts on SIGTERM and SIGINT only once continued. */
  if (signum == SIGTERM || signum == SIGINT)
    (void) kill (-self->pid, SIGCONT);

  return errsv != EPERM;
}

/* Sends @signum now, or at the spawn if it is still to come. A stop,
 * interrupt or kill of a paused task resumes it: the helper thaws the
 * cgroup or continues the processes before signalling them (the base
 * class notifies the pause the stop lifted). Returns FALSE
 * if the program cannot be signalled (EPERM). */
static gboolean
request_signal (KillableProcessTask *self,
                int                  signum)
{
  gboolean ret;

  g_mutex_lock (&self->lock);
  switch (signum)
    {
    case SIGTERM:
      self->term_requested = TRUE;
      break;
    case SIGINT:
      self->int_requested = TRUE;
      break;
    case SIGKILL:
      self->kill_requested = TRUE;
      break;
    default:
      g_assert_not_reached ();
    }
  self->paused = FALSE;
  ret = signal_group_locked (self, signum);
  g_mutex_unlock (&self->lock);

  return ret;
}

/* The worker got the child: signals asked for while it spawned are sent
 * now, in the order of the ladder. */
static void
publish_pid (KillableProcessTask *self,
             GPid                 pid,
             int                  ctl_fd)
{
  g_mutex_lock (&self->lock);

  self->pid = pid;
  self->ctl_fd = ctl_fd;
  self->helper_mode = ctl_fd >= 0;
  /* Also from here: without vfork semantics (under valgrind, say) the
   * child may not have reached its own setpgid() yet. Fails harmlessly
   * once it has exec'd. */
  (void) setpgid (pid, pid);

  if (self->kill_requested)
    signal_group_locked (self, SIGKILL);
  else
    {
      if (self->term_requested)
        signal_group_locked (self, SIGTERM);
      if (self->int_requested)
        signal_group_locked (self, SIGINT);
      if (!self->term_requested && !self->int_requested && self->paused)
        signal_group_locked (self, SIGSTOP);
    }

  g_mutex_unlock (&self->lock);
}

/* }}} */

/* The worker {{{ */

typedef struct
{
  int         fd;      /* read end, O_NONBLOCK; -1 once closed */
  GByteArray *data;    /* (owned) (nullable) */
  gsize       limit;   /* the most bytes kept in @data, at most G_MAXUINT */
  guint8     *scratch; /* (owned) (nullable) READ_CHUNK bytes: what is dropped */
  guint64     dropped; /* bytes read past @limit */
  gboolean    cut_off; /* closed before its end of file */
} Capture;

#define CAPTURE_INIT { -1, NULL, G_MAXUINT, NULL, 0, FALSE }

static void
capture_close (Capture *capture)
{
  if (capture->fd >= 0)
    {
      close (capture->fd);
      capture->fd = -1;
    }
  g_clear_pointer (&capture->scratch, g_free);
}

/* Closes a pipe that still has writers: what they write next is lost. */
static void
capture_cut_off (Capture *capture)
{
  if (capture->fd >= 0)
    capture->cut_off = TRUE;
  capture_close (capture);
}

/* Reads one chunk, or with @drain everything already in the pipe. Past the
 * limit, what is read is dropped (the program must not block on a full
 * pipe). Returns FALSE at the end of the stream. */
static gboolean
capture_read (Capture  *capture,
              gboolean  drain)
{
  for (;;)
    {
      guint old_len = capture->data->len;
      gsize room = capture->limit - MIN (capture->limit, old_len);
      gsize want = MIN (room, READ_CHUNK);
      gssize n;

      if (want > 0)
        {
          g_byte_array_set_size (capture->data, old_len + want);
          n = read (capture->fd, capture->data->data + old_len, want);
          g_byte_array_set_size (capture->data, old_len + MAX (n, 0));
        }
      else
        {
          want = READ_CHUNK;
          if (capture->scratch == NULL)
            capture->scratch = g_malloc (READ_CHUNK);
          n = read (capture->fd, capture->scratch, want);
          if (n > 0)
            capture->dropped += (guint64) n;
        }

      if (n > 0)
        {
          /* Back to poll() between chunks, so that one flooding stream
           * does not starve the other, nor the check of the leader. */
          if (!drain || (gsize) n < want)
            return TRUE;
          continue;
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return TRUE;

      /* End of stream, or an error that leaves nothing to read. */
      capture_close (capture);
      return FALSE;
    }
}

static gboolean
open_capture_pipe (Capture     *capture,
                   guint64      limit,
                   int         *write_fd,
                   const char  *name,
                   GError     **error)
{
  int fds[2];

  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      int errsv = errno;

      g_set_error (error, G_SPAWN_ERROR, spawn_error_from_errno (errsv),
                   _("Could not create a pipe for program “%s”: %s"),
                   name, g_strerror (errsv));
      return FALSE;
    }

  /* Only our end is non-blocking: the child's stays as programs expect. */
  (void) fcntl (fds[0], F_SETFL, fcntl (fds[0], F_GETFL) | O_NONBLOCK);

  capture->fd = fds[0];
  capture->data = g_byte_array_new ();
  /* 0 is no limit; a GByteArray holds at most G_MAXUINT bytes anyway. */
  capture->limit = limit == 0 ? G_MAXUINT : (gsize) MIN (limit, (guint64) G_MAXUINT);
  *write_fd = fds[1];

  return TRUE;
}

/* Why a capture is not the whole stream, or NULL if it is. */
static char *
truncation_text (const char    *name,
                 const char    *stream,
                 const Capture *capture)
{
  char *text;

  /* Translatable formats take <inttypes.h> macros and %zu, never GLib's
   * G_G*_FORMAT: xgettext knows the former and cuts the msgid at the
   * latter, which then never matches a translation. */
  if (capture->dropped > 0 && capture->cut_off)
    text = g_strdup_printf (_("%s of program “%s” truncated: %" PRIu64
                              " bytes past the capture limit of %zu"
                              " bytes were dropped, and the rest was cut off: another "
                              "process still held the pipe after the program ended"),
                            stream, name, (uint64_t) capture->dropped,
                            (size_t) capture->limit);
  else if (capture->dropped > 0)
    text = g_strdup_printf (_("%s of program “%s” truncated: %" PRIu64
                              " bytes past the capture limit of %zu"
                              " bytes were dropped"),
                            stream, name, (uint64_t) capture->dropped,
                            (size_t) capture->limit);
  else if (capture->cut_off)
    text = g_strdup_printf (_("%s of program “%s” cut off: another process still "
                              "held the pipe after the program ended"),
                            stream, name);
  else
    return NULL;

  return text;
}

/* Says in the task's status when a capture is not the whole stream. */
static void
report_truncation (KillableProcessTask *self,
                   const Capture       *out,
                   const Capture       *err)
{
  /* argv[0] may not be UTF-8; the status must be. */
  g_autofree char *name = g_filename_display_name (self->argv[0]);
  g_autofree char *out_text = truncation_text (name, _("Standard output"), out);
  g_autofree char *err_text = truncation_text (name, _("Standard error"), err);
  g_autofree char *text = NULL;

  if (out_text == NULL && err_text == NULL)
    return;

  if (out_text != NULL && err_text != NULL)
    {
      /* TRANSLATORS: joins the notes on standard output and standard
       * error, in that order. */
      text = g_strdup_printf (_("%s; %s"), out_text, err_text);
    }
  else
    text = g_strdup (out_text != NULL ? out_text : err_text);
  g_debug ("Task “%s”: %s", killable_task_get_name (KILLABLE_TASK (self)), text);
  killable_task_set_status (KILLABLE_TASK (self), text);
}

static void
stop_cb (KillableTask *task,
         const GError *reason,
         gpointer      user_data)
{
  /* The stop of a kill(): SIGKILL follows at once, a SIGTERM first would
   * only let the program start a cleanup it cannot finish. */
  if (g_error_matches (reason, KILLABLE_ERROR, KILLABLE_ERROR_KILLED))
    return;

  (void) request_signal (KILLABLE_PROCESS_TASK (task), SIGTERM);
}

static int
open_pidfd (GPid pid)
{
#ifdef HAVE_PIDFD_OPEN
  int fd = (int) syscall (SYS_pidfd_open, pid, 0);

  /* Close-on-exec, as pidfd_open() always makes it. */
  if (fd >= 0)
    return fd;
#endif

  return -1;
}

/* Whether the leader ended, without reaping it. */
static gboolean
leader_exited (GPid  pid,
               int   pidfd,
               int  *errsv)
{
  siginfo_t info;
  int ret;

  memset (&info, 0, sizeof info);
  do
    {
      if (pidfd >= 0)
        ret = waitid (P_PIDFD, (id_t) pidfd, &info, WEXITED | WNOHANG | WNOWAIT);
      else
        ret = waitid (P_PID, (id_t) pid, &info, WEXITED | WNOHANG | WNOWAIT);
    }
  while (ret < 0 && errno == EINTR);

  if (ret < 0)
    {
      *errsv = errno;
      return TRUE;
    }

  *errsv = 0;
  return info.si_pid != 0;
}

/* The leader ended: kill what is left of its group while the group ID is
 * still ours, then reap the leader. */
static int
reap_leader (KillableProcessTask *self,
             int                  pidfd,
             int                  wait_errsv)
{
  siginfo_t info;
  int ret;

  g_mutex_lock (&self->lock);

  if (wait_errsv == 0)
    {
      if (kill (-self->pid, SIGKILL) < 0 && errno == ESRCH)
        (void) kill (self->pid, SIGKILL);

      memset (&info, 0, sizeof info);
      do
        {
          if (pidfd >= 0)
            ret = waitid (P_PIDFD, (id_t) pidfd, &info, WEXITED);
          else
            ret = waitid (P_PID, (id_t) self->pid, &info, WEXITED);
        }
      while (ret < 0 && errno == EINTR);

      if (ret < 0)
        wait_errsv = errno;
      else
        {
          self->wait_code = info.si_code;
          self->wait_status = info.si_status;
        }
    }

  /* Reaped, or reaped by someone else (ECHILD): either way the PID may now
   * be reused, so nothing is signalled any more. */
  self->reaped = TRUE;

  g_mutex_unlock (&self->lock);

  return wait_errsv;
}

/* The helper's status lines not parsed yet: "P <pid>", "E <errno>",
 * "X <si_code> <si_status>". */
typedef struct
{
  Capture  capture;
  gsize    parsed;
  int      spawn_errno;
  gboolean have_exit;
  int      code;
  int      status;
} HelperStatus;

static void
parse_status (KillableProcessTask *self,
              HelperStatus        *st)
{
  GByteArray *data = st->capture.data;

  for (;;)
    {
      const guint8 *line = data->data + st->parsed;
      const guint8 *nl = memchr (line, '\n', data->len - st->parsed);
      char buf[64];
      long a = 0, b = 0;
      gsize len;

      if (nl == NULL)
        return;
      len = MIN ((gsize) (nl - line), sizeof buf - 1);
      memcpy (buf, line, len);
      buf[len] = '\0';
      st->parsed += (gsize) (nl - line) + 1;

      if (sscanf (buf, "P %ld", &a) == 1)
        {
          g_mutex_lock (&self->lock);
          self->program_pid = (GPid) a;
          g_mutex_unlock (&self->lock);
        }
      else if (sscanf (buf, "E %ld", &a) == 1)
        st->spawn_errno = (int) a;
      else if (sscanf (buf, "X %ld %ld", &a, &b) == 2)
        {
          st->have_exit = TRUE;
          st->code = (int) a;
          st->status = (int) b;
          g_mutex_lock (&self->lock);
          self->program_ended = TRUE;
          g_mutex_unlock (&self->lock);
        }
    }
}

/* Reads the capture pipes and waits for the leader to end. After its end,
 * the pipes are read until every writer closed them (the grandchildren were
 * killed), for at most @drain_period: a process that left the group may
 * keep a pipe open for ever; once a stop is requested, only what is already
 * in them is read. */
static int
supervise (KillableProcessTask *self,
           GPid                 pid,
           int                  pidfd,
           Capture             *out,
           Capture             *err,
           HelperStatus        *st,
           GTimeSpan            drain_period)
{
  Capture *status = st != NULL ? &st->capture : NULL;
  KillableTask *task = KILLABLE_TASK (self);
  int stop_fd = -1;
  gboolean have_cancel_fd = FALSE;
  gboolean check_exit = TRUE;
  gboolean exited = FALSE;
  gint64 drain_deadline = 0;
  int wait_errsv = 0;

  for (;;)
    {
      struct pollfd pfds[5];
      int n = 0, i_pid = -1, i_out = -1, i_err = -1, i_st = -1;
      int timeout = -1;

      if (check_exit && leader_exited (pid, pidfd, &wait_errsv))
        {
          exited = TRUE;
          wait_errsv = reap_leader (self, pidfd, wait_errsv);
          drain_deadline = g_get_monotonic_time () + drain_period;
        }

      if (exited && status != NULL && status->fd >= 0)
        {
          /* The helper is gone, and only it wrote there. */
          capture_read (status, TRUE);
          capture_close (status);
          parse_status (self, st);
        }

      if (exited && out->fd < 0 && err->fd < 0)
        break;

      if (exited &&
          (killable_task_is_stop_requested (task) ||
           g_get_monotonic_time () >= drain_deadline))
        {
          /* Something outside the containment still holds a pipe. */
          if (out->fd >= 0)
            capture_read (out, TRUE);
          if (err->fd >= 0)
            capture_read (err, TRUE);
          capture_cut_off (out);
          capture_cut_off (err);
          break;
        }

      if (!exited && pidfd >= 0)
        {
          pfds[n] = (struct pollfd) { .fd = pidfd, .events = POLLIN };
          i_pid = n++;
        }
      else if (!exited)
        timeout = 20;   /* no pidfd (kernel older than 5.3): look again soon */

      /* The stop state's eventfd, not g_cancellable_make_pollfd(), which
       * aborts the process when no fd is left (then: slices of 20 ms). */
      if (exited && !have_cancel_fd)
        {
          stop_fd = killable_stop_state_get_wake_fd (killable_task_get_stop_state (task));
          have_cancel_fd = stop_fd >= 0;
        }
      if (exited && have_cancel_fd)
        {
          pfds[n] = (struct pollfd) { .fd = stop_fd, .events = POLLIN };
          n++;
        }
      else if (exited)
        timeout = 20;
      if (exited)
        {
          gint64 left = (drain_deadline - g_get_monotonic_time () + 999) / 1000;

          left = CLAMP (left, 0, G_MAXINT);
          timeout = timeout < 0 ? (int) left : MIN (timeout, (int) left);
        }

      if (out->fd >= 0)
        {
          pfds[n] = (struct pollfd) { .fd = out->fd, .events = POLLIN };
          i_out = n++;
        }
      if (err->fd >= 0)
        {
          pfds[n] = (struct pollfd) { .fd = err->fd, .events = POLLIN };
          i_err = n++;
        }
      if (status != NULL && status->fd >= 0)
        {
          pfds[n] = (struct pollfd) { .fd = status->fd, .events = POLLIN };
          i_st = n++;
        }

      if (poll (pfds, n, timeout) < 0)
        {
          /* EINTR: the interrupt signal of interrupt-syscalls, or any
           * other; the state is looked at again anyway. */
          check_exit = !exited;
          continue;
        }

      check_exit = !exited && (i_pid < 0 || pfds[i_pid].revents != 0);
      if (i_out >= 0 && pfds[i_out].revents != 0)
        capture_read (out, FALSE);
      if (i_err >= 0 && pfds[i_err].revents != 0)
        capture_read (err, FALSE);
      if (i_st >= 0 && pfds[i_st].revents != 0)
        {
          capture_read (status, FALSE);
          parse_status (self, st);
        }
    }

  return wait_errsv;
}

static const char *
reaper_path (void)
{
  const char *env = g_getenv ("KILLABLE_REAPER_PATH");

  return env != NULL && env[0] != '\0' ? env : KILLABLE_REAPER_PATH;
}

static gboolean
reaper_available (void)
{
  return g_file_test (reaper_path (), G_FILE_TEST_IS_EXECUTABLE);
}

/* Picks the mode in effect: AUTO is the strongest one available. Sets
 * @cgroup_base for CGROUP. */
static KillableContainment
choose_containment (KillableContainment   requested,
                    const char           *cgroup_parent,
                    char                **cgroup_base,
                    GError              **error)
{
  g_autoptr(GError) local_error = NULL;

  switch (requested)
    {
    case KILLABLE_CONTAINMENT_GROUP:
      return KILLABLE_CONTAINMENT_GROUP;

    case KILLABLE_CONTAINMENT_CGROUP:
    case KILLABLE_CONTAINMENT_AUTO:
      *cgroup_base = killable_cgroup_find_base (cgroup_parent, &local_error);
      if (*cgroup_base != NULL && reaper_available ())
        return KILLABLE_CONTAINMENT_CGROUP;
      if (requested == KILLABLE_CONTAINMENT_CGROUP)
        {
          if (local_error != NULL)
            g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                         _("Cannot contain the program in a cgroup: %s"),
                         local_error->message);
          else
            g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                         _("Cannot contain the program: helper “%s” is missing"),
                         reaper_path ());
          g_clear_pointer (cgroup_base, g_free);
          return KILLABLE_CONTAINMENT_AUTO;
        }
      g_clear_pointer (cgroup_base, g_free);
      return reaper_available () ? KILLABLE_CONTAINMENT_REAPER : KILLABLE_CONTAINMENT_GROUP;

    case KILLABLE_CONTAINMENT_REAPER:
      if (reaper_available ())
        return KILLABLE_CONTAINMENT_REAPER;
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("Cannot contain the program: helper “%s” is missing"),
                   reaper_path ());
      return KILLABLE_CONTAINMENT_AUTO;

    default:
      g_assert_not_reached ();
    }
}

/* Resolves the mode once (the worker, or the owner's notify handler if it
 * comes first: the same answer either way, as only the availability of a
 * cgroup and of the helper, both cached or stable, decide). */
static KillableContainment
resolve_containment (KillableProcessTask  *self,
                     char                **cgroup_base,
                     GError              **error)
{
  KillableContainment requested, mode;
  g_autofree char *parent = NULL;

  g_mutex_lock (&self->lock);
  requested = self->containment;
  parent = g_strdup (self->cgroup_parent);
  g_mutex_unlock (&self->lock);

  mode = choose_containment (requested, parent, cgroup_base, error);
  if (mode == KILLABLE_CONTAINMENT_AUTO)
    return mode;

  g_mutex_lock (&self->lock);
  if (!self->containment_resolved)
    {
      self->containment = mode;
      self->containment_resolved = TRUE;
    }
  g_mutex_unlock (&self->lock);

  return mode;
}

/* A pipe whose ends are both close-on-exec, ours and the program's; with
 * @min_fd, both are at least that number. */
static gboolean
make_pipe (int          fds[2],
           int          min_fd,
           const char  *name,
           GError     **error)
{
  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      int errsv = errno;

      g_set_error (error, G_SPAWN_ERROR, spawn_error_from_errno (errsv),
                   _("Could not create a pipe for program “%s”: %s"),
                   name, g_strerror (errsv));
      return FALSE;
    }

  for (int i = 0; min_fd > 0 && i < 2; i++)
    if (fds[i] < min_fd)
      {
        int fd = fcntl (fds[i], F_DUPFD_CLOEXEC, min_fd);

        if (fd >= 0)
          {
            close (fds[i]);
            fds[i] = fd;
          }
      }

  return TRUE;
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    {
      close (*fd);
      *fd = -1;
    }
}

static gboolean
killable_process_task_run (KillableTask  *task,
                           GError       **error)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (task);
  g_autofree char *program = NULL;
  g_autofree char *cwd = NULL;
  g_autofree char *cgroup_base = NULL;
  g_autofree char *leaf = NULL;
  g_auto(GStrv) envp = NULL;
  g_autoptr(GPtrArray) helper_argv = NULL;
  KillableProcessFlags flags;
  KillableContainment mode;
  guint64 memory_limit, rlimit_as = 0;
  guint64 capture_limit;
  guint max_processes;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t mask;
  Capture out = CAPTURE_INIT;
  Capture err = CAPTURE_INIT;
  HelperStatus st = { CAPTURE_INIT, 0, 0, FALSE, 0, 0 };
  int in_r = -1, out_w = -1, err_w = -1;
  int ctl[2] = { -1, -1 }, status_pipe[2] = { -1, -1 };
  const char *name;
  GPid pid = 0;
  int pidfd;
  int ret;
  int wait_errsv;
  gulong stop_id;
  int code, status;
  gboolean oom = FALSE;

  if (!ensure_program (self, error))
    return FALSE;

  name = self->argv[0];

  g_mutex_lock (&self->lock);
  program = g_strdup (self->program);
  cwd = g_strdup (self->cwd);
  envp = g_strdupv (self->envp);
  flags = self->flags;
  memory_limit = self->memory_limit;
  max_processes = (guint) self->max_processes;
  capture_limit = self->capture_limit;
  g_mutex_unlock (&self->lock);

  /* From now on a stop is recorded, and sent once there is a child. If it
   * came already, stop_cb runs here and now. */
  stop_id = killable_task_add_stop_callback (task, stop_cb, NULL, NULL);

  /* Stopped before anything ran: start nothing. */
  if (!killable_task_check (task, error))
    goto out;

  if (cwd != NULL && !g_file_test (cwd, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_CHDIR,
                   _("Could not run program “%s”: working directory “%s” does not exist"),
                   name, cwd);
      goto out;
    }
  /* The child has our credentials: a directory we cannot enter, it cannot
   * either, and its chdir() failure would read as a program that cannot be
   * run (EACCES). */
  if (cwd != NULL && access (cwd, X_OK) != 0)
    {
      int errsv = errno;

      g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_CHDIR,
                   _("Could not run program “%s”: cannot enter working directory “%s”: %s"),
                   name, cwd, g_strerror (errsv));
      goto out;
    }

  mode = resolve_containment (self, &cgroup_base, error);
  if (mode == KILLABLE_CONTAINMENT_AUTO)
    goto out;

  /* The limits: the whole tree's with the cgroup controllers, else
   * RLIMIT_AS per process (set by the helper in the program before its
   * exec), else an error naming what is missing. */
  if (max_processes > 0 &&
      (mode != KILLABLE_CONTAINMENT_CGROUP ||
       !killable_cgroup_base_has_controller (cgroup_base, "pids")))
    {
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("Cannot limit program “%s” to %u processes: max-processes needs "
                     "a cgroup with the pids controller"),
                   name, max_processes);
      goto out;
    }
  if (memory_limit > 0 &&
      (mode != KILLABLE_CONTAINMENT_CGROUP ||
       !killable_cgroup_base_has_controller (cgroup_base, "memory")))
    {
      if (mode == KILLABLE_CONTAINMENT_GROUP)
        {
          g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                       _("Cannot limit the memory of program “%s”: memory-limit needs "
                         "the reaper or cgroup containment"),
                       name);
          goto out;
        }
      rlimit_as = memory_limit;
      memory_limit = 0;
    }

  if (mode == KILLABLE_CONTAINMENT_CGROUP)
    {
      leaf = killable_cgroup_create_leaf (cgroup_base, memory_limit, max_processes, error);
      if (leaf == NULL)
        goto out;
    }

  /* The program's ends of the pipes: taken as streams before the start,
   * or made now (stdin for communicate, or captures). */
  g_mutex_lock (&self->lock);
  in_r = self->stdin_child_fd;
  self->stdin_child_fd = -1;
  if (in_r < 0 && (flags & KILLABLE_PROCESS_FLAGS_STDIN_PIPE))
    {
      int fds[2];

      if (!make_pipe (fds, 0, name, error))
        {
          g_mutex_unlock (&self->lock);
          goto out_cleanup;
        }
      in_r = fds[0];
      self->stdin_pipe = g_unix_output_stream_new (fds[1], TRUE);
    }
  out_w = self->stdout_child_fd;
  self->stdout_child_fd = -1;
  err_w = self->stderr_child_fd;
  self->stderr_child_fd = -1;
  g_mutex_unlock (&self->lock);

  if (out_w < 0 && (flags & KILLABLE_PROCESS_FLAGS_STDOUT_PIPE) &&
      !open_capture_pipe (&out, capture_limit, &out_w, name, error))
    goto out_cleanup;
  if (err_w < 0 && (flags & KILLABLE_PROCESS_FLAGS_STDERR_PIPE) &&
      !open_capture_pipe (&err, capture_limit, &err_w, name, error))
    goto out_cleanup;

  if (mode != KILLABLE_CONTAINMENT_GROUP)
    {
      char *argv0;

      /* The control socket: its end of file tells the helper that the
       * owner process is gone. Both ends out of the way of the dup2()s. */
      if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0 ||
          !make_pipe (status_pipe, 10, name, error))
        {
          if (error != NULL && *error == NULL)
            g_set_error (error, G_SPAWN_ERROR, spawn_error_from_errno (errno),
                         _("Could not create a socket for program “%s”: %s"),
                         name, g_strerror (errno));
          goto out_cleanup;
        }
      if (ctl[1] < 10)
        {
          int fd = fcntl (ctl[1], F_DUPFD_CLOEXEC, 10);

          if (fd >= 0)
            {
              close (ctl[1]);
              ctl[1] = fd;
            }
        }
      (void) fcntl (status_pipe[0], F_SETFL, fcntl (status_pipe[0], F_GETFL) | O_NONBLOCK);
      st.capture.fd = status_pipe[0];
      status_pipe[0] = -1;
      st.capture.data = g_byte_array_new ();

      helper_argv = g_ptr_array_new_with_free_func (g_free);
      g_ptr_array_add (helper_argv, g_strdup (reaper_path ()));
      g_ptr_array_add (helper_argv, g_strdup_printf ("%" G_GINT64_FORMAT,
                                                     killable_task_get_grace_period (task)));
      g_ptr_array_add (helper_argv, g_strdup (leaf != NULL ? leaf : "-"));
      g_ptr_array_add (helper_argv, g_strdup_printf ("%" G_GUINT64_FORMAT, rlimit_as));
      g_ptr_array_add (helper_argv, g_strdup (program));
      for (guint i = 0; self->argv[i] != NULL; i++)
        g_ptr_array_add (helper_argv, g_strdup (self->argv[i]));
      g_ptr_array_add (helper_argv, NULL);
      argv0 = helper_argv->pdata[0];
      g_free (program);
      program = g_strdup (argv0);
    }

  posix_spawn_file_actions_init (&actions);
  if (in_r >= 0)
    posix_spawn_file_actions_adddup2 (&actions, in_r, STDIN_FILENO);
  else if (!(flags & KILLABLE_PROCESS_FLAGS_STDIN_INHERIT))
    posix_spawn_file_actions_addopen (&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (flags & KILLABLE_PROCESS_FLAGS_STDOUT_PIPE)
    posix_spawn_file_actions_adddup2 (&actions, out_w, STDOUT_FILENO);
  else if (flags & KILLABLE_PROCESS_FLAGS_STDOUT_SILENCE)
    posix_spawn_file_actions_addopen (&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  if (flags & KILLABLE_PROCESS_FLAGS_STDERR_PIPE)
    posix_spawn_file_actions_adddup2 (&actions, err_w, STDERR_FILENO);
  else if (flags & KILLABLE_PROCESS_FLAGS_STDERR_SILENCE)
    posix_spawn_file_actions_addopen (&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  else if (flags & KILLABLE_PROCESS_FLAGS_STDERR_MERGE)
    posix_spawn_file_actions_adddup2 (&actions, STDOUT_FILENO, STDERR_FILENO);
  if (ctl[0] >= 0)
    {
      posix_spawn_file_actions_adddup2 (&actions, ctl[1], HELPER_CTL_FD);
      posix_spawn_file_actions_adddup2 (&actions, status_pipe[1], HELPER_STATUS_FD);
    }
  if (cwd != NULL)
    posix_spawn_file_actions_addchdir_np (&actions, cwd);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
  /* Not only the close-on-exec ones: nothing but stdio (and the helper's
   * two) is inherited. */
  posix_spawn_file_actions_addclosefrom_np (&actions,
                                            ctl[0] >= 0 ? HELPER_STATUS_FD + 1 : STDERR_FILENO + 1);
#endif

  posix_spawnattr_init (&attr);
  posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                   POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup (&attr, 0);
  /* The worker's mask and the caller's ignored signals (a SIGTERM ignored
   * here would make the stop useless) are not the program's business. */
  sigemptyset (&mask);
  posix_spawnattr_setsigmask (&attr, &mask);
  sigfillset (&mask);
  posix_spawnattr_setsigdefault (&attr, &mask);

  ret = posix_spawn (&pid, program, &actions, &attr,
                     helper_argv != NULL ? (char **) helper_argv->pdata : self->argv,
                     envp != NULL ? envp : environ);

  posix_spawnattr_destroy (&attr);
  posix_spawn_file_actions_destroy (&actions);
  close_fd (&in_r);
  close_fd (&out_w);
  close_fd (&err_w);
  close_fd (&ctl[1]);
  close_fd (&status_pipe[1]);

  if (ret != 0)
    {
      g_set_error (error, G_SPAWN_ERROR, spawn_error_from_errno (ret),
                   _("Could not run program “%s”: %s"), name, g_strerror (ret));
      goto out_cleanup;
    }

  publish_pid (self, pid, ctl[0]);

  pidfd = open_pidfd (pid);
  wait_errsv = supervise (self, pid, pidfd, &out, &err, ctl[0] >= 0 ? &st : NULL,
                          CLAMP (killable_task_get_grace_period (task),
                                 MIN_DRAIN_PERIOD, MAX_DRAIN_PERIOD));
  if (pidfd >= 0)
    close (pidfd);

  /* Waits for a stop_cb running in another thread; it found the leader
   * reaped and sent nothing. */
  killable_task_remove_stop_callback (task, stop_id);
  stop_id = 0;

  /* Whatever the helper left (it was killed from outside, say) dies now,
   * and the cgroup goes. */
  if (leaf != NULL)
    {
      oom = memory_limit > 0 && killable_cgroup_oom_killed (leaf);
      if (!killable_cgroup_destroy_leaf (leaf))
        g_warning ("Could not remove cgroup “%s”", leaf);
    }

  g_mutex_lock (&self->lock);
  if (ctl[0] >= 0)
    {
      self->ctl_fd = -1;
      close_fd (&ctl[0]);
      self->program_ended = TRUE;
      self->wait_code = st.have_exit ? st.code : 0;
      self->wait_status = st.have_exit ? st.status : 0;
    }
  if (out.data != NULL)
    self->stdout_bytes = g_byte_array_free_to_bytes (g_steal_pointer (&out.data));
  if (err.data != NULL)
    self->stderr_bytes = g_byte_array_free_to_bytes (g_steal_pointer (&err.data));
  self->stdout_truncated = out.dropped > 0 || out.cut_off;
  self->stderr_truncated = err.dropped > 0 || err.cut_off;
  code = self->wait_code;
  status = self->wait_status;
  g_mutex_unlock (&self->lock);
  g_clear_pointer (&st.capture.data, g_byte_array_unref);

  report_truncation (self, &out, &err);

  if (wait_errsv != 0)
    {
      g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
                   _("Could not wait for program “%s”: %s"),
                   name, g_strerror (wait_errsv));
      return FALSE;
    }

  if (st.spawn_errno != 0)
    {
      g_set_error (error, G_SPAWN_ERROR, spawn_error_from_errno (st.spawn_errno),
                   _("Could not run program “%s”: %s"), name, g_strerror (st.spawn_errno));
      return FALSE;
    }

  if (mode != KILLABLE_CONTAINMENT_GROUP && !st.have_exit)
    {
      /* The helper was killed from outside; the stop may be why. */
      if (!killable_task_check (task, error))
        return FALSE;
      g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                   _("The helper watching program “%s” ended unexpectedly"), name);
      return FALSE;
    }

  if (code == CLD_EXITED && status == 0)
    return TRUE;

  /* Ended the way it was asked to (or took its time and was killed): the
   * cause is the stop, not the program. */
  if (!killable_task_check (task, error))
    return FALSE;

  /* PRIu64, not G_GUINT64_FORMAT: see truncation_text(). */
  if (oom)
    g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                 _("Program “%s” exceeded its memory limit of %" PRIu64 " bytes"),
                 name, (uint64_t) memory_limit);
  else if (code == CLD_EXITED && rlimit_as > 0)
    g_set_error (error, G_SPAWN_EXIT_ERROR, status,
                 _("Program “%s” exited with status %d (its memory limit is %" PRIu64
                   " bytes per process)"),
                 name, status, (uint64_t) rlimit_as);
  else if (code == CLD_EXITED)
    g_set_error (error, G_SPAWN_EXIT_ERROR, status,
                 _("Program “%s” exited with status %d"), name, status);
  else if (rlimit_as > 0)
    g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                 _("Program “%s” was killed by signal %d (%s) (its memory limit is %"
                   PRIu64 " bytes per process)"),
                 name, status, g_strsignal (status), (uint64_t) rlimit_as);
  else
    g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                 _("Program “%s” was killed by signal %d (%s)"),
                 name, status, g_strsignal (status));

  return FALSE;

out_cleanup:
  /* Nothing was started. */
  capture_close (&out);
  capture_close (&err);
  capture_close (&st.capture);
  g_clear_pointer (&out.data, g_byte_array_unref);
  g_clear_pointer (&err.data, g_byte_array_unref);
  g_clear_pointer (&st.capture.data, g_byte_array_unref);
  close_fd (&in_r);
  close_fd (&out_w);
  close_fd (&err_w);
  close_fd (&ctl[0]);
  close_fd (&ctl[1]);
  close_fd (&status_pipe[0]);
  close_fd (&status_pipe[1]);
  if (leaf != NULL)
    (void) killable_cgroup_destroy_leaf (leaf);
out:
  killable_task_remove_stop_callback (task, stop_id);
  return FALSE;
}

static void
killable_process_task_interrupt (KillableTask *task)
{
  KILLABLE_TASK_CLASS (killable_process_task_parent_class)->interrupt (task);

  (void) request_signal (KILLABLE_PROCESS_TASK (task), SIGINT);
}

static void
killable_process_task_kill (KillableTask *task)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (task);
  GPid pid;

  /* Not the parent's abandon: the worker is not stuck, it reaps the
   * program as soon as it died, and the task then ends KILLED. */
  if (request_signal (self, SIGKILL))
    return;

  /* Unless the program cannot be signalled (it became another user): kill
   * still releases the owner. The task ends KILLED now, its worker
   * abandoned (it reaps the program whenever it ends). */
  g_mutex_lock (&self->lock);
  pid = self->pid;
  g_mutex_unlock (&self->lock);
  g_warning ("Task “%s”: program “%s” (pid %d) cannot be signalled (%s); the task "
             "ends KILLED and the program is left running",
             killable_task_get_name (task), self->argv[0], (int) pid, g_strerror (EPERM));
  KILLABLE_TASK_CLASS (killable_process_task_parent_class)->kill (task);
}

/* KillableTaskClass.set_paused, under the base class's pause lock. */
static gboolean
killable_process_task_set_paused (KillableTask *task,
                                  gboolean      paused)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (task);
  gboolean accepted = TRUE;

  g_mutex_lock (&self->lock);
  /* A stopped task is not paused again: its stop must get through. */
  if (paused && (self->term_requested || self->int_requested || self->kill_requested))
    accepted = FALSE;
  else if (!self->paused != !paused)
    {
      self->paused = paused;
      signal_group_locked (self, paused ? SIGSTOP : SIGCONT);
    }
  g_mutex_unlock (&self->lock);

  return accepted;
}

/* }}} */

/* GObject {{{ */

static gboolean
killable_process_task_initable_init (GInitable     *initable,
                                     GCancellable  *cancellable,
                                     GError       **error)
{
  return ensure_program (KILLABLE_PROCESS_TASK (initable), error);
}

static void
killable_process_task_initable_iface_init (GInitableIface *iface)
{
  iface->init = killable_process_task_initable_init;
}

static void
killable_process_task_constructed (GObject *object)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (object);

  G_OBJECT_CLASS (killable_process_task_parent_class)->constructed (object);

  /* Unnamed (the parent's default is the type name): named after the
   * program. Still part of the construction: the name is immutable after. */
  if (self->argv != NULL && self->argv[0] != NULL && self->argv[0][0] != '\0')
    {
      /* A display name: argv[0] may not be UTF-8. */
      g_autofree char *name = g_filename_display_basename (self->argv[0]);

      killable_task_set_default_name (KILLABLE_TASK (self), name);
    }
}

static void
killable_process_task_finalize (GObject *object)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (object);

  g_clear_pointer (&self->argv, g_strfreev);
  g_clear_pointer (&self->program, g_free);
  g_clear_pointer (&self->cwd, g_free);
  g_clear_pointer (&self->envp, g_strfreev);
  g_clear_pointer (&self->stdout_bytes, g_bytes_unref);
  g_clear_pointer (&self->stderr_bytes, g_bytes_unref);
  g_clear_pointer (&self->cgroup_parent, g_free);
  close_fd (&self->stdin_child_fd);
  close_fd (&self->stdout_child_fd);
  close_fd (&self->stderr_child_fd);
  g_clear_object (&self->stdin_pipe);
  g_clear_object (&self->stdout_pipe);
  g_clear_object (&self->stderr_pipe);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (killable_process_task_parent_class)->finalize (object);
}

static void
killable_process_task_get_property (GObject    *object,
                                    guint       prop_id,
                                    GValue     *value,
                                    GParamSpec *pspec)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (object);

  switch (prop_id)
    {
    case PROP_ARGV:
      g_value_set_boxed (value, self->argv);
      break;
    case PROP_CWD:
      g_mutex_lock (&self->lock);
      g_value_set_string (value, self->cwd);
      g_mutex_unlock (&self->lock);
      break;
    case PROP_FLAGS:
      g_value_set_flags (value, killable_process_task_get_flags (self));
      break;
    case PROP_CONTAINMENT:
      g_value_set_enum (value, killable_process_task_get_containment (self));
      break;
    case PROP_CGROUP_PARENT:
      g_mutex_lock (&self->lock);
      g_value_set_string (value, self->cgroup_parent);
      g_mutex_unlock (&self->lock);
      break;
    case PROP_MEMORY_LIMIT:
      g_value_set_uint64 (value, killable_process_task_get_memory_limit (self));
      break;
    case PROP_MAX_PROCESSES:
      g_value_set_uint (value, killable_process_task_get_max_processes (self));
      break;
    case PROP_CAPTURE_LIMIT:
      g_value_set_uint64 (value, killable_process_task_get_capture_limit (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
killable_process_task_set_property (GObject      *object,
                                    guint         prop_id,
                                    const GValue *value,
                                    GParamSpec   *pspec)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (object);

  switch (prop_id)
    {
    case PROP_ARGV:
      self->argv = g_value_dup_boxed (value);
      break;
    case PROP_CWD:
      killable_process_task_set_cwd (self, g_value_get_string (value));
      break;
    case PROP_FLAGS:
      killable_process_task_set_flags (self, g_value_get_flags (value));
      break;
    case PROP_CONTAINMENT:
      killable_process_task_set_containment (self, g_value_get_enum (value));
      break;
    case PROP_CGROUP_PARENT:
      killable_process_task_set_cgroup_parent (self, g_value_get_string (value));
      break;
    case PROP_MEMORY_LIMIT:
      killable_process_task_set_memory_limit (self, g_value_get_uint64 (value));
      break;
    case PROP_MAX_PROCESSES:
      killable_process_task_set_max_processes (self, g_value_get_uint (value));
      break;
    case PROP_CAPTURE_LIMIT:
      killable_process_task_set_capture_limit (self, g_value_get_uint64 (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
killable_process_task_class_init (KillableProcessTaskClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  KillableTaskClass *task_class = KILLABLE_TASK_CLASS (klass);

  object_class->constructed = killable_process_task_constructed;
  object_class->finalize = killable_process_task_finalize;
  object_class->get_property = killable_process_task_get_property;
  object_class->set_property = killable_process_task_set_property;

  /* Kept with the type: a pending process task needs no run block for it. */
  killable_task_class_set_default_grace_period (task_class, DEFAULT_GRACE_PERIOD);

  task_class->run = killable_process_task_run;
  task_class->interrupt = killable_process_task_interrupt;
  task_class->kill = killable_process_task_kill;
  task_class->set_paused = killable_process_task_set_paused;

  /**
   * KillableProcessTask:argv:
   *
   * The program and its arguments. `argv[0]` names the program: looked up
   * in `PATH` when it has no slash, taken as a path otherwise. Set at
   * construction; when the task is created with g_object_new() rather than
   * [ctor@Killable.ProcessTask.new] or g_initable_new(), a missing program
   * is reported when the task runs.
   *
   * Since: 1.0
   */
  properties[PROP_ARGV] =
    g_param_spec_boxed ("argv", NULL, NULL, G_TYPE_STRV,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableProcessTask:cwd:
   *
   * The working directory of the program, or %NULL for the caller's. See
   * [method@Killable.ProcessTask.set_cwd].
   *
   * Since: 1.0
   */
  properties[PROP_CWD] =
    g_param_spec_string ("cwd", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableProcessTask:flags:
   *
   * How the program's standard streams are connected. See
   * [method@Killable.ProcessTask.set_flags].
   *
   * Since: 1.0
   */
  properties[PROP_FLAGS] =
    g_param_spec_flags ("flags", NULL, NULL,
                        KILLABLE_TYPE_PROCESS_FLAGS, KILLABLE_PROCESS_FLAGS_NONE,
                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableProcessTask:containment:
   *
   * How much of what the program starts the task's stop, kill and end
   * reach. Set it before the start; %KILLABLE_CONTAINMENT_AUTO (the
   * default) picks the strongest mode available. Once the task started, it
   * reads back the mode in effect, with a notification on the owner's
   * context.
   *
   * A mode that is not available (%KILLABLE_CONTAINMENT_CGROUP without a
   * writable cgroup v2 directory, a helper program that is not installed)
   * makes the task fail at its start with a message saying why.
   *
   * Since: 1.2
   */
  properties[PROP_CONTAINMENT] =
    g_param_spec_enum ("containment", NULL, NULL,
                       KILLABLE_TYPE_CONTAINMENT, KILLABLE_CONTAINMENT_AUTO,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableProcessTask:cgroup-parent:
   *
   * The cgroup v2 directory under which the task's own cgroup is created
   * with %KILLABLE_CONTAINMENT_CGROUP, or %NULL for the default:
   * `$KILLABLE_CGROUP_ROOT` if set, else the caller's own cgroup (found in
   * `/proc/self/mountinfo` and `/proc/self/cgroup`). It must be writable
   * (root, or a delegated subtree) and hold no process whose controllers
   * are delegated.
   *
   * Since: 1.2
   */
  properties[PROP_CGROUP_PARENT] =
    g_param_spec_string ("cgroup-parent", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableProcessTask:memory-limit:
   *
   * The most memory the program may use, in bytes, or 0 for no limit. With
   * %KILLABLE_CONTAINMENT_CGROUP and the cgroup memory controller, it is the
   * `memory.max` of the whole tree (a program killed by it ends
   * %KILLABLE_TASK_STATE_FAILED with a message naming the limit).
   * Otherwise it is `RLIMIT_AS` for each process (address space, not
   * resident memory: allocations fail beyond it), which needs
   * %KILLABLE_CONTAINMENT_REAPER: in %KILLABLE_CONTAINMENT_GROUP the task
   * fails at its start.
   *
   * Since: 1.2
   */
  properties[PROP_MEMORY_LIMIT] =
    g_param_spec_uint64 ("memory-limit", NULL, NULL, 0, G_MAXUINT64, 0,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableProcessTask:max-processes:
   *
   * The most processes (and threads) the program's tree may have at once,
   * or 0 for no limit: the cgroup's `pids.max`. It needs
   * %KILLABLE_CONTAINMENT_CGROUP with the pids controller; otherwise the
   * task fails at its start with a message saying so.
   *
   * Since: 1.2
   */
  properties[PROP_MAX_PROCESSES] =
    g_param_spec_uint ("max-processes", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * KillableProcessTask:capture-limit:
   *
   * The most bytes kept of each captured stream
   * (%KILLABLE_PROCESS_FLAGS_STDOUT_PIPE, %KILLABLE_PROCESS_FLAGS_STDERR_PIPE),
   * 64 MiB by default. Past it, the output is still read (the program
   * never blocks on a full pipe) and dropped, and
   * [method@Killable.ProcessTask.get_stdout_truncated] (or
   * [method@Killable.ProcessTask.get_stderr_truncated]) says so.
   *
   * 0 means no limit of the task's own; a capture never holds more than
   * %G_MAXUINT bytes (4 GiB − 1), the most a #GByteArray holds, so larger
   * values, up to %G_MAXUINT64, mean the same. Pipes taken as streams
   * ([method@Killable.ProcessTask.get_stdout_pipe]) are not limited: their
   * reader decides.
   *
   * Since: 1.2
   */
  properties[PROP_CAPTURE_LIMIT] =
    g_param_spec_uint64 ("capture-limit", NULL, NULL, 0, G_MAXUINT64, DEFAULT_CAPTURE_LIMIT,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);


  g_object_class_install_properties (object_class, N_PROPS, properties);
}

/* The mode in effect is notified on the owner's context, with the
 * state. */
static void
state_notify_cb (GObject    *object,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (object);

  if (self->containment_notified ||
      killable_task_get_state (KILLABLE_TASK (self)) == KILLABLE_TASK_STATE_PENDING)
    return;

  /* The first one of the worker and this resolves it, to the same mode. */
  if (killable_process_task_get_containment (self) != KILLABLE_CONTAINMENT_AUTO)
    {
      self->containment_notified = TRUE;
      g_object_notify_by_pspec (object, properties[PROP_CONTAINMENT]);
    }
}

static void
killable_process_task_init (KillableProcessTask *self)
{
  g_mutex_init (&self->lock);
  self->ctl_fd = -1;
  self->stdin_child_fd = -1;
  self->stdout_child_fd = -1;
  self->stderr_child_fd = -1;
  self->capture_limit = DEFAULT_CAPTURE_LIMIT;

  g_signal_connect (self, "notify::state", G_CALLBACK (state_notify_cb), NULL);

  /* Stop (SIGTERM), then kill (SIGKILL): a process has no interrupt rung
   * worth waiting for. (The grace period's default is the class's.) */
  killable_task_set_escalation_direct_kill (KILLABLE_TASK (self), TRUE);
}

/* }}} */

/* Public API {{{ */

/**
 * killable_process_task_new:
 * @argv: (array zero-terminated=1) (element-type filename): the program and
 *   its arguments; `argv[0]` is looked up in `PATH` unless it contains a
 *   slash
 * @error: return location for a #GError
 *
 * Creates a pending task that runs the program @argv names, without a
 * shell. The task is named after the program (the basename of `argv[0]`)
 * and has a [property@Killable.Task:grace-period] of 5 seconds.
 *
 * The program is looked up now: a name without a slash in the caller's
 * `PATH`, a relative path against the caller's current directory (not the
 * directory given to [method@Killable.ProcessTask.set_cwd]). A program that
 * does not exist is reported here, with %G_SPAWN_ERROR_NOENT.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer full) (nullable): a new process task, or %NULL with
 *   @error set if the program was not found
 *
 * Since: 1.0
 */
KillableProcessTask *
killable_process_task_new (const char * const  *argv,
                           GError             **error)
{
  g_return_val_if_fail (argv != NULL, NULL);
  g_return_val_if_fail (argv[0] != NULL && argv[0][0] != '\0', NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (KILLABLE_TYPE_PROCESS_TASK, NULL, error,
                         "argv", argv,
                         NULL);
}

/**
 * killable_process_task_get_argv:
 * @self: a process task
 *
 * Gets the program and its arguments, as given at construction.
 *
 * This function is thread-safe.
 *
 * Returns: (array zero-terminated=1) (element-type filename) (transfer none) (nullable):
 *   the argument vector
 *
 * Since: 1.0
 */
const char * const *
killable_process_task_get_argv (KillableProcessTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), NULL);

  return (const char * const *) self->argv;
}

/**
 * killable_process_task_set_cwd:
 * @self: a pending process task
 * @cwd: (nullable) (type filename): the working directory of the program,
 *   or %NULL for the caller's
 *
 * Sets the directory the program runs in. If it does not exist when the
 * task runs, the task fails with %G_SPAWN_ERROR_CHDIR.
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.0
 */
void
killable_process_task_set_cwd (KillableProcessTask *self,
                               const char          *cwd)
{
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (!was_started (self));

  g_mutex_lock (&self->lock);
  changed = g_strcmp0 (self->cwd, cwd) != 0;
  if (changed)
    {
      g_free (self->cwd);
      self->cwd = g_strdup (cwd);
    }
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CWD]);
}

/**
 * killable_process_task_get_cwd:
 * @self: a process task
 *
 * Gets the working directory set with
 * [method@Killable.ProcessTask.set_cwd].
 *
 * Call it from the thread that owns the task, or after it started.
 *
 * Returns: (nullable) (type filename): the working directory, or %NULL
 *   for the caller's
 *
 * Since: 1.0
 */
const char *
killable_process_task_get_cwd (KillableProcessTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), NULL);

  return self->cwd;
}

static char **
ensure_environ (KillableProcessTask *self)
{
  if (self->envp == NULL)
    self->envp = g_get_environ ();

  return self->envp;
}

/**
 * killable_process_task_set_environ:
 * @self: a pending process task
 * @env: (array zero-terminated=1) (element-type filename) (nullable): the
 *   whole environment of the program, as `NAME=value` strings, or %NULL to
 *   inherit the caller's
 *
 * Replaces the environment the program gets (each entry `NAME=value` with
 * a non-empty `NAME`; anything else is a critical and changes nothing).
 * By default it inherits the
 * environment of the calling process as it is when the task runs.
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.0
 */
void
killable_process_task_set_environ (KillableProcessTask *self,
                                   const char * const  *env)
{
  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (!was_started (self));
  g_return_if_fail (environ_is_valid (env));

  g_mutex_lock (&self->lock);
  g_strfreev (self->envp);
  self->envp = g_strdupv ((char **) env);
  g_mutex_unlock (&self->lock);
}

/**
 * killable_process_task_setenv:
 * @self: a pending process task
 * @variable: (type filename): the name of the variable; it must not
 *   contain `=`
 * @value: (type filename): its value
 * @overwrite: whether to change the variable if it is already set
 *
 * Sets a variable in the program's environment. The first change to the
 * environment copies the caller's, unless
 * [method@Killable.ProcessTask.set_environ] gave one.
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.0
 */
void
killable_process_task_setenv (KillableProcessTask *self,
                              const char          *variable,
                              const char          *value,
                              gboolean             overwrite)
{
  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (variable != NULL && variable[0] != '\0');
  g_return_if_fail (strchr (variable, '=') == NULL);
  g_return_if_fail (value != NULL);
  g_return_if_fail (!was_started (self));

  g_mutex_lock (&self->lock);
  self->envp = g_environ_setenv (ensure_environ (self), variable, value, overwrite);
  g_mutex_unlock (&self->lock);
}

/**
 * killable_process_task_unsetenv:
 * @self: a pending process task
 * @variable: (type filename): the name of the variable; it must not
 *   contain `=`
 *
 * Removes a variable from the program's environment. The first change to
 * the environment copies the caller's, unless
 * [method@Killable.ProcessTask.set_environ] gave one.
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.0
 */
void
killable_process_task_unsetenv (KillableProcessTask *self,
                                const char          *variable)
{
  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (variable != NULL && variable[0] != '\0');
  g_return_if_fail (strchr (variable, '=') == NULL);
  g_return_if_fail (!was_started (self));

  g_mutex_lock (&self->lock);
  self->envp = g_environ_unsetenv (ensure_environ (self), variable);
  g_mutex_unlock (&self->lock);
}

/**
 * killable_process_task_get_flags:
 * @self: a process task
 *
 * Gets how the program's standard streams are connected.
 *
 * This function is thread-safe.
 *
 * Returns: the flags
 *
 * Since: 1.0
 */
KillableProcessFlags
killable_process_task_get_flags (KillableProcessTask *self)
{
  KillableProcessFlags flags;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), KILLABLE_PROCESS_FLAGS_NONE);

  g_mutex_lock (&self->lock);
  flags = self->flags;
  g_mutex_unlock (&self->lock);

  return flags;
}

/**
 * killable_process_task_set_flags:
 * @self: a pending process task
 * @flags: how to connect the standard streams
 *
 * Sets how the program's standard streams are connected. At most one of
 * the `STDOUT` flags and one of the `STDERR` flags may be given. Captured
 * streams are read while the program runs, so a program that writes a lot
 * never blocks on a full pipe; they are kept in memory until the task is
 * finalized.
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.0
 */
void
killable_process_task_set_flags (KillableProcessTask  *self,
                                 KillableProcessFlags  flags)
{
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (flags_are_valid (flags));
  g_return_if_fail (!was_started (self));

  g_mutex_lock (&self->lock);
  changed = self->flags != flags;
  self->flags = flags;
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FLAGS]);
}

/**
 * killable_process_task_get_pid:
 * @self: a process task
 *
 * Gets the process ID of the program while it runs. With
 * %KILLABLE_CONTAINMENT_GROUP it is also the ID of its process group; in the
 * other modes the program is a child of the helper, which shares its
 * process group. It is 0 before the program was started (it is published
 * right after the spawn, when the program may already have run for a
 * moment) and once it was reaped, when the ID may already belong to another
 * process.
 *
 * This function is thread-safe, but the answer may be out of date by the
 * time it is used: signal the program through the task instead.
 *
 * Returns: the process ID, or 0
 *
 * Since: 1.0
 */
GPid
killable_process_task_get_pid (KillableProcessTask *self)
{
  GPid pid;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), 0);

  g_mutex_lock (&self->lock);
  if (self->helper_mode)
    pid = self->program_ended ? 0 : self->program_pid;
  else
    pid = self->reaped ? 0 : self->pid;
  g_mutex_unlock (&self->lock);

  return pid;
}

/**
 * killable_process_task_get_if_exited:
 * @self: a process task
 *
 * Whether the program ended by exiting (rather than by a signal). Valid
 * once the task is terminal.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE if the program exited
 *
 * Since: 1.0
 */
gboolean
killable_process_task_get_if_exited (KillableProcessTask *self)
{
  gboolean ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), FALSE);

  g_mutex_lock (&self->lock);
  ret = self->wait_code == CLD_EXITED;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_process_task_get_exit_status:
 * @self: a process task
 *
 * Gets the exit status of the program, as given to `exit()`. Valid once
 * the task is terminal.
 *
 * This function is thread-safe.
 *
 * Returns: the exit status, or -1 if the program did not exit (it was not
 *   started, has not ended, or was killed by a signal)
 *
 * Since: 1.0
 */
int
killable_process_task_get_exit_status (KillableProcessTask *self)
{
  int ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), -1);

  g_mutex_lock (&self->lock);
  ret = self->wait_code == CLD_EXITED ? self->wait_status : -1;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_process_task_get_if_signaled:
 * @self: a process task
 *
 * Whether the program was ended by a signal. Valid once the task is
 * terminal.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE if a signal ended the program
 *
 * Since: 1.0
 */
gboolean
killable_process_task_get_if_signaled (KillableProcessTask *self)
{
  gboolean ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), FALSE);

  g_mutex_lock (&self->lock);
  ret = self->wait_code == CLD_KILLED || self->wait_code == CLD_DUMPED;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_process_task_get_term_sig:
 * @self: a process task
 *
 * Gets the signal that ended the program. Valid once the task is
 * terminal.
 *
 * This function is thread-safe.
 *
 * Returns: the signal number, or 0 if the program was not ended by a signal
 *
 * Since: 1.0
 */
int
killable_process_task_get_term_sig (KillableProcessTask *self)
{
  int ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), 0);

  g_mutex_lock (&self->lock);
  ret = self->wait_code == CLD_KILLED || self->wait_code == CLD_DUMPED ? self->wait_status : 0;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_process_task_get_stdout_bytes:
 * @self: a process task
 *
 * Gets what the program wrote to its standard output, when
 * %KILLABLE_PROCESS_FLAGS_STDOUT_PIPE was set. Valid once the task is
 * terminal; if it was stopped, this is what was written until then.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer full) (nullable): the captured output, or %NULL if it
 *   was not captured or the program has not ended
 *
 * Since: 1.0
 */
GBytes *
killable_process_task_get_stdout_bytes (KillableProcessTask *self)
{
  GBytes *ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), NULL);

  g_mutex_lock (&self->lock);
  ret = self->stdout_bytes != NULL ? g_bytes_ref (self->stdout_bytes) : NULL;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_process_task_get_stderr_bytes:
 * @self: a process task
 *
 * Gets what the program wrote to its standard error, when
 * %KILLABLE_PROCESS_FLAGS_STDERR_PIPE was set. Valid once the task is
 * terminal; if it was stopped, this is what was written until then.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer full) (nullable): the captured output, or %NULL if it
 *   was not captured or the program has not ended
 *
 * Since: 1.0
 */
GBytes *
killable_process_task_get_stderr_bytes (KillableProcessTask *self)
{
  GBytes *ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), NULL);

  g_mutex_lock (&self->lock);
  ret = self->stderr_bytes != NULL ? g_bytes_ref (self->stderr_bytes) : NULL;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_process_task_get_stdout_truncated:
 * @self: a process task
 *
 * Gets whether [method@Killable.ProcessTask.get_stdout_bytes] is less
 * than what came through the pipe: the output went past
 * [property@Killable.ProcessTask:capture-limit] (the rest was dropped), or
 * another process still held the pipe a while after the program was
 * reaped (a process that left the group, in %KILLABLE_CONTAINMENT_GROUP)
 * and the task stopped reading it. The task's
 * [property@Killable.Task:status] then says which, with the byte counts.
 *
 * Valid once the task is terminal; %FALSE before, and when stdout was not
 * captured.
 *
 * This function is thread-safe.
 *
 * Returns: whether the captured standard output is truncated
 *
 * Since: 1.2
 */
gboolean
killable_process_task_get_stdout_truncated (KillableProcessTask *self)
{
  gboolean ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), FALSE);

  g_mutex_lock (&self->lock);
  ret = self->stdout_truncated;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_process_task_get_stderr_truncated:
 * @self: a process task
 *
 * Gets whether [method@Killable.ProcessTask.get_stderr_bytes] is less
 * than what came through the pipe. See
 * [method@Killable.ProcessTask.get_stdout_truncated].
 *
 * This function is thread-safe.
 *
 * Returns: whether the captured standard error is truncated
 *
 * Since: 1.2
 */
gboolean
killable_process_task_get_stderr_truncated (KillableProcessTask *self)
{
  gboolean ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), FALSE);

  g_mutex_lock (&self->lock);
  ret = self->stderr_truncated;
  g_mutex_unlock (&self->lock);

  return ret;
}

/* }}} */

/* Containment, limits, pipes {{{ */

/**
 * killable_process_task_get_containment:
 * @self: a process task
 *
 * Gets the containment mode: the one asked for while the task is pending,
 * the one in effect once it started (never %KILLABLE_CONTAINMENT_AUTO
 * then, unless the mode asked for was not available and the task failed).
 *
 * This function is thread-safe.
 *
 * Returns: the containment mode
 *
 * Since: 1.2
 */
KillableContainment
killable_process_task_get_containment (KillableProcessTask *self)
{
  KillableContainment ret;
  gboolean resolved;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), KILLABLE_CONTAINMENT_AUTO);

  g_mutex_lock (&self->lock);
  ret = self->containment;
  resolved = self->containment_resolved;
  g_mutex_unlock (&self->lock);

  /* Started: the mode in effect, resolved now if the worker has not yet. */
  if (!resolved && was_started (self))
    {
      g_autofree char *base = NULL;
      KillableContainment mode = resolve_containment (self, &base, NULL);

      if (mode != KILLABLE_CONTAINMENT_AUTO)
        {
          g_mutex_lock (&self->lock);
          ret = self->containment;
          g_mutex_unlock (&self->lock);
        }
    }

  return ret;
}

/**
 * killable_process_task_set_containment:
 * @self: a pending process task
 * @containment: the mode
 *
 * Sets how much of what the program starts the task's stop, kill and end
 * reach. See [property@Killable.ProcessTask:containment].
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.2
 */
void
killable_process_task_set_containment (KillableProcessTask *self,
                                       KillableContainment  containment)
{
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (containment >= KILLABLE_CONTAINMENT_AUTO &&
                    containment <= KILLABLE_CONTAINMENT_CGROUP);
  g_return_if_fail (!was_started (self));

  g_mutex_lock (&self->lock);
  changed = self->containment != containment;
  self->containment = containment;
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CONTAINMENT]);
}

/* The limits (memory, processes, capture): read and set under @lock; a
 * change is notified after it is released. */
static guint64
get_limit (KillableProcessTask *self,
           const guint64       *field)
{
  guint64 ret;

  g_mutex_lock (&self->lock);
  ret = *field;
  g_mutex_unlock (&self->lock);

  return ret;
}

static void
set_limit (KillableProcessTask *self,
           guint64             *field,
           guint64              value,
           int                  prop)
{
  gboolean changed;

  g_mutex_lock (&self->lock);
  changed = *field != value;
  *field = value;
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

/**
 * killable_process_task_get_cgroup_parent:
 * @self: a process task
 *
 * Gets the directory set with
 * [method@Killable.ProcessTask.set_cgroup_parent].
 *
 * Call it from the thread that owns the task, or after it started.
 *
 * Returns: (nullable) (type filename): the directory, or %NULL for the
 *   default
 *
 * Since: 1.2
 */
const char *
killable_process_task_get_cgroup_parent (KillableProcessTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), NULL);

  return self->cgroup_parent;
}

/**
 * killable_process_task_set_cgroup_parent:
 * @self: a pending process task
 * @path: (nullable) (type filename): a writable cgroup v2 directory, or
 *   %NULL for the default
 *
 * Sets the directory under which the task's cgroup is created. See
 * [property@Killable.ProcessTask:cgroup-parent].
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.2
 */
void
killable_process_task_set_cgroup_parent (KillableProcessTask *self,
                                         const char          *path)
{
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (!was_started (self));

  g_mutex_lock (&self->lock);
  changed = g_strcmp0 (self->cgroup_parent, path) != 0;
  if (changed)
    {
      g_free (self->cgroup_parent);
      self->cgroup_parent = g_strdup (path);
    }
  g_mutex_unlock (&self->lock);

  if (changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CGROUP_PARENT]);
}

/**
 * killable_process_task_get_memory_limit:
 * @self: a process task
 *
 * Gets the memory limit. See [property@Killable.ProcessTask:memory-limit].
 *
 * This function is thread-safe.
 *
 * Returns: the limit in bytes, or 0 for none
 *
 * Since: 1.2
 */
guint64
killable_process_task_get_memory_limit (KillableProcessTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), 0);

  return get_limit (self, &self->memory_limit);
}

/**
 * killable_process_task_set_memory_limit:
 * @self: a pending process task
 * @bytes: the limit, or 0 for none
 *
 * Limits the memory of the program. See
 * [property@Killable.ProcessTask:memory-limit].
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.2
 */
void
killable_process_task_set_memory_limit (KillableProcessTask *self,
                                        guint64              bytes)
{
  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (!was_started (self));

  set_limit (self, &self->memory_limit, bytes, PROP_MEMORY_LIMIT);
}

/**
 * killable_process_task_get_max_processes:
 * @self: a process task
 *
 * Gets the process limit. See [property@Killable.ProcessTask:max-processes].
 *
 * This function is thread-safe.
 *
 * Returns: the limit, or 0 for none
 *
 * Since: 1.2
 */
guint
killable_process_task_get_max_processes (KillableProcessTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), 0);

  return (guint) get_limit (self, &self->max_processes);
}

/**
 * killable_process_task_set_max_processes:
 * @self: a pending process task
 * @max_processes: the limit, or 0 for none
 *
 * Limits how many processes the program's tree may have at once. See
 * [property@Killable.ProcessTask:max-processes].
 *
 * Call it before the task starts, from the thread that owns it.
 *
 * Since: 1.2
 */
void
killable_process_task_set_max_processes (KillableProcessTask *self,
                                         guint                max_processes)
{
  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (!was_started (self));

  set_limit (self, &self->max_processes, max_processes, PROP_MAX_PROCESSES);
}

/**
 * killable_process_task_get_capture_limit:
 * @self: a process task
 *
 * Gets the most bytes kept of each captured stream. See
 * [property@Killable.ProcessTask:capture-limit].
 *
 * This function is thread-safe.
 *
 * Returns: the limit in bytes, or 0 for none
 *
 * Since: 1.2
 */
guint64
killable_process_task_get_capture_limit (KillableProcessTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), 0);

  return get_limit (self, &self->capture_limit);
}

/**
 * killable_process_task_set_capture_limit:
 * @self: a pending process task
 * @bytes: the most bytes kept of each captured stream, or 0 for no limit
 *
 * Sets how much of each captured stream is kept; what comes past it is
 * read and dropped. See [property@Killable.ProcessTask:capture-limit].
 *
 * Call it before the task starts, from the thread that owns it; after the
 * start it only logs a critical.
 *
 * Since: 1.2
 */
void
killable_process_task_set_capture_limit (KillableProcessTask *self,
                                         guint64              bytes)
{
  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (!was_started (self));

  set_limit (self, &self->capture_limit, bytes, PROP_CAPTURE_LIMIT);
}

/**
 * killable_process_task_get_stdin_pipe:
 * @self: a process task with %KILLABLE_PROCESS_FLAGS_STDIN_PIPE
 *
 * Gets the stream that writes to the program's standard input. Close it
 * to give the program the end of its input. Available before the start
 * (the program reads what was written once it runs) and after it.
 *
 * Call it from the thread that owns the task; use the stream from one
 * thread at a time.
 *
 * Returns: (transfer none): the stream
 *
 * Since: 1.2
 */
GOutputStream *
killable_process_task_get_stdin_pipe (KillableProcessTask *self)
{
  GOutputStream *ret;

  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), NULL);
  g_return_val_if_fail (killable_process_task_get_flags (self) & KILLABLE_PROCESS_FLAGS_STDIN_PIPE,
                        NULL);

  /* Made here, or by the worker at the spawn (under the same lock),
   * whichever comes first. */
  g_mutex_lock (&self->lock);
  if (self->stdin_pipe == NULL)
    {
      int fds[2];

      if (make_pipe (fds, 0, self->argv[0], NULL))
        {
          self->stdin_child_fd = fds[0];
          self->stdin_pipe = g_unix_output_stream_new (fds[1], TRUE);
        }
    }
  ret = self->stdin_pipe;
  g_mutex_unlock (&self->lock);

  return ret;
}

static GInputStream *
get_output_pipe (KillableProcessTask  *self,
                 GInputStream        **stream,
                 int                  *child_fd)
{
  GInputStream *ret;

  g_mutex_lock (&self->lock);
  if (*stream == NULL && !was_started (self))
    {
      int fds[2];

      if (make_pipe (fds, 0, self->argv[0], NULL))
        {
          *child_fd = fds[1];
          *stream = g_unix_input_stream_new (fds[0], TRUE);
        }
    }
  ret = *stream;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_process_task_get_stdout_pipe:
 * @self: a pending process task with %KILLABLE_PROCESS_FLAGS_STDOUT_PIPE
 *
 * Gets a stream that reads the program's standard output while it runs,
 * to show its progress for instance. Ask for it before the start: the
 * output then goes to the stream only, and
 * [method@Killable.ProcessTask.get_stdout_bytes] returns %NULL. Without
 * it, the task collects the output itself.
 *
 * Read the stream until its end: a program blocks when the pipe is full.
 * The end comes when every process that holds the pipe is gone (with
 * %KILLABLE_CONTAINMENT_REAPER or %KILLABLE_CONTAINMENT_CGROUP, once the
 * task ended).
 *
 * Call it from the thread that owns the task; use the stream from one
 * thread at a time.
 *
 * Returns: (transfer none) (nullable): the stream, or %NULL if the task
 *   started without it
 *
 * Since: 1.2
 */
GInputStream *
killable_process_task_get_stdout_pipe (KillableProcessTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), NULL);
  g_return_val_if_fail (killable_process_task_get_flags (self) & KILLABLE_PROCESS_FLAGS_STDOUT_PIPE,
                        NULL);

  return get_output_pipe (self, &self->stdout_pipe, &self->stdout_child_fd);
}

/**
 * killable_process_task_get_stderr_pipe:
 * @self: a pending process task with %KILLABLE_PROCESS_FLAGS_STDERR_PIPE
 *
 * Gets a stream that reads the program's standard error while it runs.
 * See [method@Killable.ProcessTask.get_stdout_pipe].
 *
 * Call it from the thread that owns the task; use the stream from one
 * thread at a time.
 *
 * Returns: (transfer none) (nullable): the stream, or %NULL if the task
 *   started without it
 *
 * Since: 1.2
 */
GInputStream *
killable_process_task_get_stderr_pipe (KillableProcessTask *self)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), NULL);
  g_return_val_if_fail (killable_process_task_get_flags (self) & KILLABLE_PROCESS_FLAGS_STDERR_PIPE,
                        NULL);

  return get_output_pipe (self, &self->stderr_pipe, &self->stderr_child_fd);
}

/* }}} */

/* Communicate {{{ */

typedef struct
{
  GBytes *stdin_buf;    /* (owned) (nullable) */
  gulong  finished_id;
} Communicate;

static void
communicate_free (gpointer data)
{
  Communicate *c = data;

  g_clear_pointer (&c->stdin_buf, g_bytes_unref);
  g_free (c);
}

static void
communicate_finished_cb (KillableTask *task,
                         gpointer      user_data)
{
  GTask *gtask = user_data;
  Communicate *c = g_task_get_task_data (gtask);

  g_clear_signal_handler (&c->finished_id, task);
  g_task_return_boolean (gtask, TRUE);
  g_object_unref (gtask);
}

/* The input is written: what is left is the end of the task. */
static void
communicate_wait (GTask *gtask)
{
  KillableTask *task = g_task_get_source_object (gtask);
  Communicate *c = g_task_get_task_data (gtask);

  c->finished_id = g_signal_connect (task, "finished",
                                     G_CALLBACK (communicate_finished_cb), gtask);
  /* Ended before the handler was there: nothing else will come. */
  if (killable_task_is_finished (task) && c->finished_id != 0)
    communicate_finished_cb (task, gtask);
}

static void
communicate_closed_cb (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  GTask *gtask = user_data;

  /* A program that exited without reading its input is not an error of
   * the communication: its outcome tells. */
  (void) g_output_stream_close_finish (G_OUTPUT_STREAM (source), result, NULL);
  communicate_wait (gtask);
}

static void
communicate_written_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  GTask *gtask = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error) &&
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_task_return_error (gtask, g_steal_pointer (&error));
      g_object_unref (gtask);
      return;
    }

  g_output_stream_close_async (G_OUTPUT_STREAM (source), G_PRIORITY_DEFAULT, NULL,
                               communicate_closed_cb, gtask);
}

/**
 * killable_process_task_communicate_async:
 * @self: a process task
 * @stdin_buf: (nullable): what to write to the program's standard input,
 *   which needs %KILLABLE_PROCESS_FLAGS_STDIN_PIPE
 * @cancellable: (nullable): a #GCancellable for the writing of @stdin_buf
 * @callback: (scope async) (closure user_data): called when the task ended
 * @user_data: data for @callback
 *
 * Starts the task if it is pending, writes @stdin_buf to the program's
 * standard input and closes it (with %KILLABLE_PROCESS_FLAGS_STDIN_PIPE;
 * the input is closed even without @stdin_buf), then waits until the task
 * ended. Get the outcome and the output captured with
 * %KILLABLE_PROCESS_FLAGS_STDOUT_PIPE and
 * %KILLABLE_PROCESS_FLAGS_STDERR_PIPE with
 * [method@Killable.ProcessTask.communicate_finish].
 *
 * As with #GSubprocess, cancelling @cancellable does not stop the task
 * (stop it with [method@Killable.Task.stop]): the write is abandoned and
 * the operation returns %G_IO_ERROR_CANCELLED.
 *
 * Call it from the thread that owns the task; @callback is called on the
 * thread-default main context of the caller, which must be the task's
 * owner context (the one it was started from).
 *
 * Since: 1.2
 */
void
killable_process_task_communicate_async (KillableProcessTask *self,
                                         GBytes              *stdin_buf,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data)
{
  KillableProcessFlags flags;
  GOutputStream *stdin_pipe;
  Communicate *c;
  GTask *gtask;

  g_return_if_fail (KILLABLE_IS_PROCESS_TASK (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));
  flags = killable_process_task_get_flags (self);
  g_return_if_fail (stdin_buf == NULL || (flags & KILLABLE_PROCESS_FLAGS_STDIN_PIPE));

  gtask = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (gtask, killable_process_task_communicate_async);
  c = g_new0 (Communicate, 1);
  c->stdin_buf = stdin_buf != NULL ? g_bytes_ref (stdin_buf) : NULL;
  g_task_set_task_data (gtask, c, communicate_free);

  if (flags & KILLABLE_PROCESS_FLAGS_STDIN_PIPE)
    {
      /* Made before the start, so that it is there for the worker. */
      stdin_pipe = killable_process_task_get_stdin_pipe (self);
      /* A program that exits without reading its input must not take the
       * application with it: GSocket's class ignores SIGPIPE, as GLib's
       * own subprocess users rely on. */
      g_type_class_unref (g_type_class_ref (G_TYPE_SOCKET));
    }
  else
    stdin_pipe = NULL;

  if (killable_task_get_state (KILLABLE_TASK (self)) == KILLABLE_TASK_STATE_PENDING &&
      !killable_task_is_finished (KILLABLE_TASK (self)))
    {
      GError *error = NULL;

      if (!killable_task_start (KILLABLE_TASK (self), &error))
        {
          g_task_return_error (gtask, error);
          g_object_unref (gtask);
          return;
        }
    }

  if (stdin_pipe == NULL)
    communicate_wait (gtask);
  else if (c->stdin_buf != NULL)
    g_output_stream_write_all_async (stdin_pipe,
                                     g_bytes_get_data (c->stdin_buf, NULL),
                                     g_bytes_get_size (c->stdin_buf),
                                     G_PRIORITY_DEFAULT, cancellable,
                                     communicate_written_cb, gtask);
  else
    g_output_stream_close_async (stdin_pipe, G_PRIORITY_DEFAULT, NULL,
                                 communicate_closed_cb, gtask);
}

/**
 * killable_process_task_communicate_finish:
 * @self: a process task
 * @result: the result given to the callback
 * @stdout_buf: (out) (optional) (nullable) (transfer full): the captured
 *   standard output, or %NULL
 * @stderr_buf: (out) (optional) (nullable) (transfer full): the captured
 *   standard error, or %NULL
 * @error: return location for a #GError
 *
 * Finishes [method@Killable.ProcessTask.communicate_async]: the task's
 * outcome, as [method@Killable.Task.join] gives it (a non-zero exit status
 * is a %G_SPAWN_EXIT_ERROR), and the output captured until the end, set
 * even when the task failed (unless the communication itself was
 * cancelled).
 *
 * Call it from the thread that owns the task.
 *
 * Returns: %TRUE if the task succeeded
 *
 * Since: 1.2
 */
gboolean
killable_process_task_communicate_finish (KillableProcessTask  *self,
                                          GAsyncResult         *result,
                                          GBytes              **stdout_buf,
                                          GBytes              **stderr_buf,
                                          GError              **error)
{
  g_return_val_if_fail (KILLABLE_IS_PROCESS_TASK (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, killable_process_task_communicate_async),
                        FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (stdout_buf != NULL)
    *stdout_buf = NULL;
  if (stderr_buf != NULL)
    *stderr_buf = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return FALSE;

  if (stdout_buf != NULL)
    *stdout_buf = killable_process_task_get_stdout_bytes (self);
  if (stderr_buf != NULL)
    *stderr_buf = killable_process_task_get_stderr_bytes (self);

  return killable_task_join (KILLABLE_TASK (self), error);
}

/* }}} */
