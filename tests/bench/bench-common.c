/* bench-common.c: timing, statistics and result rows of the benchmarks
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench-common.h"

gint64
bench_now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

static int
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  double x = *(const double *) a;
  double y = *(const double *) b;

  return (x > y) - (x < y);
}

/* Nearest-rank percentile, @p in [0, 1]. Sorts @values in place. */
double
bench_percentile (GArray *values,
                  double  p)
{
  guint idx;

  if (values->len == 0)
    return NAN;

  g_array_sort (values, compare_doubles);
  idx = (guint) ceil (p * values->len);
  idx = idx == 0 ? 0 : idx - 1;
  if (idx >= values->len)
    idx = values->len - 1;

  return g_array_index (values, double, idx);
}

double
bench_median (GArray *values)
{
  guint n = values->len;

  if (n == 0)
    return NAN;

  g_array_sort (values, compare_doubles);
  if (n % 2 == 1)
    return g_array_index (values, double, n / 2);

  return (g_array_index (values, double, n / 2 - 1) +
          g_array_index (values, double, n / 2)) / 2.0;
}

static void
append_json_string (GString    *out,
                    const char *s)
{
  if (s == NULL)
    {
      g_string_append (out, "null");
      return;
    }

  g_string_append_c (out, '"');
  for (const char *p = s; *p != '\0'; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_printf (out, "\\%c", *p);
      else if ((guchar) *p < 0x20)
        g_string_append_printf (out, "\\u%04x", (guchar) *p);
      else
        g_string_append_c (out, *p);
    }
  g_string_append_c (out, '"');
}

static void
append_json_number (GString *out,
                    double   value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (value))
    {
      g_string_append (out, "null");
      return;
    }

  g_string_append (out, g_ascii_formatd (buf, sizeof buf, "%.6g", value));
}

void
bench_emit (const BenchRow *row)
{
  g_autoptr(GString) out = g_string_new ("@ROW {\"name\": ");
  gboolean have_ratio;
  double ratio = NAN;
  g_autofree char *target = NULL;
  int met = -1;

  /* Compared only when both values were measured. */
  have_ratio = row->baseline != NULL && row->value_text == NULL &&
               row->baseline_text == NULL && isfinite (row->value) &&
               isfinite (row->baseline_value) && row->baseline_value > 0;
  if (have_ratio)
    ratio = row->value / row->baseline_value;

  if (row->target != NULL)
    target = g_strdup (row->target);
  else if (row->target_kind == BENCH_TARGET_AT_MOST)
    target = g_strdup_printf ("≤ %g×", row->target_ratio);
  else if (row->target_kind == BENCH_TARGET_BELOW)
    target = g_strdup_printf ("< %g×", row->target_ratio);
  else if (row->target_kind == BENCH_TARGET_VALUE_AT_MOST)
    target = g_strdup_printf ("≤ %g %s (absolute)", row->target_ratio, row->unit);

  if (row->target_kind == BENCH_TARGET_VALUE_AT_MOST)
    {
      if (row->value_text == NULL && isfinite (row->value))
        met = row->value <= row->target_ratio;
    }
  else if (met < 0 && row->target_kind != BENCH_TARGET_NONE && have_ratio)
    {
      if (row->target_kind == BENCH_TARGET_AT_MOST)
        met = ratio <= row->target_ratio;
      else
        met = ratio < row->target_ratio;
    }

  append_json_string (out, row->name);
  g_string_append (out, ", \"value\": ");
  if (row->value_text != NULL)
    append_json_string (out, row->value_text);
  else
    append_json_number (out, row->value);
  g_string_append (out, ", \"unit\": ");
  append_json_string (out, row->unit);
  g_string_append (out, ", \"baseline\": ");
  append_json_string (out, row->baseline);
  g_string_append (out, ", \"baseline_value\": ");
  if (row->baseline == NULL)
    g_string_append (out, "null");
  else if (row->baseline_text != NULL)
    append_json_string (out, row->baseline_text);
  else
    append_json_number (out, row->baseline_value);
  g_string_append (out, ", \"ratio\": ");
  append_json_number (out, ratio);
  g_string_append (out, ", \"target\": ");
  append_json_string (out, target);
  g_string_append (out, ", \"met\": ");
  g_string_append (out, met < 0 ? "null" : met ? "true" : "false");
  /* A target without two measured values: not compared, never met. */
  if (row->target_kind != BENCH_TARGET_NONE && met < 0 &&
      (row->target_kind == BENCH_TARGET_VALUE_AT_MOST || !have_ratio))
    g_string_append (out, ", \"compared\": false");
  if (row->note != NULL)
    {
      g_string_append (out, ", \"note\": ");
      append_json_string (out, row->note);
    }
  g_string_append (out, "}\n");

  fputs (out->str, stdout);
  fflush (stdout);
}

void
bench_progress (const char *format,
                ...)
{
  va_list args;

  va_start (args, format);
  vfprintf (stderr, format, args);
  va_end (args);
  fputc ('\n', stderr);
  fflush (stderr);
}

gsize
bench_rss_bytes (void)
{
  g_autofree char *contents = NULL;
  unsigned long size = 0, resident = 0;

  if (!g_file_get_contents ("/proc/self/statm", &contents, NULL, NULL))
    return 0;
  if (sscanf (contents, "%lu %lu", &size, &resident) != 2)
    return 0;

  return (gsize) resident * (gsize) sysconf (_SC_PAGESIZE);
}

/* Bytes handed out by malloc (arena and mmapped chunks). */
gsize
bench_heap_bytes (void)
{
  struct mallinfo2 mi = mallinfo2 ();

  return mi.uordblks + mi.hblkhd;
}

/* Threads of this process, from /proc/self/status. */
guint
bench_thread_count (void)
{
  g_autofree char *contents = NULL;
  const char *line;
  guint n = 0;

  if (!g_file_get_contents ("/proc/self/status", &contents, NULL, NULL))
    return 0;
  line = strstr (contents, "\nThreads:");
  if (line == NULL || sscanf (line + 9, "%u", &n) != 1)
    return 0;

  return n;
}

int
bench_gettid (void)
{
  return (int) syscall (SYS_gettid);
}

/* The scheduler state of thread @tid of this process ('R', 'S', 'D'...),
 * or '?' if it cannot be read. */
char
bench_thread_state (int tid)
{
  char path[64];
  char buf[512];
  const char *paren;
  FILE *f;
  size_t n;

  g_snprintf (path, sizeof path, "/proc/self/task/%d/stat", tid);
  f = fopen (path, "re");
  if (f == NULL)
    return '?';
  n = fread (buf, 1, sizeof buf - 1, f);
  fclose (f);
  buf[n] = '\0';

  paren = strrchr (buf, ')');
  if (paren == NULL || paren[1] == '\0' || paren[2] == '\0')
    return '?';

  return paren[2];
}

/* Waits until thread @tid is blocked in the kernel, so that what is then
 * measured is a wake-up and not a stop that the thread notices on its way to
 * blocking. Bounded: returns FALSE if it did not block within 1 s. */
gboolean
bench_wait_blocked (int tid)
{
  gint64 deadline = bench_now_ns () + G_GINT64_CONSTANT (1000000000);

  for (;;)
    {
      char state = bench_thread_state (tid);

      if (state == 'S' || state == 'D')
        return TRUE;
      if (bench_now_ns () > deadline)
        return FALSE;
      g_thread_yield ();
    }
}
