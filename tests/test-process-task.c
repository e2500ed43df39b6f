/* test-process-task.c: KillableProcessTask
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Children tell the test they reached a point by writing a line to a FIFO
 * the test opened beforehand (non-blocking, so the test's poll() has a
 * timeout as a failure guard): no sleep is used to synchronise.
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <killable.h>

#include "test-core-util.h"

/* Failure guards only: generous, for valgrind on a loaded machine. */
#define GUARD_USEC TEST_LIMIT_USEC (60 * G_USEC_PER_SEC)
#define GUARD_MSEC ((int) (GUARD_USEC / 1000))

/* Helpers {{{ */

/* Reads one line written by a child, waiting for it (bounded). */
static char *
fifo_read_line (TestFifo *fifo)
{
  return test_fifo_read_line (fifo, GUARD_USEC);
}

static KillableProcessTask *
new_task (const char * const *argv)
{
  g_autoptr(GError) error = NULL;
  KillableProcessTask *task = killable_process_task_new (argv, &error);

  g_assert_no_error (error);
  g_assert_true (KILLABLE_IS_PROCESS_TASK (task));
  /* These tests pin down the process-group mode; test-containment.c
   * covers the reaper and the cgroup. */
  killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_GROUP);

  return task;
}

static KillableProcessTask *
new_sh (const char *script)
{
  const char *argv[] = { "sh", "-c", script, NULL };

  return new_task (argv);
}

/* A `sh -c` task whose script is made of @format and its arguments. */
G_GNUC_PRINTF (1, 2)
static KillableProcessTask *
new_sh_printf (const char *format,
               ...)
{
  g_autofree char *script = NULL;
  va_list args;

  va_start (args, format);
  script = g_strdup_vprintf (format, args);
  va_end (args);

  return new_sh (script);
}

static void
start (KillableProcessTask *task)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (killable_task_start (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
}

static void
wait_end (KillableProcessTask *task)
{
  g_assert_true (killable_task_wait (KILLABLE_TASK (task), GUARD_USEC));
}

/* Starts @task, and returns the first line its program writes to @fifo. */
static char *
start_and_read_line (KillableProcessTask *task,
                     TestFifo            *fifo)
{
  start (task);
  return fifo_read_line (fifo);
}

/* Stops @task and joins it: it ends CANCELLED by the stop, well before its
 * 5 s grace period (a SIGTERM did it). Its error is returned in @error. */
static void
stop_and_join (KillableProcessTask  *task,
               GError              **error)
{
  g_autoptr(GError) local_error = NULL;
  gint64 t0 = g_get_monotonic_time ();

  killable_task_stop (KILLABLE_TASK (task));
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &local_error));
  g_assert_cmpint (g_get_monotonic_time () - t0, <, TEST_LIMIT_USEC (4 * G_USEC_PER_SEC));
  g_assert_error (local_error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_CANCELLED);

  if (error != NULL)
    *error = g_steal_pointer (&local_error);
}

/* The text of captured output: @bytes must not be %NULL. */
static char *
bytes_to_string (GBytes *bytes)
{
  g_autoptr(GBytes) owned = bytes;
  gsize len;
  const char *data;

  g_assert_nonnull (owned);
  data = g_bytes_get_data (owned, &len);

  return g_strndup (data, len);
}

static char *
stdout_string (KillableProcessTask *task)
{
  return bytes_to_string (killable_process_task_get_stdout_bytes (task));
}

static char *
stderr_string (KillableProcessTask *task)
{
  return bytes_to_string (killable_process_task_get_stderr_bytes (task));
}

typedef struct
{
  int  pid;
  char state;
  int  ppid;
  int  pgrp;
} ProcStat;

static gboolean
read_proc_stat (const char *pid,
                ProcStat   *st)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/stat", pid);
  g_autofree char *contents = NULL;
  const char *p;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return FALSE;

  /* "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses. */
  p = strrchr (contents, ')');
  if (p == NULL)
    return FALSE;
  st->pid = atoi (contents);
  return sscanf (p + 1, " %c %d %d", &st->state, &st->ppid, &st->pgrp) == 3;
}

/* Processes whose parent is the test: zombies included. */
static guint
count_children (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc", 0, NULL);
  const char *name;
  guint count = 0;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      ProcStat st;

      if (g_ascii_isdigit (name[0]) && read_proc_stat (name, &st) && st.ppid == getpid ())
        {
          g_test_message ("child %d of the test is left, state %c", st.pid, st.state);
          count++;
        }
    }

  return count;
}

static guint
count_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint count = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    count++;

  return count;
}

static gboolean
process_is_gone (int pid)
{
  g_autofree char *name = g_strdup_printf ("%d", pid);
  ProcStat st;

  return !read_proc_stat (name, &st) || st.state == 'Z' || st.state == 'X';
}

/* Waits (bounded) until @pid ended. A pidfd is readable once its process
 * ended, zombie or reaped. Where there is no pidfd_open() (valgrind 3.19
 * does not know it), /proc is looked at until the guard expires. */
static void
assert_process_ends (int pid)
{
  int fd = (int) syscall (SYS_pidfd_open, pid, 0);
  int errsv = errno;   /* before anything else can change it */
  gint64 end = g_get_monotonic_time () + GUARD_USEC;

  errno = errsv;
  if (fd >= 0)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };

      g_assert_cmpint (poll (&pfd, 1, GUARD_MSEC), ==, 1);
      g_assert_true (pfd.revents & POLLIN);
      close (fd);
    }
  else if (errno != ESRCH)
    {
      g_assert_cmpint (errno, ==, ENOSYS);
      while (!process_is_gone (pid))
        {
          g_assert_cmpint (g_get_monotonic_time (), <, end);
          g_usleep (G_TIME_SPAN_MILLISECOND);
        }
    }

  g_assert_true (process_is_gone (pid));
}

