# Killable.py: PyGObject override for libkillable
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""A ``threading.Thread``-shaped API on top of the Killable typelib.

.. code-block:: python

    import gi
    gi.require_version("Killable", "1")
    from gi.repository import Killable

    def work(task):
        for i in range(100):
            task.sleep(0.1)          # wakes at once on stop()
            task.set_progress((i + 1) / 100)

    t = Killable.Task(target=work, args=(...,))
    t.start()
    t.stop()
    try:
        t.join()
    except Killable.TaskStopped:
        print("stopped")

The ladder, from the owner's side:

``stop()``
    asks the worker to stop: :meth:`Task.sleep` returns at once by raising
    :class:`TaskStopped`, :meth:`Task.check` starts raising it, GIO calls
    given the task's cancellable fail with ``G_IO_ERROR_CANCELLED``.
``interrupt(exc=None)``
    a stop, plus an exception (:class:`TaskInterrupted` or ``exc``) raised
    in the worker's Python code, even in a busy loop that never checks,
    with ``PyThreadState_SetAsyncExc()``: at once from the interrupt's own
    Python code when the worker runs the user's bytecode, otherwise a few
    thread switch intervals later from a helper daemon thread
    (``killable-interrupter``). It is
    raised at most once per task, only while the user's ``run()`` runs,
    never after it returned, never in the override's bookkeeping nor in
    PyGObject's own code. A worker blocked in :meth:`Task.sleep`,
    :meth:`Task.check` or :meth:`Task.wait_fd` raises it itself at once;
    one blocked in a GIO call
    given the task's cancellable is woken by the stop (``GLib.Error``
    ``G_IO_ERROR_CANCELLED``). Other blocking C calls (``time.sleep()``, a
    read without the cancellable) get it when they return. Known limit:
    code that keeps calling a GI function failing with a ``GLib.Error``
    (catching it each time) can receive the exception while PyGObject
    builds that error; PyGObject then prints it and raises
    ``RuntimeError("Converting the GError failed")`` instead.
``kill()``
    releases the owner at once: the task is ``KILLED`` and :meth:`join`
    returns (raising :class:`TaskKilled`) without waiting. The worker
    thread is *abandoned*: it is never destroyed, it gets a
    :class:`TaskKilled` asynchronous exception (unless an interrupt was
    already delivered) and keeps running until its ``run()`` returns; its
    late result is dropped and its cleanups still run then.

