/* killable-demo.c: every rung of the ladder, on real work, in a terminal
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Five scenarios, one after the other:
 *
 *   a) a tree of CPU tasks stopped cooperatively (rung 1);
 *   b) a task blocked in read() interrupted: it sees EINTR (rung 2);
 *   c) a loop that never checks, abandoned by kill() (rung 3);
 *   d) a process tree that ignores SIGTERM, killed after a grace period;
 *   e) a task that runs past its timeout.
 *
 * Everything the user sees is printed from the main thread: the tasks'
 * notifications arrive on the main context, and workers hand their log
 * lines over to it. On a terminal the task lines are redrawn in place; when
 * stdout is not a terminal (CI), one plain line is printed per event. The
 * exit status is non-zero if any task did not end as expected.
 */

#include "config.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib-unix.h>

#include <killable.h>

#include "demo-workloads.h"

#define REDRAW_INTERVAL_MS   50
#define READY_TIMEOUT_MS     3000
#define END_TIMEOUT_MS       10000
#define STOP_ALONE_MS        300
/* kill() must release the owner at once, while the loop would run
 * forever: this is a generous "at once", for a loaded machine. */
#define KILL_JOIN_LIMIT_USEC (G_USEC_PER_SEC)

typedef struct _Demo Demo;

typedef struct
{
  Demo              *demo;
  KillableTask      *task;          /* (owned) */
  char              *label;         /* (owned) "parent/child" for events */
  guint              depth;
  gint64             start_time;
  gint64             end_time;      /* when the main context saw it end; 0 before */
  KillableTaskState  last_state;
  int                last_quarter;  /* progress quarters reported in plain mode */
} Row;

/* One line of the closing table. */
typedef struct
{
  char     *scenario;
  char     *rung;
  char     *what;
  char     *final;
  char     *expected;
  char     *latency;
  gboolean  ok;
} Result;

struct _Demo
{
  gboolean      tty;
  gboolean      utf8;
  guint         columns;
  guint         bar_width;   /* wider on wide terminals */
  gint64        t0;
  GPtrArray    *rows;        /* (element-type Row) the live region */
  guint         n_drawn;     /* lines of the live region on screen */
  guint         redraw_id;
  GPtrArray    *results;     /* (element-type Result) */
  gint64        action_time; /* when the current scenario's rung was applied; 0 before */
  const char   *action;      /* (nullable) which call, for the live view */
  GMainLoop    *wait_loop;   /* (nullable) the nested loop of demo_wait_for() */
  gboolean      interrupted;
};


static gboolean opt_plain;
static char *opt_scenario;

static const GOptionEntry entries[] = {
  { "plain", 'p', 0, G_OPTION_ARG_NONE, &opt_plain,
    N_("Print one line per event, even on a terminal"), NULL },
  { "scenario", 's', 0, G_OPTION_ARG_STRING, &opt_scenario,
    N_("Run only this scenario: cpu-tree, blocked-read, stuck-loop, process-tree or timeout"),
    N_("NAME") },
  { NULL }
};

static const char * const scenario_ids[DEMO_N_WORKLOADS] = {
  [DEMO_WORKLOAD_CPU_TREE] = "cpu-tree",
  [DEMO_WORKLOAD_BLOCKED_READ] = "blocked-read",
  [DEMO_WORKLOAD_STUCK_LOOP] = "stuck-loop",
  [DEMO_WORKLOAD_PROCESS_TREE] = "process-tree",
  [DEMO_WORKLOAD_TIMEOUT] = "timeout",
};

/* Text helpers {{{ */

/* Appends @text padded with spaces to @width characters (not bytes:
 * translations are UTF-8). */
static void
append_padded (GString    *out,
               const char *text,
               guint       width)
{
  glong len = g_utf8_strlen (text, -1);

  g_string_append (out, text);
  for (glong i = len; i < (glong) width; i++)
    g_string_append_c (out, ' ');
}

static const char *
state_color (KillableTaskState state)
{
  switch (state)
    {
    case KILLABLE_TASK_STATE_RUNNING:
      return "\033[33m";
    case KILLABLE_TASK_STATE_STOPPING:
      return "\033[35m";
    case KILLABLE_TASK_STATE_SUCCEEDED:
      return "\033[32m";
    case KILLABLE_TASK_STATE_CANCELLED:
      return "\033[36m";
    case KILLABLE_TASK_STATE_FAILED:
    case KILLABLE_TASK_STATE_KILLED:
      return "\033[1;31m";
    case KILLABLE_TASK_STATE_PENDING:
    default:
      return "\033[2m";
    }
}

