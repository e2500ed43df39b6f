# test_values.py: results, wait_async, group tasks and the caller's cancel
# from Python, through the typelib
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import threading
import unittest

import killabletest
from killabletest import GUARD_SECONDS, run_loop_until

from gi.repository import Gio, GLib, Killable  # noqa: E402

State = Killable.TaskState


def cancelled_by_caller(task):
    error = task.get_error()
    return error is not None and error.matches(Gio.io_error_quark(),
                                               Gio.IOErrorEnum.CANCELLED)


class TestResults(unittest.TestCase):

    def test_return_and_propagate(self):
        def work():
            Killable.current_task().return_value(42)

        t = Killable.Task(target=work)
        t.start()
        t.join()
        ok, value = t.propagate_value()
        self.assertTrue(ok)
        self.assertEqual(value, 42)

    def test_propagate_failure(self):
        def work():
            Killable.current_task().return_value('partial')
            raise ValueError('broken')

        t = Killable.Task(target=work)
        t.start()
        with self.assertRaises(ValueError):
            t.join()
        with self.assertRaises(GLib.Error):
            t.propagate_value()

    def test_run_async_value(self):
        def work():
            Killable.current_task().return_value('done')

        t = Killable.Task(target=work)
        got = []

        def on_done(task, result):
            task.run_finish(result)
            got.append(task.propagate_value()[1])

        t.run_async(None, on_done)
        run_loop_until(lambda: got)
        self.assertEqual(got, ['done'])

    def test_wait_async_many(self):
        release = threading.Event()

        def work():
            self.assertTrue(release.wait(GUARD_SECONDS))
            Killable.current_task().return_value(7)

        t = Killable.Task(target=work)
        t.start()
        got = []
        cancellable = Gio.Cancellable()
        cancelled = []

        def on_wait(task, result):
            task.wait_finish(result)
            got.append(task.propagate_value()[1])

        def on_cancelled_wait(task, result):
            # The override raises what join() would for the caller's
            # cancel: TaskStopped carrying G_IO_ERROR_CANCELLED.
            try:
                task.wait_finish(result)
            except Killable.TaskStopped as e:
                cancelled.append(e.error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED))

        for _ in range(3):
            t.wait_async(None, on_wait)
        t.wait_async(cancellable, on_cancelled_wait)
        cancellable.cancel()
        run_loop_until(lambda: cancelled)
        self.assertEqual(cancelled, [True])
        # Only the wait was abandoned.
        self.assertFalse(t.stopped())
        release.set()
        run_loop_until(lambda: len(got) == 3)
        self.assertEqual(got, [7, 7, 7])

    def test_caller_cancel_is_gio_cancelled(self):
        task, seen = killabletest.start_sleeper()
        # start_sleeper() started it: run_async() needs a pending task.
        task.stop()
        with self.assertRaises(Killable.TaskStopped):
            task.join()

        running = threading.Event()

        def work():
            running.set()
            Killable.current_task().sleep(3600)

        t = Killable.Task(target=work)
        cancellable = Gio.Cancellable()
        outcome = []

        def on_done(task, result):
            try:
                task.run_finish(result)
                outcome.append('succeeded')
            except (GLib.Error, Killable.TaskCancelled) as e:
                outcome.append(e)

        t.run_async(cancellable, on_done)
        self.assertTrue(running.wait(GUARD_SECONDS))
        cancellable.cancel()
        run_loop_until(lambda: outcome)
        self.assertNotEqual(outcome, ['succeeded'])
        self.assertEqual(t.get_state(), State.CANCELLED)
        self.assertTrue(cancelled_by_caller(t))


class TestGroups(unittest.TestCase):

    def test_group_ends_with_children(self):
        group = Killable.Task.new_group('downloads')
        release = threading.Event()
        children = [Killable.Task(target=lambda: release.wait(GUARD_SECONDS))
                    for _ in range(3)]
        for child in children:
            group.add_child(child)
        group.start()
        for child in children:
            child.start()
        self.assertEqual(group.get_state(), State.RUNNING)
        release.set()
        self.assertTrue(group.wait(GUARD_SECONDS * 1000000))
        self.assertEqual(group.get_state(), State.SUCCEEDED)

    def test_group_stopped_is_cancelled(self):
        group = Killable.Task.new_group('group')
        child, seen = None, None
        running = threading.Event()

        def work():
            running.set()
            Killable.current_task().sleep(3600)

        child = Killable.Task(target=work)
        group.add_child(child)
        group.start()
        child.start()
        self.assertTrue(running.wait(GUARD_SECONDS))
        group.stop()
        self.assertTrue(group.wait(GUARD_SECONDS * 1000000))
        self.assertEqual(group.get_state(), State.CANCELLED)
        self.assertEqual(child.get_state(), State.CANCELLED)


if __name__ == '__main__':
    killabletest.main()