Abandoned workers and interpreter exit
    Python does not wait for task workers at exit, abandoned or not: they
    behave like daemon threads. A worker still running Python code when the
    interpreter finalizes is stopped where it is, as CPython stops daemon
    threads (its ``finally`` blocks and the task's cleanups do not run); a
    worker blocked in C code (``time.sleep()``, a system call) simply ends
    with the process. Neither crashes the interpreter. Work whose cleanup
    must run belongs in a task that cooperates (``check()``/``sleep()``),
    or in a :class:`Killable.ProcessTask`.

Threads
    The worker runs on a thread of libkillable's cache; while the work runs,
    ``threading.current_thread()`` there is a thread object named after the
    task and listed by ``threading.enumerate()``, and the functions of
    ``threading.settrace()``/``setprofile()`` are set (see
    :attr:`Task.ident`). ``notify::`` signals and the ``stop-requested``
    and ``finished`` signals are emitted on the main context of the thread
    that called :meth:`Task.start` (iterate it with a ``GLib.MainLoop``).
"""

import math
import time

from gi.repository import Gio, GLib

from ..module import get_introspection_module
from ..overrides import override
# The asynchronous-exception machinery and the exceptions: a private module
# installed beside this one.
from . import _killable
from ._killable import (TaskCancelled, TaskStopped, TaskInterrupted,
                        TaskTimedOut, TaskKilled)

Killable = get_introspection_module('Killable')

__all__ = ['TaskCancelled', 'TaskStopped', 'TaskInterrupted', 'TaskTimedOut',
           'TaskKilled']

_State = Killable.TaskState

# The longest a blocking wait stays in C before coming back to Python, so
# that signal handlers (Ctrl-C) and asynchronous exceptions get a chance.
_WAIT_SLICE = 0.1
_MAX_USEC = GLib.MAXINT64


def _to_usec(seconds, what):
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError("%s must be a number of seconds, not %s"
                        % (what, type(seconds).__name__))
    if math.isnan(seconds):
        raise ValueError("%s must not be NaN" % what)
    if seconds < 0:
        raise ValueError("%s must not be negative" % what)
    if seconds == math.inf or seconds * 1e6 >= _MAX_USEC:
        return _MAX_USEC
    return int(seconds * 1e6)


class Task(Killable.Task):
    """A unit of work on a thread of its own that can be stopped,
    interrupted or killed: ``threading.Thread`` with a ladder.

    ``Task(target=None, args=(), kwargs=None, name=None, **properties)``:
    the work is ``target(*args, **kwargs)``, or the ``run()`` method of a
    subclass. Other keyword arguments set GObject properties
    (``grace_period=``, ``timeout=``, ...).

    ``Killable.Task(...)`` itself creates an instance of a private subclass
    registered with GObject (so that its work and interrupts run Python
    code): ``isinstance(t, Killable.Task)`` holds, ``type(t) is
    Killable.Task`` does not. Subclass it as you would ``threading.Thread``;
    do not override the ``do_*`` virtual methods.

    Owner side: :meth:`start`, :meth:`join`, :meth:`stop`,
    :meth:`interrupt`, :meth:`kill`, :meth:`is_alive`, and ``with``.
    Worker side (inside ``run()``): :meth:`check`, :meth:`sleep`,
    :meth:`stopped`, ``set_progress()``, ``set_status()``,
    ``get_cancellable()``.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Task:
            cls = _PythonTask
        return super().__new__(cls)

    def __init__(self, target=None, args=(), kwargs=None, name=None, **properties):
        if target is not None and not callable(target):
            raise TypeError("target must be callable, not %s" % type(target).__name__)
        if not isinstance(args, (tuple, list)):
            raise TypeError("args must be a tuple, not %s" % type(args).__name__)
        if kwargs is None:
            kwargs = {}
        elif not isinstance(kwargs, dict):
            raise TypeError("kwargs must be a dict, not %s" % type(kwargs).__name__)
        if name is None:
            if target is not None:
                name = getattr(target, '__qualname__', None) or \
                    getattr(target, '__name__', None) or type(self).__name__
            elif type(self).__module__ != 'gi.repository.Killable':
                name = type(self).__name__
        elif not isinstance(name, str):
            raise TypeError("name must be a string, not %s" % type(name).__name__)
        if name is not None:
            _check_no_nul(name, 'name')
            properties['name'] = name
        super().__init__(**properties)
        self._target = target
        self._args = tuple(args)
        self._kwargs = kwargs
        _killable.worker(self)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A Python subclass gets its own GType (PyGObject registers it after
        # this hook); give it the virtual methods that run Python code.
        if cls.__module__ in ('gi.repository.Killable', __name__):
            return
        for name, func in (('do_run', _killable.do_run),
                           ('do_interrupt', _killable.do_interrupt),
                           ('do_kill', _killable.do_kill)):
            if name not in cls.__dict__:
                setattr(cls, name, func)

    def __repr__(self):
        try:
            state = self.get_state().value_nick
        except Exception:
            state = '?'
        return '<Killable.%s %r %s>' % (type(self).__qualname__, self.get_name(), state)

    # Worker side {{{

    def run(self):
        """The work. Runs on the worker thread; the default calls the
        ``target`` given to the constructor. Override it in a subclass.

        Returning (any value) is success. Raising is failure, except for
        :class:`TaskCancelled` (from :meth:`check`, :meth:`sleep`, or an
        interrupt), which ends the task cancelled.
        """
        # Like threading: no cycle through the target once it ran.
        target = self.__dict__.pop('_target', None)
        args = self.__dict__.pop('_args', ())
        kwargs = self.__dict__.pop('_kwargs', {})
        if target is not None:
            return _killable.call_target(target, args, kwargs)
        return None

    def check(self):
        """Raise the :class:`TaskCancelled` subclass matching the stop's
        cause (or the exception given to :meth:`interrupt`) once a stop was
        requested; return at once otherwise. Call it often in long work:
        it keeps the GIL (no call into the library until a stop came)."""
        if _killable.slow_path_wanted(self):
            exc = _killable.check_slow(self)
            if exc is not None:
                raise exc from None

    def stopped(self):
        """Whether a stop was requested (the ``StoppableThread`` idiom).
        Keeps the GIL, like :meth:`check`."""
        return _killable.is_stop_requested(self)

    def is_stop_requested(self):
        return _killable.is_stop_requested(self)

    def set_progress(self, progress):
        """Set the task's progress (0 to 1). From the worker, the value is
        published (``notify::progress``) at most every few milliseconds,
        the last one always: when the worker waits, when ``run()`` ends,
        or a little later; from another thread, at once."""
        _killable.set_report(self, 'progress', progress)

    def set_status(self, status):
        """Set the task's status text, published like :meth:`set_progress`.
        A string that holds a NUL character (which C would silently cut
        there) is a ValueError."""
        if status is not None:
            _check_no_nul(status, 'status')
        _killable.set_report(self, 'status', status)

    def sleep(self, seconds):
        """Sleep for ``seconds``, or until a stop is requested: then raise
        like :meth:`check`, at once. The GIL is released while sleeping."""
        usec = _to_usec(seconds, 'seconds')
        if _killable._c_sleep_code is not None:
            # wait_code() returns the exception: raised here, one frame of
            # the override in the traceback (a stopped wait raises in a
            # hurry; its error is built when read).
            exc = _killable.wait_code(self, _killable._c_sleep_code, _killable.c_int64(usec))
            if exc.__class__ is not int:
                raise exc from None
        elif _killable._c_sleep is not None:
            # wait_c() returns the exception: raised here, one frame of the
            # override in the traceback (a stopped wait raises in a hurry).
            exc = _killable.wait_c(self, _killable._c_sleep, _killable.c_int64(usec))
            if exc.__class__ is not int:
                raise exc from None
        else:
            _killable.wait(self, Killable.Task.sleep, usec)

    def wait_fd(self, fd, condition, timeout=None):
        """Wait until ``fd`` satisfies ``condition`` (``GLib.IOCondition``),
        ``timeout`` seconds passed (then return 0), or a stop is requested
        (then raise like :meth:`check`). Returns the conditions satisfied.
        The GIL is released while waiting."""
        if not isinstance(fd, int):
            fd = fd.fileno()
        usec = -1 if timeout is None else _to_usec(timeout, 'timeout')
        if _killable._c_wait_fd_code is not None and 0 <= fd <= 0x7fffffff and \
                0 <= condition <= 0xffffffff:
            return GLib.IOCondition(_killable.wait_fd_code(self, fd, int(condition), usec))
        if _killable._c_wait_fd is not None and 0 <= fd <= 0x7fffffff and \
                0 <= condition <= 0xffffffff:
            # (Out of those ranges, introspection reports the bad value.)
            ret = _killable.wait_c(self, _killable._c_wait_fd, _killable.c_int(fd),
                                   _killable.c_uint(int(condition)), _killable.c_int64(usec))
            if ret.__class__ is not int:
                raise ret from None
            return GLib.IOCondition(ret)
        return _killable.wait(self, Killable.Task.wait_fd, fd, condition, usec)

    def _wait(self, func, *args):
        return _killable.wait(self, func, *args)

    def set_abandonable(self, abandonable):
        ret = Killable.Task.set_abandonable(self, abandonable)
        _killable.raise_self_pending()
        return ret

    # }}}

    # Owner side {{{

    def start(self):
        """Run the task on a worker thread. Raises :class:`RuntimeError` if
        it was already started. A task stopped before it started does not
        run (and :meth:`join` raises :class:`TaskStopped`)."""
        try:
            Killable.Task.start(self)
        except GLib.Error as e:
            raise RuntimeError(e.message) from e

    def is_alive(self):
        """Whether the task was started and has not ended yet."""
        return self.get_state() in (_State.RUNNING, _State.STOPPING)

    @property
    def name(self):
        return self.get_name()

    @property
    def ident(self):
        """The worker thread's identifier (``threading.get_ident()``), once
        the work started; ``None`` before. Kept after the end, as with
        ``threading.Thread``; the thread may then run other tasks."""
        w = self.__dict__.get('_killable_worker')
        return w.ident if w is not None else None

    @property
    def native_id(self):
        """The worker thread's native identifier (the TID on Linux), once
        the work started; ``None`` before."""
        w = self.__dict__.get('_killable_worker')
        return w.native_id if w is not None else None

    def join(self, timeout=None):
        """Wait until the task ended, or ``timeout`` seconds passed.

        Returns ``None`` if the task succeeded or is still running after
        ``timeout`` (check :meth:`is_alive`, as with ``threading``).
        Otherwise raises: the exception that escaped ``run()`` (the same
        object, with its traceback), or the :class:`TaskCancelled`
        subclass that matches how the task ended, or the ``GLib.Error``
        of a task that failed in C code. A killed task returns at once.
        """
        if timeout is not None:
            deadline = time.monotonic() + _to_usec(timeout, 'timeout') / 1e6
        else:
            deadline = None
        if _killable.join(self, deadline, _WAIT_SLICE):
            self._raise_outcome()
        return None

    def _raise_outcome(self):
        _killable.raise_outcome(self)

    def result(self, timeout=None):
        """The value ``run()`` returned (the target's return value), once
        the task ended; or raise what :meth:`join` raises. Waits at most
        ``timeout`` seconds, then raises :class:`TimeoutError` (as
        ``concurrent.futures.Future.result()`` does)."""
        self.join(timeout)
        if self.is_alive():
            raise TimeoutError("task %r still running after %s s" % (self.get_name(), timeout))
        w = self.__dict__.get('_killable_worker')
        return w.result if w is not None else None

    def run_finish(self, result):
        """The outcome of ``run_async()``: returns ``True`` if the task
        succeeded (its value is :meth:`result`), else raises what
        :meth:`join` raises; when the ``cancellable`` given to
        ``run_async()`` caused the stop, a :class:`TaskStopped` whose
        ``error`` is ``G_IO_ERROR_CANCELLED``."""
        return self._finish(Killable.Task.run_finish, result)

    if hasattr(Killable.Task, 'wait_finish'):
        def wait_finish(self, result):
            """The outcome of ``wait_async()``, raised like
            :meth:`run_finish`."""
            return self._finish(Killable.Task.wait_finish, result)

    def _finish(self, func, result):
        try:
            return func(self, result)
        except GLib.Error as e:
            if e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED):
                raise TaskStopped(error=e) from None
            error = e
        _killable.raise_outcome(self)
        # Ended well but the call failed (not the task's outcome).
        raise error

    def __await__(self):
        """``await task``: the value of :meth:`result`, or what
        :meth:`join` raises, from an asyncio event loop (no GLib main loop
        needed). Cancelling the awaiting coroutine stops the task and
        raises ``asyncio.CancelledError`` there."""
        from . import _killable_aio
        return _killable_aio.wait(self).__await__()

    def stop(self):
        """Ask the task, and every descendant, to stop (rung 1): the
        task's cancellable is cancelled, stop callbacks run in this thread,
        a worker in :meth:`sleep`, :meth:`check` or :meth:`wait_fd` raises
        :class:`TaskStopped` at once. Only the first stop of a task has an
        effect. Thread-safe."""
        _killable.stop(self)

    def interrupt(self, exc=None):
        """Stop the task (with ``INTERRUPTED`` as the cause) and raise
        ``exc`` (an exception class, default :class:`TaskInterrupted`) in
        its worker, and :class:`TaskInterrupted` in the workers of its
        descendants. The exception is raised once, only inside the user's
        code; a worker in :meth:`sleep`, :meth:`check` or a GIO call given
        the task's cancellable gets it at once. If ``exc`` is not a
        :class:`TaskCancelled` subclass and escapes ``run()``, the task
        fails with it. Harmless on a task that already ended."""
        _killable.interrupt(self, exc)

    def kill(self):
        """Release the owner at once: the task (and its descendants) end
        ``KILLED`` now and :meth:`join` raises :class:`TaskKilled` without
        waiting. A Python worker is abandoned: it gets a :class:`TaskKilled`
        exception (unless an interrupt already reached it) and runs until
        its ``run()`` returns; see the module documentation about exit."""
        Killable.Task.kill(self)
        _killable.raise_self_pending()

    def __enter__(self):
        if self.get_state() == _State.PENDING:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        caused = not Killable.Task.is_stop_requested(self)
        Killable.Task.stop(self)
        if self.get_state() == _State.PENDING:
            return False
        try:
            self.join()
        except TaskStopped as e:
            # The cancellation this exit caused is not an error.
            if not (caused and e.error is not None and _killable.is_killable_error(e.error) and
                    e.error.code == int(Killable.Error.STOPPED)):
                raise
        return False

    # }}}



Task = override(Task)
__all__.append('Task')
_killable.install_task_methods(Task, _WAIT_SLICE)


def _check_no_nul(value, what):
    # PyGObject passes a str to C up to its first NUL: "a\0b" would become
    # "a" without a word.
    if '\0' in value:
        raise ValueError('%s must not contain NUL characters: %r' % (what, value))


class ProcessTask(Killable.ProcessTask):
    """A :class:`Killable.Task` that runs a program."""

    @classmethod
    def new(cls, argv):
        """As :meth:`Killable.ProcessTask.new`; ``None`` in ``argv`` (which
        C would take as its end: ``["echo", None, "x"]`` would run
        ``echo``) is a TypeError."""
        for i, arg in enumerate(argv):
            if not isinstance(arg, (str, bytes)):
                raise TypeError('argv[%d] must be a string, not %s' % (i, type(arg).__name__))
        return Killable.ProcessTask.new(argv)


ProcessTask = override(ProcessTask)
__all__.append('ProcessTask')


class PythonTask(Task):
    """What ``Killable.Task(target=...)`` creates."""
    __gtype_name__ = 'KillablePythonTask'
    # Not gi.overrides.*: PyGObject registers a GType only for other modules.
    __module__ = 'Killable'


_PythonTask = PythonTask

# }}}


async def to_thread(func, /, *args, **kwargs):
    """A stoppable counterpart of ``asyncio.to_thread()``: run
    ``func(*args, **kwargs)`` in a :class:`Task` (with the caller's context
    variables) and return its value, or raise what :meth:`Task.join`
    raises. Cancelling the awaiting coroutine stops the task (inside it,
    :meth:`Task.check` and :meth:`Task.sleep` raise) and raises
    ``asyncio.CancelledError`` in the caller at once."""
    from . import _killable_aio
    return await _killable_aio.to_thread(func, *args, **kwargs)


__all__.append('to_thread')


def shield():
    """A context manager that defers an interrupt over a critical region::

        with Killable.shield():
            lock.acquire()
            try:
                ...
            finally:
                lock.release()

    Inside a task's work, the asynchronous exception of
    :meth:`Task.interrupt` (or :meth:`Task.kill`) is not raised inside the
    block: it is raised when the outermost shield ends, at once. A stop is
    not deferred: :meth:`Task.check`, :meth:`Task.sleep` and the other
    waits called inside the block still raise (they are explicit). With
    ``interrupt_syscalls`` set, the interrupt signal is held back too (no
    ``EINTR`` inside the block); it is sent when the outermost shield ends
    (``Killable.Task.shield_begin()``). Outside a task it does nothing.
    Shields nest."""
    return _killable.Shield()


__all__.append('shield')


def patch_blocking_calls():
    """Make the standard library's blocking calls stoppable inside task
    workers (opt-in, like gevent's ``monkey.patch_all()``; call it once,
    early, before the modules that bind these names are imported).

    Afterwards, inside a task's work only, ``time.sleep()``,
    ``select.select()``, the ``selectors`` selectors, blocking ``socket``
    calls (``accept``, ``recv*``, ``send*``, ``sendall``, ``connect``),
    ``threading.Condition.wait()`` (so ``Event.wait()`` and
    ``queue.Queue.get()``/``put()``), ``Lock.acquire()`` of the
    ``threading.Lock`` objects created after the patch, and
    ``subprocess.Popen.wait()``/``communicate()`` return at once on a stop
    or an interrupt, raising the task's cancellation (the child process
    gets ``SIGKILL``, as with ``subprocess.run()``, and is reaped by the next
    ``wait()``/``poll()``). Outside task workers they do
    what they did. Not covered: names bound before the patch (``from time
    import sleep``), locks created before it, other C calls."""
    from . import _killable_patch
    _killable_patch.patch_blocking_calls()


__all__.append('patch_blocking_calls')


def current_task():
    """The task whose work runs on the calling thread, or ``None``."""
    return Killable.Task.get_current()


__all__.append('current_task')
