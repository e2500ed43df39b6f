/* killable-reaper.c: the helper that holds everything a process task starts
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Owns: a program of its own (one thread, no lock), started by
 * killable-process-task.c (Called by), linked with nothing of the library.
 *
 * Installed in libexecdir and run by KillableProcessTask in the REAPER and
 * CGROUP containment modes, never by users:
 *
 *   killable-reaper GRACE_USEC CGROUP_DIR|- RLIMIT_AS PROGRAM ARGV0 [ARG...]
 *
 * with the control pipe on fd 3 (commands from the library, one byte each)
 * and the status pipe on fd 4 (lines to the library). It is a child
 * subreaper: every process the program starts, and every orphan of those,
 * stays below it however it daemonizes (setsid(), setpgid(), double fork).
 * With a cgroup directory the program also starts in that cgroup (joined by
 * the child before its exec), and the cgroup's kill and freeze files act on
 * the whole tree at once.
 *
 * Commands: 'T' SIGTERM to everything, 'I' SIGINT to everything, 'K' kill
 * everything, 'S' pause (freeze, or SIGSTOP), 'C' resume. The end of the
 * control pipe (the owner process died, even by SIGKILL, and the kernel
 * closed its end) and the parent-death signal (SIGHUP) kill everything.
 *
 * Status lines: "P <pid>" once the program runs, "E <errno>" if it could
 * not be started, "X <si_code> <si_status>" when the program ended. When the
 * program ends while processes it started remain, they are stopped like the
 * task: SIGTERM, then SIGKILL one grace period later. The helper exits once
 * nothing it holds is left (and the cgroup is empty), after removing the
 * cgroup directory: its exit is the end of the task.
 *
 * Single-threaded: fork() is safe here, and everything waits in one poll().
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CTL_FD    3
#define STATUS_FD 4

static pid_t self_pid;
static const char *cgroup_dir;   /* NULL in REAPER mode */
static int cg_kill_fd = -1;
static int cg_freeze_fd = -1;
static int cg_events_fd = -1;
static int cg_procs_fd = -1;

static void
status_line (char kind, long a, long b)
{
  char buf[64];
  int n = kind == 'X' ? snprintf (buf, sizeof buf, "X %ld %ld\n", a, b)
                      : snprintf (buf, sizeof buf, "%c %ld\n", kind, a);

  /* The library may be gone: EPIPE is ignored (SIGPIPE is). */
  if (n > 0)
    (void) !write (STATUS_FD, buf, (size_t) n);
}

