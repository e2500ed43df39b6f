/* test-containment.c: process tasks contain everything they start
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The REAPER mode is always tested; the CGROUP mode where a writable
 * cgroup v2 directory exists (root on the CI machines), otherwise skipped
 * with the reason. The programs are this test binary itself, run with a
 * role argument (--escapees, --owner, --spin, --auto-report, --alloc).
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "killable.h"
#include "killable-cgroup-private.h"

#include "test-core-util.h"

static char *self_exe;
static GThread *main_thread;

/* Roles of this binary as a program {{{ */

static void
report_pid (int fd)
{
  int pid = getpid ();

  (void) !write (fd, &pid, sizeof pid);
  close (fd);
}

/* Starts three escapees: one in a process group of its own that ignores
 * SIGTERM, one double-forked into a session of its own, one in a session
 * of its own; all keep stdout. Writes "A B C SELF\n" to @fifo, then, if
 * @exit_after, exits once a byte comes on stdin, else waits for ever. */
static int
run_escapees (const char *fifo,
              gboolean    exit_after)
{
  int p[2], pids[3], fd, middle;
  char line[128];

  if (pipe (p) < 0)
    return 100;

  if (fork () == 0)
    {
      close (p[0]);
      setpgid (0, 0);
      signal (SIGTERM, SIG_IGN);
      report_pid (p[1]);
      for (;;)
        pause ();
    }
  middle = fork ();
  if (middle == 0)
    {
      if (fork () == 0)
        {
          close (p[0]);
          setsid ();
          report_pid (p[1]);
          for (;;)
            pause ();
        }
      _exit (0);
    }
  if (fork () == 0)
    {
      close (p[0]);
      setsid ();
      report_pid (p[1]);
      for (;;)
        pause ();
    }
  close (p[1]);
  for (int i = 0; i < 3; i++)
    if (read (p[0], &pids[i], sizeof pids[i]) != sizeof pids[i])
      return 101;
  waitpid (middle, NULL, 0);

  fd = open (fifo, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return 102;
  snprintf (line, sizeof line, "%d %d %d %d\n", pids[0], pids[1], pids[2], (int) getpid ());
  (void) !write (fd, line, strlen (line));
  close (fd);

  if (exit_after)
    {
      char go;

      return read (STDIN_FILENO, &go, 1) == 1 ? 0 : 103;
    }
  for (;;)
    pause ();
}

/* Burns @msec of CPU time (time spent frozen does not count), then exits 0.
 * Says "ready" on stdout first. */
static int
run_spin (int msec)
{
  struct timespec ts;

  printf ("ready\n");
  fflush (stdout);
  for (;;)
    {
      clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
      if (ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= msec)
        return 0;
    }
}

/* Allocates and touches @bytes; exits 1 if the allocation fails. */
static int
run_alloc (const char *bytes)
{
  gsize n = (gsize) g_ascii_strtoull (bytes, NULL, 10);
  char *p = malloc (n);

  if (p == NULL)
    return 1;
  memset (p, 1, n);
  free (p);
  return 0;
}

/* }}} */

/* Helpers {{{ */

/* Reads one line from @fifo (bounded: a program that never writes it fails
 * the test instead of hanging it). */
static char *
fifo_read_line (TestFifo *fifo)
{
  return test_fifo_read_line (fifo, TEST_LIMIT_USEC (30 * G_USEC_PER_SEC));
}

static int
pidfd_open_checked (int pid)
{
  int fd = (int) syscall (SYS_pidfd_open, pid, 0);

  g_assert_cmpint (fd, >=, 0);
  return fd;
}

static gboolean
pidfd_exited (int pidfd)
{
  struct pollfd pfd = { pidfd, POLLIN, 0 };

  return poll (&pfd, 1, 0) == 1;
}

static guint
count_fds (void)
{
  GDir *dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  g_dir_close (dir);

  return n;
}

/* Our children, zombies included. */
static guint
count_children (void)
{
  GDir *dir = g_dir_open ("/proc", 0, NULL);
  const char *name;
  guint n = 0;

  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *contents = NULL;
      const char *p;
      int ppid;

      if (!g_ascii_isdigit (name[0]))
        continue;
      path = g_strdup_printf ("/proc/%s/stat", name);
      if (!g_file_get_contents (path, &contents, NULL, NULL))
        continue;
      p = strrchr (contents, ')');
      if (p != NULL && sscanf (p + 1, " %*c %d", &ppid) == 1 && ppid == getpid ())
        n++;
    }
  g_dir_close (dir);

  return n;
}