/* Waits (bounded) until no process of group @pgrp is alive. A process
 * killed by SIGKILL has closed its files (so the task saw the end of its
 * pipes) a little before it is a zombie. */
static void
assert_group_ends (int pgrp)
{
  gint64 end = g_get_monotonic_time () + GUARD_USEC;

  for (;;)
    {
      g_autoptr(GDir) dir = g_dir_open ("/proc", 0, NULL);
      g_autoptr(GArray) alive = g_array_new (FALSE, FALSE, sizeof (int));
      const char *name;

      g_assert_nonnull (dir);
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          ProcStat st;

          if (g_ascii_isdigit (name[0]) && read_proc_stat (name, &st) &&
              st.pgrp == pgrp && st.state != 'Z' && st.state != 'X')
            g_array_append_val (alive, st.pid);
        }

      if (alive->len == 0)
        break;

      g_assert_cmpint (g_get_monotonic_time (), <, end);
      for (guint i = 0; i < alive->len; i++)
        assert_process_ends (g_array_index (alive, int, i));
    }
}

/* }}} */

/* Creation {{{ */

static void
test_missing_program (void)
{
  const char *name_argv[] = { "killable-no-such-program-7b1e", "--help", NULL };
  const char *path_argv[] = { "/nonexistent/killable/prog", NULL };
  const char *dir_argv[] = { "/", NULL };
  g_autoptr(GError) error = NULL;
  KillableProcessTask *task;

  task = killable_process_task_new (name_argv, &error);
  g_assert_null (task);
  g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT);
  g_assert_cmpstr (error->message, ==,
                   "Could not find program “killable-no-such-program-7b1e” in PATH");
  g_clear_error (&error);

  task = killable_process_task_new (path_argv, &error);
  g_assert_null (task);
  g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT);
  g_assert_nonnull (strstr (error->message, "/nonexistent/killable/prog"));
  g_clear_error (&error);

  /* A directory is not a program. */
  task = killable_process_task_new (dir_argv, &error);
  g_assert_null (task);
  g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT);
}

static void
test_empty_argv (void)
{
  const char *empty[] = { NULL };
  const char *empty_name[] = { "", NULL };
  g_autoptr(GError) error = NULL;
  KillableProcessTask *task;

  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*assertion*argv != NULL*failed*");
  task = killable_process_task_new (NULL, &error);
  g_test_assert_expected_messages ();
  g_assert_null (task);
  g_assert_no_error (error);

  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*assertion*argv[0]*failed*");
  task = killable_process_task_new (empty, &error);
  g_test_assert_expected_messages ();
  g_assert_null (task);

  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*assertion*argv[0]*failed*");
  task = killable_process_task_new (empty_name, &error);
  g_test_assert_expected_messages ();
  g_assert_null (task);
  g_assert_no_error (error);
}

static void
test_object_new_without_argv (void)
{
  g_autoptr(KillableProcessTask) task = g_object_new (KILLABLE_TYPE_PROCESS_TASK, NULL);
  g_autoptr(GError) error = NULL;

  /* No GInitable check: reported when it runs. */
  start (task);
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_FAILED);
}

static void
test_properties (void)
{
  const char *argv[] = { "/bin/sh", "-c", "exit 0", NULL };
  g_autoptr(KillableProcessTask) task = new_task (argv);
  g_auto(GStrv) got_argv = NULL;
  g_autofree char *cwd = NULL;
  KillableProcessFlags flags;
  gint64 grace;

  g_assert_cmpstr (killable_task_get_name (KILLABLE_TASK (task)), ==, "sh");
  g_assert_cmpstrv (killable_process_task_get_argv (task), argv);
  g_assert_cmpint (killable_task_get_grace_period (KILLABLE_TASK (task)), ==, 5 * G_USEC_PER_SEC);
  g_assert_null (killable_process_task_get_cwd (task));
  g_assert_cmpint (killable_process_task_get_pid (task), ==, 0);
  g_assert_cmpint (killable_process_task_get_exit_status (task), ==, -1);
  g_assert_null (killable_process_task_get_stdout_bytes (task));

  killable_process_task_set_cwd (task, "/");
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDERR_MERGE);
  g_object_get (task,
                "argv", &got_argv,
                "cwd", &cwd,
                "flags", &flags,
                "grace-period", &grace,
                NULL);
  g_assert_cmpstrv (got_argv, argv);
  g_assert_cmpstr (cwd, ==, "/");
  g_assert_cmpint (flags, ==, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE | KILLABLE_PROCESS_FLAGS_STDERR_MERGE);
  g_assert_cmpint (grace, ==, 5 * G_USEC_PER_SEC);

  /* Two choices for one stream. */
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*flags_are_valid*");
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDOUT_SILENCE);
  g_test_assert_expected_messages ();
  g_assert_cmpint (killable_process_task_get_flags (task), ==,
                   KILLABLE_PROCESS_FLAGS_STDOUT_PIPE | KILLABLE_PROCESS_FLAGS_STDERR_MERGE);

  start (task);

  /* Configuration is frozen once started. */
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*was_started*");
  killable_process_task_set_cwd (task, "/tmp");
  g_test_assert_expected_messages ();
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*was_started*");
  killable_process_task_setenv (task, "FOO", "bar", TRUE);
  g_test_assert_expected_messages ();
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*was_started*");
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_NONE);
  g_test_assert_expected_messages ();
  g_assert_cmpstr (killable_process_task_get_cwd (task), ==, "/");

  g_assert_true (killable_task_join (KILLABLE_TASK (task), NULL));
}

