#!/usr/bin/python3
# test_asyncio.py: tasks under asyncio, with no GLib main loop running
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import asyncio
import contextvars
import threading
import unittest

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import Killable  # noqa: E402

State = Killable.TaskState

request_id = contextvars.ContextVar('request_id', default=None)


def sleeper(loop, started, seen, ended=None):
    """A worker that tells the event loop it runs, then sleeps in the
    task until stopped; what it caught goes to ``seen``, then ``ended``
    is set."""
    task = Killable.current_task()
    loop.call_soon_threadsafe(started.set_result, None)
    try:
        task.sleep(3600)
    except BaseException as e:
        seen.append(e)
        raise
    finally:
        if ended is not None:
            ended.set()


class TestAwait(unittest.TestCase):
    """Issue 15 point 3: ``await task`` and ``Killable.to_thread``."""

    def test_await_returns_the_value(self):
        async def main():
            task = Killable.Task(target=lambda a, b: a * b, args=(6, 7))
            task.start()
            return await task

        self.assertEqual(asyncio.run(main()), 42)

    def test_await_ended_task(self):
        task = Killable.Task(target=lambda: 'done')
        task.start()
        task.join()

        async def main():
            return await task

        self.assertEqual(asyncio.run(main()), 'done')

    def test_await_raises_the_worker_exception(self):
        boom = ValueError('boom')

        def work():
            raise boom

        async def main():
            task = Killable.Task(target=work)
            task.start()
            await task

        with self.assertRaises(ValueError) as cm:
            asyncio.run(main())
        self.assertIs(cm.exception, boom)

    def test_await_stopped_task_raises_task_stopped(self):
        async def main():
            loop = asyncio.get_running_loop()
            started = loop.create_future()
            task = Killable.Task(target=sleeper, args=(loop, started, []))
            task.start()
            await started
            task.stop()
            await task

        with self.assertRaises(Killable.TaskStopped):
            asyncio.run(main())

    def test_await_pending_task_is_an_error(self):
        async def main():
            await Killable.Task(target=lambda: None)

        with self.assertRaises(RuntimeError):
            asyncio.run(main())

    def test_cancelling_the_awaiter_stops_the_task(self):
        seen = []
        outcome = []

        async def awaiter(task):
            try:
                await task
            except asyncio.CancelledError:
                outcome.append('cancelled')
                raise

        async def main():
            loop = asyncio.get_running_loop()
            started = loop.create_future()
            task = Killable.Task(target=sleeper, args=(loop, started, seen))
            task.start()
            aw = asyncio.ensure_future(awaiter(task))
            await started
            aw.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await aw
            return task

        task = asyncio.run(main())
        self.assertEqual(outcome, ['cancelled'])
        with self.assertRaises(Killable.TaskStopped):
            task.join(GUARD_SECONDS)
        self.assertEqual(task.get_state(), State.CANCELLED)
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0], Killable.TaskStopped)

    def test_asyncio_run_does_not_wait_for_the_worker(self):
        # The worker stays busy after the stop until asyncio.run() returned:
        # asyncio.run() must not wait for it (as it does for executor
        # threads).
        release = threading.Event()
        task_box = []

        def work(loop, started):
            task = Killable.current_task()
            loop.call_soon_threadsafe(started.set_result, None)
            try:
                task.sleep(3600)
            finally:
                release.wait(GUARD_SECONDS * 3)

        async def main():
            loop = asyncio.get_running_loop()
            started = loop.create_future()
            task = Killable.Task(target=work, args=(loop, started))
            task_box.append(task)
            task.start()
            aw = asyncio.ensure_future(_await(task))
            await started
            aw.cancel()
            try:
                await aw
            except asyncio.CancelledError:
                pass

        async def _await(task):
            await task

        asyncio.run(main())
        self.assertTrue(task_box[0].is_alive())
        release.set()
        with self.assertRaises(Killable.TaskStopped):
            task_box[0].join(GUARD_SECONDS)


class TestToThread(unittest.TestCase):

    def test_value_and_context(self):
        def work(x, y=0):
            return (request_id.get(), x + y, Killable.current_task() is not None)

        async def main():
            request_id.set('r-1')
            return await Killable.to_thread(work, 1, y=2)

        self.assertEqual(asyncio.run(main()), ('r-1', 3, True))

    def test_name(self):
        names = []

        def crunch():
            names.append(Killable.current_task().get_name())

        asyncio.run(Killable.to_thread(crunch))
        self.assertEqual(names, ['TestToThread.test_name.<locals>.crunch'])

    def test_cancel_stops_the_work(self):
        seen = []
        ended = threading.Event()

        async def main():
            loop = asyncio.get_running_loop()
            started = loop.create_future()
            aw = asyncio.ensure_future(Killable.to_thread(sleeper, loop, started, seen, ended))
            await started
            aw.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await aw

        asyncio.run(main())
        # The task is not reachable here: the worker reports itself.
        self.assertTrue(ended.wait(GUARD_SECONDS))
        self.assertEqual(len(seen), 1)
        self.assertIsInstance(seen[0], Killable.TaskStopped)

    def test_exception(self):
        def work():
            raise KeyError('k')

        with self.assertRaises(KeyError):
            asyncio.run(Killable.to_thread(work))


if __name__ == '__main__':
    killabletest.main()
