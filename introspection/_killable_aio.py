# _killable_aio.py: asyncio for the Killable override
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""Private to ``gi.overrides.Killable``: ``await task`` and
``Killable.to_thread()``. Imported at the first use, so that importing the
override does not import asyncio. No GLib main loop is needed: a daemon
thread per awaited task blocks in ``killable_task_wait()`` (the GIL
released) and wakes the event loop with ``call_soon_threadsafe()``."""

import asyncio
import contextvars
import functools
import threading

from ..module import get_introspection_module

Killable = get_introspection_module('Killable')


def _watch(task, loop, future):
    """In the waiter thread: wait for the end, then settle ``future`` on
    its loop."""
    Killable.Task.wait(task, -1)

    def settle():
        if not future.done():
            future.set_result(None)
    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the loop is closed: nobody awaits any more


async def wait(task):
    """``await task``: the work's value, or what join() raises. Cancelling
    the awaiting coroutine stops the task (with the ``STOPPED`` cause) and
    raises ``asyncio.CancelledError`` there, without waiting for the end."""
    if task.get_state() == Killable.TaskState.PENDING:
        raise RuntimeError("cannot await task %r before it is started" % task.get_name())
    if not Killable.Task.wait(task, 0):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        threading.Thread(target=_watch, args=(task, loop, future), daemon=True,
                         name='killable-await').start()
        try:
            await future
        except asyncio.CancelledError:
            Killable.Task.stop(task)
            raise
    return task.result(0)


async def to_thread(func, *args, **kwargs):
    """A stoppable ``asyncio.to_thread()``: run ``func(*args, **kwargs)``
    in a task (with the caller's context variables) and return its value;
    cancelling the caller stops the task."""
    from gi.repository import Killable as override

    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args, **kwargs)
    name = getattr(func, '__qualname__', None) or getattr(func, '__name__', None)
    task = override.Task(target=call, name=name)
    task.start()
    return await task
