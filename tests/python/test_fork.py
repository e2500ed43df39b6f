#!/usr/bin/python3
# test_fork.py: fork() in a Python program that uses libkillable
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import multiprocessing
import os
import unittest

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import GLib, Killable  # noqa: E402


def use_library(n):
    """In a forked child: a task runs, a timeout fires, a process task
    runs. Returns n * n from the task."""
    result = []
    task = Killable.Task(target=lambda: result.append(n * n))
    task.start()
    task.join()

    timed = Killable.Task(target=lambda: Killable.current_task().sleep(3600),
                          timeout=20 * 1000)
    timed.start()
    try:
        timed.join()
    except Killable.TaskTimedOut:
        pass
    else:
        raise AssertionError('the timeout did not fire in the child')

    process = Killable.ProcessTask.new(['true'])
    process.start()
    process.join()
    return result[0]


class TestFork(unittest.TestCase):

    def setUp(self):
        # The parent has run tasks: a cached idle worker, the timer thread.
        timed = Killable.Task(target=lambda: Killable.current_task().sleep(3600),
                              timeout=1000)
        timed.start()
        with self.assertRaises(Killable.TaskTimedOut):
            timed.join()
        self.assertEqual(use_library(3), 9)

    def test_multiprocessing_fork_pool(self):
        ctx = multiprocessing.get_context('fork')
        with ctx.Pool(2) as pool:
            result = pool.map_async(use_library, range(6))
            self.assertEqual(result.get(GUARD_SECONDS), [n * n for n in range(6)])

    def test_os_fork_in_worker(self):
        def work():
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = 0 if use_library(4) == 16 else 1
                finally:
                    os._exit(code)
            return os.waitpid(pid, 0)[1]

        statuses = []
        task = Killable.Task(target=lambda: statuses.append(work()))
        task.start()
        task.join(GUARD_SECONDS)
        self.assertEqual(statuses, [0])


if __name__ == '__main__':
    killabletest.main()
