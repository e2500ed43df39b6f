#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Python figures of libkillable against the classic recipe.

- interrupt() → the exception in a busy loop, vs threading.Thread +
  ctypes PyThreadState_SetAsyncExc on the same loop;
- stop() → return from Task.sleep(60), vs the same recipe on time.sleep(60),
  which it cannot interrupt: its latency is reported as "> N s (gave up)"
  after a bounded wait.

Trials are interleaved and medians compared. Results are printed as
"@ROW {json}" lines (see run-benchmarks.py); nothing is asserted.

Needs the typelib and the override: run with GI_TYPELIB_PATH, LD_LIBRARY_PATH
and PYTHONPATH pointing into the build folder (meson sets them).
"""

import ctypes
import json
import math
import os
import statistics
import sys
import threading
import time

import gi

gi.require_version("Killable", "1")
from gi.repository import Killable  # noqa: E402

QUICK = "--quick" in sys.argv
TRIALS = 5 if QUICK else 300
SLEEP_TRIALS = 5 if QUICK else 300
GIVE_UP_S = 0.2 if QUICK else 2.0
GIVE_UP_TRIALS = 1 if QUICK else 2

now_ns = time.perf_counter_ns


class RecipeInterrupt(BaseException):
    """What the recipe raises in the target thread."""


def set_async_exc(thread, exc):
    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                   ctypes.py_object(exc))
    if n > 1:  # the documented way to undo a call that hit several threads
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), None)
        raise RuntimeError("SetAsyncExc reached more than one thread")
    return n


def thread_state(tid):
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return "?"
    return chr(data[data.rindex(b")") + 2])


def wait_blocked(tid, bound_s=1.0):
    """Waits until thread @tid sleeps in the kernel (bounded)."""
    deadline = time.monotonic() + bound_s
    while thread_state(tid) not in "SD" and time.monotonic() < deadline:
        time.sleep(0)


# interrupt() in a busy loop {{{

def busy_loop(ready, box):
    box["tid"] = threading.get_native_id()
    ready.set()
    x = 0
    try:
        while True:
            x += 1
    except BaseException:
        box["t1"] = now_ns()
        raise


def trial_killable_interrupt():
    ready = threading.Event()
    box = {}
    task = Killable.Task(target=busy_loop, args=(ready, box), name="busy")
    task.start()
    ready.wait()
    t0 = now_ns()
    task.interrupt()
    try:
        task.join()
    except Killable.TaskCancelled:
        pass
    return box["t1"] - t0


def trial_recipe_interrupt():
    ready = threading.Event()
    box = {}

    def target():
        try:
            busy_loop(ready, box)
        except RecipeInterrupt:
            pass

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    ready.wait()
    t0 = now_ns()
    set_async_exc(thread, RecipeInterrupt)
    thread.join()
    return box["t1"] - t0

# }}}

# stop() while sleeping {{{


def trial_killable_sleep():
    ready = threading.Event()
    box = {}

    def target():
        box["tid"] = threading.get_native_id()
        ready.set()
        task = Killable.current_task()
        try:
            task.sleep(60)
        finally:
            box["t1"] = now_ns()

    task = Killable.Task(target=target, name="sleeper")
    task.start()
    ready.wait()
    wait_blocked(box["tid"])
    t0 = now_ns()
    task.stop()
    try:
        task.join()
    except Killable.TaskCancelled:
        pass
    return box["t1"] - t0


def trial_recipe_sleep():
    """Returns the latency in ns, or None when it gave up waiting."""
    ready = threading.Event()
    box = {}

    def target():
        box["tid"] = threading.get_native_id()
        ready.set()
        try:
            time.sleep(60)
        except RecipeInterrupt:
            pass
        box["t1"] = now_ns()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    ready.wait()
    wait_blocked(box["tid"])
    t0 = now_ns()
    set_async_exc(thread, RecipeInterrupt)
    thread.join(GIVE_UP_S)
    if thread.is_alive():
        # Still in time.sleep(60): left behind as a daemon thread.
        return None
    return box["t1"] - t0

# }}}


def percentile(values, p):
    """Nearest-rank percentile, @p in [0, 1]."""
    values = sorted(values)
    idx = max(0, min(len(values) - 1, math.ceil(p * len(values)) - 1))
    return values[idx]


def emit(name, value, unit, baseline, baseline_value, target=None, met=None, note=None, ratio=None):
    if ratio is None and isinstance(value, (int, float)) and isinstance(baseline_value, (int, float)) \
            and baseline_value > 0:
        ratio = round(value / baseline_value, 4)
    row = {"name": name, "value": value, "unit": unit, "baseline": baseline,
           "baseline_value": baseline_value, "ratio": ratio, "target": target, "met": met}
    if note:
        row["note"] = note
    print("@ROW " + json.dumps(row, ensure_ascii=False), flush=True)


def main():
    print(f"python: interrupt() in a busy loop ({TRIALS} trials), stop() in Task.sleep "
          f"({SLEEP_TRIALS} trials) vs threading + PyThreadState_SetAsyncExc "
          f"(on time.sleep: {GIVE_UP_TRIALS} trials, gives up after {GIVE_UP_S:g} s)",
          file=sys.stderr, flush=True)

    # warm-up
    trial_killable_interrupt()
    trial_recipe_interrupt()
    trial_killable_sleep()

    k_int, r_int, k_sleep = [], [], []
    for i in range(max(TRIALS, SLEEP_TRIALS)):
        order = [0, 1, 2]
        order = order[i % 3:] + order[:i % 3]
        for which in order:
            if which == 0 and i < TRIALS:
                k_int.append(trial_killable_interrupt())
            elif which == 1 and i < TRIALS:
                r_int.append(trial_recipe_interrupt())
            elif which == 2 and i < SLEEP_TRIALS:
                k_sleep.append(trial_killable_sleep())

    recipe_sleep = [trial_recipe_sleep() for _ in range(GIVE_UP_TRIALS)]

    us = 1e-3
    emit("Python interrupt() → exception, busy loop, median", round(statistics.median(k_int) * us, 2), "µs",
         "threading + PyThreadState_SetAsyncExc", round(statistics.median(r_int) * us, 2))
    emit("Python interrupt() → exception, busy loop, p99", round(percentile(k_int, 0.99) * us, 2), "µs",
         "threading + PyThreadState_SetAsyncExc", round(percentile(r_int, 0.99) * us, 2))

    k_med = statistics.median(k_sleep) * us
    baseline = "threading + SetAsyncExc on time.sleep(60)"
    target = f"wakes (recipe: not within {GIVE_UP_S:g} s)"
    delivered = [t for t in recipe_sleep if t is not None]
    if delivered:
        # The recipe cannot do this in theory; report honestly if it did.
        r_med = statistics.median(delivered) * us
        emit("Python stop() → return from Task.sleep(60), median", round(k_med, 2), "µs",
             baseline, round(r_med, 2), target=target, met=k_med < GIVE_UP_S * 1e6,
             note="the recipe's exception was delivered")
    else:
        emit("Python stop() → return from Task.sleep(60), median", round(k_med, 2), "µs",
             baseline, f"> {GIVE_UP_S:g} s (gave up)", target=target, met=k_med < GIVE_UP_S * 1e6,
             ratio=f"< {k_med / (GIVE_UP_S * 1e6):.2g}×",
             note=f"SetAsyncExc is only seen when time.sleep() returns; gave up after {GIVE_UP_S:g} s, "
                  f"{len(recipe_sleep)} trial(s)")
    emit("Python stop() → return from Task.sleep(60), p99", round(percentile(k_sleep, 0.99) * us, 2), "µs",
         None, None)

    # The recipe's threads are still in time.sleep(60): leave without
    # waiting for them (daemon threads) nor for interpreter teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