static const char *
error_code_to_string (int code)
{
  switch (code)
    {
    case KILLABLE_ERROR_STOPPED:
      return _("stopped");
    case KILLABLE_ERROR_INTERRUPTED:
      return _("interrupted");
    case KILLABLE_ERROR_TIMED_OUT:
      return _("timed out");
    case KILLABLE_ERROR_KILLED:
      return _("killed");
    case KILLABLE_ERROR_CHILD_FAILED:
      return _("child failed");
    case KILLABLE_ERROR_FAILED:
    default:
      return _("failed");
    }
}

/* "CANCELLED (timed out)" */
static char *
describe_outcome (KillableTask *task)
{
  const GError *error = killable_task_get_error (task);
  const char *state = demo_state_to_string (killable_task_get_state (task));

  if (error == NULL)
    return g_strdup (state);
  if (error->domain == KILLABLE_ERROR)
    return g_strdup_printf ("%s (%s)", state, error_code_to_string (error->code));

  return g_strdup_printf ("%s (%s)", state, error->message);
}

static char *
describe_expected (KillableTask *task)
{
  const char *state = demo_state_to_string (demo_task_get_expected_state (task));
  int code = demo_task_get_expected_error (task);

  if (code < 0)
    return g_strdup (state);

  return g_strdup_printf ("%s (%s)", state, error_code_to_string (code));
}

static gboolean
outcome_is_expected (KillableTask *task)
{
  const GError *error = killable_task_get_error (task);
  int code = demo_task_get_expected_error (task);

  if (killable_task_get_state (task) != demo_task_get_expected_state (task))
    return FALSE;

  return code < 0 || g_error_matches (error, KILLABLE_ERROR, code);
}

static char *
format_ms (gint64 usec)
{
  return g_strdup_printf ("%.2f", usec / 1000.);
}

/* }}} */

/* Output: the live region and the event lines {{{ */

static void
live_erase (Demo *demo)
{
  if (demo->tty && demo->n_drawn > 0)
    {
      /* Back to the first line of the region, then clear to the end. */
      printf ("\033[%uA\r\033[J", demo->n_drawn);
      demo->n_drawn = 0;
    }
}

static void
format_bar (Demo    *demo,
            GString *out,
            double   progress)
{
  guint filled = (guint) (progress * demo->bar_width + 0.5);

  g_string_append_c (out, '[');
  for (guint i = 0; i < demo->bar_width; i++)
    {
      if (demo->utf8)
        g_string_append (out, i < filled ? "█" : "░");
      else
        g_string_append_c (out, i < filled ? '#' : '.');
    }
  g_string_append_c (out, ']');
}

static void
live_draw (Demo *demo)
{
  gint64 now = g_get_monotonic_time ();

  if (!demo->tty)
    return;

  live_erase (demo);

  for (guint i = 0; i < demo->rows->len; i++)
    {
      Row *row = g_ptr_array_index (demo->rows, i);
      KillableTaskState state = killable_task_get_state (row->task);
      double progress = killable_task_get_progress (row->task);
      g_autofree char *status = killable_task_dup_status (row->task);
      g_autoptr(GString) line = g_string_new ("  ");
      g_autofree char *name = NULL;
      gint64 end = row->end_time != 0 ? row->end_time : now;
      glong room;

      name = g_strdup_printf ("%*s%s", (int) row->depth * 2, "",
                              killable_task_get_name (row->task));
      append_padded (line, name, 14);
      g_string_append (line, state_color (state));
      append_padded (line, demo_state_to_string (state), 10);
      g_string_append (line, "\033[0m ");
      format_bar (demo, line, progress);
      g_string_append_printf (line, " %3d%% %6.2f s  ", (int) (progress * 100), (end - row->start_time) / (double) G_USEC_PER_SEC);

      /* Once ended, the line tells how long after the rung it took. */
      if (row->end_time != 0 && demo->action_time != 0 && demo->action != NULL)
        {
          g_free (status);
          status = g_strdup_printf (_("%.2f ms after %s"),
                                    (row->end_time - demo->action_time) / 1000.,
                                    demo->action);
        }

      /* The status gets what is left of the line; escape sequences take
       * no room on screen. */
      room = (glong) demo->columns - 2 - 14 - 10 - 1 - (glong) (demo->bar_width + 2) - 15;
      if (status != NULL && room > 3)
        {
          if (g_utf8_strlen (status, -1) > room)
            {
              char *cut = g_utf8_offset_to_pointer (status, room - 1);

              *cut = '\0';
              g_string_append (line, status);
              g_string_append (line, demo->utf8 ? "…" : "~");
            }
          else
            g_string_append (line, status);
        }

      printf ("%s\n", line->str);
    }

  demo->n_drawn = demo->rows->len;
  fflush (stdout);
}

