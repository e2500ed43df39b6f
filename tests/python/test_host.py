#!/usr/bin/python3
# test_host.py: a good citizen of its host process (issue 12), from Python
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import GLib, Killable  # noqa: E402

State = Killable.TaskState
HUGE = (GLib.MAXINT64, GLib.MAXINT64 - 1, GLib.MAXINT64 - 1000)


def gate_task(**properties):
    """A task whose worker ignores stops until its event is set."""
    running = threading.Event()
    release = threading.Event()

    def work():
        running.set()
        release.wait()
        Killable.current_task().check()

    task = Killable.Task(target=work, **properties)
    task.start()
    assert running.wait(GUARD_SECONDS)
    return task, release


class TestOverflow(unittest.TestCase):

    def test_huge_grace_period_never_escalates(self):
        for grace in HUGE:
            task, release = gate_task(grace_period=grace)
            sentinel, sentinel_release = gate_task(grace_period=1000)
            task.stop()
            sentinel.stop()
            # The sentinel's grace (1 ms) passes twice: it is killed, and an
            # overflowed grace period would have been due before it.
            self.assertTrue(sentinel.wait(GUARD_SECONDS * 1000 * 1000))
            self.assertEqual(sentinel.get_state(), State.KILLED)
            self.assertEqual(task.get_state(), State.STOPPING)
            release.set()
            sentinel_release.set()
            with self.assertRaises(Killable.TaskStopped):
                task.join(GUARD_SECONDS)

    def test_huge_timeout_deadline(self):
        for timeout in HUGE:
            parent, release = gate_task(timeout=timeout)
            self.assertGreater(parent.get_deadline(), GLib.get_monotonic_time())
            child = Killable.Task(target=lambda: None)
            parent.add_child(child)
            self.assertEqual(child.get_deadline(), parent.get_deadline())
            if timeout == GLib.MAXINT64:
                self.assertEqual(parent.get_deadline(), GLib.MAXINT64)
            release.set()
            parent.join(GUARD_SECONDS)

    def test_huge_sleep_returns_on_stop(self):
        entered = threading.Event()

        def work():
            entered.set()
            Killable.current_task().sleep(GLib.MAXINT64 / 1e6)

        task = Killable.Task(target=work)
        task.start()
        self.assertTrue(entered.wait(GUARD_SECONDS))
        self.assertFalse(task.wait(1000))
        task.stop()
        with self.assertRaises(Killable.TaskStopped):
            task.join(GUARD_SECONDS)


class TestGil(unittest.TestCase):

    @unittest.skipUnless(shutil.which('tail'), 'needs tail --pid')
    def test_escalation_without_the_gil(self):
        """A Python task's interrupt rung needs the GIL, which the main
        thread keeps for GIL_SECONDS; an unrelated process task's grace
        period (GRACE_SECONDS) still ends it in time."""
        GIL_SECONDS = 3.0
        GRACE_SECONDS = 0.3

        workdir = tempfile.mkdtemp()
        ready = os.path.join(workdir, 'ready')
        ended = os.path.join(workdir, 'ended')

        python_task, release = gate_task(grace_period=10 * 1000)
        process = Killable.ProcessTask.new(
            ['sh', '-c', "trap '' TERM; touch '%s'; exec sleep 1000" % ready])
        process.set_grace_period(int(GRACE_SECONDS * 1e6))
        process.start()
        # Nothing signals it: polled, bounded by the guard.
        deadline = time.monotonic() + GUARD_SECONDS
        while not (os.path.exists(ready) and process.get_pid() > 0):
            self.assertLess(time.monotonic(), deadline, 'the program did not start')
            time.sleep(0.01)
        pid = process.get_pid()
        # Notes when the program is gone, without Python.
        watcher = subprocess.Popen(
            ['sh', '-c', "tail --pid=%d -s 0.01 -f /dev/null; date +%%s.%%N > '%s'"
             % (pid, ended)])

        usleep = ctypes.PyDLL(None).usleep   # PyDLL: keeps the GIL
        python_task.stop()
        stopped_at = time.time()
        process.stop()
        usleep(int(GIL_SECONDS * 1e6))
        release.set()

        self.assertEqual(watcher.wait(GUARD_SECONDS), 0)
        with open(ended) as f:
            elapsed = float(f.read()) - stopped_at
        self.assertTrue(process.wait(GUARD_SECONDS * 1000 * 1000))
        self.assertEqual(process.get_state(), State.KILLED)
        self.assertTrue(python_task.wait(GUARD_SECONDS * 1000 * 1000))
        shutil.rmtree(workdir)

        print('# grace %.2f s, the program ended after %.2f s (the GIL held %.1f s)'
              % (GRACE_SECONDS, elapsed, GIL_SECONDS))
        self.assertLess(elapsed, 2 * GRACE_SECONDS)


class TestHostileInput(unittest.TestCase):

    def test_nul_in_name_and_status(self):
        with self.assertRaises(ValueError):
            Killable.Task(target=lambda: None, name='a\0b')
        task = Killable.Task(target=lambda: None, name='fine')
        with self.assertRaises(ValueError):
            task.set_status('x\0y')
        process = Killable.ProcessTask.new(['true'])
        with self.assertRaises(ValueError):
            process.set_status('x\0y')

    def test_none_in_argv(self):
        with self.assertRaises(TypeError):
            Killable.ProcessTask.new(['echo', None, 'x'])
        # A NUL inside an argument: PyGObject refuses it itself.
        with self.assertRaises(ValueError):
            Killable.ProcessTask.new(['echo', 'a\0b'])

    def test_program_name_not_utf8(self):
        workdir = tempfile.mkdtemp().encode()
        path = os.path.join(workdir, b'prog\xff\xfe')
        with open(path, 'wb') as f:
            f.write(b'#!/bin/sh\nexit 0\n')
        os.chmod(path, 0o755)
        task = Killable.ProcessTask.new([path])
        self.assertTrue(task.get_name().startswith('prog'))
        repr(task)
        task.start()
        task.join(GUARD_SECONDS)
        shutil.rmtree(workdir)


class TestBoundedCapture(unittest.TestCase):
    """Issue 12, item 8, from Python: a flood of output keeps the first
    capture-limit bytes, says it dropped the rest, and the task succeeds."""

    def test_flood_is_bounded(self):
        task = Killable.ProcessTask.new(['head', '-c', '3000000', '/dev/zero'])
        task.set_flags(Killable.ProcessFlags.STDOUT_PIPE)
        task.set_capture_limit(4096)
        task.start()
        task.join(GUARD_SECONDS)
        self.assertEqual(task.get_state(), Killable.TaskState.SUCCEEDED)
        self.assertEqual(task.get_stdout_bytes().get_size(), 4096)
        self.assertTrue(task.get_stdout_truncated())
        self.assertIn('capture limit', task.dup_status())

    def test_under_the_limit_is_whole(self):
        task = Killable.ProcessTask.new(['echo', 'hello'])
        task.set_flags(Killable.ProcessFlags.STDOUT_PIPE)
        task.set_capture_limit(4096)
        task.start()
        task.join(GUARD_SECONDS)
        self.assertEqual(task.get_stdout_bytes().get_data(), b'hello\n')
        self.assertFalse(task.get_stdout_truncated())


if __name__ == '__main__':
    killabletest.main()
