#!/usr/bin/python3
# test_interrupt.py: rung 2 and 3 for Python workers (asynchronous
# exceptions, abandoned threads)
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import ctypes
import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import Gio, GLib, Killable  # noqa: E402

State = Killable.TaskState
HERE = os.path.dirname(os.path.abspath(__file__))

# What "at once" means on a loaded 2-core CI machine. A worker that is not
# interrupted never ends, so this bound still tells the two apart.
PROMPT_SECONDS = 2.0


class Busy(Killable.Task):
    """Pure Python that never checks: only an asynchronous exception ends it."""

    def __init__(self):
        super().__init__()
        self.running = threading.Event()
        self.seen = None

    def run(self):
        x = 0
        try:
            self.running.set()
            while True:
                x += 1
        except BaseException as e:
            self.seen = e
            raise


class TestInterrupt(unittest.TestCase):

    def test_busy_loop(self):
        t = Busy()
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        start = time.monotonic()
        t.interrupt()
        with self.assertRaises(Killable.TaskInterrupted):
            t.join()
        elapsed = time.monotonic() - start
        print('# busy loop interrupted in %.1f ms (switch interval %.1f ms)'
              % (elapsed * 1000, sys.getswitchinterval() * 1000))
        self.assertLess(elapsed, PROMPT_SECONDS)
        self.assertIsInstance(t.seen, Killable.TaskInterrupted)
        self.assertEqual(t.get_state(), State.CANCELLED)
        self.assertTrue(t.get_error().matches(Killable.error_quark(),
                                              Killable.Error.INTERRUPTED))

    def test_sleeping_worker(self):
        t, seen = killabletest.start_sleeper()
        start = time.monotonic()
        t.interrupt()
        with self.assertRaises(Killable.TaskInterrupted):
            t.join()
        self.assertLess(time.monotonic() - start, PROMPT_SECONDS)
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0], Killable.TaskInterrupted)

    def test_custom_exception(self):
        class Custom(Exception):
            pass

        t = Busy()
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        t.interrupt(Custom)
        # Not a TaskCancelled: escaping run(), it fails the task.
        with self.assertRaises(Custom):
            t.join()
        self.assertEqual(t.get_state(), State.FAILED)

    def test_escalation_from_timer_thread(self):
        # stop, then after the grace period the library's timer thread
        # interrupts: the async exception comes from there.
        t = Busy()
        t.set_grace_period(500 * 1000)
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        t.stop()
        with self.assertRaises(Killable.TaskStopped):
            t.join()       # ended by the stop's cause (STOPPED)
        self.assertIsInstance(t.seen, Killable.TaskInterrupted)
        self.assertEqual(t.get_state(), State.CANCELLED)

    def test_interrupt_tree(self):
        kids = [Busy() for _ in range(3)]
        parent = Busy()
        for k in kids:
            parent.add_child(k)
        parent.start()
        for k in kids:
            k.start()
        for t in [parent] + kids:
            self.assertTrue(t.running.wait(GUARD_SECONDS))
        parent.interrupt()
        for t in [parent] + kids:
            with self.assertRaises(Killable.TaskInterrupted):
                t.join()
            self.assertIsInstance(t.seen, Killable.TaskInterrupted)

    def test_once(self):
        # One interrupt() is one exception: after the worker caught it, a
        # second phase runs busy code where a second delivery would land
        # (and be counted), while the test thread waits for that phase to
        # make progress.
        caught = []
        running = threading.Event()
        caught_first = threading.Event()
        done = threading.Event()
        counter = [0]

        def work():
            try:
                running.set()
                while True:
                    pass
            except Killable.TaskInterrupted as e:
                caught.append(('phase 1', e))
            caught_first.set()
            try:
                while not done.is_set():
                    counter[0] += 1
            except Killable.TaskInterrupted as e:
                caught.append(('phase 2', e))
            return 'finished'

        t = Killable.Task(target=work)
        t.start()
        self.assertTrue(running.wait(GUARD_SECONDS))
        t.interrupt()
        self.assertTrue(caught_first.wait(GUARD_SECONDS))
        # Progress handshake: phase 2 has run a good while, long enough for
        # a second delivery of the first interrupt to land in it.
        start = counter[0]
        end = time.monotonic() + GUARD_SECONDS
        while counter[0] - start < 200000 and time.monotonic() < end:
            time.sleep(0)
        self.assertGreaterEqual(counter[0] - start, 200000)
        done.set()
        # The work ends by itself (its cancellation was caught): the task
        # ends CANCELLED, stopped before it ended.
        with self.assertRaises(Killable.TaskInterrupted):
            t.join()
        self.assertEqual([phase for phase, _ in caught], ['phase 1'])


from gi.overrides import _killable  # noqa: E402


class Counted(Busy):
    """A Busy task whose interrupt vfunc is its own (counting, then doing
    the override's part): interrupt() must still go through it."""

    def __init__(self):
        super().__init__()
        self.vfunc_calls = 0

    def do_interrupt(self):
        self.vfunc_calls += 1
        _killable.do_interrupt(self)