/* A line that stays: printed above the live region on a terminal, as is
 * otherwise, with the time since the start of the demo. */
G_GNUC_PRINTF (2, 3)
static void
event (Demo       *demo,
       const char *format,
       ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  live_erase (demo);
  printf ("[%7.3f] %s\n", (g_get_monotonic_time () - demo->t0) / (double) G_USEC_PER_SEC, message);
  live_draw (demo);
  fflush (stdout);
}

static gboolean
redraw_cb (gpointer data)
{
  live_draw (data);

  return G_SOURCE_CONTINUE;
}

static void
log_cb (const char *message,
        gpointer    user_data)
{
  event (user_data, "%s", message);
}

/* }}} */

/* Rows and their notifications {{{ */

static void
row_free (gpointer data)
{
  Row *row = data;

  g_signal_handlers_disconnect_by_data (row->task, row);
  g_clear_object (&row->task);
  g_free (row->label);
  g_free (row);
}

static void
state_changed_cb (KillableTask *task,
                  GParamSpec   *pspec,
                  Row          *row)
{
  KillableTaskState state = killable_task_get_state (task);

  if (state == row->last_state)
    return;

  if (killable_task_is_finished (task) && row->end_time == 0)
    row->end_time = g_get_monotonic_time ();

  if (!row->demo->tty)
    event (row->demo, "%s: %s → %s", row->label,
           demo_state_to_string (row->last_state), demo_state_to_string (state));

  row->last_state = state;
  live_draw (row->demo);
}

static void
progress_changed_cb (KillableTask *task,
                     GParamSpec   *pspec,
                     Row          *row)
{
  int quarter = (int) (killable_task_get_progress (task) * 4);

  /* Plain mode reports each quarter once; the live view redraws on its
   * timer anyway. */
  if (!row->demo->tty && quarter > row->last_quarter)
    {
      row->last_quarter = quarter;
      event (row->demo, _("%s: %d%% done"), row->label, quarter * 25);
    }
}

static Row *
row_add (Demo         *demo,
         KillableTask *task,
         const char   *parent_label,
         guint         depth)
{
  Row *row = g_new0 (Row, 1);

  row->demo = demo;
  row->task = g_object_ref (task);
  row->depth = depth;
  row->label = parent_label != NULL
                 ? g_strdup_printf ("%s/%s", parent_label, killable_task_get_name (task))
                 : g_strdup (killable_task_get_name (task));
  row->last_state = killable_task_get_state (task);
  row->start_time = g_get_monotonic_time ();

  g_signal_connect (task, "notify::state", G_CALLBACK (state_changed_cb), row);
  g_signal_connect (task, "notify::progress", G_CALLBACK (progress_changed_cb), row);
  g_ptr_array_add (demo->rows, row);

  return row;
}

/* A row for @root and each of its descendants, parents first. */
static void
rows_add_tree (Demo         *demo,
               KillableTask *root)
{
  g_autoptr(GPtrArray) stack = g_ptr_array_new ();
  g_autoptr(GPtrArray) depths = g_ptr_array_new ();
  g_autoptr(GPtrArray) labels = g_ptr_array_new ();

  g_ptr_array_add (stack, root);
  g_ptr_array_add (depths, GUINT_TO_POINTER (0));
  g_ptr_array_add (labels, NULL);

  while (stack->len > 0)
    {
      KillableTask *task = g_ptr_array_steal_index (stack, stack->len - 1);
      guint depth = GPOINTER_TO_UINT (g_ptr_array_steal_index (depths, depths->len - 1));
      const char *label = g_ptr_array_steal_index (labels, labels->len - 1);
      GListModel *children = killable_task_get_children (task);
      Row *row = row_add (demo, task, label, depth);

      /* Pushed in reverse, so that they come out in order. */
      for (guint i = g_list_model_get_n_items (children); i > 0; i--)
        {
          g_autoptr(KillableTask) child = g_list_model_get_item (children, i - 1);

          /* The tree holds the child: the pointer outlives this loop. */
          g_ptr_array_add (stack, child);
          g_ptr_array_add (depths, GUINT_TO_POINTER (depth + 1));
          g_ptr_array_add (labels, row->label);
        }
    }
}

