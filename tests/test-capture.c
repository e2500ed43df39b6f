/* test-capture.c: captured output is bounded, and so is the wait for it
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A process task keeps at most capture-limit bytes of each captured stream
 * and drops the rest, without blocking the program; a process that left
 * the group (GROUP containment) and keeps the pipe open does not keep the
 * task running after its program was reaped. The programs are sh, head and
 * setsid; an escapee tells its pid through a fifo (a handshake, no sleep)
 * and is killed by the test.
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "killable.h"
#include "test-core-util.h"

#define MIB (G_GUINT64_CONSTANT (1024) * 1024)

static KillableProcessTask *
new_task (KillableContainment  mode,
          const char * const  *argv)
{
  g_autoptr(GError) error = NULL;
  KillableProcessTask *task = killable_process_task_new (argv, &error);

  g_assert_no_error (error);
  killable_process_task_set_containment (task, mode);
  return task;
}

static void
run (KillableProcessTask *task)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (killable_task_start (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
  g_assert_true (test_join_guarded (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==,
                   KILLABLE_TASK_STATE_SUCCEEDED);
}

/* The property {{{ */

static void
test_property (void)
{
  const char *argv[] = { "true", NULL };
  g_autoptr(KillableProcessTask) task = new_task (KILLABLE_CONTAINMENT_GROUP, argv);
  guint64 value = 0;

  /* A sensible default, and the whole guint64 range. */
  g_assert_cmpuint (killable_process_task_get_capture_limit (task), ==, 64 * MIB);
  g_object_set (task, "capture-limit", G_MAXUINT64, NULL);
  g_object_get (task, "capture-limit", &value, NULL);
  g_assert_cmpuint (value, ==, G_MAXUINT64);
  killable_process_task_set_capture_limit (task, 0);
  g_assert_cmpuint (killable_process_task_get_capture_limit (task), ==, 0);

  /* Nothing captured: nothing truncated. */
  g_assert_false (killable_process_task_get_stdout_truncated (task));
  g_assert_false (killable_process_task_get_stderr_truncated (task));
}

/* }}} */

/* The limit {{{ */

/* 10 MiB through a 1 MiB limit: 1 MiB is kept, the rest is read and
 * dropped (head would block, or die of SIGPIPE, otherwise: the task would
 * not succeed), and the task says so. */
static void
test_limit (gconstpointer data)
{
  KillableContainment mode = GPOINTER_TO_INT (data);
  const char *argv[] = { "head", "-c", "10485760", "/dev/zero", NULL };
  g_autoptr(KillableProcessTask) task = new_task (mode, argv);
  g_autoptr(GBytes) bytes = NULL;
  g_autofree char *status = NULL;
  const guint8 *p;
  gsize size;

  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDERR_PIPE);
  killable_process_task_set_capture_limit (task, MIB);
  run (task);

  g_assert_cmpint (killable_process_task_get_exit_status (task), ==, 0);
  bytes = killable_process_task_get_stdout_bytes (task);
  p = g_bytes_get_data (bytes, &size);
  g_assert_cmpuint (size, ==, MIB);
  for (gsize i = 0; i < size; i++)
    if (p[i] != 0)
      g_error ("byte %" G_GSIZE_FORMAT " is %u", i, p[i]);
  g_assert_true (killable_process_task_get_stdout_truncated (task));
  g_assert_false (killable_process_task_get_stderr_truncated (task));

  status = killable_task_dup_status (KILLABLE_TASK (task));
  g_assert_nonnull (status);
  g_assert_nonnull (strstr (status, "Standard output of program “head” truncated: "
                                    "9437184 bytes past the capture limit of 1048576 "
                                    "bytes were dropped"));
}

/* Exactly the limit is not truncated; one byte more is. Each stream has its
 * own count. */
static void
test_limit_edges (void)
{
  const char *argv[] = { "sh", "-c", "printf hello; printf world! >&2", NULL };
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GBytes) err = NULL;
  g_autofree char *status = NULL;

  task = new_task (KILLABLE_CONTAINMENT_GROUP, argv);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDERR_PIPE);
  killable_process_task_set_capture_limit (task, 5);
  run (task);

  out = killable_process_task_get_stdout_bytes (task);
  err = killable_process_task_get_stderr_bytes (task);
  g_assert_cmpmem (g_bytes_get_data (out, NULL), g_bytes_get_size (out), "hello", 5);
  g_assert_cmpmem (g_bytes_get_data (err, NULL), g_bytes_get_size (err), "world", 5);
  g_assert_false (killable_process_task_get_stdout_truncated (task));
  g_assert_true (killable_process_task_get_stderr_truncated (task));
  status = killable_task_dup_status (KILLABLE_TASK (task));
  g_assert_cmpstr (status, ==, "Standard error of program “sh” truncated: 1 bytes past "
                               "the capture limit of 5 bytes were dropped");
}

/* 0 and G_MAXUINT64 keep everything (up to what a GByteArray holds). */
static void
test_no_limit (gconstpointer data)
{
  guint64 limit = *(const guint64 *) data;
  const char *argv[] = { "head", "-c", "3145728", "/dev/zero", NULL };
  g_autoptr(KillableProcessTask) task = new_task (KILLABLE_CONTAINMENT_GROUP, argv);
  g_autoptr(GBytes) bytes = NULL;
  g_autofree char *status = NULL;

  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE);
  killable_process_task_set_capture_limit (task, limit);
  run (task);

  bytes = killable_process_task_get_stdout_bytes (task);
  g_assert_cmpuint (g_bytes_get_size (bytes), ==, 3 * MIB);
  g_assert_false (killable_process_task_get_stdout_truncated (task));
  g_assert_null (status = killable_task_dup_status (KILLABLE_TASK (task)));
}