/* Leaf cgroups of process @pid under the default base. */
static guint
count_leaves_of (const char *base,
                 int         pid)
{
  g_autofree char *prefix = g_strdup_printf ("killable-%d-", pid);
  GDir *dir;
  const char *name;
  guint n = 0;

  if (base == NULL)
    return 0;
  dir = g_dir_open (base, 0, NULL);
  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (name, prefix))
      n++;
  g_dir_close (dir);

  return n;
}

static guint
count_leaves (const char *base)
{
  return count_leaves_of (base, (int) getpid ());
}

/* The cgroup base, or NULL after marking the test skipped with why. */
static char *
cgroup_base_or_skip (void)
{
  g_autoptr(GError) error = NULL;
  char *base = killable_cgroup_find_base (NULL, &error);

  if (base == NULL)
    g_test_skip_printf ("no writable cgroup v2 directory: %s", error->message);
  return base;
}

static KillableProcessTask *
new_self_task (KillableContainment  mode,
               const char          *role,
               const char          *arg1,
               const char          *arg2)
{
  const char *argv[] = { self_exe, role, arg1, arg2, NULL };
  g_autoptr(GError) error = NULL;
  KillableProcessTask *task = killable_process_task_new (argv, &error);

  g_assert_no_error (error);
  killable_process_task_set_containment (task, mode);
  return task;
}

static void
start (KillableProcessTask *task)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (killable_task_start (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
}

/* The program may run (and talk) a moment before the worker learns its
 * ID from the helper: a bounded wait for that. */
static int
wait_for_pid (KillableProcessTask *task)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  int pid;

  while ((pid = killable_process_task_get_pid (task)) == 0)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (1000);
    }

  return pid;
}

/* }}} */

/* Escapees: stop, kill, program exit {{{ */

typedef enum { END_STOP, END_KILL, END_EXIT } EndKind;

typedef struct
{
  KillableContainment mode;
  EndKind             end;
} EscapeCase;

static void
test_escapees (gconstpointer data)
{
  const EscapeCase *c = data;
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;
  g_autofree char *line = NULL;
  g_auto(GStrv) pids = NULL;
  int pidfds[4];
  TestFifo fifo;

  if (c->mode == KILLABLE_CONTAINMENT_CGROUP && (base = cgroup_base_or_skip ()) == NULL)
    return;

  test_fifo_open (&fifo);
  task = new_self_task (c->mode, "--escapees", fifo.path, c->end == END_EXIT ? "exit" : "stay");
  /* The escapees keep the captured stdout: the end must not wait for it.
   * The program exits (END_EXIT) when told to on stdin. */
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDIN_PIPE);
  /* After a stop, what ignored SIGTERM is killed at once, without waiting
   * for the grace period (an hour: only that can end the task STOPPED);
   * after the program's exit, the leftovers get one (200 ms). */
  killable_task_set_grace_period (KILLABLE_TASK (task),
                                  c->end == END_EXIT ? 200 * 1000 : 3600 * G_TIME_SPAN_SECOND);
  start (task);

  line = fifo_read_line (&fifo);
  pids = g_strsplit (g_strstrip (line), " ", -1);
  g_assert_cmpuint (g_strv_length (pids), ==, 4);
  for (int i = 0; i < 4; i++)
    pidfds[i] = pidfd_open_checked (atoi (pids[i]));
  /* The program is the one the task reports. */
  g_assert_cmpint (wait_for_pid (task), ==, atoi (pids[3]));

  if (c->end == END_STOP)
    killable_task_stop (KILLABLE_TASK (task));
  else if (c->end == END_KILL)
    killable_task_kill (KILLABLE_TASK (task));
  else
    g_assert_true (g_output_stream_write_all (killable_process_task_get_stdin_pipe (task),
                                              "go", 2, NULL, NULL, NULL));

  (void) killable_task_join (KILLABLE_TASK (task), &error);
  switch (c->end)
    {
    case END_STOP:
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
      break;
    case END_KILL:
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
      break;
    case END_EXIT:
      /* The outcome is the program's own, not its leftovers'. */
      g_assert_no_error (error);
      g_assert_cmpint (killable_process_task_get_exit_status (task), ==, 0);
      break;
    }

  /* Completion is total: at the end, nothing is left, not even a zombie
   * (no waiting here: they are gone already). */
  for (int i = 0; i < 4; i++)
    {
      g_assert_true (pidfd_exited (pidfds[i]));
      close (pidfds[i]);
    }
  g_assert_cmpint (killable_process_task_get_containment (task), ==, c->mode);
  g_assert_cmpuint (count_leaves (base), ==, 0);

  test_fifo_close (&fifo);
}