static void
rows_begin (Demo       *demo,
            const char *title,
            const char *explanation)
{
  live_erase (demo);
  printf ("\n%s%s%s\n  %s\n", demo->tty ? "\033[1m" : "", title, demo->tty ? "\033[0m" : "",
          explanation);
  fflush (stdout);

  g_ptr_array_set_size (demo->rows, 0);
  demo->action_time = 0;
  demo->action = NULL;
  if (demo->tty)
    demo->redraw_id = g_timeout_add (REDRAW_INTERVAL_MS, redraw_cb, demo);
}

/* The region stays on screen as it is; the next scenario starts below. */
static void
rows_end (Demo *demo)
{
  live_draw (demo);
  demo->n_drawn = 0;
  g_clear_handle_id (&demo->redraw_id, g_source_remove);
  g_ptr_array_set_size (demo->rows, 0);
}

static Row *
rows_find (Demo         *demo,
           KillableTask *task)
{
  for (guint i = 0; i < demo->rows->len; i++)
    {
      Row *row = g_ptr_array_index (demo->rows, i);

      if (row->task == task)
        return row;
    }

  return NULL;
}

/* }}} */

/* Ctrl+C: nothing may outlive the demo, least of all a process group that
 * ignores SIGTERM. kill() sends it SIGKILL; its worker reaps it at once. */
G_GNUC_NORETURN
static void
demo_abort (Demo *demo)
{
  demo_stuck_loops_release ();
  for (guint i = 0; i < demo->rows->len; i++)
    killable_task_kill (((Row *) g_ptr_array_index (demo->rows, i))->task);
  for (guint i = 0; i < demo->rows->len; i++)
    killable_task_wait (((Row *) g_ptr_array_index (demo->rows, i))->task, G_USEC_PER_SEC);

  live_erase (demo);
  if (demo->tty)
    printf ("\033[?25h");
  printf ("%s\n", _("Interrupted."));
  exit (130);
}

/* The shared wait, which the Ctrl+C handler can quit: then the demo
 * aborts (kills what runs) instead of going on. */
static gboolean
demo_wait_for (Demo          *demo,
               DemoPredicate  predicate,
               gpointer       data,
               guint          timeout_ms)
{
  gboolean ret = demo_main_loop_wait (predicate, data, timeout_ms, &demo->wait_loop);

  if (demo->interrupted)
    demo_abort (demo);

  return ret;
}

typedef struct
{
  Demo         *demo;
  KillableTask *task;
} ReadyWait;

/* The workload is ready for its rung, and the main context has seen every
 * row start (so that the events tell the transitions in order). */
static gboolean
task_is_ready (gpointer data)
{
  ReadyWait *wait = data;

  for (guint i = 0; i < wait->demo->rows->len; i++)
    if (((Row *) g_ptr_array_index (wait->demo->rows, i))->last_state == KILLABLE_TASK_STATE_PENDING)
      return FALSE;

  return demo_task_is_ready (wait->task);
}

static gboolean
demo_wait_ready (Demo         *demo,
                 KillableTask *task,
                 guint         timeout_ms)
{
  ReadyWait wait = { demo, task };

  return demo_wait_for (demo, task_is_ready, &wait, timeout_ms);
}

/* Every row's task has ended, and the main context has seen it. */
static gboolean
rows_all_ended (gpointer data)
{
  Demo *demo = data;

  for (guint i = 0; i < demo->rows->len; i++)
    if (((Row *) g_ptr_array_index (demo->rows, i))->end_time == 0)
      return FALSE;

  return TRUE;
}

static gboolean
sigint_cb (gpointer data)
{
  Demo *demo = data;

  demo->interrupted = TRUE;
  if (demo->wait_loop != NULL)
    g_main_loop_quit (demo->wait_loop);

  return G_SOURCE_CONTINUE;
}

/* }}} */

/* Results {{{ */

static void
result_free (gpointer data)
{
  Result *result = data;

  g_free (result->scenario);
  g_free (result->rung);
  g_free (result->what);
  g_free (result->final);
  g_free (result->expected);
  g_free (result->latency);
  g_free (result);
}

