#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs every libkillable benchmark figure, prints one table and writes
bench-results.json.

Each figure program prints its results as lines "@ROW {json}" on stdout
(progress goes to stderr and is passed through). A row compares libkillable
with a baseline measured in the same run:

    {name, value, unit, baseline, baseline_value, ratio, target, met[, compared][, note]}

ratio is value / baseline_value; met is computed by the figure program from
the two measured values only, and is null for informational rows. A row with
a target whose baseline (or value) could not be measured (it crashed, gave
up, failed) carries "compared": false and reads "not compared": never met.
A missed target is reported, never failed: the exit status is non-zero only
when a figure program itself could not run.

Run by `meson test -C _build --benchmark`, or by hand:

    python3 tests/bench/run-benchmarks.py --bench-exe _build/tests/bench/bench-killable \\
        --process-exe _build/tests/bench/bench-process \\
        --python-bench tests/bench/bench-python.py --output _build/bench-results.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

C_FIGURES = ["check", "callbacks", "wake", "start", "tree", "stall", "memory"]
ALL_FIGURES = C_FIGURES + ["process", "python"]


def run_figure(figure, argv, env=None):
    """Runs one figure program; returns (rows, error text or None)."""
    print(f"── {figure}: {' '.join(argv)}", file=sys.stderr, flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    rows = []
    for line in proc.stdout:
        if line.startswith("@ROW "):
            row = json.loads(line[5:])
            row["figure"] = figure
            rows.append(row)
        else:
            sys.stdout.write(line)
    status = proc.wait()
    elapsed = time.monotonic() - start
    print(f"   {figure}: {len(rows)} rows in {elapsed:.1f} s", file=sys.stderr, flush=True)
    if status != 0:
        how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
        return rows, f"{figure} program failed ({how})"
    return rows, None


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def fmt_number(value):
    if isinstance(value, str):
        return value
    if value is None:
        return "—"
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 1000:
        return f"{value:,.0f}".replace(",", " ")
    if mag >= 100:
        return f"{value:.0f}"
    if mag >= 10:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_value(value, unit):
    if isinstance(value, str) or value is None:
        return fmt_number(value)
    return f"{fmt_number(value)} {unit}" if unit else fmt_number(value)


def fmt_ratio(ratio):
    if ratio is None:
        return "—"
    if isinstance(ratio, str):
        return ratio
    if ratio >= 100:
        return f"{ratio:.0f}×"
    if ratio >= 10:
        return f"{ratio:.1f}×"
    return f"{ratio:.2f}×"


def fmt_met(row):
    if row.get("compared") is False:
        return "not compared"
    return {True: "yes", False: "**no**", None: "—"}[row.get("met")]


def print_table(rows, out=sys.stdout):
    header = ["figure", "libkillable", "baseline", "ratio", "target", "met"]
    table = []
    for row in rows:
        if row.get("baseline"):
            baseline = f"{row['baseline']}: {fmt_value(row.get('baseline_value'), row.get('unit'))}"
        else:
            baseline = "—"
        table.append([
            row["name"],
            fmt_value(row.get("value"), row.get("unit")),
            baseline,
            fmt_ratio(row.get("ratio")),
            row.get("target") or "—",
            fmt_met(row),
        ])
    widths = [max(len(str(r[i])) for r in table + [header]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    print(line(header), file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for cells in table:
        print(line(cells), file=out)
    notes = [(row["name"], row.get("baseline"), row["note"]) for row in rows if row.get("note")]
    if notes:
        print(file=out)
        for name, baseline, note in notes:
            against = f" (vs {baseline})" if baseline else ""
            print(f"- {name}{against}: {note}", file=out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench-exe", required=True)
    parser.add_argument("--process-exe")
    parser.add_argument("--python-bench")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the Python figure (needs gi)")
    parser.add_argument("--output", default="bench-results.json")
    parser.add_argument("--markdown",
                        help="also write the table, as README.md's Performance section shows "
                             "it, to this file (README.md's table is this file, pasted)")
    parser.add_argument("--only", action="append", choices=ALL_FIGURES,
                        help="run only this figure (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that everything runs, figures meaningless")
    args = parser.parse_args()

    figures = args.only or ALL_FIGURES
    quick = ["--quick"] if args.quick else []
    rows = []
    errors = []
    started = time.monotonic()
    load_before = os.getloadavg()[0]

    for figure in figures:
        if figure in C_FIGURES:
            argv = [args.bench_exe] + quick + [figure]
        elif figure == "process":
            if not args.process_exe:
                continue
            argv = [args.process_exe] + quick
        else:
            if not args.python_bench:
                continue
            argv = [args.python, args.python_bench] + quick
        figure_rows, error = run_figure(figure, argv)
        rows.extend(figure_rows)
        if error:
            errors.append(error)
            rows.append({"figure": figure, "name": f"{figure}: program failed",
                         "value": "failed", "unit": None, "baseline": None,
                         "baseline_value": None, "ratio": None, "target": None,
                         "met": None, "compared": False, "note": error})

    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2, ensure_ascii=False)
        f.write("\n")

    heading = (f"libkillable benchmarks: {os.cpu_count()} CPUs, {cpu_model()}, load average "
               f"{load_before:.1f} → {os.getloadavg()[0]:.1f}, {time.monotonic() - started:.0f} s")
    print()
    print(heading)
    print("ratio = libkillable / baseline; medians of interleaved repetitions")
    print()
    print_table(rows)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            print(f"<!-- generated by tests/bench/run-benchmarks.py: {heading} -->", file=f)
            print(file=f)
            print_table(rows, out=f)
    print()
    targets = [r for r in rows if r.get("met") is not None]
    not_compared = [r for r in rows if r.get("compared") is False]
    print(f"targets met: {sum(1 for r in targets if r['met'])} of {len(targets)} compared; "
          f"{len(not_compared)} not compared; results written to {args.output}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)

    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
