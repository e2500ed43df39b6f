#!/usr/bin/python3
# test_shield.py: Killable.shield() defers an interrupt to the end of a block
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import ctypes
import errno
import os
import threading
import unittest

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import Killable  # noqa: E402

State = Killable.TaskState


class TestShield(unittest.TestCase):
    """Issue 15 point 6: with Killable.shield(): the asynchronous exception
    of interrupt() lands when the block ends, not inside it."""

    def start_shielded(self, depth=1):
        """A worker that enters ``depth`` nested shields, says so, and spins
        in pure Python (where an interrupt lands at once) until told to go
        on. Returns (task, go_on, log, finished): ``finished`` is set when
        the work ends."""
        inside = threading.Event()
        finished = threading.Event()
        go_on = []
        log = []

        def nest(level):
            if level == depth:
                inside.set()
                while not go_on:
                    pass
                log.append('end of block')
                return
            with Killable.shield():
                nest(level + 1)
                log.append('left shield %d' % level)

        def work():
            try:
                nest(0)
                log.append('after the shields')
            except Killable.TaskCancelled as e:
                log.append(type(e).__name__)
                raise
            finally:
                finished.set()

        task = Killable.Task(target=work)
        task.start()
        self.assertTrue(inside.wait(GUARD_SECONDS))
        return task, go_on, log, finished

    def test_interrupt_deferred_to_the_end(self):
        task, go_on, log, finished = self.start_shielded()
        # Synchronous: the interrupt was asked (and deferred) on return.
        task.interrupt()
        go_on.append(True)
        with self.assertRaises(Killable.TaskInterrupted):
            task.join()
        self.assertEqual(log, ['end of block', 'left shield 0', 'TaskInterrupted'])
        self.assertEqual(task.get_state(), State.CANCELLED)

    def test_nested_shields(self):
        task, go_on, log, finished = self.start_shielded(depth=2)
        task.interrupt()
        go_on.append(True)
        with self.assertRaises(Killable.TaskInterrupted):
            task.join()
        # Not at the end of the inner shield: at the end of the outer one.
        self.assertEqual(log, ['end of block', 'left shield 1', 'left shield 0',
                               'TaskInterrupted'])

    def test_kill_deferred_too(self):
        task, go_on, log, finished = self.start_shielded()
        task.kill()
        with self.assertRaises(Killable.TaskKilled):
            task.join()
        go_on.append(True)
        # The abandoned worker ends its block, then gets TaskKilled.
        self.assertTrue(finished.wait(GUARD_SECONDS))
        self.assertEqual(log, ['end of block', 'left shield 0', 'TaskKilled'])

    def test_lock_not_leaked(self):
        # The pattern the docs warn about, made safe by the shield.
        lock = threading.Lock()
        inside = threading.Event()
        go_on = []

        def work():
            with Killable.shield():
                lock.acquire()
                inside.set()
                while not go_on:
                    pass
                try:
                    pass
                finally:
                    lock.release()

        task = Killable.Task(target=work)
        task.start()
        self.assertTrue(inside.wait(GUARD_SECONDS))
        task.interrupt()
        go_on.append(True)
        with self.assertRaises(Killable.TaskInterrupted):
            task.join()
        self.assertTrue(lock.acquire(blocking=False))
        lock.release()

    def test_without_shield_lands_inside(self):
        # The control: the same loop without a shield is interrupted in it.
        inside = threading.Event()
        log = []

        def work():
            inside.set()
            while True:
                pass
            log.append('end of loop')

        task = Killable.Task(target=work)
        task.start()
        self.assertTrue(inside.wait(GUARD_SECONDS))
        task.interrupt()
        with self.assertRaises(Killable.TaskInterrupted):
            task.join()
        self.assertEqual(log, [])

    def test_outside_a_task_does_nothing(self):
        with Killable.shield():
            pass
        with Killable.shield() as s:
            self.assertIsNotNone(s)

    def test_stop_not_deferred(self):
        # A stop is cooperative: sleep() inside a shield still raises.
        inside = threading.Event()
        log = []

        def work():
            with Killable.shield():
                inside.set()
                try:
                    Killable.current_task().sleep(3600)
                except Killable.TaskStopped:
                    log.append('stopped in shield')
                    raise

        task = Killable.Task(target=work)
        task.start()
        self.assertTrue(inside.wait(GUARD_SECONDS))
        task.stop()
        with self.assertRaises(Killable.TaskStopped):
            task.join()
        self.assertEqual(log, ['stopped in shield'])


class TestShieldEintr(unittest.TestCase):
    """A shield also holds back the interrupt signal (interrupt-syscalls):
    a system call inside the block does not fail with EINTR; the signal
    comes when the outermost shield ends."""

    def test_eintr_deferred(self):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
        libc.read.restype = ctypes.c_ssize_t
        r, w = os.pipe()
        buf = ctypes.create_string_buffer(1)
        tid = []
        ready = threading.Event()
        log = []

        def read_once():
            # read() through ctypes: no retry after EINTR, unlike os.read().
            n = libc.read(r, buf, 1)
            return n, (ctypes.get_errno() if n < 0 else 0)

        def work():
            task = Killable.current_task()
            try:
                with Killable.shield():
                    with Killable.shield():
                        tid.append(threading.get_native_id())
                        ready.set()
                        log.append(('in shield',) + read_once())
                    log.append('left inner shield')
            except Killable.TaskInterrupted:
                log.append('interrupted')
            # Nothing is written any more: only the held-back signal ends it.
            log.append(('after',) + read_once())
            task.check()

        task = Killable.Task(target=work, interrupt_syscalls=True)
        try:
            task.start()
            self.assertTrue(ready.wait(GUARD_SECONDS))
            killabletest.wait_in_syscall(tid[0], ('read',))
            task.interrupt()
            # Still in read(): unshielded, the signal (sent by interrupt(),
            # then again 1, 2, 4 ms later) would end it within milliseconds,
            # and the block with it; the bound fails only that direction.
            task.join(0.1)
            self.assertTrue(task.is_alive())
            self.assertEqual(log, [])
            os.write(w, b'x')
            with self.assertRaises(Killable.TaskInterrupted):
                task.join()
        finally:
            os.close(r)
            os.close(w)
        self.assertEqual(log, [('in shield', 1, 0), 'left inner shield', 'interrupted',
                               ('after', -1, errno.EINTR)])
        self.assertEqual(task.get_state(), State.CANCELLED)


if __name__ == '__main__':
    killabletest.main()
