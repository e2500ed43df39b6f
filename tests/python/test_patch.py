#!/usr/bin/python3
# test_patch.py: Killable.patch_blocking_calls() makes the standard
# library's blocking calls stoppable inside task workers
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import gc
import os
import queue
import select
import selectors
import signal
import socket
import subprocess
import threading
import time
import unittest
import warnings
import _thread

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import Killable  # noqa: E402

import gi.overrides._killable as _killable  # noqa: E402
import gi.overrides._killable_patch  # noqa: E402

Killable.patch_blocking_calls()

State = Killable.TaskState


class Blocked(object):
    """Set by the override right before a worker of ``task`` blocks."""

    def __init__(self):
        self.task = None
        self.event = threading.Event()

    def __call__(self, task):
        if task is self.task:
            self.event.set()


class TestPatchedCalls(unittest.TestCase):
    """Issue 15 point 7: inside a task, each call returns at once on a stop
    (or an interrupt), raising the task's cancellation."""

    def setUp(self):
        self.blocked = Blocked()
        _killable.WAIT_HOOK = self.blocked

    def tearDown(self):
        _killable.WAIT_HOOK = None

    def run_blocked(self, call, how='stop', expected=Killable.TaskStopped):
        """Run ``call()`` in a task; once it blocked, stop (or interrupt)
        the task; the worker must see ``expected``."""
        seen = []
        after = []

        def work():
            try:
                call()
                after.append('returned')
            except BaseException as e:
                seen.append(e)
                raise

        task = Killable.Task(target=work)
        self.blocked.task = task
        task.start()
        self.assertTrue(self.blocked.event.wait(GUARD_SECONDS), 'the call never blocked')
        getattr(task, how)()
        with self.assertRaises(expected):
            task.join(GUARD_SECONDS)
        self.assertEqual(after, [])
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0], expected)
        return task

    def test_time_sleep(self):
        self.run_blocked(lambda: time.sleep(3600))

    def test_time_sleep_interrupt(self):
        self.run_blocked(lambda: time.sleep(3600), 'interrupt', Killable.TaskInterrupted)

    def test_select(self):
        r, w = os.pipe()
        try:
            self.run_blocked(lambda: select.select([r], [], [], None))
        finally:
            os.close(r)
            os.close(w)

    def test_selector(self):
        r, w = os.pipe()
        sel = selectors.DefaultSelector()
        sel.register(r, selectors.EVENT_READ)
        try:
            self.run_blocked(lambda: sel.select())
            # The stop's fd was taken out again.
            self.assertEqual([k.fd for k in sel.get_map().values()], [r])
        finally:
            sel.close()
            os.close(r)
            os.close(w)

    def test_poll_selector_left_clean(self):
        # The stop's fd goes into the system poll object only for the
        # wait: after it (and the end of the work, which closes that fd),
        # a select() outside tasks waits its whole timeout (a closed fd
        # left in the poll object would end it at once, POLLNVAL).
        r, w = os.pipe()
        sel = selectors.PollSelector()
        sel.register(r, selectors.EVENT_READ)
        try:
            self.run_blocked(lambda: sel.select())
            self.assertEqual([k.fd for k in sel.get_map().values()], [r])
            t0 = time.monotonic()
            self.assertEqual(sel.select(0.05), [])
            self.assertGreaterEqual(time.monotonic() - t0, 0.04)
        finally:
            sel.close()
            os.close(r)
            os.close(w)

    def test_socket_recv(self):
        a, b = socket.socketpair()
        with a, b:
            self.run_blocked(lambda: b.recv(10))

    def test_socket_accept(self):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            s.listen()
            self.run_blocked(s.accept)

    def test_socket_sendall(self):
        a, b = socket.socketpair()
        with a, b:
            self.run_blocked(lambda: a.sendall(b'x' * (64 << 20)))

    def test_socket_timeout_kept(self):
        a, b = socket.socketpair()
        with a, b:
            b.settimeout(0.001)

            def work():
                with self.assertRaises(socket.timeout):
                    b.recv(10)
            task = Killable.Task(target=work)
            task.start()
            task.join()

    def test_event_wait(self):
        event = threading.Event()
        self.run_blocked(event.wait)

    def test_event_wait_interrupt(self):
        event = threading.Event()
        self.run_blocked(event.wait, 'interrupt', Killable.TaskInterrupted)

    def test_condition_still_notified(self):
        cond = threading.Condition()
        got = []

        def work():
            with cond:
                got.append(cond.wait_for(lambda: 'go' in got, GUARD_SECONDS))

        task = Killable.Task(target=work)
        self.blocked.task = task
        task.start()
        self.assertTrue(self.blocked.event.wait(GUARD_SECONDS))
        with cond:
            got.append('go')
            cond.notify_all()
        task.join()
        self.assertEqual(got[-1], True)

    def test_condition_waits_again_after_notify(self):
        # A notified wait leaves nothing behind: the next wait of the same
        # worker times out (no stale wake-up), and the one after that is
        # notified again.
        cond = threading.Condition()
        got = []
        waits = []
        blocked = threading.Condition(_thread.allocate_lock())

        def hook(task):
            with blocked:
                waits.append(task)
                blocked.notify_all()

        def wait_for_waits(n):
            with blocked:
                self.assertTrue(blocked.wait_for(lambda: len(waits) >= n, GUARD_SECONDS))

        def work():
            with cond:
                got.append(cond.wait(GUARD_SECONDS))
                got.append(cond.wait(0.001))
                got.append(cond.wait(GUARD_SECONDS))

        _killable.WAIT_HOOK = hook
        task = Killable.Task(target=work)
        task.start()
        wait_for_waits(1)
        with cond:
            cond.notify()
        wait_for_waits(3)
        with cond:
            cond.notify()
        task.join(GUARD_SECONDS)
        self.assertEqual(got, [True, False, True])

    def test_queue_get(self):
        q = queue.Queue()
        self.run_blocked(q.get)

    def test_queue_put(self):
        q = queue.Queue(maxsize=1)
        q.put(1)
        self.run_blocked(lambda: q.put(2))

    def test_lock_acquire(self):
        lock = threading.Lock()
        lock.acquire()
        try:
            self.run_blocked(lock.acquire)
        finally:
            lock.release()

    def test_lock_handed_over(self):
        # A worker waiting for the lock gets it when the holder releases it
        # (no stop): release() opens its waiter.
        lock = threading.Lock()
        lock.acquire()
        got = []

        def work():
            got.append(lock.acquire())
            got.append(lock.acquire(timeout=0))
            lock.release()

        task = Killable.Task(target=work)
        self.blocked.task = task
        task.start()
        self.assertTrue(self.blocked.event.wait(GUARD_SECONDS), 'the acquire never blocked')
        lock.release()
        task.join(GUARD_SECONDS)
        self.assertFalse(task.is_alive(), 'the waiting worker never got the lock')
        self.assertEqual(got, [True, False])
        self.assertFalse(lock.locked())

    def test_lock_acquire_timeout(self):
        lock = threading.Lock()
        lock.acquire()
        got = []

        def work():
            got.append(lock.acquire(timeout=0.001))
            with self.assertRaises(ValueError):
                lock.acquire(timeout=-2)

        try:
            task = Killable.Task(target=work)
            task.start()
            task.join()
        finally:
            lock.release()
        self.assertEqual(got, [False])

    def test_popen_wait_kills_child(self):
        box = []

        def call():
            p = subprocess.Popen(['sleep', '3600'])
            box.append(p)
            self.addCleanup(TestPatchedSubprocess.reap, p)
            p.wait()

        self.run_blocked(call)
        # Killed (SIGKILL) and reaped when the work ended.
        self.assertEqual(box[0].returncode, -signal.SIGKILL)

    def test_popen_communicate_kills_child(self):
        box = []

        def call():
            p = subprocess.Popen(['sleep', '3600'], stdout=subprocess.PIPE)
            box.append(p)
            self.addCleanup(TestPatchedSubprocess.reap, p)
            p.communicate()

        self.run_blocked(call)
        box[0].stdout.close()
        self.assertEqual(box[0].returncode, -signal.SIGKILL)