/* The contrast that shows the test can fail: a process group does not hold
 * a double-forked daemon. */
static void
test_group_lets_escapees_go (void)
{
  g_autoptr(KillableProcessTask) task = NULL;
  g_autofree char *line = NULL;
  g_auto(GStrv) pids = NULL;
  guint survivors = 0;
  TestFifo fifo;

  test_fifo_open (&fifo);
  task = new_self_task (KILLABLE_CONTAINMENT_GROUP, "--escapees", fifo.path, "stay");
  start (task);
  line = fifo_read_line (&fifo);
  pids = g_strsplit (g_strstrip (line), " ", -1);

  killable_task_kill (KILLABLE_TASK (task));
  (void) killable_task_join (KILLABLE_TASK (task), NULL);

  for (int i = 0; i < 3; i++)
    {
      int fd = pidfd_open_checked (atoi (pids[i]));

      if (!pidfd_exited (fd))
        survivors++;
      kill (atoi (pids[i]), SIGKILL);
      close (fd);
    }
  g_assert_cmpuint (survivors, ==, 3);

  test_fifo_close (&fifo);
}

/* }}} */

/* Dies with its owner {{{ */

static int
run_owner (const char *mode_nick)
{
  GEnumClass *klass = g_type_class_ref (KILLABLE_TYPE_CONTAINMENT);
  GEnumValue *value = g_enum_get_value_by_nick (klass, mode_nick);
  g_autoptr(KillableProcessTask) task = NULL;
  g_autofree char *line = NULL;
  TestFifo fifo;

  test_fifo_open (&fifo);
  task = new_self_task (value->value, "--escapees", fifo.path, "stay");
  start (task);
  line = fifo_read_line (&fifo);
  test_fifo_close (&fifo);

  /* Still running when the test kills us. */
  printf ("%s\n", line);
  fflush (stdout);
  while (!killable_task_is_finished (KILLABLE_TASK (task)))
    pause ();
  return 1;
}

static void
test_dies_with_owner (gconstpointer data)
{
  KillableContainment mode = GPOINTER_TO_INT (data);
  GEnumClass *klass = g_type_class_ref (KILLABLE_TYPE_CONTAINMENT);
  const char *argv[] = { self_exe, "--owner", g_enum_get_value (klass, mode)->value_nick, NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;
  g_auto(GStrv) pids = NULL;
  char buf[256] = { 0 };
  int pidfds[4];
  GPid owner;
  int out_fd, status, alive;
  gsize len = 0;
  gint64 deadline;

  g_type_class_unref (klass);
  if (mode == KILLABLE_CONTAINMENT_CGROUP && (base = cgroup_base_or_skip ()) == NULL)
    return;

  g_assert_true (g_spawn_async_with_pipes (NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                           NULL, NULL, &owner, NULL, &out_fd, NULL, &error));
  g_assert_no_error (error);
  while (memchr (buf, '\n', len) == NULL)
    {
      ssize_t n = read (out_fd, buf + len, sizeof buf - 1 - len);

      g_assert_cmpint (n, >, 0);
      len += (gsize) n;
    }
  close (out_fd);
  pids = g_strsplit (g_strstrip (buf), " ", -1);
  g_assert_cmpuint (g_strv_length (pids), ==, 4);
  for (int i = 0; i < 4; i++)
    pidfds[i] = pidfd_open_checked (atoi (pids[i]));

  /* No chance to clean up. */
  kill (owner, SIGKILL);
  g_assert_cmpint (waitpid (owner, &status, 0), ==, owner);
  g_assert_true (WIFSIGNALED (status));

  /* The assertion is that this comes true within 1 s. */
  deadline = g_get_monotonic_time () + G_USEC_PER_SEC;
  do
    {
      struct pollfd pfds[4];

      alive = 0;
      for (int i = 0; i < 4; i++)
        if (!pidfd_exited (pidfds[i]))
          alive++;
      if (alive == 0)
        break;
      for (int i = 0; i < 4; i++)
        pfds[i] = (struct pollfd) { pidfds[i], POLLIN, 0 };
      (void) poll (pfds, 4, 10);
    }
  while (g_get_monotonic_time () < deadline);

  for (int i = 0; i < 4; i++)
    {
      if (alive != 0)
        kill (atoi (pids[i]), SIGKILL);
      close (pidfds[i]);
    }
  g_assert_cmpint (alive, ==, 0);

  /* The helper removes the cgroup on its way out (bounded wait: it exits
   * right after the last process it held). */
  deadline = g_get_monotonic_time () + G_USEC_PER_SEC;
  while (count_leaves_of (base, owner) != 0)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (1000);
    }
}

