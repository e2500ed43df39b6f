#!/usr/bin/python3
# bench-python-interrupt.py: interrupting busy Python workers, against the
# bare PyThreadState_SetAsyncExc recipe
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""Two figures, each side by side with the bare recipe (threading.Thread
workers, ``PyThreadState_SetAsyncExc`` sent in a loop):

- ``many``: N workers spin in pure Python; the owner interrupts them one
  by one, then joins them all: the time from the first interrupt to the
  last join (issue 15's acceptance: <= 2x the bare recipe at N = 200);
- ``single``: one spinning worker; the time from the interrupt call to the
  worker's ``except`` (median over the runs; acceptance <= 1.5x).

The two sides run interleaved (bare, Killable, bare, ...), each figure the
median of its runs.

``--json FILE`` writes the figures."""

import argparse
import ctypes
import gc
import itertools
import json
import statistics
import sys
import threading
import time

import gi

gi.require_version('Killable', '1')

from gi.repository import Killable  # noqa: E402

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]


class Bare(Exception):
    pass


class Gate(object):
    """Workers wait at the gate (not spinning, so that starting N threads
    does not compete with N spinning ones for the GIL), then spin; the
    last one to spin opens ``spinning``."""

    def __init__(self, n):
        self.go = threading.Event()
        self.spinning = threading.Event()
        self.counter = itertools.count(1)
        self.n = n

    def enter(self):
        self.go.wait()
        if next(self.counter) == self.n:
            self.spinning.set()


def spin_until_caught(gate, caught, exc_class):
    try:
        # Inside the try: the exception may come as soon as this returns.
        gate.enter()
        while True:
            pass
    except exc_class:
        caught.append(time.perf_counter())


def run_many(n, make, interrupt, join):
    gate = Gate(n)
    caught = []
    workers = [make(gate, caught) for _ in range(n)]
    for w in workers:
        w.start()
    gate.go.set()
    gate.spinning.wait()
    # The previous run's garbage now, not in the timed part: freeing a
    # GObject wrapper hands the GIL away (PyGObject unrefs without it),
    # and winning it back from N spinning workers takes N/2 switch
    # intervals, whichever side's run left that garbage.
    gc.collect()
    t0 = time.perf_counter()
    for w in workers:
        interrupt(w)
    for w in workers:
        join(w)
    return time.perf_counter() - t0, caught, t0


def bare_thread(gate, caught):
    return threading.Thread(target=spin_until_caught, args=(gate, caught, Bare))


def killable_task(gate, caught):
    return Killable.Task(target=spin_until_caught,
                         args=(gate, caught, Killable.TaskInterrupted))


def join_task(t):
    try:
        t.join()
    except Killable.TaskInterrupted:
        pass


def many_bare(n):
    return run_many(n, bare_thread, lambda t: _set_async_exc(t.ident, Bare), lambda t: t.join())[0]


def many_killable(n):
    return run_many(n, killable_task, lambda t: t.interrupt(), join_task)[0]


def single_bare():
    dt, caught, t0 = run_many(1, bare_thread, lambda t: _set_async_exc(t.ident, Bare),
                              lambda t: t.join())
    return caught[0] - t0


def single_killable():
    dt, caught, t0 = run_many(1, killable_task, lambda t: t.interrupt(), join_task)
    return caught[0] - t0


def interleaved(bare, ours, runs):
    """The medians of ``runs`` runs of each, one after the other."""
    b, o = [], []
    for _ in range(runs):
        b.append(bare())
        o.append(ours())
    return statistics.median(b), statistics.median(o)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--workers', type=int, nargs='*', default=[20, 50, 100, 200])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--single-runs', type=int, default=50)
    parser.add_argument('--json')
    args = parser.parse_args()
    results = {'many': {}, 'single': {}}

    # Interleaved: bare, Killable, bare, ... so that the load of the
    # machine (shared with builds) weighs on both sides alike.
    for n in args.workers:
        bare, ours = interleaved(lambda: many_bare(n), lambda: many_killable(n), args.runs)
        results['many'][n] = {'bare_ms': bare * 1e3, 'killable_ms': ours * 1e3,
                              'ratio': ours / bare}
        print('many   N=%-4d bare %9.2f ms  Killable %9.2f ms  x%.2f (target <= 2 at 200)'
              % (n, bare * 1e3, ours * 1e3, ours / bare))
        sys.stdout.flush()

    bare, ours = interleaved(single_bare, single_killable, args.single_runs)
    results['single'] = {'bare_us': bare * 1e6, 'killable_us': ours * 1e6,
                         'ratio': ours / bare}
    print('single median  bare %8.1f us  Killable %8.1f us  x%.2f (target <= 1.5)'
          % (bare * 1e6, ours * 1e6, ours / bare))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