class TestPatchedSubprocess(unittest.TestCase):
    """The child of a patched subprocess wait that a stop ends is killed
    when the work ends (not on the cancellation's way), and reaped."""

    def setUp(self):
        self.blocked = Blocked()
        _killable.WAIT_HOOK = self.blocked

    def tearDown(self):
        _killable.WAIT_HOOK = None

    def stop_blocked(self, call, popen, catch=False):
        """Run ``call()`` in a task, stop it once blocked. Nothing may be
        sent to the child before the work's except (the module's kill
        calls record instead, until then); when the task has ended, the
        child died of SIGKILL and was reaped (no wait() of the test).
        With ``catch``, the work catches the cancellation and returns."""
        sent = []
        patch = gi.overrides._killable_patch
        saved = patch._pidfd_send_signal, patch.os
        seen = []

        class NoKill(object):
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def kill(pid, sig):
                sent.append(('kill', pid, sig))

        def work():
            try:
                call()
            except BaseException as e:
                # What was sent on the cancellation's way; the end of the
                # work then sends for real.
                seen.append((e, list(sent)))
                patch._pidfd_send_signal, patch.os = saved
                if not catch:
                    raise

        task = Killable.Task(target=work)
        self.blocked.task = task
        patch._pidfd_send_signal = lambda fd, sig: sent.append(('pidfd', fd, sig))
        patch.os = NoKill()
        self.addCleanup(self.reap, popen)
        try:
            task.start()
            self.assertTrue(self.blocked.event.wait(GUARD_SECONDS), 'the call never blocked')
            task.stop()
            # (A stopped task ends stopped, also when its work returned.)
            with self.assertRaises(Killable.TaskStopped):
                task.join(GUARD_SECONDS)
        finally:
            patch._pidfd_send_signal, patch.os = saved
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0][0], Killable.TaskStopped)
        self.assertEqual(seen[0][1], [], 'a signal was sent on the cancellation\'s way')
        # Killed and reaped by the end of the work: no zombie left.
        self.assertEqual(popen.returncode, -signal.SIGKILL)
        with self.assertRaises(ChildProcessError):
            os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG)

    @staticmethod
    def reap(popen):
        # (A child that a failure left behind would hold the test's
        # output open.)
        if popen.poll() is None:
            popen.kill()
            popen.wait()

    def test_popen_wait_killed_when_work_ends(self):
        p = subprocess.Popen(['sleep', '3600'])
        self.stop_blocked(p.wait, p)

    def test_popen_communicate_killed_when_work_ends(self):
        p = subprocess.Popen(['sleep', '3600'], stdout=subprocess.PIPE)
        try:
            self.stop_blocked(p.communicate, p)
        finally:
            p.stdout.close()

    def test_popen_wait_killed_without_pidfd(self):
        # Without pidfds (an older kernel): the wait polls; the end of
        # the work kills through the PID and reaps all the same.
        patch = gi.overrides._killable_patch
        saved = patch._pidfd_open
        patch._pidfd_open = None
        try:
            p = subprocess.Popen(['sleep', '3600'])
            self.stop_blocked(p.wait, p)
        finally:
            patch._pidfd_open = saved

    def test_popen_killed_when_cancellation_caught(self):
        # The work catches the cancellation and returns: the child is
        # killed and reaped all the same when it ends.
        p = subprocess.Popen(['sleep', '3600'])
        self.stop_blocked(p.wait, p, catch=True)

    def test_popen_killed_on_interrupt_with_exception(self):
        # interrupt(exc=...): the wait raises the given class, not a
        # TaskCancelled; the child is killed and reaped all the same.
        class Custom(Exception):
            pass
        box = []
        seen = []

        def work():
            p = subprocess.Popen(['sleep', '3600'])
            box.append(p)
            self.addCleanup(self.reap, p)
            try:
                p.wait()
            except BaseException as e:
                seen.append(e)
                raise

        task = Killable.Task(target=work)
        self.blocked.task = task
        task.start()
        self.assertTrue(self.blocked.event.wait(GUARD_SECONDS), 'the call never blocked')
        task.interrupt(Custom)
        with self.assertRaises(Custom):
            task.join(GUARD_SECONDS)
        self.assertEqual([type(e) for e in seen], [Custom])
        self.assertEqual(box[0].returncode, -signal.SIGKILL)

    def test_popen_dropped_without_warning(self):
        # The Popen of a cancelled wait, dropped without a wait(): no
        # "still running" ResourceWarning (its child was reaped).
        box = []

        def work():
            p = subprocess.Popen(['sleep', '3600'])
            box.append(p)
            p.wait()

        task = Killable.Task(target=work)
        self.blocked.task = task
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            task.start()
            self.assertTrue(self.blocked.event.wait(GUARD_SECONDS), 'the call never blocked')
            task.stop()
            with self.assertRaises(Killable.TaskStopped):
                task.join(GUARD_SECONDS)
            pid = box.pop().pid
            del task
            gc.collect()
        try:
            self.assertEqual([str(w.message) for w in caught
                              if issubclass(w.category, ResourceWarning)], [])
            with self.assertRaises(ChildProcessError):
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        finally:
            # Still our child (not reaped, so the PID is its own): a
            # failure's leftover is killed.
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                os.kill(pid, signal.SIGKILL)
            except ChildProcessError:
                pass

    def test_popen_wait_raises_once_stopped(self):
        # The child already ended (not reaped): a wait of a stopped task
        # raises all the same (the stop's SIGKILL may be what ended a
        # child), as the other patched waits do; the exit status is the
        # child's own.
        p = subprocess.Popen(['true'])
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
        seen = []

        def work():
            Killable.current_task().stop()
            try:
                p.wait()
            except BaseException as e:
                seen.append(e)
                raise

        task = Killable.Task(target=work)
        task.start()
        with self.assertRaises(Killable.TaskStopped):
            task.join(GUARD_SECONDS)
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0], Killable.TaskStopped)
        self.assertEqual(p.wait(), 0)

    def test_communicate_in_task(self):
        # communicate() of a task: the output as outside tasks (one pipe,
        # read through the stop's waits; or several, through a selector).
        got = {}
        cases = {
            'stdout': (dict(stdout=subprocess.PIPE), (b'hi\n', None)),
            'stderr': (dict(stderr=subprocess.PIPE), (None, b'hi\n')),
            'unbuffered': (dict(stdout=subprocess.PIPE, bufsize=0), (b'hi\n', None)),
            'text': (dict(stdout=subprocess.PIPE, text=True), ('hi\n', None)),
            'both': (dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE), (b'hi\n', b'')),
        }

        def work():
            for name, (kwargs, _) in cases.items():
                err = kwargs.get('stderr') is not None and kwargs.get('stdout') is None
                argv = ['sh', '-c', 'echo hi >&2'] if err else ['echo', 'hi']
                p = subprocess.Popen(argv, **kwargs)
                got[name] = (p.communicate(), p.returncode)

        task = Killable.Task(target=work)
        task.start()
        task.join(GUARD_SECONDS)
        for name, (_, expected) in cases.items():
            self.assertEqual(got[name], (expected, 0), name)


class TestOutsideTasks(unittest.TestCase):
    """Outside task workers the patched calls behave as before."""

    def test_calls(self):
        time.sleep(0)
        self.assertFalse(threading.Event().wait(0.001))
        with self.assertRaises(queue.Empty):
            queue.Queue().get(timeout=0.001)
        lock = threading.Lock()
        self.assertTrue(lock.acquire())
        self.assertFalse(lock.acquire(timeout=0.001))
        lock.release()
        r, w = os.pipe()
        try:
            self.assertEqual(select.select([r], [], [], 0), ([], [], []))
        finally:
            os.close(r)
            os.close(w)
        self.assertEqual(subprocess.run(['true']).returncode, 0)
        out = subprocess.run(['echo', 'hi'], stdout=subprocess.PIPE).stdout
        self.assertEqual(out, b'hi\n')

    def test_thread_in_task_not_patched(self):
        # A plain thread started by a task's work is not the task's worker.
        results = []

        def inner():
            results.append(threading.Event().wait(0.001))

        def work():
            t = threading.Thread(target=inner)
            t.start()
            t.join()

        task = Killable.Task(target=work)
        task.start()
        task.join()
        self.assertEqual(results, [False])


if __name__ == '__main__':
    killabletest.main()