/* }}} */

/* Start/kill cycles {{{ */

static void
test_cycles (gconstpointer data)
{
  KillableContainment mode = GPOINTER_TO_INT (data);
  g_autofree char *base = NULL;
  /* A process group cannot hold the setsid one (see
   * test_group_lets_escapees_go). */
  const char *argv[] = { "sh", "-c",
                         mode == KILLABLE_CONTAINMENT_GROUP ?
                           "sleep 1000 & exec sleep 1000" :
                           "sleep 1000 & setsid sleep 1000 & exec sleep 1000",
                         NULL };
  guint fds_before = 0;

  if (mode == KILLABLE_CONTAINMENT_CGROUP && (base = cgroup_base_or_skip ()) == NULL)
    return;

  /* Counted after a first cycle, once its task is finalized: GLib makes
   * some of its own descriptors (the worker threads' wakeups) on first use,
   * and a task holds its stop state's wake-up fd until it is finalized,
   * which can be a moment after the join. */
  for (int i = -1; i < 200; i++)
    {
      KillableProcessTask *task = killable_process_task_new (argv, NULL);
      g_autoptr(GError) error = NULL;

      killable_process_task_set_containment (task, mode);
      killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
      start (task);
      /* Every other one killed at once (racing the spawn), the others
       * once the program runs. */
      if (i % 2 == 1)
        while (killable_process_task_get_pid (task) == 0 && !killable_task_is_finished (KILLABLE_TASK (task)))
          g_thread_yield ();
      killable_task_kill (KILLABLE_TASK (task));
      g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
      if (i == -1)
        {
          test_unref_until_finalized (task);
          fds_before = count_fds ();
        }
      else
        g_object_unref (task);
    }

  /* No descriptor left behind by the cycles: the count does not grow. Not
   * "equal": a descriptor still open when the count before was taken (seen
   * under ThreadSanitizer, 6 before and 5 after) may be gone since. */
  TEST_POLL_ITERATING_UNTIL (count_fds () <= fds_before);
  g_assert_cmpuint (count_children (), ==, 0);
  g_assert_cmpuint (count_fds (), <=, fds_before);
  g_assert_cmpuint (count_leaves (base), ==, 0);
}

/* }}} */

/* Pause {{{ */

static void
read_ticks (int pid, unsigned long *ticks, char *state)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree char *contents = NULL;
  unsigned long utime, stime;
  const char *p;

  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  p = strrchr (contents, ')');
  g_assert_cmpint (sscanf (p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                           state, &utime, &stime), ==, 3);
  *ticks = utime + stime;
}

/* The program's cgroup.events, from /proc/PID/cgroup. */
static char *
events_path (int pid, const char *base)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/cgroup", pid);
  g_autofree char *contents = NULL;
  g_autofree char *leaf = NULL;
  const char *line;

  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  line = strstr (contents, "0::");
  g_assert_nonnull (line);
  leaf = g_path_get_basename (g_strstrip ((char *) line + 3));
  g_assert_true (g_str_has_prefix (leaf, "killable-"));
  return g_build_filename (base, leaf, "cgroup.events", NULL);
}

static gboolean
frozen (int pid, const char *events)
{
  char state;
  unsigned long ticks;

  if (events != NULL)
    {
      g_autofree char *contents = NULL;

      g_assert_true (g_file_get_contents (events, &contents, NULL, NULL));
      return strstr (contents, "frozen 1") != NULL;
    }

  read_ticks (pid, &ticks, &state);
  return state == 'T';
}