/* Takes @final, @expected and @latency. */
static void
result_add (Demo         *demo,
            DemoWorkload  workload,
            const char   *what,
            char         *final,
            char         *expected,
            char         *latency,
            gboolean      ok)
{
  Result *result = g_new0 (Result, 1);

  result->scenario = g_strdup (demo_workload_get_title (workload));
  result->rung = g_strdup (demo_rung_get_title (demo_workload_get_rung (workload)));
  result->what = g_strdup (what);
  result->final = final;
  result->expected = expected;
  result->latency = latency != NULL ? latency : g_strdup ("-");
  result->ok = ok;
  g_ptr_array_add (demo->results, result);
}

/* One result per row: its outcome against the expected one, and how long
 * after @action_time the main context saw it end. */
static void
results_add_rows (Demo         *demo,
                  DemoWorkload  workload,
                  gint64        action_time)
{
  for (guint i = 0; i < demo->rows->len; i++)
    {
      Row *row = g_ptr_array_index (demo->rows, i);
      char *latency = NULL;

      if (row->end_time != 0 && action_time != 0)
        latency = format_ms (row->end_time - action_time);

      result_add (demo, workload, row->label,
                  describe_outcome (row->task), describe_expected (row->task),
                  latency, row->end_time != 0 && outcome_is_expected (row->task));
    }
}

static void
result_add_failure (Demo          *demo,
                    DemoWorkload   workload,
                    const GError  *error)
{
  event (demo, _("cannot run this scenario: %s"), error->message);
  result_add (demo, workload, "-", g_strdup (error->message), g_strdup ("-"), NULL, FALSE);
}

static gboolean
print_summary (Demo *demo)
{
  const char *headers[] = {
    _("Scenario"), _("Rung"), _("Task"), _("Final state"), _("Expected"),
    _("Latency (ms)"), _("Result"),
  };
  guint widths[G_N_ELEMENTS (headers)];
  guint n_failed = 0;
  g_autoptr(GString) line = g_string_new (NULL);

  for (guint c = 0; c < G_N_ELEMENTS (headers); c++)
    widths[c] = g_utf8_strlen (headers[c], -1);

  for (guint i = 0; i < demo->results->len; i++)
    {
      Result *r = g_ptr_array_index (demo->results, i);
      const char *cells[] = { r->scenario, r->rung, r->what, r->final, r->expected,
                              r->latency, r->ok ? _("OK") : _("FAIL") };

      for (guint c = 0; c < G_N_ELEMENTS (cells); c++)
        widths[c] = MAX (widths[c], (guint) g_utf8_strlen (cells[c], -1));
    }

  printf ("\n%s%s%s\n", demo->tty ? "\033[1m" : "", _("Summary"), demo->tty ? "\033[0m" : "");

  for (guint c = 0; c < G_N_ELEMENTS (headers); c++)
    {
      append_padded (line, headers[c], widths[c]);
      g_string_append (line, "  ");
    }
  printf ("%s\n", g_strchomp (line->str));
  g_string_truncate (line, 0);
  for (guint c = 0; c < G_N_ELEMENTS (headers); c++)
    {
      for (guint k = 0; k < widths[c]; k++)
        g_string_append_c (line, '-');
      g_string_append (line, "  ");
    }
  printf ("%s\n", g_strchomp (line->str));

  for (guint i = 0; i < demo->results->len; i++)
    {
      Result *r = g_ptr_array_index (demo->results, i);
      const char *cells[] = { r->scenario, r->rung, r->what, r->final, r->expected,
                              r->latency, r->ok ? _("OK") : _("FAIL") };

      g_string_truncate (line, 0);
      for (guint c = 0; c < G_N_ELEMENTS (cells); c++)
        {
          if (c == G_N_ELEMENTS (cells) - 1 && demo->tty)
            g_string_append (line, r->ok ? "\033[32m" : "\033[1;31m");
          append_padded (line, cells[c], widths[c]);
          if (c == G_N_ELEMENTS (cells) - 1 && demo->tty)
            g_string_append (line, "\033[0m");
          g_string_append (line, "  ");
        }
      printf ("%s\n", g_strchomp (line->str));
      if (!r->ok)
        n_failed++;
    }

  printf ("\n");
  if (n_failed == 0)
    printf (ngettext ("All %u check passed.\n", "All %u checks passed.\n",
                      demo->results->len),
            demo->results->len);
  else
    printf (ngettext ("%u check failed.\n", "%u checks failed.\n", n_failed), n_failed);

  return n_failed == 0;
}

