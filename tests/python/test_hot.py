#!/usr/bin/python3
# test_hot.py: the calls a worker makes every step keep the GIL
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import threading
import unittest

import killabletest
from killabletest import GUARD_SECONDS, run_loop_until

from gi.repository import GLib, Killable  # noqa: E402

State = Killable.TaskState

# The introspected class under the override: what releases the GIL.
Introspected = Killable.Task.__mro__[1]


def terminal_notification(events):
    """The index in @events of the end's own notify::state: the last one
    before "finished" (emitted right after it). A handler reads the current
    state, so the notification of RUNNING, dispatched after a quick task
    ended, also reads SUCCEEDED: the first SUCCEEDED is not the end's."""
    finished = events.index(('finished',))
    before = events[:finished]
    return finished - 1 - before[::-1].index(('state', State.SUCCEEDED))


class CountingCalls(object):
    """Counts the calls of introspected Killable.Task functions made on one
    thread (each one releases and takes back the GIL)."""

    NAMES = ('is_stop_requested', 'check', 'set_progress', 'set_status')

    def __init__(self, thread_ident_holder):
        self.holder = thread_ident_holder
        self.calls = {name: 0 for name in self.NAMES}
        self.saved = {}

    def __enter__(self):
        for name in self.NAMES:
            original = getattr(Introspected, name)
            self.saved[name] = original

            def counting(*args, _name=name, _original=original):
                if threading.get_ident() == self.holder[0]:
                    self.calls[_name] += 1
                return _original(*args)
            setattr(Introspected, name, counting)
        return self

    def __exit__(self, *exc):
        for name, original in self.saved.items():
            setattr(Introspected, name, original)


class TestHotCalls(unittest.TestCase):
    """Issue 15 point 1: check(), stopped() and is_stop_requested() read the
    stop flag without calling into the library (no GIL round trip);
    set_progress() and set_status() are coalesced in Python."""

    STEPS = 2000

    def test_steps_make_few_library_calls(self):
        worker_ident = [None]
        steps_done = []

        def work():
            task = Killable.current_task()
            worker_ident[0] = threading.get_ident()
            for i in range(self.STEPS):
                task.check()
                task.stopped()
                task.is_stop_requested()
                task.set_progress(i / self.STEPS)
                task.set_status('step %d' % i)
            steps_done.append(True)

        with CountingCalls(worker_ident) as counter:
            task = Killable.Task(target=work)
            task.start()
            task.join()
        self.assertEqual(steps_done, [True])
        self.assertEqual(counter.calls['is_stop_requested'], 0)
        self.assertEqual(counter.calls['check'], 0)
        # 2000 steps take far more than the publication interval only on a
        # very slow machine; whatever the speed, far fewer than one call
        # per step (the last values are published at the end).
        self.assertLess(counter.calls['set_progress'], self.STEPS // 4)
        self.assertLess(counter.calls['set_status'], self.STEPS // 4)
        self.assertEqual(task.get_progress(), (self.STEPS - 1) / self.STEPS)
        self.assertEqual(task.dup_status(), 'step %d' % (self.STEPS - 1))

    def test_check_and_stopped_see_the_stop(self):
        running = threading.Event()
        seen = []

        def work():
            task = Killable.current_task()
            running.set()
            while not task.stopped():
                pass
            seen.append(task.is_stop_requested())
            task.check()

        task = Killable.Task(target=work)
        task.start()
        self.assertTrue(running.wait(GUARD_SECONDS))
        self.assertFalse(task.stopped())
        task.stop()
        self.assertTrue(task.stopped())
        with self.assertRaises(Killable.TaskStopped):
            task.join()
        self.assertEqual(seen, [True])

    def test_last_values_reach_the_owner_before_the_end(self):
        events = []

        def work():
            task = Killable.current_task()
            for i in range(1, 5):
                task.set_progress(i / 4)
                task.set_status('step %d' % i)

        task = Killable.Task(target=work)
        task.connect('notify::progress', lambda t, p: events.append(('progress', t.get_progress())))
        task.connect('notify::status', lambda t, p: events.append(('status', t.dup_status())))
        task.connect('notify::state', lambda t, p: events.append(('state', t.get_state())))
        task.connect('finished', lambda t: events.append(('finished',)))
        task.start()
        run_loop_until(lambda: ('finished',) in events)
        task.join()
        before = events[:terminal_notification(events)]
        self.assertIn(('progress', 1.0), before)
        self.assertIn(('status', 'step 4'), before)

    def test_value_being_published_by_the_flusher_comes_before_the_end(self):
        # The flusher thread has taken the worker's last value and is
        # publishing it when the worker returns: the end waits for it.
        from gi.overrides import _killable
        flusher_in = threading.Event()
        go = threading.Event()
        original = _killable._publish_one

        def held(task, key, value):
            if threading.current_thread() is not worker_thread[0]:
                flusher_in.set()
                go.wait(GUARD_SECONDS)
            original(task, key, value)

        worker_thread = [None]
        events = []

        def work():
            worker_thread[0] = threading.current_thread()
            task = Killable.current_task()
            task.set_progress(0.25)     # published at once
            task.set_progress(0.5)      # coalesced: left to the flusher
            self.assertTrue(flusher_in.wait(GUARD_SECONDS))

        _killable._publish_one = held
        try:
            task = Killable.Task(target=work)
            task.connect('notify::progress',
                         lambda t, p: events.append(('progress', t.get_progress())))
            task.connect('notify::state',
                         lambda t, p: events.append(('state', t.get_state())))
            task.connect('finished', lambda t: events.append(('finished',)))
            task.start()
            # Without the wait at the end, SUCCEEDED arrives while the
            # flusher is held; give it a moment to show, then let go.
            context = GLib.MainContext.default()
            moment = []
            source = GLib.timeout_source_new(300)
            source.set_callback(lambda *a: moment.append(1) or GLib.SOURCE_REMOVE)
            source.attach(context)
            while not moment and ('state', State.SUCCEEDED) not in events:
                context.iteration(True)
            source.destroy()
            go.set()
            run_loop_until(lambda: ('finished',) in events)
            task.join()
        finally:
            go.set()
            _killable._publish_one = original
        self.assertIn(('progress', 0.5), events[:terminal_notification(events)])

    def test_value_left_by_a_quiet_worker_is_published(self):
        # The worker sets two values at once (the second is coalesced), then
        # waits outside the library: the owner still gets the last value.
        release = threading.Event()

        def work():
            task = Killable.current_task()
            task.set_progress(0.25)
            task.set_progress(0.5)
            task.set_status('waiting')
            release.wait(GUARD_SECONDS * 3)

        task = Killable.Task(target=work)
        # Connected, so that the publications wake the main loop.
        task.connect('notify::progress', lambda t, p: None)
        task.connect('notify::status', lambda t, p: None)
        task.start()
        try:
            run_loop_until(lambda: task.get_progress() == 0.5 and
                           task.dup_status() == 'waiting')
        finally:
            release.set()
        task.join()

    def test_owner_side_set_is_immediate(self):
        task = Killable.Task(target=lambda: None)
        task.set_progress(0.75)
        task.set_status('queued')
        self.assertEqual(task.get_progress(), 0.75)
        self.assertEqual(task.dup_status(), 'queued')


if __name__ == '__main__':
    killabletest.main()
