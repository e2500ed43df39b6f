#!/usr/bin/python3
# test_task.py: the Python API of Killable.Task (PyGObject override)
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import threading
import traceback
import unittest

import killabletest
from killabletest import GUARD_SECONDS, MAIN_THREAD, run_loop_until

from gi.repository import Gio, GLib, Killable  # noqa: E402

State = Killable.TaskState


class Sleeper(Killable.Task):
    """Sleeps through the task (a stop wakes it), then waits at ``gate``
    so that the owner can see it STOPPING."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gate = threading.Event()
        self.running = threading.Event()
        self.seen = None

    def run(self):
        try:
            self.running.set()
            self.sleep(3600)
        except BaseException as e:
            self.seen = e
            raise
        finally:
            self.gate.wait(GUARD_SECONDS)


class TestStopThroughSleep(unittest.TestCase):
    """Issue 2: a Python run() on a worker thread, stopped from the main
    thread through Task.sleep, with notify::state on the main loop."""

    def test_notify_state_order(self):
        task = Sleeper(name='sleeper')
        states = []
        threads = []

        def on_state(obj, pspec):
            threads.append(threading.get_ident())
            states.append(obj.props.state)

        task.connect('notify::state', on_state)
        task.start()
        self.assertEqual(task.get_state(), State.RUNNING)

        run_loop_until(lambda: len(states) >= 1)
        self.assertEqual(states, [State.RUNNING])
        # run() started (a task stopped before that would not run at all).
        self.assertTrue(task.running.wait(GUARD_SECONDS))

        task.stop()
        # Held at the gate: the state stays STOPPING until we let it go.
        run_loop_until(lambda: len(states) >= 2)
        self.assertEqual(states, [State.RUNNING, State.STOPPING])

        task.gate.set()
        run_loop_until(lambda: len(states) >= 3)
        self.assertEqual(states, [State.RUNNING, State.STOPPING, State.CANCELLED])
        self.assertEqual(threads, [MAIN_THREAD] * 3)

        with self.assertRaises(Killable.TaskStopped) as cm:
            task.join()
        self.assertTrue(cm.exception.error.matches(Killable.error_quark(),
                                                   Killable.Error.STOPPED))
        # The worker saw the stop as TaskStopped, raised by sleep().
        self.assertIsInstance(task.seen, Killable.TaskStopped)
        self.assertEqual(task.get_state(), State.CANCELLED)
        self.assertEqual(task.get_error().code, Killable.Error.STOPPED)
        self.assertFalse(task.is_alive())

    def test_sleep_returns_after_time(self):
        done = []

        def work():
            Killable.current_task().sleep(0.001)
            done.append(True)

        task = Killable.Task(target=work)
        task.start()
        task.join()
        self.assertEqual(done, [True])
        self.assertEqual(task.get_state(), State.SUCCEEDED)


# The two recipes of "Is there any way to kill a thread?", re-expressed.

class StoppableThread(Killable.Task):
    """Thread class with a stop() method. The thread itself has to check
    regularly for the stopped() condition."""

    def __init__(self):
        super().__init__()
        self.iterations = 0
        self.running = threading.Event()

    def run(self):
        while not self.stopped():
            self.iterations += 1
            self.running.set()


class ThreadWithExc(Killable.Task):
    """A thread that gets an exception raised in it from another thread:
    it catches that specific exception and cleans up."""

    def __init__(self, blocking):
        super().__init__()
        self.blocking = blocking
        self.running = threading.Event()
        self.cleaned_up = False
        self.count = 0

    def run(self):
        try:
            self.running.set()
            if self.blocking:
                self.sleep(3600)
            while True:
                self.count += 1
        except SomeException:
            self.cleaned_up = True


class SomeException(Exception):
    pass


class TestRecipes(unittest.TestCase):

    def test_stoppable_thread(self):
        t = StoppableThread()
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        t.stop()
        # run() returned by itself, but after the stop: the task was
        # cancelled (it did not finish its work), and join() says so.
        with self.assertRaises(Killable.TaskStopped):
            t.join()
        self.assertGreater(t.iterations, 0)
        self.assertEqual(t.get_state(), State.CANCELLED)

    def test_stoppable_thread_with_check(self):
        running = threading.Event()
        cleanup = []

        def work():
            task = Killable.current_task()
            try:
                while True:
                    task.check()
                    running.set()
            finally:
                cleanup.append(True)

        t = Killable.Task(target=work)
        t.start()
        self.assertTrue(running.wait(GUARD_SECONDS))
        t.stop()
        with self.assertRaises(Killable.TaskStopped):
            t.join()
        self.assertEqual(cleanup, [True])
        self.assertEqual(t.get_state(), State.CANCELLED)

    def test_thread_with_exc_busy(self):
        t = ThreadWithExc(blocking=False)
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        t.interrupt(SomeException)
        # Caught and cleaned up: run() returned, after the interrupt.
        with self.assertRaises(Killable.TaskInterrupted):
            t.join()
        self.assertTrue(t.cleaned_up)
        self.assertEqual(t.get_state(), State.CANCELLED)

    def test_thread_with_exc_blocked(self):
        # The recipe's caveat: "if the thread is busy in a system call, the
        # exception is simply ignored". Task.sleep() gets it at once.
        t = ThreadWithExc(blocking=True)
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        t.interrupt(SomeException)
        with self.assertRaises(Killable.TaskInterrupted):
            t.join()
        self.assertTrue(t.cleaned_up)
        self.assertEqual(t.count, 0)


class TestExceptions(unittest.TestCase):

    def test_hierarchy(self):
        for cls in (Killable.TaskStopped, Killable.TaskInterrupted,
                    Killable.TaskTimedOut, Killable.TaskKilled):
            self.assertTrue(issubclass(cls, Killable.TaskCancelled))
            self.assertFalse(issubclass(cls, Exception))
        self.assertTrue(issubclass(Killable.TaskCancelled, BaseException))
        self.assertFalse(issubclass(Killable.TaskCancelled, Exception))

    def test_construction(self):
        # The arguments, the error (None by default) and the message, for
        # the override's classes, whose __init__ is lean (issue 15), and
        # for a subclass whose MRO puts a mixin's __init__ after it: that
        # one still runs.
        error = GLib.Error.new_literal(Killable.error_quark(), 'why', 1)
        for cls in (Killable.TaskCancelled, Killable.TaskStopped,
                    Killable.TaskInterrupted, Killable.TaskTimedOut, Killable.TaskKilled):
            e = cls()
            self.assertEqual(e.args, ())
            self.assertIsNone(e.error)
            self.assertEqual(str(e), cls.default_message)
            e = cls('a', 2, error=error)
            self.assertEqual(e.args, ('a', 2))
            self.assertIs(e.error, error)
            self.assertEqual(str(e), "('a', 2)")
            self.assertEqual(str(cls(error=error)), 'why')

        seen = []

        class Mixin(BaseException):
            def __init__(self, *args, **kwargs):
                seen.append(args)
                super().__init__(*args, **kwargs)

        class Mine(Killable.TaskInterrupted, Mixin):
            pass

        e = Mine('x', error=error)
        self.assertEqual(seen, [('x',)])
        self.assertEqual(e.args, ('x',))
        self.assertIs(e.error, error)

    def test_except_exception_does_not_catch_interrupt(self):
        running = threading.Event()
        caught = []

        def work():
            try:
                running.set()
                while True:
                    pass
            except Exception as e:
                caught.append(e)

        t = Killable.Task(target=work)
        t.start()
        self.assertTrue(running.wait(GUARD_SECONDS))
        t.interrupt()
        with self.assertRaises(Killable.TaskInterrupted):
            t.join()
        self.assertEqual(caught, [])

    def test_except_exception_does_not_catch_stop(self):
        caught = []
        running = threading.Event()

        def work():
            task = Killable.current_task()
            try:
                running.set()
                task.sleep(3600)
            except Exception as e:
                caught.append(e)

        t = Killable.Task(target=work)
        t.start()
        self.assertTrue(running.wait(GUARD_SECONDS))
        t.stop()
        with self.assertRaises(Killable.TaskStopped):
            t.join()
        self.assertEqual(caught, [])

    def test_error_comes_back_unchanged(self):
        error = ValueError('boom')

        def failing_work():
            raise error

        t = Killable.Task(target=failing_work)
        t.start()
        # Twice: the same object each time, with the worker's frames.
        for _ in range(2):
            try:
                t.join()
            except ValueError as e:
                self.assertIs(e, error)
                names = [f.name for f in traceback.extract_tb(e.__traceback__)]
            else:
                self.fail('join() did not raise')
            # From this call of join() (C code, no frame of its own when
            # the helper is built) down to the worker's frame.
            self.assertEqual(names[0], 'test_error_comes_back_unchanged')
            self.assertIn('failing_work', names)
        self.assertEqual(t.get_state(), State.FAILED)
        self.assertEqual(t.get_error().message, 'ValueError: boom')
        self.assertTrue(t.get_error().matches(Killable.error_quark(), Killable.Error.FAILED))

    def test_glib_error_comes_back_unchanged(self):
        error = GLib.Error.new_literal(Gio.io_error_quark(), 'no such thing',
                                       Gio.IOErrorEnum.NOT_FOUND)

        def work():
            raise error

        t = Killable.Task(target=work)
        t.start()
        with self.assertRaises(GLib.Error) as cm:
            t.join()
        self.assertIs(cm.exception, error)
        # The C side sees the same GError.
        self.assertTrue(t.get_error().matches(Gio.io_error_quark(), Gio.IOErrorEnum.NOT_FOUND))
        self.assertEqual(t.get_error().message, 'no such thing')
        self.assertEqual(t.get_state(), State.FAILED)

    def test_error_raised_after_stop_is_a_failure(self):
        running = threading.Event()

        def work():
            task = Killable.current_task()
            try:
                running.set()
                task.sleep(3600)
            except Killable.TaskStopped:
                raise KeyError('while stopping')

        t = Killable.Task(target=work)
        t.start()
        self.assertTrue(running.wait(GUARD_SECONDS))
        t.stop()
        with self.assertRaises(KeyError):
            t.join()
        self.assertEqual(t.get_state(), State.FAILED)

    def test_timeout(self):
        t, seen = killabletest.start_sleeper()
        # Counted from the start: it may have passed already.
        t.set_timeout(10 * 1000)
        with self.assertRaises(Killable.TaskTimedOut) as cm:
            t.join()
        self.assertIsInstance(seen[0], Killable.TaskTimedOut)
        self.assertTrue(cm.exception.error.matches(Killable.error_quark(),
                                                   Killable.Error.TIMED_OUT))
        self.assertEqual(t.get_state(), State.CANCELLED)

    def test_stop_with_cause(self):
        cause = GLib.Error.new_literal(GLib.quark_from_string('test-cause'), 'user quit', 3)
        t, seen = killabletest.start_sleeper(Killable.TaskCancelled)
        t.stop_with_error(cause)
        with self.assertRaises(Killable.TaskStopped) as cm:
            t.join()
        self.assertEqual(cm.exception.error.message, 'user quit')
        self.assertEqual(seen[0].error.message, 'user quit')
        self.assertEqual(t.get_state(), State.CANCELLED)

    _CAUSE = ('test-cause', 3, 'user quit')

    def _raised_after_stop_with_cause(self, call, blocks):
        """What ``call(task)`` raised in a worker stopped with a cause
        (domain, code and message: _CAUSE): a call that ``blocks`` until
        the stop is made first, another one after the stop. join() raised
        TaskStopped, and the call raised exactly once."""
        domain, code, message = self._CAUSE
        cause = GLib.Error.new_literal(GLib.quark_from_string(domain), message, code)
        ready = threading.Event()
        go = threading.Event()
        seen = []

        def work():
            task = Killable.current_task()
            ready.set()
            if not blocks:
                go.wait(GUARD_SECONDS)
            try:
                call(task)
            except BaseException as e:
                seen.append(e)
                raise

        t = Killable.Task(target=work)
        t.start()
        self.assertTrue(ready.wait(GUARD_SECONDS))
        t.stop_with_error(cause)
        go.set()
        with self.assertRaises(Killable.TaskStopped):
            t.join()
        self.assertEqual(len(seen), 1)
        return seen[0]

    def test_check_after_stop_with_cause(self):
        # check() in a stopped worker asks the library keeping the GIL and
        # builds the GLib.Error itself: the same domain, code and message
        # as the cause.
        exc = self._raised_after_stop_with_cause(lambda task: task.check(), blocks=False)
        self.assertIsInstance(exc, Killable.TaskStopped)
        error = exc.error
        self.assertIsInstance(error, GLib.Error)
        self.assertEqual((error.domain, error.code, error.message), self._CAUSE)

    def test_waits_after_stop_with_cause(self):
        # sleep() and wait_fd() read the stop's GError through ctypes and
        # build the GLib.Error themselves: the cause's domain (not the
        # library's), code and message reach the TaskStopped.
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        for name, call in (('sleep', lambda task: task.sleep(3600)),
                           ('wait_fd', lambda task: task.wait_fd(r, GLib.IOCondition.IN))):
            with self.subTest(name):
                exc = self._raised_after_stop_with_cause(call, blocks=True)
                self.assertIs(type(exc), Killable.TaskStopped)
                error = exc.error
                self.assertIsInstance(error, GLib.Error)
                self.assertEqual((error.domain, error.code, error.message), self._CAUSE)
                self.assertEqual(str(exc), 'user quit')

    def test_gio_call_with_cancellable(self):
        r, w = os.pipe()
        running = threading.Event()
        seen = []

        def work():
            task = Killable.current_task()
            stream = Gio.UnixInputStream.new(r, False)
            running.set()
            try:
                stream.read_bytes(1, task.get_cancellable())
            except GLib.Error as e:
                seen.append(e)
                raise

        try:
            t = Killable.Task(target=work)
            t.start()
            self.assertTrue(running.wait(GUARD_SECONDS))
            t.interrupt()
            with self.assertRaises(Killable.TaskInterrupted):
                t.join()
            self.assertEqual(len(seen), 1)
            self.assertTrue(seen[0].matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED))
            self.assertEqual(t.get_state(), State.CANCELLED)
        finally:
            os.close(r)
            os.close(w)


class TestBadInput(unittest.TestCase):

    def test_constructor(self):
        with self.assertRaises(TypeError):
            Killable.Task(target=5)
        with self.assertRaises(TypeError):
            Killable.Task(target=print, args=5)
        with self.assertRaises(TypeError):
            Killable.Task(target=print, kwargs=[('a', 1)])
        with self.assertRaises(TypeError):
            Killable.Task(target=print, name=42)
        with self.assertRaises(TypeError):
            Killable.Task(target=print, no_such_property=1)

    def test_methods(self):
        t = Killable.Task(target=lambda: None)
        for bad in ('1', None, [1], True):
            with self.assertRaises(TypeError):
                t.sleep(bad)
        with self.assertRaises(ValueError):
            t.sleep(-1)
        with self.assertRaises(ValueError):
            t.sleep(float('nan'))
        with self.assertRaises(TypeError):
            t.interrupt(5)
        with self.assertRaises(TypeError):
            t.interrupt(ValueError('an instance'))
        with self.assertRaises(RuntimeError):
            t.join()          # not started
        t.start()
        with self.assertRaises(TypeError):
            t.join('soon')
        t.join()
        with self.assertRaises(RuntimeError):
            t.start()         # twice

    def test_join_timeout(self):
        t = Sleeper()
        t.start()
        self.assertIsNone(t.join(timeout=0.01))
        self.assertTrue(t.is_alive())
        t.gate.set()
        t.stop()
        with self.assertRaises(Killable.TaskStopped):
            t.join(timeout=GUARD_SECONDS)


class TestLifeCycle(unittest.TestCase):

    def test_target_args(self):
        got = []
        t = Killable.Task(target=lambda a, b, c=None: got.append((a, b, c)),
                          args=(1, 2), kwargs={'c': 3}, name='adder')
        self.assertEqual(t.name, 'adder')
        self.assertEqual(t.get_name(), 'adder')
        self.assertIsInstance(t, Killable.Task)
        t.start()
        t.join()
        self.assertEqual(got, [(1, 2, 3)])

    def test_default_names(self):
        def my_work():
            pass

        self.assertEqual(Killable.Task(target=my_work).name.split('.')[-1], 'my_work')
        self.assertEqual(StoppableThread().name, 'StoppableThread')

    def test_current_task(self):
        inside = []
        t = Killable.Task(target=lambda: inside.append(Killable.current_task()))
        self.assertIsNone(Killable.current_task())
        t.start()
        t.join()
        self.assertIs(inside[0], t)

    def test_interrupt_finished_task_is_harmless(self):
        t = Killable.Task(target=lambda: None)
        t.start()
        t.join()
        t.interrupt()
        t.interrupt(SomeException)
        t.stop()
        t.kill()
        self.assertEqual(t.get_state(), State.SUCCEEDED)
        t.join()

    def test_stop_before_start(self):
        ran = []
        t = Killable.Task(target=lambda: ran.append(True))
        t.stop()
        t.start()
        with self.assertRaises(Killable.TaskStopped):
            t.join()
        self.assertEqual(ran, [])

    def test_interrupt_before_run(self):
        ran = []
        t = Killable.Task(target=lambda: ran.append(True))
        t.interrupt()
        t.start()
        with self.assertRaises(Killable.TaskInterrupted):
            t.join()
        self.assertEqual(ran, [])

    def test_context_manager_stops(self):
        running = threading.Event()

        def work():
            running.set()
            Killable.current_task().sleep(3600)

        with Killable.Task(target=work) as t:
            self.assertTrue(running.wait(GUARD_SECONDS))
            self.assertTrue(t.is_alive())
        # Leaving stopped and joined it; its TaskStopped is not raised.
        self.assertEqual(t.get_state(), State.CANCELLED)

    def test_context_manager_raises_worker_error(self):
        def work():
            raise LookupError('from the worker')

        with self.assertRaises(LookupError):
            with Killable.Task(target=work) as t:
                t.wait(GUARD_SECONDS * 1000000)

    def test_context_manager_raises_other_cancellation(self):
        def work():
            Killable.current_task().sleep(3600)

        with self.assertRaises(Killable.TaskInterrupted):
            with Killable.Task(target=work) as t:
                t.interrupt()

    def test_context_manager_body_error(self):
        def work():
            Killable.current_task().sleep(3600)

        with self.assertRaises(ZeroDivisionError):
            with Killable.Task(target=work) as t:
                1 / 0
        self.assertEqual(t.get_state(), State.CANCELLED)

    def test_self_interrupt(self):
        after = []

        def work():
            task = Killable.current_task()
            task.interrupt(SomeException)
            after.append(True)

        t = Killable.Task(target=work)
        t.start()
        with self.assertRaises(SomeException):
            t.join()
        self.assertEqual(after, [])

    def test_progress_notify_on_main_thread(self):
        values = []
        threads = []

        def work():
            task = Killable.current_task()
            for i in range(1, 5):
                task.set_progress(i / 4)

        t = Killable.Task(target=work)
        t.connect('notify::progress',
                  lambda obj, pspec: (threads.append(threading.get_ident()),
                                      values.append(obj.props.progress)))
        t.start()
        t.join()
        run_loop_until(lambda: values and values[-1] == 1.0)
        self.assertEqual(set(threads), {MAIN_THREAD})
        self.assertEqual(values, sorted(values))

    def test_tree(self):
        children_seen = []
        running = threading.Semaphore(0)

        def child_work():
            try:
                running.release()
                Killable.current_task().sleep(3600)
            except Killable.TaskStopped as e:
                children_seen.append(e)
                raise

        parent = Killable.Task(target=lambda: Killable.current_task().sleep(3600))
        kids = [Killable.Task(target=child_work) for _ in range(3)]
        for k in kids:
            parent.add_child(k)
        parent.start()
        for k in kids:
            k.start()
        for k in kids:
            self.assertTrue(running.acquire(timeout=GUARD_SECONDS))
        parent.stop()
        with self.assertRaises(Killable.TaskStopped):
            parent.join()
        for k in kids:
            self.assertEqual(k.get_state(), State.CANCELLED)
        self.assertEqual(len(children_seen), 3)


class TestProcessTask(unittest.TestCase):
    """The override's methods also serve C tasks."""

    def test_stop_process(self):
        p = Killable.ProcessTask.new(['sleep', '1000'])
        p.start()
        p.stop()
        with self.assertRaises(Killable.TaskStopped):
            p.join()
        self.assertEqual(p.get_state(), State.CANCELLED)

    def test_failed_process(self):
        p = Killable.ProcessTask.new(['false'])
        p.start()
        with self.assertRaises(GLib.Error) as cm:
            p.join()
        self.assertTrue(cm.exception.matches(GLib.spawn_exit_error_quark(), 1))


if __name__ == '__main__':
    killabletest.main()