/* }}} */

/* Scenarios {{{ */

/* Remembers when a rung was applied, for the latencies. */
static gint64
demo_action (Demo       *demo,
             const char *action)
{
  demo->action = action;
  demo->action_time = g_get_monotonic_time ();

  return demo->action_time;
}

static KillableTask *
scenario_begin (Demo          *demo,
                DemoWorkload   workload,
                const char    *explanation)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *title = NULL;

  title = g_strdup_printf ("%s — %s", demo_workload_get_title (workload),
                           demo_rung_get_title (demo_workload_get_rung (workload)));
  rows_begin (demo, title, explanation);

  task = demo_workload_new (workload, &error);
  if (task == NULL)
    {
      result_add_failure (demo, workload, error);
      rows_end (demo);
      return NULL;
    }

  rows_add_tree (demo, task);
  if (!demo_workload_start (task, &error))
    {
      result_add_failure (demo, workload, error);
      killable_task_stop (task);
      rows_end (demo);
      return NULL;
    }

  return g_steal_pointer (&task);
}

static void
scenario_cpu_tree (Demo *demo)
{
  g_autoptr(KillableTask) task = NULL;
  gint64 action_time;

  task = scenario_begin (demo, DEMO_WORKLOAD_CPU_TREE,
                         _("A parent and four children hashing and counting primes; "
                           "each calls killable_task_check() between chunks."));
  if (task == NULL)
    return;

  demo_wait_ready (demo, task, READY_TIMEOUT_MS);

  event (demo, _("killable_task_stop (“%s”): the stop reaches every child"),
         killable_task_get_name (task));
  action_time = demo_action (demo, "stop()");
  killable_task_stop (task);

  demo_wait_for (demo, rows_all_ended, demo, END_TIMEOUT_MS);
  results_add_rows (demo, DEMO_WORKLOAD_CPU_TREE, action_time);
  rows_end (demo);
}

static void
scenario_blocked_read (Demo *demo)
{
  g_autoptr(KillableTask) task = NULL;
  gboolean still_blocked;
  gint64 action_time;

  task = scenario_begin (demo, DEMO_WORKLOAD_BLOCKED_READ,
                         _("A worker blocked in read() on a pipe nobody writes to. "
                           "A stop alone cannot wake it; an interrupt can."));
  if (task == NULL)
    return;

  demo_wait_ready (demo, task, READY_TIMEOUT_MS);

  event (demo, _("killable_task_stop (“%s”)"), killable_task_get_name (task));
  killable_task_stop (task);
  demo_wait_for (demo, NULL, NULL, STOP_ALONE_MS);
  still_blocked = !killable_task_is_finished (task);
  event (demo, still_blocked
                 ? _("after %d ms the worker is still blocked in read()")
                 : _("after %d ms the worker has ended"),
         STOP_ALONE_MS);

  event (demo, _("killable_task_interrupt (“%s”): its thread gets a signal, read() fails with EINTR"),
         killable_task_get_name (task));
  action_time = demo_action (demo, "interrupt()");
  killable_task_interrupt (task);

  demo_wait_for (demo, rows_all_ended, demo, END_TIMEOUT_MS);
  results_add_rows (demo, DEMO_WORKLOAD_BLOCKED_READ, action_time);
  result_add (demo, DEMO_WORKLOAD_BLOCKED_READ, _("blocked after stop()"),
              g_strdup (still_blocked ? _("yes") : _("no")), g_strdup (_("yes")),
              NULL, still_blocked);
  result_add (demo, DEMO_WORKLOAD_BLOCKED_READ, _("read() saw EINTR"),
              g_strdup (demo_blocked_read_saw_eintr (task) ? _("yes") : _("no")),
              g_strdup (_("yes")), NULL, demo_blocked_read_saw_eintr (task));
  rows_end (demo);
}