/* }}} */

/* Outcome {{{ */

static void
test_success (void)
{
  const char *argv[] = { "true", NULL };
  g_autoptr(KillableProcessTask) task = new_task (argv);
  g_autoptr(GError) error = NULL;

  start (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_SUCCEEDED);
  g_assert_true (killable_process_task_get_if_exited (task));
  g_assert_false (killable_process_task_get_if_signaled (task));
  g_assert_cmpint (killable_process_task_get_exit_status (task), ==, 0);
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, 0);
  /* Reaped: the ID is no longer ours to give. */
  g_assert_cmpint (killable_process_task_get_pid (task), ==, 0);
}

static void
test_exit_status (void)
{
  g_autoptr(KillableProcessTask) task = new_sh ("exit 3");
  g_autoptr(GError) error = NULL;

  start (task);
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, G_SPAWN_EXIT_ERROR, 3);
  g_assert_cmpstr (error->message, ==, "Program “sh” exited with status 3");
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_FAILED);
  g_assert_true (killable_process_task_get_if_exited (task));
  g_assert_cmpint (killable_process_task_get_exit_status (task), ==, 3);
  g_assert_false (killable_process_task_get_if_signaled (task));
}

static void
test_killed_by_foreign_signal (void)
{
  /* A signal libkillable did not send is a failure, said as such. */
  g_autoptr(KillableProcessTask) task = new_sh ("kill -KILL $$");
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = NULL;

  start (task);
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  expected = g_strdup_printf ("Program “sh” was killed by signal 9 (%s)", g_strsignal (SIGKILL));
  g_assert_cmpstr (error->message, ==, expected);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_FAILED);
  g_assert_true (killable_process_task_get_if_signaled (task));
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGKILL);
  g_assert_cmpint (killable_process_task_get_exit_status (task), ==, -1);
}

static void
test_missing_cwd (void)
{
  g_autoptr(KillableProcessTask) task = new_sh ("exit 0");
  g_autoptr(GError) error = NULL;

  killable_process_task_set_cwd (task, "/nonexistent/killable-dir");
  start (task);
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_CHDIR);
  g_assert_nonnull (strstr (error->message, "/nonexistent/killable-dir"));
}

/* }}} */

/* Streams, directory, environment {{{ */

static void
test_stdout_capture (void)
{
  const char *argv[] = { "printf", "hello %s\\n", "world", NULL };
  g_autoptr(KillableProcessTask) task = new_task (argv);
  g_autofree char *out = NULL;

  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  start (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), NULL));
  out = stdout_string (task);
  g_assert_cmpstr (out, ==, "hello world\n");
  g_assert_null (killable_process_task_get_stderr_bytes (task));
}

static void
test_stderr_capture_and_merge (void)
{
  g_autoptr(KillableProcessTask) split = new_sh ("echo out; echo err >&2");
  g_autoptr(KillableProcessTask) merged = new_sh ("echo out; echo err >&2");
  g_autoptr(KillableProcessTask) silenced = new_sh ("echo out; echo err >&2");
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *both = NULL;
  g_autofree char *silenced_err = NULL;

  killable_process_task_set_flags (split, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                          KILLABLE_PROCESS_FLAGS_STDERR_PIPE);
  killable_process_task_set_flags (merged, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                           KILLABLE_PROCESS_FLAGS_STDERR_MERGE);
  killable_process_task_set_flags (silenced, KILLABLE_PROCESS_FLAGS_STDOUT_SILENCE |
                                             KILLABLE_PROCESS_FLAGS_STDERR_PIPE);
  start (split);
  start (merged);
  start (silenced);
  g_assert_true (killable_task_join (KILLABLE_TASK (split), NULL));
  g_assert_true (killable_task_join (KILLABLE_TASK (merged), NULL));
  g_assert_true (killable_task_join (KILLABLE_TASK (silenced), NULL));

  out = stdout_string (split);
  err = stderr_string (split);
  both = stdout_string (merged);
  silenced_err = stderr_string (silenced);
  g_assert_cmpstr (out, ==, "out\n");
  g_assert_cmpstr (err, ==, "err\n");
  g_assert_cmpstr (both, ==, "out\nerr\n");
  g_assert_null (killable_process_task_get_stderr_bytes (merged));
  g_assert_null (killable_process_task_get_stdout_bytes (silenced));
  g_assert_cmpstr (silenced_err, ==, "err\n");
}

static void
test_stdout_flood (void)
{
  /* Far more than a pipe holds, on both streams: the child must never
   * block on a full pipe. */
  g_autoptr(KillableProcessTask) task =
    new_sh ("head -c 10000000 /dev/zero; head -c 3000000 /dev/zero >&2");
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GBytes) err = NULL;
  g_autoptr(GError) error = NULL;
  const guint8 *data;
  gsize len;

  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDERR_PIPE);
  start (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);

  out = killable_process_task_get_stdout_bytes (task);
  err = killable_process_task_get_stderr_bytes (task);
  g_assert_cmpuint (g_bytes_get_size (out), ==, 10000000);
  g_assert_cmpuint (g_bytes_get_size (err), ==, 3000000);
  data = g_bytes_get_data (out, &len);
  g_assert_cmpint (data[0], ==, 0);
  g_assert_cmpint (data[len - 1], ==, 0);
}

