/* bench-process.c: stopping and killing process tasks vs GSubprocess
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: bench-process [--quick]
 *
 * Two children, each run by a KillableProcessTask and by a GSubprocess:
 * - cooperative, `sleep 1000`: stop → reaped (SIGTERM kills it);
 * - TERM-ignoring, `sh -c 'trap "" TERM; sleep 1000'`, grace 100 ms:
 *   stop → SIGKILL after the grace period → reaped.
 * The baseline sends the same signals with g_subprocess_send_signal() and
 * waits with g_subprocess_wait(). Trials are interleaved; medians compared.
 * Results are printed as "@ROW {json}" lines (see bench-common.h).
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <gio/gio.h>
#include <killable.h>

#include "bench-common.h"

#define GRACE_USEC (100 * 1000)

static const char * const cooperative_argv[] = { "sleep", "1000", NULL };
static const char * const ignoring_argv[] = { "sh", "-c", "trap \"\" TERM; sleep 1000", NULL };

/* Whether process @pid ignores SIGTERM (its trap is in place). */
static gboolean
ignores_term (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *contents = NULL;
  const char *line;
  guint64 mask;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return FALSE;
  line = strstr (contents, "\nSigIgn:");
  if (line == NULL || sscanf (line + 8, "%" G_GINT64_MODIFIER "x", &mask) != 1)
    return FALSE;

  return (mask & (G_GUINT64_CONSTANT (1) << (SIGTERM - 1))) != 0;
}

/* Whether @pid has exec'd `sleep` (it is past fork and exec, and has the
 * default SIGTERM disposition in place). */
static gboolean
is_sleeping_program (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/comm", (int) pid);
  g_autofree char *comm = NULL;

  if (!g_file_get_contents (path, &comm, NULL, NULL))
    return FALSE;

  return g_str_has_prefix (comm, "sleep");
}

/* Waits (bounded, 5 s) until the child is ready to receive the signal. */
static gboolean
wait_child_ready (GPid     pid,
                  gboolean ignoring)
{
  gint64 deadline = bench_now_ns () + 5 * G_GINT64_CONSTANT (1000000000);

  while (bench_now_ns () < deadline)
    {
      if (pid > 0 && (ignoring ? ignores_term (pid) : is_sleeping_program (pid)))
        return TRUE;
      g_usleep (200);
    }

  return FALSE;
}

static double
trial_killable (gboolean ignoring)
{
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  gint64 deadline, t0, t1;
  GPid pid = 0;

  task = killable_process_task_new (ignoring ? ignoring_argv : cooperative_argv, &error);
  if (task == NULL)
    g_error ("process task: %s", error->message);
  if (ignoring)
    killable_task_set_grace_period (KILLABLE_TASK (task), GRACE_USEC);
  if (!killable_task_start (KILLABLE_TASK (task), &error))
    g_error ("process task: %s", error->message);

  deadline = bench_now_ns () + 5 * G_GINT64_CONSTANT (1000000000);
  while ((pid = killable_process_task_get_pid (task)) <= 0 && bench_now_ns () < deadline)
    g_usleep (100);
  if (!wait_child_ready (pid, ignoring))
    g_error ("process task child %d did not start", (int) pid);

  t0 = bench_now_ns ();
  killable_task_stop (KILLABLE_TASK (task));
  killable_task_join (KILLABLE_TASK (task), NULL);
  t1 = bench_now_ns ();

  return (double) (t1 - t0);
}

static void
child_setup_new_group (gpointer user_data)
{
  /* Its own process group, as libkillable gives its programs, so that the
   * baseline signals the same processes (the shell and its `sleep`). */
  setpgid (0, 0);
}

static void
wait_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  gboolean *done = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  *done = TRUE;
}

static gboolean
grace_expired_cb (gpointer user_data)
{
  gboolean *expired = user_data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
}

