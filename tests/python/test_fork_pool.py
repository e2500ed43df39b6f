#!/usr/bin/python3
# test_fork_pool.py: a multiprocessing pool with the fork start method works after
# the parent used tasks
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import multiprocessing
import threading
import unittest

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import Killable  # noqa: E402


def double_in_task(x):
    """In a pool process: run a task there too."""
    task = Killable.Task(target=lambda: x * 2)
    task.start()
    return task.result(GUARD_SECONDS)


def plain(x):
    return x + 1


def use_tasks_in_parent():
    """Leave the library's threads and the override's helpers running: a
    finished task, a stopped one, an interrupted busy one, progress
    published by the worker."""
    t = Killable.Task(target=lambda: Killable.current_task().set_progress(0.5))
    t.start()
    t.join()

    running = threading.Event()

    def sleeper():
        running.set()
        Killable.current_task().sleep(3600)

    t = Killable.Task(target=sleeper)
    t.start()
    running.wait(GUARD_SECONDS)
    t.stop()
    try:
        t.join()
    except Killable.TaskStopped:
        pass

    busy = threading.Event()

    def spin():
        try:
            busy.set()
            while True:
                pass
        except Killable.TaskInterrupted:
            raise

    t = Killable.Task(target=spin)
    t.start()
    busy.wait(GUARD_SECONDS)
    t.interrupt()
    try:
        t.join()
    except Killable.TaskInterrupted:
        pass


class TestForkPool(unittest.TestCase):
    """Issue 15 point 8, after the parent used the override's machinery
    (interrupts, published progress: its helper threads and locks); the
    library's own fork safety is tested in test_fork.py."""

    @classmethod
    def setUpClass(cls):
        use_tasks_in_parent()

    def run_pool(self, func, expected):
        ctx = multiprocessing.get_context('fork')
        pool = ctx.Pool(2)
        try:
            # A failure guard, not a synchronisation: a child that
            # deadlocks after fork() never answers.
            result = pool.map_async(func, range(8)).get(GUARD_SECONDS)
        finally:
            pool.terminate()
            pool.join()
        self.assertEqual(result, expected)

    def test_plain_functions(self):
        self.run_pool(plain, [x + 1 for x in range(8)])

    def test_tasks_in_children(self):
        self.run_pool(double_in_task, [x * 2 for x in range(8)])


if __name__ == '__main__':
    killabletest.main()