static void
test_cwd_and_env (void)
{
  g_autoptr(KillableProcessTask) task = new_sh ("pwd; echo \"$FOO\"; echo \"${BAR-unset}\"");
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("killable-cwd-XXXXXX", &error);
  g_autofree char *real = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *out = NULL;

  g_assert_no_error (error);
  real = realpath (dir, NULL);
  g_assert_nonnull (real);

  killable_process_task_set_cwd (task, dir);
  killable_process_task_setenv (task, "FOO", "foo value", TRUE);
  killable_process_task_setenv (task, "FOO", "not this one", FALSE);
  killable_process_task_setenv (task, "BAR", "set", TRUE);
  killable_process_task_unsetenv (task, "BAR");
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  start (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);

  out = stdout_string (task);
  expected = g_strdup_printf ("%s\nfoo value\nunset\n", real);
  g_assert_cmpstr (out, ==, expected);

  g_assert_cmpint (rmdir (dir), ==, 0);
}

static void
test_set_environ (void)
{
  const char *env[] = { "ONLY=1", NULL };
  g_autoptr(KillableProcessTask) task = new_sh ("echo \"$ONLY ${HOME-nohome}\"");
  g_autofree char *out = NULL;

  killable_process_task_set_environ (task, env);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  start (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), NULL));
  out = stdout_string (task);
  g_assert_cmpstr (out, ==, "1 nohome\n");
}

static void
test_no_inherited_fds (void)
{
  g_autoptr(KillableProcessTask) task = NULL;
  g_autofree char *out = NULL;
  int fd;

  /* Not close-on-exec: only the spawn's own closing keeps it out. */
  fd = open ("/dev/null", O_RDONLY);
  g_assert_cmpint (fd, >, STDERR_FILENO);

  task = new_sh_printf ("if [ -e /proc/self/fd/%d ]; then echo leaked; else echo clean; fi; "
                        "if [ -e /proc/self/fd/0 ]; then echo stdin; fi", fd);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  start (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), NULL));
  out = stdout_string (task);
  g_assert_cmpstr (out, ==, "clean\nstdin\n");

  close (fd);
}

/* }}} */

/* Stop, interrupt, kill {{{ */

static void
test_stop_before_start (void)
{
  const char *argv[] = { "sleep", "1000", NULL };
  g_autoptr(KillableProcessTask) task = new_task (argv);
  g_autoptr(GError) error = NULL;

  killable_task_stop (KILLABLE_TASK (task));
  g_assert_true (killable_task_start (KILLABLE_TASK (task), NULL));
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (killable_process_task_get_exit_status (task), ==, -1);
  g_assert_false (killable_process_task_get_if_signaled (task));
  g_assert_cmpuint (count_children (), ==, 0);
}

static void
test_stop_cooperative (void)
{
  TestFifo fifo;
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  test_fifo_open (&fifo);
  task = new_sh_printf ("echo ready > '%s'; exec sleep 1000", fifo.path);
  line = start_and_read_line (task, &fifo);
  g_assert_cmpstr (line, ==, "ready");

  /* SIGTERM does it, well before the 5 s grace period. */
  stop_and_join (task, &error);
  g_assert_cmpstr (error->message, ==, "Task “sh” was stopped");
  g_assert_true (killable_process_task_get_if_signaled (task));
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGTERM);

  test_fifo_close (&fifo);
}

static void
test_stop_with_sigterm_ignored_here (void)
{
  /* The test process ignores SIGTERM; the child must not inherit that, or
   * stop() would be useless until the kill. */
  struct sigaction ign = { .sa_handler = SIG_IGN }, old;
  TestFifo fifo;
  g_autoptr(KillableProcessTask) task = NULL;
  g_autofree char *line = NULL;

  sigemptyset (&ign.sa_mask);
  g_assert_cmpint (sigaction (SIGTERM, &ign, &old), ==, 0);

  test_fifo_open (&fifo);
  task = new_sh_printf ("echo ready > '%s'; exec sleep 1000", fifo.path);
  line = start_and_read_line (task, &fifo);
  killable_task_stop (KILLABLE_TASK (task));
  wait_end (task);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGTERM);

  g_assert_cmpint (sigaction (SIGTERM, &old, NULL), ==, 0);
  test_fifo_close (&fifo);
}

static void
test_term_ignored_killed_after_grace (void)
{
  const gint64 grace = 200 * G_TIME_SPAN_MILLISECOND;
  TestFifo fifo;
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  gint64 t0, elapsed;

  test_fifo_open (&fifo);
  /* The trap is set before the line is written: the stop comes after. */
  task = new_sh_printf ("trap '' TERM; echo ready > '%s'; sleep 1000", fifo.path);
  killable_task_set_grace_period (KILLABLE_TASK (task), grace);
  line = start_and_read_line (task, &fifo);
  g_assert_cmpstr (line, ==, "ready");

  t0 = g_get_monotonic_time ();
  killable_task_stop (KILLABLE_TASK (task));
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  elapsed = g_get_monotonic_time () - t0;

  g_assert_cmpint (elapsed, >=, grace);
  g_assert_cmpint (elapsed, <, GUARD_USEC);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_assert_true (killable_process_task_get_if_signaled (task));
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGKILL);

  test_fifo_close (&fifo);
}