/* }}} */

/* An escapee that keeps the pipe {{{ */

/* The program starts a process in a session of its own that keeps stdout
 * open, waits for its pid on a fifo, prints it and "hi", and exits. The
 * escapee waits for the end of its stdin, the task's stdin pipe, which the
 * test holds: it is gone with the test process even if the test fails
 * before it kills it. It does not hold the test's stderr. */
static const char escapee_script[] =
  "exec 3<&0\n"
  "setsid sh -c 'echo $$ > \"$1\"; read x; exit 0' sh \"$1\" <&3 3<&- 2>/dev/null &\n"
  "exec 3<&-\n"
  "read pid < \"$1\"\n"
  "echo \"$pid\"\n"
  "echo hi\n";


/* Runs the escapee script in @mode; returns its output, and the escapee's
 * pid in @escapee. */
static KillableProcessTask *
run_escapee (KillableContainment  mode,
             GBytes             **out,
             int                 *escapee)
{
  TestFifo f;
  const char *argv[] = { "sh", "-c", escapee_script, "sh", NULL, NULL };
  KillableProcessTask *task;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  gboolean ok;

  test_fifo_open (&f);
  argv[4] = f.path;
  task = new_task (mode, argv);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDIN_PIPE);
  /* What is left after the program's exit gets one grace period. */
  killable_task_set_grace_period (KILLABLE_TASK (task), 100 * G_TIME_SPAN_MILLISECOND);

  g_assert_true (killable_task_start (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
  /* Bounded: the task ends, although in GROUP mode the escapee still has
   * the pipe open. */
  ok = test_join_guarded (KILLABLE_TASK (task), &error);

  *out = killable_process_task_get_stdout_bytes (task);
  g_assert_nonnull (*out);
  text = g_strndup (g_bytes_get_data (*out, NULL), g_bytes_get_size (*out));
  *escapee = atoi (text);
  test_fifo_close (&f);

  g_assert_no_error (error);
  g_assert_true (ok);
  g_assert_cmpint (killable_task_get_state (KILLABLE_TASK (task)), ==,
                   KILLABLE_TASK_STATE_SUCCEEDED);
  g_assert_cmpint (killable_process_task_get_exit_status (task), ==, 0);
  g_assert_cmpint (*escapee, >, 1);

  return task;
}

static void
test_group_escapee (void)
{
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *status = NULL;
  gboolean alive;
  int escapee;

  task = run_escapee (KILLABLE_CONTAINMENT_GROUP, &out, &escapee);

  /* The contrast: the escapee is out of the group's reach, and still
   * there (with the pipe) when the task ended. */
  alive = kill (escapee, 0) == 0;
  (void) kill (escapee, SIGKILL);
  g_assert_true (alive);

  expected = g_strdup_printf ("%d\nhi\n", escapee);
  g_assert_cmpmem (g_bytes_get_data (out, NULL), g_bytes_get_size (out),
                   expected, strlen (expected));
  g_assert_true (killable_process_task_get_stdout_truncated (task));
  status = killable_task_dup_status (KILLABLE_TASK (task));
  g_assert_cmpstr (status, ==, "Standard output of program “sh” cut off: another process "
                               "still held the pipe after the program ended");
}

/* In REAPER mode the containment ends the escapee, the pipe closes with
 * it, and nothing is cut off. */
static void
test_reaper_escapee (void)
{
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *status = NULL;
  int escapee;
  int errsv;

  task = run_escapee (KILLABLE_CONTAINMENT_REAPER, &out, &escapee);

  /* Reaped by the helper before the task ended (a recycled pid in
   * between is not likely enough to matter). */
  errsv = kill (escapee, 0) == 0 ? 0 : errno;
  if (errsv == 0)
    (void) kill (escapee, SIGKILL);
  g_assert_cmpint (errsv, ==, ESRCH);

  expected = g_strdup_printf ("%d\nhi\n", escapee);
  g_assert_cmpmem (g_bytes_get_data (out, NULL), g_bytes_get_size (out),
                   expected, strlen (expected));
  g_assert_false (killable_process_task_get_stdout_truncated (task));
  g_assert_null (status = killable_task_dup_status (KILLABLE_TASK (task)));
}

/* }}} */

int
main (int    argc,
      char **argv)
{
  static const guint64 zero = 0, max = G_MAXUINT64;

  g_test_init (&argc, &argv, NULL);
  g_test_summary ("KillableProcessTask: capture-limit bounds captured output; an escapee "
                  "holding the pipe does not keep the task running.");

  g_test_add_func ("/capture/property", test_property);
  g_test_add_data_func ("/capture/limit/group",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_GROUP), test_limit);
  g_test_add_data_func ("/capture/limit/reaper",
                        GINT_TO_POINTER (KILLABLE_CONTAINMENT_REAPER), test_limit);
  g_test_add_func ("/capture/limit/edges", test_limit_edges);
  g_test_add_data_func ("/capture/no-limit/zero", &zero, test_no_limit);
  g_test_add_data_func ("/capture/no-limit/max", &max, test_no_limit);
  g_test_add_func ("/capture/escapee/group", test_group_escapee);
  g_test_add_func ("/capture/escapee/reaper", test_reaper_escapee);

  return g_test_run ();
}