static void
test_pause (gconstpointer data)
{
  KillableContainment mode = GPOINTER_TO_INT (data);
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;
  g_autofree char *events = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  unsigned long before, after, resumed;
  gint64 deadline;
  char state;
  int pid;

  if (mode == KILLABLE_CONTAINMENT_CGROUP && (base = cgroup_base_or_skip ()) == NULL)
    return;

  /* 400 ms of CPU: long enough to be caught running, short enough to end. */
  task = new_self_task (mode, "--spin", "400", NULL);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  out = g_data_input_stream_new (killable_process_task_get_stdout_pipe (task));
  start (task);
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "ready");
  pid = wait_for_pid (task);
  if (mode == KILLABLE_CONTAINMENT_CGROUP)
    events = events_path (pid, base);

  g_assert_false (killable_task_is_paused (KILLABLE_TASK (task)));
  killable_task_pause (KILLABLE_TASK (task));
  g_assert_true (killable_task_is_paused (KILLABLE_TASK (task)));

  /* Once the freeze is confirmed... */
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (!frozen (pid, events))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (1000);
    }

  /* ...1 s paused costs at most 2 clock ticks. */
  read_ticks (pid, &before, &state);
  g_usleep (G_USEC_PER_SEC);
  read_ticks (pid, &after, &state);
  g_test_message ("%lu ticks while paused", after - before);
  g_assert_cmpuint (after - before, <=, 2);

  killable_task_resume (KILLABLE_TASK (task));
  g_assert_false (killable_task_is_paused (KILLABLE_TASK (task)));
  /* It runs again (bounded wait for the first tick)... */
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  do
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (1000);
      read_ticks (pid, &resumed, &state);
    }
  while (resumed <= after);

  /* ...and finishes its work. */
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
}

static void
count_notify (GObject    *object,
              GParamSpec *pspec,
              gpointer    user_data)
{
  /* On the owner's thread, never the timer's or a worker's. */
  g_assert_true (g_thread_self () == main_thread);
  (*(int *) user_data)++;
}

/* A stop while paused thaws first, so the program gets its SIGTERM; the
 * lifted pause is notified on the owner's context. */
static void
test_stop_while_paused (gconstpointer data)
{
  KillableContainment mode = GPOINTER_TO_INT (data);
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  int notified = 0;

  if (mode == KILLABLE_CONTAINMENT_CGROUP && (base = cgroup_base_or_skip ()) == NULL)
    return;

  task = new_self_task (mode, "--spin", "100000", NULL);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  /* Only SIGTERM can end it within the test's time. */
  killable_task_set_grace_period (KILLABLE_TASK (task), G_MAXINT64 / 2);
  out = g_data_input_stream_new (killable_process_task_get_stdout_pipe (task));
  start (task);
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_cmpstr (line, ==, "ready");

  g_signal_connect (task, "notify::paused", G_CALLBACK (count_notify), &notified);
  killable_task_pause (KILLABLE_TASK (task));
  g_assert_cmpint (notified, ==, 1);
  killable_task_stop (KILLABLE_TASK (task));
  g_assert_false (killable_task_is_paused (KILLABLE_TASK (task)));
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGTERM);
  while (notified < 2)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (notified, ==, 2);
}

/* }}} */

/* Containment property, exit errors, streams, limits {{{ */

static void
containment_notified (GObject    *object,
                      GParamSpec *pspec,
                      gpointer    user_data)
{
  (*(int *) user_data)++;
}

static void
test_containment_property (void)
{
  const char *argv[] = { "true", NULL };
  g_autoptr(KillableProcessTask) task = killable_process_task_new (argv, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) cg_error = NULL;
  g_autofree char *base = killable_cgroup_find_base (NULL, &cg_error);
  int notified = 0;

  g_assert_cmpint (killable_process_task_get_containment (task), ==, KILLABLE_CONTAINMENT_AUTO);
  g_signal_connect (task, "notify::containment", G_CALLBACK (containment_notified), &notified);
  start (task);
  /* The strongest one available. */
  g_assert_cmpint (killable_process_task_get_containment (task), ==,
                   base != NULL ? KILLABLE_CONTAINMENT_CGROUP : KILLABLE_CONTAINMENT_REAPER);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  /* Notified on the owner's context. */
  while (notified == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpint (notified, ==, 1);
}

static void
test_exit_error (gconstpointer data)
{
  KillableContainment mode = GPOINTER_TO_INT (data);
  const char *argv[] = { "sh", "-c", "exit 3", NULL };
  g_autoptr(KillableProcessTask) task = killable_process_task_new (argv, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;

  if (mode == KILLABLE_CONTAINMENT_CGROUP && (base = cgroup_base_or_skip ()) == NULL)
    return;

  killable_process_task_set_containment (task, mode);
  start (task);
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, G_SPAWN_EXIT_ERROR, 3);
  g_assert_cmpstr (error->message, ==, "Program “sh” exited with status 3");
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_FAILED);
}

