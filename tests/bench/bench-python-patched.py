#!/usr/bin/python3
# bench-python-patched.py: how fast a stop reaches a worker blocked in a
# standard-library call after Killable.patch_blocking_calls()
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""After ``Killable.patch_blocking_calls()``, one row per blocking call of
issue 15 point 7: a task's worker blocks in the call, the owner calls
``stop()``, the worker's ``except Killable.TaskCancelled`` notes the time.
The figure is the time from the ``stop()`` call to that ``except``, the
median over the runs, side by side with the same figure for a worker
blocked in ``Task.sleep()`` (the reference: the library's own wait). Issue
15's acceptance: each call's median <= 2x the reference's.

Before each stop the owner makes sure the worker is *inside* the call:
blocked in the system call the patched call waits in, as
/proc/self/task/TID/syscall shows it, twice, a couple of milliseconds
apart, with the GIL free in between (a worker merely waiting for the GIL
on its way to the call would have moved on).

The variants run interleaved (one run of each, then the next round), so
that the load of the machine weighs on all alike. ``--json FILE`` writes
the figures."""

import argparse
import json
import os
import platform
import queue
import select
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

import gi

gi.require_version('Killable', '1')

from gi.repository import Killable  # noqa: E402

# Before any of the variants creates its locks, queues or sockets.
Killable.patch_blocking_calls()

TARGET = 2.0
GUARD_SECONDS = 20

# System call numbers the patched calls block in.
_SYSCALLS = {
    'x86_64': {'futex': 202, 'poll': 7, 'ppoll': 271, 'select': 23, 'pselect6': 270,
               'epoll_wait': 232, 'epoll_pwait': 281},
    'aarch64': {'futex': 98, 'ppoll': 73, 'pselect6': 72, 'epoll_pwait': 22},
}
FUTEX = ('futex',)
POLL = ('poll', 'ppoll')
SELECT = ('select', 'pselect6', 'poll', 'ppoll')
EPOLL = ('epoll_wait', 'epoll_pwait', 'poll', 'ppoll')
# A patched threading wait polls its waiter fd (and the stop's).
WAITER = POLL


def blocked_in(tid):
    """(syscall name, first argument) of thread ``tid``, or None."""
    table = _SYSCALLS.get(platform.machine(), {})
    try:
        with open('/proc/self/task/%d/syscall' % tid) as f:
            fields = f.read().split()
    except OSError:
        return None
    if len(fields) < 2 or not fields[0].isdigit():
        return None
    nr = int(fields[0])
    for name, number in table.items():
        if number == nr:
            return name, fields[1]
    return None


def wait_inside(tid, names):
    """Wait until thread ``tid`` is blocked in one of ``names``, and still
    is, on the same object, after the GIL was free for 2 ms."""
    end = time.monotonic() + GUARD_SECONDS
    while time.monotonic() < end:
        first = blocked_in(tid)
        if first is not None and first[0] in names:
            time.sleep(0.002)
            if blocked_in(tid) == first:
                return
        else:
            time.sleep(0)
    raise RuntimeError('the worker never blocked in %s (last: %s)' % (names, blocked_in(tid)))


# The variants: (name, setup) where setup() returns (call, cleanup): call()
# blocks in the worker until the stop; cleanup() runs after the join. Each
# is prepared outside the timed part.

def v_task_sleep():
    return (lambda: Killable.current_task().sleep(3600)), None, FUTEX


def v_time_sleep():
    return (lambda: time.sleep(3600)), None, FUTEX


def v_select():
    r, w = os.pipe()
    return (lambda: select.select([r], [], [])), lambda: (os.close(r), os.close(w)), SELECT


def v_selector():
    r, w = os.pipe()
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ)

    def cleanup():
        sel.close()
        os.close(r)
        os.close(w)
    return sel.select, cleanup, EPOLL


def v_recv():
    a, b = socket.socketpair()
    return (lambda: a.recv(1)), lambda: (a.close(), b.close()), POLL


def v_accept():
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(1)
    return srv.accept, srv.close, POLL


def v_event_wait():
    return threading.Event().wait, None, WAITER


def v_condition_wait():
    cond = threading.Condition()

    def call():
        with cond:
            cond.wait()
    return call, None, WAITER


def v_lock_acquire():
    lock = threading.Lock()      # created after the patch
    lock.acquire()
    return lock.acquire, lock.release, WAITER


def v_queue_get():
    return queue.Queue().get, None, WAITER


def v_queue_put():
    q = queue.Queue(maxsize=1)
    q.put(0)
    return (lambda: q.put(1)), None, WAITER


def v_popen_wait():
    p = subprocess.Popen(['sleep', '3600'])

    def cleanup():
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.wait, cleanup, POLL


def v_popen_communicate():
    p = subprocess.Popen(['sleep', '3600'], stdout=subprocess.PIPE)

    def cleanup():
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    return p.communicate, cleanup, SELECT


VARIANTS = [
    ('Task.sleep', v_task_sleep),
    ('time.sleep', v_time_sleep),
    ('select.select', v_select),
    ('selectors.select', v_selector),
    ('socket.recv', v_recv),
    ('socket.accept', v_accept),
    ('Event.wait', v_event_wait),
    ('Condition.wait', v_condition_wait),
    ('Lock.acquire', v_lock_acquire),
    ('Queue.get', v_queue_get),
    ('Queue.put', v_queue_put),
    ('Popen.wait', v_popen_wait),
    ('Popen.communicate', v_popen_communicate),
]


def one_run(setup):
    """Seconds from stop() to the worker's except."""
    call, cleanup, syscalls = setup()
    tid = []
    caught = []
    ready = threading.Event()

    def work():
        tid.append(threading.get_native_id())
        ready.set()
        try:
            call()
        except Killable.TaskCancelled:
            caught.append(time.perf_counter())
            raise

    task = Killable.Task(target=work)
    task.start()
    try:
        if not ready.wait(GUARD_SECONDS):
            raise RuntimeError('the worker did not start')
        wait_inside(tid[0], syscalls)
        t0 = time.perf_counter()
        task.stop()
        try:
            task.join()
        except Killable.TaskStopped:
            pass
    finally:
        if cleanup is not None:
            cleanup()
    if not caught:
        raise RuntimeError('the worker did not raise the cancellation')
    return caught[0] - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=15)
    parser.add_argument('--json')
    args = parser.parse_args()
    if platform.machine() not in _SYSCALLS:
        print('SKIP: no system call table for %s' % platform.machine())
        return

    times = {name: [] for name, _ in VARIANTS}
    for _ in range(args.runs):
        for name, setup in VARIANTS:
            times[name].append(one_run(setup))

    ref = statistics.median(times['Task.sleep'])
    results = {}
    print('stop -> a worker blocked in the call raises (median of %d, interleaved); '
          'reference Task.sleep %.1f us' % (args.runs, ref * 1e6))
    for name, _ in VARIANTS[1:]:
        ours = statistics.median(times[name])
        ratio = ours / ref
        results[name] = {'us': ours * 1e6, 'task_sleep_us': ref * 1e6, 'ratio': ratio,
                         'target': TARGET, 'met': ratio <= TARGET}
        print('%-18s %8.1f us  Task.sleep %8.1f us  x%.2f (target <= %.0f) %s'
              % (name, ours * 1e6, ref * 1e6, ratio, TARGET,
                 'met' if ratio <= TARGET else 'NOT met'))
        sys.stdout.flush()
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