static void
test_kill (void)
{
  TestFifo fifo;
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  int pgid, pid;

  test_fifo_open (&fifo);
  task = new_sh_printf ("trap '' TERM; echo $$ > '%s'; sleep 1000", fifo.path);
  line = start_and_read_line (task, &fifo);
  pgid = atoi (line);
  g_assert_cmpint (pgid, >, 0);
  /* The worker may not have published it yet: the child can run first. */
  pid = killable_process_task_get_pid (task);
  g_assert_true (pid == 0 || pid == pgid);

  killable_task_kill (KILLABLE_TASK (task));
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_KILLED);
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGKILL);
  /* Reaped before the end: the process is not our child any more. */
  g_assert_cmpuint (count_children (), ==, 0);
  assert_group_ends (pgid);
  /* Killed, not abandoned: nothing is left running. */
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, 0);

  test_fifo_close (&fifo);
}

static void
test_interrupt_sends_sigint (void)
{
  TestFifo fifo;
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  test_fifo_open (&fifo);
  /* Deaf to SIGTERM, leaves with status 7 on SIGINT. The `wait` builtin,
   * unlike a foreground command, is cut short by a trapped signal; the
   * background sleep ignores SIGINT and SIGTERM and dies with the group. */
  task = new_sh_printf ("trap '' TERM; trap 'exit 7' INT; sleep 1000 & "
                        "echo ready > '%s'; wait; exit 1",
                        fifo.path);
  line = start_and_read_line (task, &fifo);

  killable_task_interrupt (KILLABLE_TASK (task));
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_true (killable_process_task_get_if_exited (task));
  g_assert_cmpint (killable_process_task_get_exit_status (task), ==, 7);

  test_fifo_close (&fifo);
}

static void
test_stop_stopped_program (void)
{
  /* A program stopped with SIGSTOP acts on SIGTERM once continued: the
   * stop continues it. */
  TestFifo fifo;
  g_autoptr(KillableProcessTask) task = NULL;
  g_autofree char *line = NULL;
  int pid;

  test_fifo_open (&fifo);
  task = new_sh_printf ("echo $$ > '%s'; exec sleep 1000", fifo.path);
  line = start_and_read_line (task, &fifo);
  pid = atoi (line);
  g_assert_cmpint (pid, >, 0);
  g_assert_cmpint (kill (pid, SIGSTOP), ==, 0);

  stop_and_join (task, NULL);
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGTERM);

  test_fifo_close (&fifo);
}

static void
test_stop_while_starting (void)
{
  /* A stop racing the spawn is never lost: without the SIGTERM, each task
   * would wait for its 5 s grace period and end KILLED. */
  const char *argv[] = { "sleep", "1000", NULL };

  for (guint i = 0; i < 50; i++)
    {
      g_autoptr(KillableProcessTask) task = new_task (argv);

      start (task);
      stop_and_join (task, NULL);
    }

  g_assert_cmpuint (count_children (), ==, 0);
}

static gboolean
wait_for_stop (KillableTask  *task,
               gpointer       user_data,
               GError       **error)
{
  return killable_task_sleep (task, G_MAXINT64 / 2, error);
}

static void
test_child_of_thread_task (void)
{
  /* A stop of the parent reaches the process, with its cause. */
  TestFifo fifo;
  g_autoptr(KillableTask) parent = killable_task_new ("parent", wait_for_stop, NULL, NULL);
  g_autoptr(KillableProcessTask) child = NULL;
  g_autoptr(GError) reason = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "shutdown");
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  test_fifo_open (&fifo);
  child = new_sh_printf ("echo ready > '%s'; exec sleep 1000", fifo.path);
  g_assert_true (killable_task_add_child (parent, KILLABLE_TASK (child), NULL));
  g_assert_true (killable_task_start (parent, NULL));
  line = start_and_read_line (child, &fifo);

  killable_task_stop_with_error (parent, reason);
  g_assert_false (killable_task_join (parent, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (child)), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (killable_process_task_get_term_sig (child), ==, SIGTERM);
  g_assert_cmpuint (count_children (), ==, 0);

  test_fifo_close (&fifo);
}

static void
test_timeout (void)
{
  const char *argv[] = { "sleep", "1000", NULL };
  g_autoptr(KillableProcessTask) task = new_task (argv);
  g_autoptr(GError) error = NULL;

  killable_task_set_timeout (KILLABLE_TASK (task), 100 * G_TIME_SPAN_MILLISECOND);
  start (task);
  g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_CANCELLED);
}

/* }}} */

/* Grandchildren, zombies, descriptors {{{ */

static void
test_grandchildren_die_on_stop (void)
{
  TestFifo fifo;
  g_autoptr(KillableProcessTask) task = NULL;
  g_autofree char *line = NULL;
  g_auto(GStrv) pids = NULL;
  int gpids[2];
  int pgid;
  gint64 t0;

  test_fifo_open (&fifo);
  /* Two grandchildren deaf to SIGTERM: only the group SIGKILL that
   * follows the leader's end can take them. */
  task = new_sh_printf ("(trap '' TERM; exec sleep 1000) & a=$!; "
                        "(trap '' TERM; exec sleep 1000) & b=$!; "
                        "echo \"$$ $a $b\" > '%s'; wait",
                        fifo.path);
  line = start_and_read_line (task, &fifo);
  pids = g_strsplit (line, " ", -1);
  g_assert_cmpuint (g_strv_length (pids), ==, 3);
  pgid = atoi (pids[0]);
  g_assert_cmpint (pgid, >, 0);

  for (guint i = 0; i < 2; i++)
    {
      ProcStat st;

      g_assert_true (read_proc_stat (pids[i + 1], &st));
      g_assert_cmpint (st.pgrp, ==, pgid);
      g_assert_cmpint (st.ppid, ==, pgid);
      gpids[i] = st.pid;
    }

  t0 = g_get_monotonic_time ();
  killable_task_stop (KILLABLE_TASK (task));
  wait_end (task);
  /* The leader died of SIGTERM: no grace period was waited for. */
  g_assert_cmpint (g_get_monotonic_time () - t0, <, TEST_LIMIT_USEC (4 * G_USEC_PER_SEC));
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGTERM);

  assert_process_ends (gpids[0]);
  assert_process_ends (gpids[1]);
  assert_group_ends (pgid);
  g_assert_cmpuint (count_children (), ==, 0);

  test_fifo_close (&fifo);
}