static long long
now_usec (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
write_file (int fd, const char *text)
{
  ssize_t n;

  if (fd < 0)
    return -1;
  do
    n = pwrite (fd, text, strlen (text), 0);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

/* Whether the cgroup still holds a process ("populated 1"). */
static int
cgroup_populated (void)
{
  char buf[512];
  ssize_t n;
  const char *p;

  if (cg_events_fd < 0)
    return 0;
  n = pread (cg_events_fd, buf, sizeof buf - 1, 0);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  p = strstr (buf, "populated ");
  return p != NULL && p[strlen ("populated ")] == '1';
}

/* The processes below this one: the cgroup's members, or, in REAPER mode,
 * the descendants found by walking the parent links in /proc. A process
 * forking meanwhile is caught by the next call: the callers repeat until
 * nothing is left. */
typedef struct
{
  pid_t *pids;
  size_t len, cap;
} PidList;

static void
pid_list_add (PidList *list, pid_t pid)
{
  if (list->len == list->cap)
    {
      size_t cap = list->cap ? list->cap * 2 : 64;
      pid_t *pids = realloc (list->pids, cap * sizeof *pids);

      if (pids == NULL)
        return;
      list->pids = pids;
      list->cap = cap;
    }
  list->pids[list->len++] = pid;
}

static void
collect_cgroup (PidList *out)
{
  char path[4096];
  FILE *f;
  long pid;

  snprintf (path, sizeof path, "%s/cgroup.procs", cgroup_dir);
  f = fopen (path, "re");
  if (f == NULL)
    return;
  while (fscanf (f, "%ld", &pid) == 1)
    if (pid != self_pid)
      pid_list_add (out, (pid_t) pid);
  fclose (f);
}

static void
collect_descendants (PidList *out)
{
  PidList all = { 0 }, parents = { 0 };
  DIR *dir;
  struct dirent *de;
  size_t i, j;
  int grew;

  dir = opendir ("/proc");
  if (dir == NULL)
    return;
  while ((de = readdir (dir)) != NULL)
    {
      char path[300], buf[512], *p;
      long ppid;
      ssize_t n;
      int fd;

      if (de->d_name[0] < '1' || de->d_name[0] > '9')
        continue;
      snprintf (path, sizeof path, "/proc/%s/stat", de->d_name);
      fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        continue;
      n = read (fd, buf, sizeof buf - 1);
      close (fd);
      if (n <= 0)
        continue;
      buf[n] = '\0';
      /* "pid (comm) state ppid ...": comm may hold anything but the last
       * ')' ends it. */
      p = strrchr (buf, ')');
      if (p == NULL || sscanf (p + 1, " %*c %ld", &ppid) != 1)
        continue;
      pid_list_add (&all, (pid_t) atol (de->d_name));
      pid_list_add (&parents, (pid_t) ppid);
    }
  closedir (dir);

  /* Descendants of self_pid: grow the set until it is stable. */
  pid_list_add (out, self_pid);
  do
    {
      grew = 0;
      for (i = 0; i < all.len; i++)
        {
          int known = 0, parent_in = 0;

          for (j = 0; j < out->len; j++)
            {
              if (out->pids[j] == all.pids[i])
                known = 1;
              if (out->pids[j] == parents.pids[i])
                parent_in = 1;
            }
          if (!known && parent_in)
            {
              pid_list_add (out, all.pids[i]);
              grew = 1;
            }
        }
    }
  while (grew);

  /* Drop self_pid itself. */
  out->pids[0] = out->pids[--out->len];

  free (all.pids);
  free (parents.pids);
}

static size_t
signal_all (int signum)
{
  PidList list = { 0 };
  size_t i, n;

  if (cgroup_dir != NULL)
    collect_cgroup (&list);
  else
    collect_descendants (&list);

  for (i = 0; i < list.len; i++)
    {
      (void) kill (list.pids[i], signum);
      /* A stopped process acts on these only once continued. */
      if (signum == SIGTERM || signum == SIGINT)
        (void) kill (list.pids[i], SIGCONT);
    }
  n = list.len;
  free (list.pids);
  return n;
}

static int paused;

static void
do_pause (int pause)
{
  if (pause == paused)
    return;
  paused = pause;

  if (cgroup_dir != NULL && write_file (cg_freeze_fd, pause ? "1" : "0") == 0)
    return;

  /* Twice: a process forked while the first round ran is stopped by the
   * second (a stopped process forks no more). */
  signal_all (pause ? SIGSTOP : SIGCONT);
  if (pause)
    signal_all (SIGSTOP);
}

static int killing;
static int stop_requested;   /* everything already had its SIGTERM or SIGINT */

static void
kill_all (void)
{
  killing = 1;
  if (paused && cgroup_dir != NULL)
    do_pause (0);
  if (cgroup_dir != NULL && write_file (cg_kill_fd, "1") == 0)
    return;
  signal_all (SIGKILL);
}

int
main (int argc, char **argv)
{
  sigset_t mask, empty;
  long long grace, deadline = -1;
  rlim_t rlimit_as;
  int sfd, err_pipe[2];
  pid_t program;
  int program_done = 0, ctl_open = 1, no_children = 0;
  int saved_errno = 0;
  ssize_t n;

  if (argc < 6)
    {
      fprintf (stderr, "%s: this helper of libkillable is not meant to be run by hand\n", argv[0]);
      return 2;
    }

  self_pid = getpid ();
  grace = atoll (argv[1]);
  cgroup_dir = strcmp (argv[2], "-") == 0 ? NULL : argv[2];
  rlimit_as = (rlim_t) strtoull (argv[3], NULL, 10);

  (void) fcntl (CTL_FD, F_SETFD, FD_CLOEXEC);
  (void) fcntl (STATUS_FD, F_SETFD, FD_CLOEXEC);
  signal (SIGPIPE, SIG_IGN);

  sigemptyset (&empty);
  sigemptyset (&mask);
  sigaddset (&mask, SIGCHLD);
  sigaddset (&mask, SIGTERM);
  sigaddset (&mask, SIGINT);
  sigaddset (&mask, SIGHUP);
  sigaddset (&mask, SIGQUIT);
  sigprocmask (SIG_BLOCK, &mask, NULL);
  sfd = signalfd (-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  /* Orphans of the subtree come here; the owner's death comes as SIGHUP
   * (for the thread that started us) and as the end of the control pipe
   * (for the whole owner process). */
  if (prctl (PR_SET_CHILD_SUBREAPER, 1) < 0 || sfd < 0)
    {
      status_line ('E', errno, 0);
      return 1;
    }
  (void) prctl (PR_SET_PDEATHSIG, SIGHUP);

  if (cgroup_dir != NULL)
    {
      char path[4096];

      snprintf (path, sizeof path, "%s/cgroup.procs", cgroup_dir);
      cg_procs_fd = open (path, O_WRONLY | O_CLOEXEC);
      snprintf (path, sizeof path, "%s/cgroup.kill", cgroup_dir);
      cg_kill_fd = open (path, O_WRONLY | O_CLOEXEC);
      snprintf (path, sizeof path, "%s/cgroup.freeze", cgroup_dir);
      cg_freeze_fd = open (path, O_WRONLY | O_CLOEXEC);
      snprintf (path, sizeof path, "%s/cgroup.events", cgroup_dir);
      cg_events_fd = open (path, O_RDONLY | O_CLOEXEC);
      if (cg_procs_fd < 0 || cg_events_fd < 0)
        {
          status_line ('E', errno, 0);
          return 1;
        }
    }

  if (pipe2 (err_pipe, O_CLOEXEC) < 0)
    {
      status_line ('E', errno, 0);
      return 1;
    }

  program = fork ();
  if (program < 0)
    {
      status_line ('E', errno, 0);
      return 1;
    }
  if (program == 0)
    {
      int e;

      /* Into the cgroup before the program's first instruction. */
      if (cg_procs_fd >= 0 && write_file (cg_procs_fd, "0") < 0)
        goto child_failed;
      if (rlimit_as > 0)
        {
          struct rlimit rl = { rlimit_as, rlimit_as };

          if (setrlimit (RLIMIT_AS, &rl) < 0)
            goto child_failed;
        }
      signal (SIGPIPE, SIG_DFL);
      sigprocmask (SIG_SETMASK, &empty, NULL);
      execv (argv[4], argv + 5);
    child_failed:
      e = errno;
      (void) !write (err_pipe[1], &e, sizeof e);
      _exit (127);
    }

  close (err_pipe[1]);
  do
    n = read (err_pipe[0], &saved_errno, sizeof saved_errno);
  while (n < 0 && errno == EINTR);
  close (err_pipe[0]);
  if (n == sizeof saved_errno)
    {
      int status;

      while (waitpid (program, &status, 0) < 0 && errno == EINTR)
        ;
      status_line ('E', saved_errno, 0);
      if (cgroup_dir != NULL)
        (void) rmdir (cgroup_dir);
      return 1;
    }
  status_line ('P', program, 0);

  /* Hold none of the program's streams: a pipe's end of file must mean
   * that the processes below are done with it. */
  {
    int null_fd = open ("/dev/null", O_RDWR | O_CLOEXEC);

    if (null_fd >= 0)
      {
        dup2 (null_fd, 0);
        dup2 (null_fd, 1);
        dup2 (null_fd, 2);
        close (null_fd);
      }
  }

  for (;;)
    {
      struct pollfd pfds[3];
      int nfds = 0, timeout = -1;
      struct signalfd_siginfo si;

      /* Reap what ended. */
      for (;;)
        {
          siginfo_t info;

          memset (&info, 0, sizeof info);
          if (waitid (P_ALL, 0, &info, WEXITED | WNOHANG) < 0)
            {
              if (errno == EINTR)
                continue;
              no_children = errno == ECHILD;
              break;
            }
          if (info.si_pid == 0)
            {
              no_children = 0;
              break;
            }
          if (info.si_pid == program && !program_done)
            {
              program_done = 1;
              status_line ('X', info.si_code, info.si_status);
            }
        }

      if (program_done && no_children && !cgroup_populated ())
        break;

      /* The program ended and left processes behind: stop them like the
       * task, systemd's KillMode=control-group. */
      if (program_done && deadline < 0 && !killing)
        {
          if (paused)
            do_pause (0);
          /* After a stop, what ignored its signal gets no second one. */
          if (stop_requested)
            kill_all ();
          else
            {
              signal_all (SIGTERM);
              deadline = now_usec () + grace;
            }
        }
      if (deadline >= 0 && !killing && now_usec () >= deadline)
        kill_all ();

      if (killing)
        {
          /* Processes forked while the last round ran, or orphans not yet
           * re-parented here, are caught by the next one. */
          kill_all ();
          timeout = 10;
        }
      else if (deadline >= 0)
        timeout = (int) ((deadline - now_usec ()) / 1000) + 1;
      else if (program_done)
        timeout = 50;   /* re-parented orphans come without SIGCHLD */

      pfds[nfds++] = (struct pollfd) { .fd = sfd, .events = POLLIN };
      if (ctl_open)
        pfds[nfds++] = (struct pollfd) { .fd = CTL_FD, .events = POLLIN };
      if (cg_events_fd >= 0)
        pfds[nfds++] = (struct pollfd) { .fd = cg_events_fd, .events = POLLPRI };

      if (poll (pfds, nfds, timeout) < 0 && errno != EINTR)
        timeout = 10;

      while (read (sfd, &si, sizeof si) == sizeof si)
        {
          switch (si.ssi_signo)
            {
            case SIGTERM:
            case SIGINT:
            case SIGQUIT:
              stop_requested = 1;
              if (paused)
                do_pause (0);
              signal_all ((int) si.ssi_signo);
              break;
            case SIGHUP:
              /* The thread that started us is gone. */
              kill_all ();
              break;
            default:
              break;
            }
        }

      if (ctl_open && (pfds[1].revents & (POLLIN | POLLHUP | POLLERR)))
        {
          char cmds[64];

          n = read (CTL_FD, cmds, sizeof cmds);
          if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            {
              /* The owner process is gone: nothing it started survives. */
              ctl_open = 0;
              kill_all ();
            }
          for (ssize_t i = 0; i < n; i++)
            switch (cmds[i])
              {
              case 'T':
                stop_requested = 1;
                if (paused)
                  do_pause (0);
                signal_all (SIGTERM);
                break;
              case 'I':
                stop_requested = 1;
                if (paused)
                  do_pause (0);
                signal_all (SIGINT);
                break;
              case 'K':
                kill_all ();
                break;
              case 'S':
                do_pause (1);
                break;
              case 'C':
                do_pause (0);
                break;
              default:
                break;
              }
        }
    }

  if (cgroup_dir != NULL)
    (void) rmdir (cgroup_dir);
  return 0;
}