class TestInterruptPaths(unittest.TestCase):
    """Task.interrupt() from Python on a Python task: the library runs the
    task's default handler in place of its vfunc, and the override sends
    the exception itself (no way from C back into Python); descendants and
    tasks with a vfunc of their own still get their vfunc."""

    def setUp(self):
        self.calls = []
        original = _killable._c_interrupt_self_default
        self.assertIsNotNone(original)

        def counted(ptr):
            self.calls.append(ptr)
            if not isinstance(ptr, ctypes.c_void_p):
                ptr = ctypes.c_void_p(ptr)  # from the helper: an int
            return original(ptr)
        _killable._c_interrupt_self_default = counted
        self.addCleanup(setattr, _killable, '_c_interrupt_self_default', original)
        if _killable.interrupt is not _killable._interrupt_py:
            # The compiled helper calls the library through the address
            # it was given: give it one that counts.
            # (Kept on self: the helper holds only its address.)
            self.counted_c = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(counted)
            _killable._setup_helper(self.counted_c)
            self.addCleanup(_killable._setup_helper, original)

    def test_direct_path(self):
        t = Busy()
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        t.interrupt()
        with self.assertRaises(Killable.TaskInterrupted):
            t.join(GUARD_SECONDS)
        self.assertEqual(len(self.calls), 1)
        self.assertIsInstance(t.seen, Killable.TaskInterrupted)
        self.assertTrue(t.get_error().matches(Killable.error_quark(),
                                              Killable.Error.INTERRUPTED))

    def test_own_vfunc_kept(self):
        t = Counted()
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        t.interrupt()
        with self.assertRaises(Killable.TaskInterrupted):
            t.join(GUARD_SECONDS)
        self.assertEqual(self.calls, [])
        self.assertEqual(t.vfunc_calls, 1)
        self.assertIsInstance(t.seen, Killable.TaskInterrupted)

    def test_descendants_get_their_vfunc(self):
        parent = Busy()
        child = Counted()
        parent.add_child(child)
        parent.start()
        child.start()
        self.assertTrue(parent.running.wait(GUARD_SECONDS))
        self.assertTrue(child.running.wait(GUARD_SECONDS))
        parent.interrupt()
        for t in (parent, child):
            with self.assertRaises(Killable.TaskInterrupted):
                t.join(GUARD_SECONDS)
            self.assertIsInstance(t.seen, Killable.TaskInterrupted)
        self.assertEqual(len(self.calls), 1)
        self.assertEqual(child.vfunc_calls, 1)

    def test_after_stop(self):
        # Already stopped: the library builds no reason for the interrupt,
        # and the exception still lands; the task keeps the stop's cause.
        t = Busy()
        t.start()
        self.assertTrue(t.running.wait(GUARD_SECONDS))
        t.stop()
        t.interrupt()
        with self.assertRaises(Killable.TaskStopped):
            t.join(GUARD_SECONDS)
        self.assertIsInstance(t.seen, Killable.TaskInterrupted)
        self.assertTrue(t.get_error().matches(Killable.error_quark(),
                                              Killable.Error.STOPPED))

    def test_ended(self):
        # Harmless on a task that ended: nothing is sent or kept.
        t = Killable.Task(target=lambda: 'done')
        t.start()
        t.join(GUARD_SECONDS)
        w = _killable.worker(t)
        before = w.async_state
        t.interrupt()
        self.assertEqual(len(self.calls), 1)
        self.assertIsNone(w.pending)
        self.assertEqual(w.async_state, before)
        self.assertEqual(t.get_state(), State.SUCCEEDED)
        t.join(GUARD_SECONDS)


def capture_output():
    """Redirect what could be printed (Python's stderr, fd 2, the
    unraisable hook); returns a function that restores them and returns
    (unraisable, python_stderr, c_stderr)."""
    interval = sys.getswitchinterval()
    # Switch often: the exceptions then land everywhere.
    sys.setswitchinterval(1e-5)
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    old_stderr = sys.stderr
    sys.stderr = io.StringIO()
    sys.stdout.flush()
    saved_fd = os.dup(2)
    err_file = tempfile.TemporaryFile()
    os.dup2(err_file.fileno(), 2)

    def restore():
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        err_file.seek(0)
        c_stderr = err_file.read().decode('utf-8', 'replace')
        err_file.close()
        py_stderr = sys.stderr.getvalue()
        sys.stderr = old_stderr
        sys.unraisablehook = old_hook
        sys.setswitchinterval(interval)
        return unraisable, py_stderr, c_stderr
    return restore