static void
test_grandchildren_die_on_exit (void)
{
  /* The leader exits at once, leaving a grandchild that holds the stdout
   * pipe: the task must neither hang on the pipe nor leave it running. */
  g_autoptr(KillableProcessTask) task = new_sh ("sleep 1000 & echo $$ $!; exit 0");
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_auto(GStrv) pids = NULL;
  int pgid;

  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  start (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_SUCCEEDED);

  out = stdout_string (task);
  g_strchomp (out);
  pids = g_strsplit (out, " ", -1);
  g_assert_cmpuint (g_strv_length (pids), ==, 2);
  pgid = atoi (pids[0]);
  g_assert_cmpint (pgid, >, 0);

  /* The pipe reached its end: the grandchild closed it by dying. */
  assert_process_ends (atoi (pids[1]));
  assert_group_ends (pgid);
}

/* Runs and kills one task, so that what is made lazily (worker threads,
 * the timer thread, ...) exists before a test counts fds. Returns once the
 * task is finalized (a queued emission holds a reference, and the worker
 * drops its own a moment after the join): what the task holds until then
 * (its stop state's wake-up fd) would otherwise be counted as the test's. */
static void
warm_up (void)
{
  const char *sleep_argv[] = { "sleep", "1000", NULL };
  KillableProcessTask *task = new_task (sleep_argv);

  start (task);
  killable_task_kill (KILLABLE_TASK (task));
  wait_end (task);
  test_unref_until_finalized (task);
}