/* The helper's exec fails: the error is the spawn's, as without it. */
static void
test_exec_error (void)
{
  g_autofree char *dir = g_dir_make_tmp ("killable-noexec-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "garbage", NULL);
  const char *argv[] = { path, NULL };
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (path, "\x01\x02\x03\x04", 4, NULL));
  g_assert_cmpint (chmod (path, 0755), ==, 0);
  task = killable_process_task_new (argv, NULL);
  killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_REAPER);
  start (task);
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOEXEC);
  g_unlink (path);
  g_rmdir (dir);
}

static void
communicated (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static void
test_communicate (void)
{
  const char *argv[] = { "cat", NULL };
  g_autoptr(KillableProcessTask) task = killable_process_task_new (argv, NULL);
  g_autoptr(GBytes) input = g_bytes_new_static ("hello\nworld\n", 12);
  g_autoptr(GBytes) output = NULL;
  g_autoptr(GBytes) errors = NULL;
  g_autoptr(GError) error = NULL;
  GAsyncResult *result = NULL;

  killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_REAPER);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDIN_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  killable_process_task_communicate_async (task, input, NULL, communicated, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);

  g_assert_true (killable_process_task_communicate_finish (task, result, &output, &errors, &error));
  g_assert_no_error (error);
  g_assert_nonnull (output);
  g_assert_cmpmem (g_bytes_get_data (output, NULL), g_bytes_get_size (output), "hello\nworld\n", 12);
  g_assert_null (errors);
  g_object_unref (result);
}

/* Read while the program runs: each line arrives before the next is
 * written (the program waits for our answer on stdin). */
static void
test_streams_while_running (void)
{
  const char *argv[] = { "sh", "-c", "for i in 1 2 3; do echo $i; read ack || exit 9; done", NULL };
  g_autoptr(KillableProcessTask) task = killable_process_task_new (argv, NULL);
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  GOutputStream *in;

  killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_REAPER);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDIN_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  out = g_data_input_stream_new (killable_process_task_get_stdout_pipe (task));
  in = killable_process_task_get_stdin_pipe (task);
  start (task);
  for (int i = 1; i <= 3; i++)
    {
      g_autofree char *line = g_data_input_stream_read_line (out, NULL, NULL, &error);
      g_autofree char *expected = g_strdup_printf ("%d", i);

      g_assert_no_error (error);
      g_assert_cmpstr (line, ==, expected);
      g_assert_true (g_output_stream_write_all (in, "ok\n", 3, NULL, NULL, &error));
    }
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
  /* Streamed: not also collected. */
  g_assert_null (killable_process_task_get_stdout_bytes (task));
}

static void
test_memory_limit_rlimit (void)
{
  const char *argv[] = { "sh", "-c", "ulimit -v", NULL };
  g_autoptr(KillableProcessTask) task = killable_process_task_new (argv, NULL);
  g_autoptr(KillableProcessTask) hog = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GError) error = NULL;

  /* REAPER: RLIMIT_AS per process, set before the program's exec. */
  killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_REAPER);
  killable_process_task_set_memory_limit (task, 512 * 1024 * 1024);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  start (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  out = killable_process_task_get_stdout_bytes (task);
  g_assert_cmpmem (g_bytes_get_data (out, NULL), g_bytes_get_size (out), "524288\n", 7);

  /* A program over it fails, and the message names the limit. dd, not
   * this (maybe sanitized) test program: AddressSanitizer's shadow memory
   * does not fit under the limit, and it would report that. */
  {
    const char *hog_argv[] = { "dd", "if=/dev/zero", "of=/dev/null", "bs=1G", "count=1", NULL };

    hog = killable_process_task_new (hog_argv, NULL);
    killable_process_task_set_containment (hog, KILLABLE_CONTAINMENT_REAPER);
  }
  killable_process_task_set_memory_limit (hog, 256 * 1024 * 1024);
  start (hog);
  g_assert_false (killable_task_join (KILLABLE_TASK (hog), &error));
  /* dd's malloc() of its 1 GiB buffer fails: exit status 1. */
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (hog)), ==, KILLABLE_TASK_STATE_FAILED);
  g_assert_nonnull (strstr (error->message, "memory limit is 268435456 bytes"));
}