/* Returns the abandoned task, for the release at the end. */
static KillableTask *
scenario_stuck_loop (Demo *demo)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  gboolean still_running;
  gint64 action_time, join_usec;
  guint abandoned;
  Row *row;

  task = scenario_begin (demo, DEMO_WORKLOAD_STUCK_LOOP,
                         _("A loop that never checks the task. Only kill() releases "
                           "its owner: the thread is abandoned, not cancelled."));
  if (task == NULL)
    return NULL;

  demo_wait_ready (demo, task, READY_TIMEOUT_MS);

  event (demo, _("killable_task_stop (“%s”)"), killable_task_get_name (task));
  killable_task_stop (task);
  demo_wait_for (demo, NULL, NULL, STOP_ALONE_MS);
  still_running = !killable_task_is_finished (task);
  event (demo, still_running
                 ? _("after %d ms the loop still runs: it never looks")
                 : _("after %d ms the loop has ended"),
         STOP_ALONE_MS);

  event (demo, _("killable_task_kill (“%s”), then killable_task_join ()"),
         killable_task_get_name (task));
  action_time = demo_action (demo, "kill()");
  killable_task_kill (task);
  killable_task_join (task, &error);
  join_usec = g_get_monotonic_time () - action_time;
  abandoned = killable_get_abandoned_thread_count ();
  event (demo, _("join() returned after %.2f ms: %s; abandoned threads: %u"),
         join_usec / 1000., error != NULL ? error->message : "-", abandoned);

  demo_wait_for (demo, rows_all_ended, demo, END_TIMEOUT_MS);
  row = rows_find (demo, task);
  result_add (demo, DEMO_WORKLOAD_STUCK_LOOP, row->label,
              describe_outcome (task), describe_expected (task),
              format_ms (join_usec),
              outcome_is_expected (task) && join_usec < KILL_JOIN_LIMIT_USEC);
  result_add (demo, DEMO_WORKLOAD_STUCK_LOOP, _("ran on after stop()"),
              g_strdup (still_running ? _("yes") : _("no")), g_strdup (_("yes")),
              NULL, still_running);
  result_add (demo, DEMO_WORKLOAD_STUCK_LOOP, _("abandoned threads"),
              g_strdup_printf ("%u", abandoned), g_strdup ("1"), NULL, abandoned == 1);
  rows_end (demo);

  return g_steal_pointer (&task);
}

typedef struct
{
  GPid  pids[8];
  guint n_pids;
} PidSet;

static guint
pids_alive (PidSet *set)
{
  guint n = 0;

  for (guint i = 0; i < set->n_pids; i++)
    n += demo_pid_is_alive (set->pids[i]);

  return n;
}

static gboolean
pids_all_gone (gpointer data)
{
  return pids_alive (data) == 0;
}

static void
scenario_process_tree (Demo *demo)
{
  g_autoptr(KillableTask) task = NULL;
  gint64 action_time;
  PidSet set = { { 0, }, 0 };
  guint alive;

  task = scenario_begin (demo, DEMO_WORKLOAD_PROCESS_TREE,
                         _("sh starts two sleeps; all three ignore SIGTERM. With "
                           "grace-period = 300 ms, the stop's SIGTERM is followed by "
                           "SIGKILL to the whole process group."));
  if (task == NULL)
    return;

  if (!demo_wait_ready (demo, task, END_TIMEOUT_MS))
    event (demo, _("the grandchildren did not report their PIDs"));
  set.n_pids = demo_process_tree_get_pids (task, set.pids, G_N_ELEMENTS (set.pids));
  if (set.n_pids == 3)
    event (demo, _("process group: sh %d, sleep %d, sleep %d"),
           (int) set.pids[0], (int) set.pids[1], (int) set.pids[2]);

  event (demo, _("killable_task_stop (“%s”): SIGTERM, which they ignore"),
         killable_task_get_name (task));
  action_time = demo_action (demo, "stop()");
  killable_task_stop (task);

  demo_wait_for (demo, rows_all_ended, demo, END_TIMEOUT_MS);
  /* An orphan is reaped by init: give it a moment. */
  demo_wait_for (demo, pids_all_gone, &set, 2000);
  alive = pids_alive (&set);
  event (demo, _("%u of %u recorded PIDs still alive"), alive, set.n_pids);

  results_add_rows (demo, DEMO_WORKLOAD_PROCESS_TREE, action_time);
  result_add (demo, DEMO_WORKLOAD_PROCESS_TREE, _("processes alive"),
              g_strdup_printf (_("%u of %u"), alive, set.n_pids),
              g_strdup_printf (_("%u of %u"), 0, 3), NULL,
              set.n_pids == 3 && alive == 0);
  rows_end (demo);
}

