/* bench-common.h: timing, statistics and result rows of the benchmarks
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A figure is a ratio: libkillable against a baseline measured in the same
 * run. Each row is printed on stdout as one line, "@ROW " followed by a JSON
 * object; run-benchmarks.py collects them. Timings are never asserted: a
 * missed target is reported, not failed.
 *
 * Whether a target is met is only ever computed, by bench_emit(), from the
 * two measured values of the row: a row whose baseline (or own value) is
 * missing, crashed or failed is "not compared" (met null, compared false),
 * never met. An absolute bound (memory, counts: BENCH_TARGET_VALUE_AT_MOST)
 * is met from the row's own measured value; the baseline is then only
 * shown beside it. */

typedef enum
{
  BENCH_TARGET_NONE,      /* informational row */
  BENCH_TARGET_AT_MOST,   /* ratio <= target_ratio */
  BENCH_TARGET_BELOW,     /* ratio < target_ratio */
  BENCH_TARGET_VALUE_AT_MOST, /* value <= target_ratio, in the row's unit (absolute) */
} BenchTargetKind;

typedef struct
{
  const char      *name;
  double           value;
  const char      *value_text;     /* (nullable) replaces @value, e.g. "crashed" */
  const char      *unit;
  const char      *baseline;       /* (nullable) */
  double           baseline_value;
  const char      *baseline_text;  /* (nullable) replaces @baseline_value */
  BenchTargetKind  target_kind;
  double           target_ratio;
  const char      *target;         /* (nullable) target as text; derived if NULL */
  const char      *note;           /* (nullable) */
} BenchRow;

gint64   bench_now_ns        (void);
double   bench_median        (GArray       *values);
double   bench_percentile    (GArray       *values,
                              double        p);
void     bench_emit          (const BenchRow *row);
void     bench_progress      (const char   *format,
                              ...) G_GNUC_PRINTF (1, 2);
gsize    bench_rss_bytes     (void);
gsize    bench_heap_bytes    (void);
guint    bench_thread_count  (void);
char     bench_thread_state  (int           tid);
gboolean bench_wait_blocked  (int           tid);
int      bench_gettid        (void);

G_END_DECLS