static void
test_limits_unavailable (void)
{
  const char *argv[] = { "true", NULL };
  g_autoptr(KillableProcessTask) task = killable_process_task_new (argv, NULL);
  g_autoptr(KillableProcessTask) group = killable_process_task_new (argv, NULL);
  g_autoptr(GError) error = NULL;

  /* No pids controller outside a cgroup: a clear error at the start. */
  killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_REAPER);
  killable_process_task_set_max_processes (task, 10);
  start (task);
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "max-processes"));
  g_clear_error (&error);

  killable_process_task_set_containment (group, KILLABLE_CONTAINMENT_GROUP);
  killable_process_task_set_memory_limit (group, 1 << 30);
  start (group);
  g_assert_false (killable_task_join (KILLABLE_TASK (group), &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "memory-limit"));
}

static void
test_cgroup_limits (gconstpointer data)
{
  const char *controller = data;
  g_autofree char *base = cgroup_base_or_skip ();
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;

  if (base == NULL)
    return;
  if (!killable_cgroup_base_has_controller (base, controller))
    {
      g_test_skip_printf ("the cgroup v2 directory %s does not delegate the %s controller "
                          "(cgroup.subtree_control)", base, controller);
      return;
    }

  if (g_str_equal (controller, "pids"))
    {
      /* sh and one child at most: a fork bomb stops at once. */
      const char *bomb[] = { "sh", "-c", "for i in 1 2 3 4 5; do sleep 1 & done; wait", NULL };

      task = killable_process_task_new (bomb, NULL);
      killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_CGROUP);
      killable_process_task_set_max_processes (task, 2);
      start (task);
      g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
    }
  else
    {
      task = new_self_task (KILLABLE_CONTAINMENT_CGROUP, "--alloc", "1073741824", NULL);
      killable_process_task_set_memory_limit (task, 64 * 1024 * 1024);
      start (task);
      g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
      g_assert_nonnull (strstr (error->message, "memory limit"));
    }
}

/* }}} */

/* Unprivileged: AUTO picks REAPER {{{ */

static int
run_auto_report (void)
{
  const char *argv[] = { "true", NULL };
  g_autoptr(KillableProcessTask) task = killable_process_task_new (argv, NULL);
  g_autoptr(KillableProcessTask) cg = killable_process_task_new (argv, NULL);
  g_autoptr(GError) error = NULL;
  GEnumClass *klass = g_type_class_ref (KILLABLE_TYPE_CONTAINMENT);

  start (task);
  if (!killable_task_join (KILLABLE_TASK (task), &error))
    {
      printf ("error: %s\n", error->message);
      return 1;
    }
  printf ("%s\n", g_enum_get_value (klass, killable_process_task_get_containment (task))->value_nick);

  killable_process_task_set_containment (cg, KILLABLE_CONTAINMENT_CGROUP);
  start (cg);
  g_assert_false (killable_task_join (KILLABLE_TASK (cg), &error));
  printf ("%s\n", error->message);
  return 0;
}

static void
test_unprivileged_auto (void)
{
  const char *argv[] = { self_exe, "--auto-report", NULL };
  g_autofree char *out = NULL;
  g_auto(GStrv) lines = NULL;
  int status;

  if (geteuid () != 0)
    {
      g_autoptr(GError) cg_error = NULL;
      g_autofree char *base = killable_cgroup_find_base (NULL, &cg_error);

      if (base != NULL)
        {
          g_test_skip_printf ("not root, and %s is writable: no unprivileged case here", base);
          return;
        }
    }

  /* As nobody: the cgroup v2 hierarchy is root's. */
  {
    int pipefd[2];
    GString *buf = g_string_new (NULL);
    char chunk[256];
    ssize_t n;
    pid_t pid;

    g_assert_cmpint (pipe (pipefd), ==, 0);
    pid = fork ();
    if (pid == 0)
      {
        dup2 (pipefd[1], STDOUT_FILENO);
        if (geteuid () == 0 &&
            (setgroups (0, NULL) < 0 || setgid (65534) < 0 || setuid (65534) < 0))
          _exit (120);
        /* The default cgroup directory, the one nobody cannot write. */
        execve (self_exe, (char **) argv, g_environ_unsetenv (g_get_environ (), "KILLABLE_CGROUP_ROOT"));
        _exit (121);
      }
    close (pipefd[1]);
    while ((n = read (pipefd[0], chunk, sizeof chunk)) > 0)
      g_string_append_len (buf, chunk, n);
    close (pipefd[0]);
    g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
    g_assert_true (WIFEXITED (status));
    g_assert_cmpint (WEXITSTATUS (status), ==, 0);
    out = g_string_free (buf, FALSE);
  }

  lines = g_strsplit (out, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), >=, 2);
  g_assert_cmpstr (lines[0], ==, "reaper");
  g_assert_true (g_str_has_prefix (lines[1], "Cannot contain the program in a cgroup: "));
  g_test_message ("explicit CGROUP as nobody: %s", lines[1]);
}

