#!/usr/bin/python3
# test_threading.py: a task's worker has threading.Thread's manners
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import gc
import sys
import threading
import unittest

import killabletest
from killabletest import GUARD_SECONDS, run_loop_until

from gi.repository import GLib, Killable  # noqa: E402


class TestThreadObject(unittest.TestCase):
    """Issue 15 point 5: current_thread(), enumerate(), ident, native_id."""

    def test_current_thread_named_after_the_task(self):
        seen = {}

        def work():
            me = threading.current_thread()
            seen['name'] = me.name
            seen['ident'] = me.ident
            seen['get_ident'] = threading.get_ident()
            seen['native_id'] = threading.get_native_id()
            seen['listed'] = me in threading.enumerate()
            seen['alive'] = me.is_alive()
            seen['thread'] = me

        task = Killable.Task(target=work, name='crunch-7')
        self.assertIsNone(task.ident)
        self.assertIsNone(task.native_id)
        task.start()
        task.join()
        self.assertEqual(seen['name'], 'crunch-7')
        self.assertEqual(seen['ident'], seen['get_ident'])
        self.assertTrue(seen['listed'])
        self.assertTrue(seen['alive'])
        self.assertEqual(task.ident, seen['get_ident'])
        self.assertEqual(task.native_id, seen['native_id'])
        # After the end: no ghost left in enumerate().
        self.assertNotIn(seen['thread'], threading.enumerate())
        self.assertFalse(seen['thread'].is_alive())
        self.assertNotIn('crunch-7', [t.name for t in threading.enumerate()])

    def test_running_task_listed(self):
        running = threading.Event()
        release = threading.Event()

        def work():
            running.set()
            release.wait(GUARD_SECONDS)

        task = Killable.Task(target=work, name='listed-task')
        task.start()
        try:
            self.assertTrue(running.wait(GUARD_SECONDS))
            names = {t.name: t for t in threading.enumerate()}
            self.assertIn('listed-task', names)
            self.assertEqual(names['listed-task'].ident, task.ident)
        finally:
            release.set()
        task.join()

    def test_thread_not_joinable(self):
        box = []

        def work():
            box.append(threading.current_thread())

        task = Killable.Task(target=work)
        task.start()
        task.join()
        with self.assertRaises(RuntimeError):
            box[0].join()


class TestTraceAndProfile(unittest.TestCase):
    """threading.settrace()/setprofile() reach task workers."""

    def test_settrace(self):
        calls = []

        def work_traced():
            return 1

        def tracer(frame, event, arg):
            if event == 'call' and frame.f_code is work_traced.__code__:
                calls.append(threading.get_ident())
            return None

        threading.settrace(tracer)
        try:
            task = Killable.Task(target=work_traced)
            task.start()
            task.join()
        finally:
            threading.settrace(None)
        self.assertEqual(calls, [task.ident])

    def test_setprofile(self):
        calls = []

        def work_profiled():
            return 1

        def profiler(frame, event, arg):
            if event == 'call' and frame.f_code is work_profiled.__code__:
                calls.append(threading.get_ident())

        threading.setprofile(profiler)
        try:
            task = Killable.Task(target=work_profiled)
            task.start()
            task.join()
        finally:
            threading.setprofile(None)
        self.assertEqual(calls, [task.ident])

    def test_no_trace_left_on_the_worker_thread(self):
        # The next task on the same cached thread is not traced once
        # threading.settrace(None) was called.
        traced = []
        threading.settrace(lambda f, e, a: traced.append(e))
        try:
            task = Killable.Task(target=lambda: None)
            task.start()
            task.join()
        finally:
            threading.settrace(None)
        traced.clear()
        seen = []
        task = Killable.Task(target=lambda: seen.append(sys.gettrace()))
        task.start()
        task.join()
        self.assertEqual(seen, [None])
        self.assertEqual(traced, [])


class TestUnreadFailure(unittest.TestCase):
    """A failure nobody read is reported through threading.excepthook when
    the task is finalized; one that was read is not."""

    def setUp(self):
        self.reports = []
        self.saved = threading.excepthook
        context = GLib.MainContext.default()

        def hook(args):
            self.reports.append(args)
            context.wakeup()

        threading.excepthook = hook

    def tearDown(self):
        threading.excepthook = self.saved

    @staticmethod
    def on_finalized(finalized):
        finalized.append(True)
        GLib.MainContext.default().wakeup()

    def run_and_drop(self, work, read):
        finalized = []
        task = Killable.Task(target=work, name='unread')
        task.weak_ref(self.on_finalized, finalized)
        task.start()
        # Wait for the end without reading the outcome.
        Killable.Task.wait(task, -1)
        if read:
            read(task)
        del task
        gc.collect()
        run_loop_until(lambda: finalized)
        return finalized

    def test_unread_failure_reported(self):
        boom = ValueError('nobody read me')

        def work():
            raise boom

        self.run_and_drop(work, None)
        run_loop_until(lambda: self.reports)
        self.assertEqual(len(self.reports), 1)
        args = self.reports[0]
        self.assertIs(args.exc_value, boom)
        self.assertIs(args.exc_type, ValueError)
        self.assertEqual(args.thread.name, 'unread')

    def test_joined_failure_not_reported(self):
        def work():
            raise ValueError('read')

        def read(task):
            with self.assertRaises(ValueError):
                task.join()

        self.run_and_drop(work, read)
        # The reporter would have been woken by the finalization: give it
        # a turn through a task that fails unread, reported after.
        marker = KeyError('marker')

        def work2():
            raise marker

        self.run_and_drop(work2, None)
        run_loop_until(lambda: self.reports)
        self.assertEqual([a.exc_value for a in self.reports], [marker])

    def test_cancellation_not_reported(self):
        running = threading.Event()

        def work():
            running.set()
            Killable.current_task().sleep(3600)

        finalized = []
        task = Killable.Task(target=work)
        task.weak_ref(self.on_finalized, finalized)
        task.start()
        running.wait(GUARD_SECONDS)
        task.stop()
        Killable.Task.wait(task, -1)
        del task
        gc.collect()
        run_loop_until(lambda: finalized)
        marker = KeyError('marker')

        def work2():
            raise marker

        self.run_and_drop(work2, None)
        run_loop_until(lambda: self.reports)
        self.assertEqual([a.exc_value for a in self.reports], [marker])


if __name__ == '__main__':
    killabletest.main()
