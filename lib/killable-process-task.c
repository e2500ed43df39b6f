/* killable-process-task.c: work isolated in a process group
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "killable-enums.h"
#include "killable-error.h"
#include "killable-process-task.h"
#include "killable-task-private.h"

/**
 * KillableProcessTask:
 *
 * A task whose work is an external program, run in a process group of its
 * own so that it can be stopped and killed with everything it started.
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
 * ## The ladder for a process
 *
 * - [method@Killable.Task.stop] sends `SIGTERM` to the process group.
 * - [method@Killable.Task.interrupt] sends `SIGINT` to the process group
 *   (after the `SIGTERM` of the stop it implies), like Ctrl+C in a
 *   terminal.
 * - [method@Killable.Task.kill] sends `SIGKILL` to the process group. The
 *   task is not abandoned: its worker reaps the program within
 *   milliseconds, and the task ends %KILLABLE_TASK_STATE_KILLED.
 * - [property@Killable.Task:grace-period] defaults to 5 seconds for a
 *   process task, and escalates from the stop straight to the kill: a
 *   program that ignores `SIGTERM` gets `SIGKILL` one grace period after
 *   the stop.
 *
 * When the program (the process group leader) ends, by itself or not,
 * whatever is left in its process group gets `SIGKILL` before the leader is
 * reaped: grandchildren die with it. Processes that left the group (with
 * `setsid()` or `setpgid()`, as daemons do) are out of reach.
 *
 * A signal is never sent to a recycled process ID: the group is signalled
 * only while its leader is an unreaped child of ours, and the kernel does
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
 * - Otherwise: %KILLABLE_TASK_STATE_FAILED with %KILLABLE_ERROR_FAILED and
 *   a message naming the program and its status ("Program “sh” exited with
 *   status 3", "Program “sh” was killed by signal 9 (Killed)").
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

  /* The child. pid is also the process group ID. */
  GPid                  pid;           /* protected by @lock; 0 before the spawn */
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
};

enum {
  PROP_0,
  PROP_ARGV,
  PROP_CWD,
  PROP_FLAGS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void killable_process_task_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (KillableProcessTask, killable_process_task, KILLABLE_TYPE_TASK,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      killable_process_task_initable_iface_init))

#define DEFAULT_GRACE_PERIOD (5 * G_USEC_PER_SEC)
#define READ_CHUNK           (64 * 1024)

#define STDOUT_FLAGS (KILLABLE_PROCESS_FLAGS_STDOUT_PIPE | KILLABLE_PROCESS_FLAGS_STDOUT_SILENCE)
#define STDERR_FLAGS (KILLABLE_PROCESS_FLAGS_STDERR_PIPE | KILLABLE_PROCESS_FLAGS_STDERR_SILENCE | \
                      KILLABLE_PROCESS_FLAGS_STDERR_MERGE)
#define ALL_FLAGS    (STDOUT_FLAGS | STDERR_FLAGS | KILLABLE_PROCESS_FLAGS_STDIN_INHERIT)

/* Helpers {{{ */

static gboolean
flags_are_valid (KillableProcessFlags flags)
{
  guint out = flags & STDOUT_FLAGS;
  guint err = flags & STDERR_FLAGS;

  /* At most one choice per stream. */
  return (flags & ~ALL_FLAGS) == 0 &&
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

/* Sends @signum to the child's process group, only while the leader is an
 * unreaped child: until it is reaped, neither its PID nor its group ID can
 * name another process. Returns FALSE if no process could be signalled for
 * lack of permission (EPERM: the program became another user, as su and
 * sudo do). */
static gboolean
signal_group_locked (KillableProcessTask *self,
                     int                  signum)
{
  int errsv = 0;

  if (self->pid <= 0 || self->reaped)
    return TRUE;

  /* The group may not exist yet if the child has not reached its
   * setpgid(): the leader alone is then all there is. */
  if (kill (-self->pid, signum) < 0)
    {
      errsv = errno;
      if (errsv == ESRCH)
        errsv = kill (self->pid, signum) < 0 ? errno : 0;
    }

  /* A stopped process acts on SIGTERM and SIGINT only once continued. */
  if (signum != SIGKILL)
    (void) kill (-self->pid, SIGCONT);

  return errsv != EPERM;
}

/* Sends @signum now, or at the spawn if it is still to come. Returns FALSE
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
  ret = signal_group_locked (self, signum);
  g_mutex_unlock (&self->lock);

  return ret;
}

/* The worker got the child: signals asked for while it spawned are sent
 * now, in the order of the ladder. */
static void
publish_pid (KillableProcessTask *self,
             GPid                 pid)
{
  g_mutex_lock (&self->lock);

  self->pid = pid;
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
    }

  g_mutex_unlock (&self->lock);
}

