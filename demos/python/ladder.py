#!/usr/bin/python3
# ladder.py: the three rungs of libkillable, from Python
#
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run from a build tree with:
#   GI_TYPELIB_PATH=_build/introspection LD_LIBRARY_PATH=_build/lib \
#   PYTHONPATH=_build/introspection/pyoverrides python3 demos/python/ladder.py

"""Is there any way to kill a thread? Three workers, three rungs.

1. stop():      a worker that cooperates (Task.sleep) ends at once, cleanly.
2. interrupt(): a busy loop that never checks gets an exception, and its
                ``finally`` block still runs.
3. kill():      a worker stuck in C code is abandoned: the owner goes on now.
"""

import threading
import time

import gi

gi.require_version('Killable', '1')
from gi.repository import Killable  # noqa: E402


def cooperative():
    task = Killable.current_task()
    for i in range(1000):
        task.sleep(0.1)              # a stop wakes it at once
        task.set_progress((i + 1) / 1000)


class BusyLoop(Killable.Task):
    """Never checks anything: rung 1 cannot stop it."""

    def __init__(self):
        super().__init__(name='busy-loop')
        self.running = threading.Event()
        self.cleaned_up = False

    def run(self):
        try:
            self.running.set()
            n = 0
            while True:
                n += 1
        finally:
            self.cleaned_up = True


def stuck_in_c(running):
    running.set()
    time.sleep(3600)                 # blocked in C: no exception reaches it


def rung(title, task, action, wait=None):
    task.start()
    if wait is not None:
        wait.wait(10)
    started = time.monotonic()
    action(task)
    try:
        task.join()
        outcome = 'succeeded'
    except Killable.TaskCancelled as e:
        outcome = '%s: %s' % (type(e).__name__, e)
    print('%-12s %-13s ended in %6.1f ms, %s'
          % (title, task.name, (time.monotonic() - started) * 1000, outcome))
    return task


def main():
    print(__doc__.strip().splitlines()[0])

    rung('stop()', Killable.Task(target=cooperative, name='cooperative'),
         lambda t: t.stop())

    busy = BusyLoop()
    rung('interrupt()', busy, lambda t: t.interrupt(), busy.running)
    print('%-12s %-13s finally ran: %s' % ('', busy.name, busy.cleaned_up))

    running = threading.Event()
    stuck = Killable.Task(target=stuck_in_c, args=(running,), name='stuck-in-c')
    rung('kill()', stuck, lambda t: t.kill(), running)
    print('%-12s %-13s state %s, %d abandoned thread(s) still running'
          % ('', stuck.name, stuck.get_state().value_nick,
             Killable.get_abandoned_thread_count()))

    # Leaving now is fine: an abandoned worker does not hold the
    # interpreter back, nor crash it (it ends with the process).
    ok = (not busy.is_alive() and busy.cleaned_up and
          stuck.get_state() == Killable.TaskState.KILLED)
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