static void
scenario_timeout (Demo *demo)
{
  g_autoptr(KillableTask) task = NULL;
  gint64 deadline;

  task = scenario_begin (demo, DEMO_WORKLOAD_TIMEOUT,
                         _("5 s of killable_task_sleep() with a 600 ms timeout: "
                           "the timer thread stops it."));
  if (task == NULL)
    return;

  deadline = killable_task_get_deadline (task);
  demo->action_time = deadline;
  demo->action = _("the deadline");
  demo_wait_for (demo, rows_all_ended, demo, END_TIMEOUT_MS);
  results_add_rows (demo, DEMO_WORKLOAD_TIMEOUT, deadline);
  rows_end (demo);
}

static gboolean
abandoned_returned (gpointer data)
{
  return killable_get_abandoned_thread_count () == 0 &&
         demo_stuck_loop_cleanup_ran (data);
}

/* Lets the abandoned loop return: its thread finishes, its cleanup runs,
 * its late result is dropped. */
static void
release_stuck_loop (Demo         *demo,
                    KillableTask *task)
{
  gint64 start;
  gboolean ok;

  printf ("\n");
  event (demo, _("releasing the stuck loop: its abandoned thread may return now"));
  start = g_get_monotonic_time ();
  demo_stuck_loops_release ();
  ok = demo_wait_for (demo, abandoned_returned, task, END_TIMEOUT_MS);
  /* The log line of the cleanup was queued before the count dropped. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  event (demo, _("abandoned threads: %u; state still %s"),
         killable_get_abandoned_thread_count (),
         demo_state_to_string (killable_task_get_state (task)));

  result_add (demo, DEMO_WORKLOAD_STUCK_LOOP, _("cleanup after release"),
              g_strdup (ok ? _("ran") : _("did not run")), g_strdup (_("ran")),
              format_ms (g_get_monotonic_time () - start),
              ok && killable_task_get_state (task) == KILLABLE_TASK_STATE_KILLED);
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(KillableTask) stuck = NULL;
  struct winsize ws;
  Demo demo = { 0, };
  gboolean ok;
  int only = -1;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  context = g_option_context_new (NULL);
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
                                _("Runs real work and stops it with each rung of the "
                                  "libkillable ladder: stop, interrupt, kill, grace "
                                  "period, timeout."));
  g_option_context_set_description (context,
                                    _("The exit status is 0 when every task ended as "
                                      "expected, 1 otherwise."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }

  if (opt_scenario != NULL)
    {
      for (guint i = 0; i < DEMO_N_WORKLOADS; i++)
        if (g_str_equal (opt_scenario, scenario_ids[i]))
          only = (int) i;
      if (only < 0)
        {
          g_printerr (_("Unknown scenario “%s”\n"), opt_scenario);
          return 2;
        }
    }

  demo.tty = !opt_plain && isatty (STDOUT_FILENO) &&
             g_strcmp0 (g_getenv ("TERM"), "dumb") != 0;
  demo.utf8 = g_get_charset (NULL);
  demo.columns = 80;
  if (demo.tty && ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 60)
    demo.columns = ws.ws_col;
  demo.bar_width = demo.columns >= 100 ? 20 : 12;
  demo.t0 = g_get_monotonic_time ();
  demo.rows = g_ptr_array_new_with_free_func (row_free);
  demo.results = g_ptr_array_new_with_free_func (result_free);

  demo_workloads_set_log_func (log_cb, &demo);
  g_unix_signal_add (SIGINT, sigint_cb, &demo);

  if (demo.tty)
    printf ("\033[?25l");

  if (only < 0 || only == DEMO_WORKLOAD_CPU_TREE)
    scenario_cpu_tree (&demo);
  if (only < 0 || only == DEMO_WORKLOAD_BLOCKED_READ)
    scenario_blocked_read (&demo);
  if (only < 0 || only == DEMO_WORKLOAD_STUCK_LOOP)
    stuck = scenario_stuck_loop (&demo);
  if (only < 0 || only == DEMO_WORKLOAD_PROCESS_TREE)
    scenario_process_tree (&demo);
  if (only < 0 || only == DEMO_WORKLOAD_TIMEOUT)
    scenario_timeout (&demo);
  if (stuck != NULL)
    release_stuck_loop (&demo, stuck);

  if (demo.tty)
    printf ("\033[?25h");

  ok = print_summary (&demo);

  demo_workloads_set_log_func (NULL, NULL);
  g_ptr_array_unref (demo.rows);
  g_ptr_array_unref (demo.results);
  g_free (opt_scenario);

  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