/* }}} */

/* The worker {{{ */

typedef struct
{
  int         fd;      /* read end, O_NONBLOCK; -1 once closed */
  GByteArray *data;    /* (owned) (nullable) */
} Capture;

static void
capture_close (Capture *capture)
{
  if (capture->fd >= 0)
    {
      close (capture->fd);
      capture->fd = -1;
    }
}

/* Reads one chunk, or with @drain everything already in the pipe. Returns
 * FALSE at the end of the stream. */
static gboolean
capture_read (Capture  *capture,
              gboolean  drain)
{
  for (;;)
    {
      guint old_len = capture->data->len;
      gssize n;

      g_byte_array_set_size (capture->data, old_len + READ_CHUNK);
      n = read (capture->fd, capture->data->data + old_len, READ_CHUNK);
      g_byte_array_set_size (capture->data, old_len + MAX (n, 0));

      if (n > 0)
        {
          /* Back to poll() between chunks, so that one flooding stream
           * does not starve the other, nor the check of the leader. */
          if (!drain || n < READ_CHUNK)
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
  *write_fd = fds[1];

  return TRUE;
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

  request_signal (KILLABLE_PROCESS_TASK (task), SIGTERM);
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

/* Reads the capture pipes and waits for the leader to end. After its end,
 * the pipes are read until every writer closed them (the grandchildren were
 * killed) or, once a stop is requested, only what is already in them: a
 * process that left the group may keep a pipe open for ever. */
static int
supervise (KillableProcessTask *self,
           GPid                 pid,
           int                  pidfd,
           Capture             *out,
           Capture             *err)
{
  KillableTask *task = KILLABLE_TASK (self);
  int stop_fd = -1;
  gboolean have_cancel_fd = FALSE;
  gboolean check_exit = TRUE;
  gboolean exited = FALSE;
  int wait_errsv = 0;

  for (;;)
    {
      struct pollfd pfds[3];
      int n = 0, i_pid = -1, i_out = -1, i_err = -1;
      int timeout = -1;

      if (check_exit && leader_exited (pid, pidfd, &wait_errsv))
        {
          exited = TRUE;
          wait_errsv = reap_leader (self, pidfd, wait_errsv);
        }

      if (exited && out->fd < 0 && err->fd < 0)
        break;

      if (exited && killable_task_is_stop_requested (task))
        {
          if (out->fd >= 0)
            capture_read (out, TRUE);
          if (err->fd >= 0)
            capture_read (err, TRUE);
          capture_close (out);
          capture_close (err);
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
    }

  return wait_errsv;
}

static gboolean
killable_process_task_run (KillableTask  *task,
                           GError       **error)
{
  KillableProcessTask *self = KILLABLE_PROCESS_TASK (task);
  g_autofree char *program = NULL;
  g_autofree char *cwd = NULL;
  g_auto(GStrv) envp = NULL;
  KillableProcessFlags flags;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t mask;
  Capture out = { -1, NULL };
  Capture err = { -1, NULL };
  int out_w = -1, err_w = -1;
  const char *name;
  GPid pid = 0;
  int pidfd;
  int ret;
  int wait_errsv;
  gulong stop_id;
  int code, status;

  if (!ensure_program (self, error))
    return FALSE;

  name = self->argv[0];

  g_mutex_lock (&self->lock);
  program = g_strdup (self->program);
  cwd = g_strdup (self->cwd);
  envp = g_strdupv (self->envp);
  flags = self->flags;
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

  if ((flags & KILLABLE_PROCESS_FLAGS_STDOUT_PIPE) &&
      !open_capture_pipe (&out, &out_w, name, error))
    goto out;
  if ((flags & KILLABLE_PROCESS_FLAGS_STDERR_PIPE) &&
      !open_capture_pipe (&err, &err_w, name, error))
    {
      capture_close (&out);
      close (out_w);
      g_clear_pointer (&out.data, g_byte_array_unref);
      goto out;
    }

  posix_spawn_file_actions_init (&actions);
  if (!(flags & KILLABLE_PROCESS_FLAGS_STDIN_INHERIT))
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
  if (cwd != NULL)
    posix_spawn_file_actions_addchdir_np (&actions, cwd);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
  /* Not only the close-on-exec ones: nothing but stdio is inherited. */
  posix_spawn_file_actions_addclosefrom_np (&actions, STDERR_FILENO + 1);
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

  ret = posix_spawn (&pid, program, &actions, &attr, self->argv,
                     envp != NULL ? envp : environ);

  posix_spawnattr_destroy (&attr);
  posix_spawn_file_actions_destroy (&actions);
  if (out_w >= 0)
    close (out_w);
  if (err_w >= 0)
    close (err_w);

  if (ret != 0)
    {
      capture_close (&out);
      capture_close (&err);
      g_clear_pointer (&out.data, g_byte_array_unref);
      g_clear_pointer (&err.data, g_byte_array_unref);
      g_set_error (error, G_SPAWN_ERROR, spawn_error_from_errno (ret),
                   _("Could not run program “%s”: %s"), name, g_strerror (ret));
      goto out;
    }

  publish_pid (self, pid);

  pidfd = open_pidfd (pid);
  wait_errsv = supervise (self, pid, pidfd, &out, &err);
  if (pidfd >= 0)
    close (pidfd);

  /* Waits for a stop_cb running in another thread; it found the leader
   * reaped and sent nothing. */
  killable_task_remove_stop_callback (task, stop_id);
  stop_id = 0;

  g_mutex_lock (&self->lock);
  if (out.data != NULL)
    self->stdout_bytes = g_byte_array_free_to_bytes (g_steal_pointer (&out.data));
  if (err.data != NULL)
    self->stderr_bytes = g_byte_array_free_to_bytes (g_steal_pointer (&err.data));
  code = self->wait_code;
  status = self->wait_status;
  g_mutex_unlock (&self->lock);

  if (wait_errsv != 0)
    {
      g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
                   _("Could not wait for program “%s”: %s"),
                   name, g_strerror (wait_errsv));
      return FALSE;
    }

  if (code == CLD_EXITED && status == 0)
    return TRUE;

  /* Ended the way it was asked to (or took its time and was killed): the
   * cause is the stop, not the program. */
  if (!killable_task_check (task, error))
    return FALSE;

  if (code == CLD_EXITED)
    g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                 _("Program “%s” exited with status %d"), name, status);
  else
    g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                 _("Program “%s” was killed by signal %d (%s)"),
                 name, status, g_strsignal (status));

  return FALSE;

out:
  /* Nothing was started. */
  killable_task_remove_stop_callback (task, stop_id);
  return FALSE;
}

static void
killable_process_task_interrupt (KillableTask *task)
{
  KILLABLE_TASK_CLASS (killable_process_task_parent_class)->interrupt (task);

  request_signal (KILLABLE_PROCESS_TASK (task), SIGINT);
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

  task_class->run = killable_process_task_run;
  task_class->interrupt = killable_process_task_interrupt;
  task_class->kill = killable_process_task_kill;

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

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
killable_process_task_init (KillableProcessTask *self)
{
  g_mutex_init (&self->lock);

  /* Stop (SIGTERM), then kill (SIGKILL): a process has no interrupt rung
   * worth waiting for. Nobody is connected yet: no notification is seen. */
  killable_task_set_escalation_direct_kill (KILLABLE_TASK (self), TRUE);
  killable_task_set_grace_period (KILLABLE_TASK (self), DEFAULT_GRACE_PERIOD);
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
 * Gets the process ID of the program, which is also the ID of its process
 * group, while it runs. It is 0 before the program was started (the worker
 * publishes it right after the spawn, when the program may already have
 * run for a moment) and once it was reaped, when the ID may already belong
 * to another process.
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

/* }}} */