/* }}} */

static void
skip_under_valgrind (void)
{
  g_test_skip ("valgrind 3.19 does not know pidfd_open(), which the containment checks use");
}

int
main (int    argc,
      char **argv)
{
  static const EscapeCase cases[] = {
    { KILLABLE_CONTAINMENT_REAPER, END_STOP },
    { KILLABLE_CONTAINMENT_REAPER, END_KILL },
    { KILLABLE_CONTAINMENT_REAPER, END_EXIT },
    { KILLABLE_CONTAINMENT_CGROUP, END_STOP },
    { KILLABLE_CONTAINMENT_CGROUP, END_KILL },
    { KILLABLE_CONTAINMENT_CGROUP, END_EXIT },
  };
  static const char *end_names[] = { "stop", "kill", "exit" };

  self_exe = g_file_read_link ("/proc/self/exe", NULL);
  main_thread = g_thread_self ();

  if (argc >= 4 && g_str_equal (argv[1], "--escapees"))
    return run_escapees (argv[2], g_str_equal (argv[3], "exit"));
  if (argc >= 3 && g_str_equal (argv[1], "--spin"))
    return run_spin (atoi (argv[2]));
  if (argc >= 3 && g_str_equal (argv[1], "--alloc"))
    return run_alloc (argv[2]);
  if (argc >= 3 && g_str_equal (argv[1], "--owner"))
    return run_owner (argv[2]);
  if (argc >= 2 && g_str_equal (argv[1], "--auto-report"))
    return run_auto_report ();

  g_test_init (&argc, &argv, NULL);

  /* The checks of what survived are pidfds, and valgrind 3.19 does not
   * know pidfd_open(): reported as skipped, never as passed. */
  if (g_getenv ("KILLABLE_UNDER_VALGRIND") != NULL)
    {
      g_test_add_func ("/containment/under-valgrind", skip_under_valgrind);
      return g_test_run ();
    }

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path =
        g_strdup_printf ("/containment/%s/escapees-%s",
                         cases[i].mode == KILLABLE_CONTAINMENT_REAPER ? "reaper" : "cgroup",
                         end_names[cases[i].end]);

      g_test_add_data_func (path, &cases[i], test_escapees);
    }
  g_test_add_func ("/containment/group/escapees-survive", test_group_lets_escapees_go);

  g_test_add_data_func ("/containment/reaper/dies-with-owner",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_REAPER), test_dies_with_owner);
  g_test_add_data_func ("/containment/cgroup/dies-with-owner",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_CGROUP), test_dies_with_owner);
  g_test_add_data_func ("/containment/reaper/cycles",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_REAPER), test_cycles);
  g_test_add_data_func ("/containment/cgroup/cycles",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_CGROUP), test_cycles);
  g_test_add_data_func ("/containment/group/cycles",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_GROUP), test_cycles);
  g_test_add_data_func ("/containment/reaper/pause",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_REAPER), test_pause);
  g_test_add_data_func ("/containment/cgroup/pause",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_CGROUP), test_pause);
  g_test_add_data_func ("/containment/group/pause",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_GROUP), test_pause);
  g_test_add_data_func ("/containment/reaper/stop-while-paused",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_REAPER), test_stop_while_paused);
  g_test_add_data_func ("/containment/cgroup/stop-while-paused",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_CGROUP), test_stop_while_paused);
  g_test_add_func ("/containment/property", test_containment_property);
  g_test_add_data_func ("/containment/reaper/exit-error",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_REAPER), test_exit_error);
  g_test_add_data_func ("/containment/cgroup/exit-error",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_CGROUP), test_exit_error);
  g_test_add_func ("/containment/reaper/exec-error", test_exec_error);
  g_test_add_func ("/containment/streams/communicate", test_communicate);
  g_test_add_func ("/containment/streams/while-running", test_streams_while_running);
  g_test_add_func ("/containment/limits/memory-rlimit", test_memory_limit_rlimit);
  g_test_add_func ("/containment/limits/unavailable", test_limits_unavailable);
  g_test_add_data_func ("/containment/cgroup/memory-max", "memory", test_cgroup_limits);
  g_test_add_data_func ("/containment/cgroup/pids-max", "pids", test_cgroup_limits);
  g_test_add_func ("/containment/unprivileged-auto", test_unprivileged_auto);

  return g_test_run ();
}