static double
trial_gsubprocess (gboolean ignoring)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  const char *id;
  GPid pid;
  gint64 t0, t1;

  g_subprocess_launcher_set_child_setup (launcher, child_setup_new_group, NULL, NULL);
  process = g_subprocess_launcher_spawnv (launcher,
                                          (const char * const *) (ignoring ? ignoring_argv : cooperative_argv),
                                          &error);
  if (process == NULL)
    g_error ("GSubprocess: %s", error->message);

  id = g_subprocess_get_identifier (process);
  pid = (GPid) atoi (id);
  if (!wait_child_ready (pid, ignoring))
    g_error ("GSubprocess child %d did not start", (int) pid);

  /* The same work as libkillable's, timed: SIGTERM to the process group,
   * SIGKILL to the group after the grace period, until the leader is
   * reaped. */
  if (!ignoring)
    {
      t0 = bench_now_ns ();
      kill (-pid, SIGTERM);
      g_subprocess_wait (process, NULL, NULL);
      t1 = bench_now_ns ();
    }
  else
    {
      GMainContext *context = g_main_context_get_thread_default ();
      g_autoptr(GSource) grace = NULL;
      gboolean done = FALSE, expired = FALSE;

      t0 = bench_now_ns ();
      kill (-pid, SIGTERM);
      grace = g_timeout_source_new (GRACE_USEC / 1000);
      g_source_set_callback (grace, grace_expired_cb, &expired, NULL);
      g_source_attach (grace, context);
      g_subprocess_wait_async (process, NULL, wait_done_cb, &done);
      while (!done && !expired)
        g_main_context_iteration (context, TRUE);
      if (!done)
        {
          kill (-pid, SIGKILL);
          while (!done)
            g_main_context_iteration (context, TRUE);
        }
      t1 = bench_now_ns ();
      g_source_destroy (grace);
    }

  /* Nothing of the group should be left; a no-op unless something went
   * wrong. */
  kill (-pid, SIGKILL);

  return (double) (t1 - t0);
}

static void
emit_rows (const char *name,
           GArray     *killable,
           GArray     *baseline,
           const char *baseline_name,
           gboolean    ignoring)
{
  BenchRow row = { 0 };
  double k = bench_median (killable) / 1e6;
  double b = bench_median (baseline) / 1e6;
  g_autofree char *note = NULL;

  if (ignoring)
    note = g_strdup_printf ("overhead beyond the 100 ms grace: libkillable %.2f ms, GSubprocess %.2f ms",
                            k - GRACE_USEC / 1000.0, b - GRACE_USEC / 1000.0);

  row.name = name;
  row.value = k;
  row.unit = "ms";
  row.baseline = baseline_name;
  row.baseline_value = b;
  row.target_kind = BENCH_TARGET_NONE;
  row.note = note;
  bench_emit (&row);

  if (ignoring)
    {
      row.name = "process kill: overhead beyond the grace period";
      row.value = k - GRACE_USEC / 1000.0;
      row.baseline_value = b - GRACE_USEC / 1000.0;
      row.note = NULL;
      bench_emit (&row);
    }
}

int
main (int   argc,
      char *argv[])
{
  gboolean quick = argc > 1 && g_str_equal (argv[1], "--quick");
  const guint coop_trials = quick ? 2 : 30;
  const guint ignoring_trials = quick ? 1 : 10;
  g_autoptr(GArray) k_coop = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) b_coop = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) k_ign = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) b_ign = g_array_new (FALSE, FALSE, sizeof (double));

  bench_progress ("process: stop → reaped (`sleep 1000`, %u trials) and kill after a 100 ms grace "
                  "(TERM ignored, %u trials) vs GSubprocess", coop_trials, ignoring_trials);

  /* warm-up */
  trial_killable (FALSE);
  trial_gsubprocess (FALSE);

  for (guint i = 0; i < coop_trials; i++)
    {
      double t;

      if (i % 2 == 0)
        {
          t = trial_killable (FALSE);
          g_array_append_val (k_coop, t);
          t = trial_gsubprocess (FALSE);
          g_array_append_val (b_coop, t);
        }
      else
        {
          t = trial_gsubprocess (FALSE);
          g_array_append_val (b_coop, t);
          t = trial_killable (FALSE);
          g_array_append_val (k_coop, t);
        }
    }

  for (guint i = 0; i < ignoring_trials; i++)
    {
      double t;

      if (i % 2 == 0)
        {
          t = trial_killable (TRUE);
          g_array_append_val (k_ign, t);
          t = trial_gsubprocess (TRUE);
          g_array_append_val (b_ign, t);
        }
      else
        {
          t = trial_gsubprocess (TRUE);
          g_array_append_val (b_ign, t);
          t = trial_killable (TRUE);
          g_array_append_val (k_ign, t);
        }
    }

  emit_rows ("process stop → reaped (sleep 1000, SIGTERM)", k_coop, b_coop,
             "GSubprocess, SIGTERM to its process group + wait", FALSE);
  emit_rows ("process kill after 100 ms grace (TERM ignored)", k_ign, b_ign,
             "GSubprocess, group SIGTERM, 100 ms, group SIGKILL + wait", TRUE);

  return 0;
}
