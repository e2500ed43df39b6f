#!/usr/bin/python3
# test_patch.py: Killable.patch_blocking_calls() makes the standard
# library's blocking calls stoppable inside task workers
#
# SPDX-License-Identifier: LGPL-2.1-or-later

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

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import Killable  # noqa: E402

import gi.overrides._killable as _killable  # noqa: E402

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
            p.wait()

        self.run_blocked(call)
        # Killed at once (SIGKILL); reaped by the next wait().
        self.assertEqual(box[0].wait(), -signal.SIGKILL)

    def test_popen_communicate_kills_child(self):
        box = []

        def call():
            p = subprocess.Popen(['sleep', '3600'], stdout=subprocess.PIPE)
            box.append(p)
            p.communicate()

        self.run_blocked(call)
        box[0].stdout.close()
        self.assertEqual(box[0].wait(), -signal.SIGKILL)


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