static void
test_start_kill_cycles (void)
{
  const char *sleep_argv[] = { "sleep", "1000", NULL };
  TestFifo fifo;
  g_autofree char *script = NULL;
  guint fds_before, fds_after;
  guint spawned_running = 0;   /* killed once the program surely ran */
  guint spawned_at_once = 0;   /* killed at once, yet it had been spawned */

  test_fifo_open (&fifo);
  script = g_strdup_printf ("echo x > '%s'; exec sleep 1000", fifo.path);

  warm_up ();

  fds_before = count_fds ();

  for (guint i = 0; i < 200; i++)
    {
      g_autoptr(KillableProcessTask) task = NULL;
      g_autoptr(GError) error = NULL;

      if (i % 2 == 0)
        {
          /* Killed at once: often before the spawn, sometimes during. */
          task = new_task (sleep_argv);
          start (task);
        }
      else
        {
          /* Killed once the program surely runs. */
          g_autofree char *line = NULL;

          task = new_sh (script);
          line = start_and_read_line (task, &fifo);
          g_assert_cmpstr (line, ==, "x");
        }

      killable_task_kill (KILLABLE_TASK (task));
      g_assert_false (killable_task_join (KILLABLE_TASK (task), &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
      g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==, KILLABLE_TASK_STATE_KILLED);

      /* Either never spawned, or spawned and killed by SIGKILL. */
      if (killable_process_task_get_if_signaled (task))
        {
          g_assert_cmpint (killable_process_task_get_term_sig (task), ==, SIGKILL);
          if (i % 2 == 0)
            spawned_at_once++;
          else
            spawned_running++;
        }
      else
        {
          g_assert_cmpint (i % 2, ==, 0);
          g_assert_false (killable_process_task_get_if_exited (task));
        }
    }

  /* Every program killed while it surely ran died of the SIGKILL (none
   * exited on its own nor was missed); of those killed at once, some may
   * have been spawned: that split is the scheduler's, only reported. */
  g_test_message ("killed at once: %u of 100 spawned before the kill, %u never spawned",
                  spawned_at_once, 100 - spawned_at_once);
  g_assert_cmpuint (spawned_running, ==, 100);

  /* The last workers drop their tasks (and so their fds) a moment after
   * the joins. The count does not grow ("equal" could fail on a descriptor
   * that was still closing when the count before was taken). */
  TEST_POLL_ITERATING_UNTIL (count_fds () <= fds_before);
  fds_after = count_fds ();
  g_assert_cmpuint (fds_after, <=, fds_before);
  g_assert_cmpuint (count_children (), ==, 0);
  g_assert_cmpuint (killable_get_abandoned_thread_count (), ==, 0);

  test_fifo_close (&fifo);
}

/* }}} */

/* Standard streams {{{ */

/* In a subprocess (its stdin and stderr are replaced): stdin becomes a pipe
 * holding "from-the-test\n" then its end, stderr a fresh file, whose name
 * is returned. */
static char *
replace_stdin_and_stderr (void)
{
  g_autoptr(GError) error = NULL;
  char *err_path = NULL;
  int fds[2];
  int err_fd;

  g_assert_no_errno (pipe (fds));
  g_assert_cmpint (write (fds[1], "from-the-test\n", 14), ==, 14);
  close (fds[1]);
  g_assert_no_errno (dup2 (fds[0], STDIN_FILENO));
  close (fds[0]);

  err_fd = g_file_open_tmp ("killable-stderr-XXXXXX", &err_path, &error);
  g_assert_no_error (error);
  g_assert_no_errno (dup2 (err_fd, STDERR_FILENO));
  close (err_fd);

  return err_path;
}

/* What a program ran with the given flags wrote on its stdout (captured). */
static char *
run_sh_capturing (const char           *script,
                  KillableProcessFlags  flags)
{
  g_autoptr(KillableProcessTask) task = new_sh (script);
  g_autoptr(GError) error = NULL;

  killable_process_task_set_flags (task, flags | KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  start (task);
  wait_end (task);
  g_assert_true (killable_task_join (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);

  return stdout_string (task);
}

/* Without STDIN_INHERIT the program reads /dev/null, even when the test's
 * own stdin has data: it neither steals it nor waits for it. */
static void
test_stdin_default_dev_null (void)
{
  if (g_test_subprocess ())
    {
      g_autofree char *err_path = replace_stdin_and_stderr ();
      g_autofree char *out = run_sh_capturing ("cat; readlink /proc/self/fd/0",
                                               KILLABLE_PROCESS_FLAGS_NONE);
      char line[64] = "";

      g_assert_cmpstr (out, ==, "/dev/null\n");
      /* The test's stdin is untouched. */
      g_assert_nonnull (fgets (line, sizeof line, stdin));
      g_assert_cmpstr (line, ==, "from-the-test\n");
      g_unlink (err_path);
      return;
    }

  g_test_trap_subprocess (NULL, GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* With STDIN_INHERIT the program reads the test's stdin. */
static void
test_stdin_inherit (void)
{
  if (g_test_subprocess ())
    {
      g_autofree char *err_path = replace_stdin_and_stderr ();
      g_autofree char *out = run_sh_capturing ("cat", KILLABLE_PROCESS_FLAGS_STDIN_INHERIT);

      g_assert_cmpstr (out, ==, "from-the-test\n");
      g_unlink (err_path);
      return;
    }

  g_test_trap_subprocess (NULL, GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* STDERR_SILENCE sends the program's stderr to /dev/null; without a stderr
 * flag the program writes to the test's stderr. */
static void
test_stderr_silence (void)
{
  if (g_test_subprocess ())
    {
      g_autofree char *err_path = replace_stdin_and_stderr ();
      g_autofree char *silenced = NULL;
      g_autofree char *inherited = NULL;
      g_autofree char *written = NULL;

      silenced = run_sh_capturing ("echo silenced-marker >&2; readlink /proc/self/fd/2",
                                   KILLABLE_PROCESS_FLAGS_STDERR_SILENCE);
      g_assert_cmpstr (silenced, ==, "/dev/null\n");
      inherited = run_sh_capturing ("echo inherited-marker >&2", KILLABLE_PROCESS_FLAGS_NONE);
      g_assert_cmpstr (inherited, ==, "");

      g_assert_true (g_file_get_contents (err_path, &written, NULL, NULL));
      g_assert_null (strstr (written, "silenced-marker"));
      g_assert_nonnull (strstr (written, "inherited-marker"));
      g_unlink (err_path);
      return;
    }

  g_test_trap_subprocess (NULL, GUARD_USEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* }}} */

/* Several threads stop, interrupt and kill the same process tasks at once {{{ */

#define N_ATTACKED 6
#define N_ATTACKERS 4

typedef struct
{
  KillableProcessTask **tasks;
  TestGate             *go;       /* every attacker starts at its opening */
  guint                 index;
} Attacker;

static gpointer
attacker_main (gpointer data)
{
  Attacker *a = data;

  test_gate_pass (a->go);

  /* Each attacker takes the tasks in its own order, with its own rung
   * first. */
  for (guint k = 0; k < N_ATTACKED; k++)
    {
      KillableTask *task = KILLABLE_TASK (a->tasks[(k + a->index) % N_ATTACKED]);

      switch ((k + a->index) % 3)
        {
        case 0:
          killable_task_stop (task);
          killable_task_kill (task);
          break;
        case 1:
          killable_task_kill (task);
          killable_task_interrupt (task);
          break;
        default:
          killable_task_interrupt (task);
          killable_task_stop (task);
          break;
        }
    }

  return NULL;
}

static void
test_stop_kill_from_threads (void)
{
  KillableProcessTask *tasks[N_ATTACKED];
  Attacker attackers[N_ATTACKERS];
  GThread *threads[N_ATTACKERS];
  guint n_killed = 0, n_cancelled = 0;
  guint fds_before;
  TestGate go;
  TestFifo fifo;

  test_fifo_open (&fifo);
  test_gate_init (&go);

  warm_up ();
  fds_before = count_fds ();

  /* Every program runs (it said so through the fifo) before the attack;
   * half of them ignore SIGTERM and SIGINT. */
  for (guint i = 0; i < N_ATTACKED; i++)
    {
      g_autofree char *line = NULL;

      tasks[i] = new_sh_printf ("%s echo %u > '%s'; exec sleep 1000",
                                i % 2 ? "trap '' TERM INT;" : "", i, fifo.path);
      killable_task_set_grace_period (KILLABLE_TASK (tasks[i]), 100 * G_TIME_SPAN_MILLISECOND);
      line = start_and_read_line (tasks[i], &fifo);
      g_assert_nonnull (line);
    }

  for (guint i = 0; i < N_ATTACKERS; i++)
    {
      attackers[i] = (Attacker) { tasks, &go, i };
      threads[i] = g_thread_new ("attacker", attacker_main, &attackers[i]);
    }
  test_gate_wait_entered (&go, N_ATTACKERS);
  test_gate_open (&go);
  for (guint i = 0; i < N_ATTACKERS; i++)
    g_thread_join (threads[i]);

  for (guint i = 0; i < N_ATTACKED; i++)
    {
      KillableTask *task = KILLABLE_TASK (tasks[i]);
      g_autoptr(GError) error = NULL;
      KillableTaskState state;

      wait_end (tasks[i]);
      g_assert_false (killable_task_join (task, &error));
      state = killable_task_get_state (task);

      /* One outcome, consistent everywhere: the state, the error, and how
       * the program ended (signaled, never exited on its own). */
      g_assert_true (killable_process_task_get_if_signaled (tasks[i]));
      g_assert_false (killable_process_task_get_if_exited (tasks[i]));
      if (state == KILLABLE_TASK_STATE_KILLED)
        {
          g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_KILLED);
          /* A program that ignores SIGTERM and SIGINT died of the SIGKILL;
           * another may have died of a stop's signal that came first. */
          if (i % 2)
            g_assert_cmpint (killable_process_task_get_term_sig (tasks[i]), ==, SIGKILL);
          n_killed++;
        }
      else
        {
          g_assert_cmpint (state, ==, KILLABLE_TASK_STATE_CANCELLED);
          g_assert_true (g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED) ||
                         g_error_matches (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED));
          g_assert_cmpint (i % 2, ==, 0);   /* a program that ignores both
                                              * can only be killed */
          n_cancelled++;
        }
      g_object_unref (tasks[i]);
    }

  g_test_message ("%u killed, %u cancelled", n_killed, n_cancelled);
  /* Every attacker killed every task: each ended killed or, killed after
   * a stop that already won, cancelled; none is left running nor
   * unreaped, and no fd leaked. */
  g_assert_cmpuint (n_killed + n_cancelled, ==, N_ATTACKED);
  g_assert_cmpuint (count_children (), ==, 0);
  /* The last workers drop their tasks (and so their fds) a moment after
   * the joins. The count does not grow ("equal" could fail on a descriptor
   * that was still closing when the count before was taken). */
  TEST_POLL_ITERATING_UNTIL (count_fds () <= fds_before);
  g_assert_cmpuint (count_fds (), <=, fds_before);

  test_gate_clear (&go);
  test_fifo_close (&fifo);
}

/* }}} */

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("KillableProcessTask: spawning, pipes, stdin/stdout/stderr flags, exit statuses, stop/interrupt/kill of process groups.");

  g_test_add_func ("/process-task/missing-program", test_missing_program);
  g_test_add_func ("/process-task/empty-argv", test_empty_argv);
  g_test_add_func ("/process-task/object-new-without-argv", test_object_new_without_argv);
  g_test_add_func ("/process-task/properties", test_properties);
  g_test_add_func ("/process-task/success", test_success);
  g_test_add_func ("/process-task/exit-status", test_exit_status);
  g_test_add_func ("/process-task/killed-by-foreign-signal", test_killed_by_foreign_signal);
  g_test_add_func ("/process-task/missing-cwd", test_missing_cwd);
  g_test_add_func ("/process-task/stdout-capture", test_stdout_capture);
  g_test_add_func ("/process-task/stderr-capture-and-merge", test_stderr_capture_and_merge);
  g_test_add_func ("/process-task/stdout-flood", test_stdout_flood);
  g_test_add_func ("/process-task/cwd-and-env", test_cwd_and_env);
  g_test_add_func ("/process-task/set-environ", test_set_environ);
  g_test_add_func ("/process-task/no-inherited-fds", test_no_inherited_fds);
  g_test_add_func ("/process-task/stop-before-start", test_stop_before_start);
  g_test_add_func ("/process-task/stop-cooperative", test_stop_cooperative);
  g_test_add_func ("/process-task/stop-with-sigterm-ignored-here", test_stop_with_sigterm_ignored_here);
  g_test_add_func ("/process-task/term-ignored-killed-after-grace", test_term_ignored_killed_after_grace);
  g_test_add_func ("/process-task/kill", test_kill);
  g_test_add_func ("/process-task/interrupt-sends-sigint", test_interrupt_sends_sigint);
  g_test_add_func ("/process-task/timeout", test_timeout);
  g_test_add_func ("/process-task/stop-stopped-program", test_stop_stopped_program);
  g_test_add_func ("/process-task/stop-while-starting", test_stop_while_starting);
  g_test_add_func ("/process-task/child-of-thread-task", test_child_of_thread_task);
  g_test_add_func ("/process-task/grandchildren-die-on-stop", test_grandchildren_die_on_stop);
  g_test_add_func ("/process-task/grandchildren-die-on-exit", test_grandchildren_die_on_exit);
  g_test_add_func ("/process-task/start-kill-cycles", test_start_kill_cycles);
  g_test_add_func ("/process-task/stdin-default-dev-null", test_stdin_default_dev_null);
  g_test_add_func ("/process-task/stdin-inherit", test_stdin_inherit);
  g_test_add_func ("/process-task/stderr-silence", test_stderr_silence);
  g_test_add_func ("/process-task/stop-kill-from-threads", test_stop_kill_from_threads);

  return g_test_run ();
}
