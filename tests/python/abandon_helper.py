#!/usr/bin/python3
# abandon_helper.py: run by test_interrupt.py in a child interpreter.
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Leaves Python workers that never end (abandoned by kill()) behind, then
# exits: the interpreter must exit with status 0 and print nothing on
# stderr. Prints "ok MODE" when every check passed.

import sys
import threading
import time

import gi

gi.require_version('Killable', '1')
from gi.repository import Killable  # noqa: E402

# The worker swallows everything, so it never ends by itself.
STUCK_KINDS = ('busy', 'sleep', 'blocked', 'check')


def stuck_once(kind, running, task):
    try:
        running.set()
        if kind == 'busy':
            while True:
                pass
        elif kind == 'sleep':
            task.sleep(3600)
        elif kind == 'blocked':
            time.sleep(3600)      # blocked in C, GIL released
        elif kind == 'check':
            while True:
                task.check()
    except BaseException:
        pass


def stuck(kind, running):
    # An asynchronous exception (kill() and the escalation's interrupts send
    # them) can land on any bytecode of the user's code, a loop's jump back
    # included. With one try around the body, one landing on the loop's jump
    # ended the worker (about 1 run in 300: "3 abandoned threads, expected
    # 4"). Here each loop's jump is inside the try of the loop around it:
    # only four exceptions in a row, each on the next jump out, end it.
    task = Killable.current_task()
    while True:
        try:
            while True:
                try:
                    while True:
                        try:
                            while True:
                                stuck_once(kind, running, task)
                        except BaseException:
                            pass
                except BaseException:
                    pass
        except BaseException:
            pass


def fail(message):
    print('FAIL: ' + message)
    sys.exit(1)


def start_stuck(kind, **props):
    running = threading.Event()
    t = Killable.Task(target=stuck, args=(kind, running), name='stuck-' + kind, **props)
    t.start()
    if not running.wait(20):
        fail('%s did not start' % kind)
    return t


def check_killed(t, elapsed):
    if elapsed > 2.0:
        fail('%s: kill() took %.3f s' % (t.name, elapsed))
    start = time.monotonic()
    try:
        t.join()
    except Killable.TaskKilled:
        pass
    else:
        fail('%s: join() did not raise TaskKilled' % t.name)
    if time.monotonic() - start > 2.0:
        fail('%s: join() waited' % t.name)
    if t.get_state() != Killable.TaskState.KILLED:
        fail('%s: state %r' % (t.name, t.get_state()))


def main(mode):
    tasks = []
    if mode == 'kill':
        for kind in STUCK_KINDS:
            t = start_stuck(kind)
            start = time.monotonic()
            t.kill()
            check_killed(t, time.monotonic() - start)
            tasks.append(t)
    elif mode == 'escalate':
        # stop → (grace) → interrupt → (grace) → kill, from the timer thread.
        for kind in STUCK_KINDS:
            t = start_stuck(kind, grace_period=20 * 1000)
            t.stop()
            start = time.monotonic()
            if not t.wait(20 * 1000 * 1000):
                fail('%s: not killed by the escalation' % kind)
            check_killed(t, time.monotonic() - start)
            tasks.append(t)
    else:
        fail('unknown mode ' + mode)

    n = Killable.get_abandoned_thread_count()
    if n != len(STUCK_KINDS):
        fail('%d abandoned threads, expected %d' % (n, len(STUCK_KINDS)))
    print('ok %s: %d abandoned workers left running at exit' % (mode, n))
    sys.stdout.flush()


if __name__ == '__main__':
    main(sys.argv[1])
