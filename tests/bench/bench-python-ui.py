#!/usr/bin/python3
# bench-python-ui.py: does a Python worker that checks and reports progress
# every step keep the owner's main loop responsive?
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""The owner runs a GLib main loop with a 1 ms timeout and a
``notify::progress`` handler (a progress bar's), and records the gaps
between two ticks of that timeout while a worker computes in steps of
about 1 ms of pure Python. Side by side:

- ``event``: a ``threading.Thread`` that checks a ``threading.Event`` each
  step (the baseline);
- ``task``: a ``Killable.Task`` whose worker calls ``check()`` and
  ``set_progress()`` each step (the documented pattern);
- ``stopped``: the same with ``stopped()`` instead of ``check()``.

Prints one line per kind: the median and the maximum main-loop gap (ms),
each the median over the runs; then the ratios to the baseline (issue 15's
acceptance: median <= 1.5x, maximum <= 3x). ``--json FILE`` writes them.
"""

import argparse
import json
import statistics
import sys
import threading
import time

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Killable', '1')

from gi.repository import GLib, Killable  # noqa: E402


def calibrate(step_seconds):
    """How many loop turns of spin() take about ``step_seconds``."""
    n = 1000
    while True:
        t0 = time.perf_counter()
        spin(n)
        dt = time.perf_counter() - t0
        if dt >= 0.02:
            return max(1, int(n * step_seconds / dt))
        n *= 2


def spin(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def measure(kind, turns, seconds):
    """One run: returns the list of main-loop gaps in seconds."""
    loop = GLib.MainLoop()
    ticks = []
    progress_seen = [0]

    def on_tick():
        ticks.append(time.perf_counter())
        return GLib.SOURCE_CONTINUE

    if kind == 'event':
        event = threading.Event()

        def work():
            while not event.is_set():
                spin(turns)

        worker = threading.Thread(target=work)
        stop = event.set

        def join():
            worker.join()
    else:
        def work():
            task = Killable.current_task()
            i = 0
            if kind == 'task':
                while True:
                    task.check()
                    task.set_progress((i % 1000) / 1000)
                    spin(turns)
                    i += 1
            else:
                while not task.stopped():
                    task.set_progress((i % 1000) / 1000)
                    spin(turns)
                    i += 1

        worker = Killable.Task(target=work, name='bench-' + kind)

        def on_progress(obj, pspec):
            progress_seen[0] += 1

        worker.connect('notify::progress', on_progress)
        stop = worker.stop

        def join():
            try:
                worker.join()
            except Killable.TaskStopped:
                pass

    def on_end():
        stop()
        loop.quit()
        return GLib.SOURCE_REMOVE

    source = GLib.timeout_add(1, on_tick)
    worker.start()
    GLib.timeout_add(int(seconds * 1000), on_end)
    loop.run()
    GLib.source_remove(source)
    join()
    return [b - a for a, b in zip(ticks, ticks[1:])] or [seconds]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--seconds', type=float, default=2.0)
    parser.add_argument('--json')
    args = parser.parse_args()

    turns = calibrate(0.001)
    results = {}
    for kind in ('event', 'task', 'stopped'):
        medians = []
        maxima = []
        for _ in range(args.runs):
            gaps = measure(kind, turns, args.seconds)
            medians.append(statistics.median(gaps))
            maxima.append(max(gaps))
        results[kind] = {
            'median_gap_ms': statistics.median(medians) * 1e3,
            'max_gap_ms': statistics.median(maxima) * 1e3,
        }
        print('%-8s main-loop gap: median %8.2f ms, max %8.2f ms'
              % (kind, results[kind]['median_gap_ms'], results[kind]['max_gap_ms']))
        sys.stdout.flush()
    base = results['event']
    for kind in ('task', 'stopped'):
        r = results[kind]
        r['median_ratio'] = r['median_gap_ms'] / base['median_gap_ms']
        r['max_ratio'] = r['max_gap_ms'] / base['max_gap_ms']
        print('%-8s vs event: median x%.2f (target <= 1.5), max x%.2f (target <= 3)'
              % (kind, r['median_ratio'], r['max_ratio']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