class TestFailingGioLoop(unittest.TestCase):
    """A worker that keeps retrying a GIO call that the stop makes fail:
    the interrupt lands in it, sometimes while PyGObject builds the
    GLib.Error, and the worker still ends, without a word on stderr."""

    def test_retrying_worker(self):
        r, w = os.pipe()
        restore = capture_output()
        try:
            for _ in range(20):
                ready = threading.Event()

                def work():
                    task = Killable.current_task()
                    stream = Gio.UnixInputStream.new(r, False)
                    cancellable = task.get_cancellable()
                    ready.set()
                    while True:
                        try:
                            stream.read_bytes(1, cancellable)
                        except GLib.Error:
                            pass

                t = Killable.Task(target=work)
                t.start()
                self.assertTrue(ready.wait(GUARD_SECONDS))
                t.interrupt()
                with self.assertRaises(Killable.TaskInterrupted):
                    t.join()
                self.assertEqual(t.get_state(), State.CANCELLED)
        finally:
            unraisable, py_stderr, c_stderr = restore()
            os.close(r)
            os.close(w)
        self.assertEqual(unraisable, [])
        self.assertEqual(py_stderr, '')
        self.assertEqual(c_stderr, '')


class TestManyInterrupts(unittest.TestCase):
    """2 000 interrupts fired at random moments into workers of every kind:
    every finally runs, nothing escapes into the thread cache or lands
    after run() returned, nothing is printed."""

    N_INTERRUPTS = 2000
    BATCH = 8
    CONTROLS = 2

    def make_work(self, i, kind, length, entered, finals, returned, pipe):
        def work():
            task = Killable.current_task()
            entered[i] = True
            try:
                if kind == 0:
                    x = 0
                    for _ in range(length):
                        x += 1
                elif kind == 1:
                    for _ in range(length):
                        task.check()
                elif kind == 2:
                    task.sleep(length * 1e-7)
                elif kind == 3:
                    def inner(n):
                        try:
                            return sum(range(n))
                        finally:
                            pass
                    for _ in range(length // 100 + 1):
                        inner(100)
                elif kind == 4:
                    stream = Gio.UnixInputStream.new(pipe, False)
                    stream.read_bytes(1, task.get_cancellable())
            finally:
                finals[i] += 1
            returned[i] = True
        return work

    def test_random_interrupts(self):
        rng = random.Random(int(os.environ.get('KILLABLE_TEST_SEED', '1234')))
        r, w = os.pipe()
        fired = 0
        outcomes = {'succeeded': 0, 'interrupted': 0}
        restore = capture_output()
        try:
            while fired < self.N_INTERRUPTS:
                n = self.BATCH + self.CONTROLS
                entered = [False] * n
                finals = [0] * n
                returned = [False] * n
                tasks = []
                for i in range(n):
                    kind = rng.randrange(5) if i < self.BATCH else rng.randrange(4)
                    if kind == 4 and i >= self.BATCH:
                        kind = 0
                    length = rng.randrange(1, 20000)
                    tasks.append(Killable.Task(
                        target=self.make_work(i, kind, length, entered, finals,
                                              returned, r)))
                for t in tasks:
                    t.start()
                order = list(range(self.BATCH))
                rng.shuffle(order)
                for i in order:
                    for _ in range(rng.randrange(0, 3000)):
                        pass
                    tasks[i].interrupt()
                    fired += 1
                for i, t in enumerate(tasks):
                    try:
                        t.join()
                    except Killable.TaskInterrupted:
                        # CANCELLED even if run() returned normally: the
                        # interrupt came before the task ended. (A late
                        # exception would show in the output checked below.)
                        self.assertLess(i, self.BATCH)
                        self.assertEqual(t.get_state(), State.CANCELLED)
                        outcomes['interrupted'] += 1
                    else:
                        self.assertTrue(returned[i])
                        self.assertEqual(t.get_state(), State.SUCCEEDED)
                        outcomes['succeeded'] += 1
                    # finally ran exactly once if the body was entered.
                    self.assertEqual(finals[i], 1 if entered[i] else 0)
        finally:
            unraisable, py_stderr, c_stderr = restore()
            os.close(r)
            os.close(w)

        self.assertEqual(Killable.get_abandoned_thread_count(), 0)
        self.assertEqual(unraisable, [])
        self.assertEqual(py_stderr, '')
        self.assertEqual(c_stderr, '')
        print('# %d interrupts: %r' % (fired, outcomes))
        self.assertGreater(outcomes['interrupted'], 0)


class TestKill(unittest.TestCase):
    """kill() of stuck Python workers, in a child interpreter that must
    exit cleanly afterwards."""

    def run_helper(self, mode):
        # PyGObject's importer warns under -X dev (PYTHONDEVMODE): not ours.
        proc = subprocess.run([sys.executable, '-X', 'faulthandler',
                               '-W', 'ignore::ImportWarning',
                               os.path.join(HERE, 'abandon_helper.py'), mode],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=60, env=os.environ)
        out = proc.stdout.decode()
        err = proc.stderr.decode()
        for line in out.splitlines():
            print('# %s: %s' % (mode, line))
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(err, '')
        return out

    def test_kill_stuck_workers(self):
        out = self.run_helper('kill')
        self.assertIn('ok kill', out)

    def test_escalation_to_kill(self):
        out = self.run_helper('escalate')
        self.assertIn('ok escalate', out)


if __name__ == '__main__':
    killabletest.main()
