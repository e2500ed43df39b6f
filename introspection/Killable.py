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
    The worker runs on a thread of libkillable's cache, not on a
    ``threading.Thread``; ``threading.current_thread()`` there returns a
    dummy thread. ``notify::`` signals and the ``stop-requested`` and
    ``finished`` signals are emitted on the main context of the thread that
    called :meth:`Task.start` (iterate it with a ``GLib.MainLoop``).
"""

import ctypes
import dis
import math
import os
import sys
import threading
import time

from gi.repository import GLib

from ..module import get_introspection_module
from ..overrides import override

Killable = get_introspection_module('Killable')

__all__ = []

_KILLABLE_ERROR = Killable.error_quark()
_State = Killable.TaskState

# The longest a blocking wait stays in C before coming back to Python, so
# that signal handlers (Ctrl-C) and asynchronous exceptions get a chance.
_WAIT_SLICE = 0.1
_MAX_USEC = GLib.MAXINT64


# Exceptions {{{

class TaskCancelled(BaseException):
    """Raised when a task was asked to end: by :meth:`Task.check`,
    :meth:`Task.sleep` and the other waits of a stopped task inside its
    worker, and by :meth:`Task.join` for a task that ended cancelled or
    killed.

    It derives from :class:`BaseException`, like :class:`KeyboardInterrupt`,
    so that ``except Exception`` does not swallow it: let it propagate out
    of ``run()`` (``finally`` blocks and context managers still run).

    :ivar error: the ``GLib.Error`` that says why (the stop's cause), or
        ``None`` when the exception was raised asynchronously.
    """

    default_message = "the task was cancelled"

    def __init__(self, *args, error=None):
        super().__init__(*args)
        self.error = error
        if _early_sent:
            _await_early_stop()

    def __str__(self):
        if self.args:
            return super().__str__()
        if self.error is not None:
            return self.error.message
        return self.default_message


class TaskStopped(TaskCancelled):
    """The task was stopped with :meth:`Task.stop` (or with a cause of its
    own given to ``stop_with_error()``, or because a child failed)."""

    default_message = "the task was stopped"


class TaskInterrupted(TaskCancelled):
    """The task was interrupted with :meth:`Task.interrupt`. This is also the
    exception raised asynchronously in the worker."""

    default_message = "the task was interrupted"


class TaskTimedOut(TaskCancelled):
    """The task's time limit passed (see ``set_timeout()``)."""

    default_message = "the task timed out"


class TaskKilled(TaskCancelled):
    """The task was killed with :meth:`Task.kill`."""

    default_message = "the task was killed"


__all__ += ['TaskCancelled', 'TaskStopped', 'TaskInterrupted', 'TaskTimedOut',
            'TaskKilled']

_CLASS_FOR_CODE = {
    int(Killable.Error.STOPPED): TaskStopped,
    int(Killable.Error.INTERRUPTED): TaskInterrupted,
    int(Killable.Error.TIMED_OUT): TaskTimedOut,
    int(Killable.Error.KILLED): TaskKilled,
}

_CODE_FOR_CLASS = (
    (TaskKilled, Killable.Error.KILLED),
    (TaskTimedOut, Killable.Error.TIMED_OUT),
    (TaskInterrupted, Killable.Error.INTERRUPTED),
    (TaskCancelled, Killable.Error.STOPPED),
)


def _is_killable_error(error):
    return (error is not None and
            GLib.quark_from_string(error.domain) == _KILLABLE_ERROR)


def _is_interruption(error):
    return _is_killable_error(error) and error.code == int(Killable.Error.INTERRUPTED)


def _class_for_error(error):
    """The TaskCancelled subclass matching a stop's cause."""
    if _is_killable_error(error):
        return _CLASS_FOR_CODE.get(error.code, TaskStopped)
    return TaskStopped


def _cancellation(error, cls=None):
    if cls is None:
        cls = _class_for_error(error)
    return cls(error=error)


def _error_for_cancellation(exc):
    """The GError that tells the C side that run() ended by cancellation."""
    error = getattr(exc, 'error', None)
    if isinstance(error, GLib.Error):
        return error
    for cls, code in _CODE_FOR_CLASS:
        if isinstance(exc, cls):
            return GLib.Error.new_literal(_KILLABLE_ERROR, str(exc), int(code))
    return GLib.Error.new_literal(_KILLABLE_ERROR, str(exc),
                                  int(Killable.Error.STOPPED))


def _error_key(error):
    return (error.domain, error.code, error.message)

# }}}


# Asynchronous exceptions {{{
#
# interrupt() must stop a worker that runs pure Python code and never
# checks: PyThreadState_SetAsyncExc() raises an exception in it at its next
# bytecode boundary. The exception may land wherever Python code runs on
# that thread, so it is sent only under these rules (w.lock guards them):
#
# - only while the user's run() runs (w.tid is set between entering and
#   leaving it, and leaving revokes an exception sent but not landed);
# - at most once per task (w.async_state only moves forward);
# - never while the worker waits in Task.sleep()/check()/wait_fd(): the stop
#   wakes those, and they raise the exception themselves when they return
#   (w.in_wait, w.pending);
# - from the interrupting thread itself (the interrupt or kill vfunc, after
#   the stop was requested) when the worker runs the user's bytecode, else
#   from a helper thread, preferably while the worker runs the user's
#   bytecode, not while its innermost frame is at a call: it is then inside
#   C code, maybe a GIO call that the stop is waking up, whose GError
#   PyGObject is about to convert into GLib.Error by running Python code,
#   where the exception should not land. The helper looks again a little
#   later; after _FORCE_AFTER it sends anyway (a worker that spends its time
#   in C calls releasing the GIL is never seen elsewhere). Never while the
#   worker runs PyGObject's own Python code. If the exception does land in
#   PyGObject's conversion, _excepthook() keeps it quiet and sends it again;
# - in the worker's own thread (it interrupts itself or an ancestor), the
#   exception is raised synchronously when the override's call returns.

_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ('PyThreadState_SetAsyncExc', ctypes.pythonapi))
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ('PyThreadState_SetAsyncExc', ctypes.pythonapi))
_thread_state = ctypes.PYFUNCTYPE(ctypes.c_void_p)(('PyThreadState_Get', ctypes.pythonapi))
# Not sys._current_frames(): it holds the interpreter's thread-list lock
# while it creates frame objects, and a garbage collection there that frees
# a GObject wrapper can wait for the GIL with that lock held.
_thread_frame = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(
    ('PyThreadState_GetFrame', ctypes.pythonapi))
_decref = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)(('Py_DecRef', ctypes.pythonapi))

# _Worker.async_state
_ASYNC_NONE = 0        # nothing asked yet
_ASYNC_SCHEDULED = 1   # the helper thread will send it
_ASYNC_SENT = 2        # in the worker's thread state; may have landed
_ASYNC_DONE = 3        # raised, consumed or revoked: never sent again

# How often the helper looks again while the worker is inside C code, and
# how long it waits for a better moment before sending anyway.
_RETRY_FIRST = 0.0005
_RETRY_MAX = 0.01
_FORCE_AFTER = 0.05

# Opcodes that call: the innermost frame of a thread inside C code is at one.
_CALL_OPS = frozenset(op for name, op in dis.opmap.items()
                      if name.startswith('CALL') or name == 'PRECALL')


class _Worker(object):
    """The Python side of a task: the worker's thread while the user's code
    runs, and what happened to it. Guarded by ``lock``."""

    __slots__ = ('lock', 'tid', 'tstate', 'in_wait', 'async_state', 'async_type',
                 'interrupt_type', 'pending', 'eaten', 'exc', 'exc_tb', 'exc_key')

    def __init__(self):
        self.lock = threading.Lock()
        self.tid = None             # the worker's thread while run() runs
        self.tstate = None          # and its PyThreadState *
        self.in_wait = 0            # inside sleep()/check()/wait_fd()
        self.async_state = _ASYNC_NONE
        self.async_type = None      # what is scheduled or was sent
        self.interrupt_type = None  # what interrupt(exc) asked for
        self.pending = None         # to raise synchronously in the worker
        self.eaten = False          # PyGObject swallowed what was sent
        self.exc = None             # what escaped run()
        self.exc_tb = None
        self.exc_key = None         # the GError it became


_worker_lock = threading.Lock()


def _worker(task):
    w = task.__dict__.get('_killable_worker')
    if w is not None:
        return w
    # Tasks wrapped from C (Killable.Task.new(), ProcessTask) get theirs on
    # first use. Set as an attribute so that PyGObject keeps this wrapper
    # (and so its state) alive as long as the GObject.
    with _worker_lock:
        w = task.__dict__.get('_killable_worker')
        if w is None:
            w = _Worker()
            task._killable_worker = w
    return w


def _request_locked(w, exc_type):
    """Ask for exc_type to be raised in the worker, once. Called with
    w.lock held, in the interrupting thread."""
    if w.async_state != _ASYNC_NONE or w.pending is not None:
        return
    if w.tid is None or w.in_wait or w.tid == threading.get_ident():
        # Before run() (raised instead of calling it), in a wait (raised
        # when it returns), or in the worker itself (raised when the
        # override's call returns).
        w.pending = exc_type
        w.async_state = _ASYNC_DONE
        return
    w.async_state = _ASYNC_SCHEDULED
    w.async_type = exc_type
    # The calling thread holds the GIL (an interrupt or kill vfunc runs
    # Python code), so the worker is paused: send it from here at once if
    # it is in the user's bytecode, sparing the helper thread (and the
    # switch interval it would wait to get the GIL in turn). Otherwise the
    # helper looks again later.
    if not _send_locked(w, False):
        _sender.schedule(w)


# Task.interrupt() sends the exception itself, before its stop, when it can
# (see _send_early_locked()): {worker thread id: (task, threading.Event set
# once the interrupt's C call returned)} until that call returned.
_early_sent = {}
_early_lock = threading.Lock()


def _send_early_locked(w, task, exc_type):
    """In Task.interrupt(), before its C call: the caller holds the GIL, so
    an exception sent now lands as soon as the worker gets the GIL back,
    without the thread switch interval that the interrupt vfunc waits to
    get it in turn. Only for a TaskCancelled class whose __init__ is ours,
    while the worker runs the user's bytecode, under the rules of
    _send_locked(). That __init__ runs in the worker when the exception
    lands, before any of the user's code sees it, and waits there until the
    stop was requested: the exception never comes before the stop. Returns
    the Event to set once the C call returned, or None if nothing was sent
    (the vfunc then does it). Called with w.lock held."""
    if (w.async_state != _ASYNC_NONE or w.pending is not None or w.tid is None or
            w.in_wait or w.tid == threading.get_ident() or
            not issubclass(exc_type, TaskCancelled) or
            exc_type.__init__ is not TaskCancelled.__init__):
        return None
    if not _may_land(_worker_frame(w), False):
        return None
    returned = threading.Event()
    with _early_lock:
        _early_sent[w.tid] = (task, returned)
    w.async_state = _ASYNC_SCHEDULED
    w.async_type = exc_type
    _send_locked(w, False)
    return returned


def _await_early_stop():
    """In TaskCancelled.__init__: if it is the exception Task.interrupt()
    sent early landing in its worker, wait for the interrupt's stop."""
    entry = _early_sent.get(threading.get_ident())
    if entry is None:
        return
    task, returned = entry
    # Until the stop is done (the task left RUNNING: its cancellable was
    # cancelled and its stop callbacks ran), as if the vfunc had sent it.
    # The stop flag is set first in the C call, before any callback; once
    # it is set, a callback that waits for this worker cannot hold it long.
    since = None
    while Killable.Task.get_state(task) == _State.RUNNING:
        if returned.wait(0.0002):
            break
        if Killable.Task.is_stop_requested(task):
            now = time.monotonic()
            if since is None:
                since = now
            elif now - since >= _FORCE_AFTER:
                break


def _worker_frame(w):
    """The innermost frame of the worker (paused: we hold the GIL), or
    None. Called with w.lock held, while the worker is in run()."""
    ptr = _thread_frame(w.tstate)
    if not ptr:
        return None
    frame = ctypes.cast(ptr, ctypes.py_object).value
    _decref(ptr)
    return frame


def _may_land(frame, force):
    """Whether an asynchronous exception may be raised in the thread whose
    innermost frame is ``frame`` (that thread is paused: we hold the GIL)."""
    if frame is None:
        return True
    module = frame.f_globals.get('__name__') or ''
    if module.startswith('gi.') and module != __name__:
        return False
    if force:
        return True
    code = frame.f_code.co_code
    i = frame.f_lasti
    return not (0 <= i < len(code) and code[i] in _CALL_OPS)


def _send(w, force):
    """In the helper thread: send what was scheduled if still allowed.
    Returns True when done, False to be called again later."""
    with w.lock:
        return _send_locked(w, force)


def _send_locked(w, force):
    """Send what was scheduled if still allowed, from a thread other than
    the worker's, holding the GIL and w.lock. Returns True when done,
    False to try again later."""
    if w.async_state != _ASYNC_SCHEDULED:
        return True
    if w.tid is None:
        w.async_state = _ASYNC_DONE
        return True
    if w.in_wait:
        w.pending = w.async_type
        w.async_state = _ASYNC_DONE
        return True
    if not _may_land(_worker_frame(w), force):
        return False
    n = _set_async_exc(w.tid, w.async_type)
    if n == 1:
        w.async_state = _ASYNC_SENT
        return True
    if n > 1:
        # "If it returns a number greater than one, you're in trouble,
        # and you should call it again with exc=NULL to revert the
        # effect."
        _clear_async_exc(w.tid, None)
    w.async_state = _ASYNC_DONE
    return True


class _Sender(object):
    """A daemon thread that sends scheduled asynchronous exceptions."""

    def __init__(self):
        self._reset()

    def _reset(self):
        # Also in a child after fork(): the thread did not come along.
        self._cond = threading.Condition(threading.Lock())
        self._queue = []      # [due, retry delay, worker, since], unordered
        self._thread = None

    def schedule(self, w, delay=0.0):
        with self._cond:
            now = time.monotonic()
            self._queue.append([now + delay, _RETRY_FIRST, w, now + delay])
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, daemon=True,
                                                name='killable-interrupter')
                self._thread.start()
            self._cond.notify()

    def _main(self):
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                now = time.monotonic()
                due = [e for e in self._queue if e[0] <= now]
                if not due:
                    self._cond.wait(min(e[0] for e in self._queue) - now)
                    continue
            for entry in due:
                try:
                    done = _send(entry[2], now - entry[3] >= _FORCE_AFTER)
                except BaseException:  # never let this thread die
                    done = True
                with self._cond:
                    if done:
                        self._queue = [e for e in self._queue if e is not entry]
                    else:
                        entry[1] = min(entry[1] * 2, _RETRY_MAX)
                        entry[0] = time.monotonic() + entry[1]


_sender = _Sender()
os.register_at_fork(after_in_child=_sender._reset)


def _excepthook(exc_type, value, tb, _previous=sys.excepthook):
    """The exception sent to a worker landed in PyGObject's own Python code
    (the worker had just called a GI function that failed because of the
    stop, and PyGObject was building its GLib.Error). PyGObject prints it
    (through sys.excepthook) and raises RuntimeError("Converting the GError
    failed") in the worker instead. Do not print it, and send it again:
    the user's code never saw it."""
    try:
        task = Killable.Task.get_current()
        w = task.__dict__.get('_killable_worker') if task is not None else None
        if w is not None and w.tid == threading.get_ident() and tb is not None:
            last = tb
            while last.tb_next is not None:
                last = last.tb_next
            module = last.tb_frame.f_globals.get('__name__') or ''
            with w.lock:
                if (w.async_state == _ASYNC_SENT and type(value) is w.async_type and
                        module.startswith('gi.') and module != __name__):
                    w.async_state = _ASYNC_SCHEDULED
                    w.eaten = True
                    _sender.schedule(w)
                    return
    except BaseException:
        pass
    _previous(exc_type, value, tb)


sys.excepthook = _excepthook


def _take_pending(w):
    """In the worker: what an interrupt wants raised here, revoked from the
    helper and the thread state so that it never lands later. Returns an
    exception type or None. Called with w.lock held."""
    exc_type = None
    if w.pending is not None:
        exc_type, w.pending = w.pending, None
    elif w.async_state == _ASYNC_SCHEDULED:
        exc_type = w.async_type
        w.async_state = _ASYNC_DONE
    elif w.async_state == _ASYNC_SENT and w.tid == threading.get_ident():
        _clear_async_exc(w.tid, None)
        exc_type = w.async_type
        w.async_state = _ASYNC_DONE
    return exc_type


def _raise_self_pending():
    """After a call that may have interrupted the calling worker's own task:
    raise what it asked for, synchronously."""
    task = Killable.Task.get_current()
    if task is None:
        return
    w = task.__dict__.get('_killable_worker')
    if w is None or w.pending is None or w.tid != threading.get_ident():
        return
    with w.lock:
        exc_type, w.pending = w.pending, None
    if exc_type is not None:
        raise _instantiate(exc_type, _stop_reason(task)) from None


def _instantiate(exc_type, error=None):
    if issubclass(exc_type, TaskCancelled):
        return exc_type(error=error)
    return exc_type()


def _stop_reason(task):
    try:
        Killable.Task.check(task)
    except GLib.Error as e:
        return e
    return None


def _check_exc_type(exc, default):
    if exc is None:
        return default
    if isinstance(exc, type) and issubclass(exc, BaseException):
        return exc
    raise TypeError("exc must be an exception class, not %s" % type(exc).__name__)

# }}}


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
        _worker(self)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A Python subclass gets its own GType (PyGObject registers it after
        # this hook); give it the virtual methods that run Python code.
        if cls.__module__ in ('gi.repository.Killable', __name__):
            return
        for name, func in (('do_run', _do_run),
                           ('do_interrupt', _do_interrupt),
                           ('do_kill', _do_kill)):
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
            _call_target(target, args, kwargs)

    def check(self):
        """Raise the :class:`TaskCancelled` subclass matching the stop's
        cause (or the exception given to :meth:`interrupt`) once a stop was
        requested; return at once otherwise. Call it often in long work."""
        if Killable.Task.is_stop_requested(self):
            self._wait(Killable.Task.check)

    def stopped(self):
        """Whether a stop was requested (the ``StoppableThread`` idiom)."""
        return Killable.Task.is_stop_requested(self)

    def sleep(self, seconds):
        """Sleep for ``seconds``, or until a stop is requested: then raise
        like :meth:`check`, at once. The GIL is released while sleeping."""
        self._wait(Killable.Task.sleep, _to_usec(seconds, 'seconds'))

    def wait_fd(self, fd, condition, timeout=None):
        """Wait until ``fd`` satisfies ``condition`` (``GLib.IOCondition``),
        ``timeout`` seconds passed (then return 0), or a stop is requested
        (then raise like :meth:`check`). Returns the conditions satisfied.
        The GIL is released while waiting."""
        if not isinstance(fd, int):
            fd = fd.fileno()
        usec = -1 if timeout is None else _to_usec(timeout, 'timeout')
        return self._wait(Killable.Task.wait_fd, fd, condition, usec)

    def _wait(self, func, *args):
        w = _worker(self)
        me = threading.get_ident()
        mine = w.tid == me
        if mine:
            with w.lock:
                exc_type = _take_pending(w)
                if exc_type is None:
                    w.in_wait += 1
            if exc_type is not None:
                raise _instantiate(exc_type, _stop_reason(self)) from None
        error = None
        ret = None
        try:
            ret = func(self, *args)
        except GLib.Error as e:
            error = e
        finally:
            if mine:
                with w.lock:
                    w.in_wait -= 1
                    exc_type = _take_pending(w)
                    if (exc_type is None and w.async_state == _ASYNC_NONE and
                            _is_interruption(error)):
                        # The stop of interrupt() woke us before its
                        # interrupt vfunc ran: the exception is raised here,
                        # and that vfunc then sends nothing.
                        exc_type = w.interrupt_type or TaskInterrupted
                        w.async_state = _ASYNC_DONE
        if mine and exc_type is not None:
            raise _instantiate(exc_type, error or _stop_reason(self)) from None
        if error is not None:
            # The stop's cause: a TaskCancelled. (wait_fd() also fails with
            # a G_IO_ERROR when it cannot poll.)
            if Killable.Task.is_stop_requested(self):
                raise _cancellation(error) from None
            raise error
        return ret

    def set_abandonable(self, abandonable):
        ret = Killable.Task.set_abandonable(self, abandonable)
        _raise_self_pending()
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
        state = self.get_state()
        if state == _State.PENDING:
            raise RuntimeError("cannot join task %r before it is started" % self.get_name())
        if Killable.Task.get_current() is self:
            raise RuntimeError("a task cannot join itself")
        while True:
            wait = _WAIT_SLICE
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0))
            if Killable.Task.wait(self, int(wait * 1e6)):
                break
            _raise_self_pending()
            if deadline is not None and time.monotonic() >= deadline:
                return None
        self._raise_outcome()
        return None

    def _raise_outcome(self):
        state = self.get_state()
        if state == _State.SUCCEEDED:
            return
        error = self.get_error()
        w = self.__dict__.get('_killable_worker')
        exc = w.exc if w is not None else None
        if state == _State.FAILED:
            if exc is not None and error is not None and w.exc_key == _error_key(error):
                raise exc.with_traceback(w.exc_tb)
            if error is None:
                error = GLib.Error.new_literal(_KILLABLE_ERROR, "task failed",
                                               int(Killable.Error.FAILED))
            if exc is not None:
                raise error from exc
            raise error
        cls = TaskKilled if state == _State.KILLED else _class_for_error(error)
        if state != _State.KILLED and type(exc) is cls:
            exc.error = error
            raise exc.with_traceback(w.exc_tb)
        raise _cancellation(error, cls) from None

    def interrupt(self, exc=None):
        """Stop the task (with ``INTERRUPTED`` as the cause) and raise
        ``exc`` (an exception class, default :class:`TaskInterrupted`) in
        its worker, and :class:`TaskInterrupted` in the workers of its
        descendants. The exception is raised once, only inside the user's
        code; a worker in :meth:`sleep`, :meth:`check` or a GIO call given
        the task's cancellable gets it at once. If ``exc`` is not a
        :class:`TaskCancelled` subclass and escapes ``run()``, the task
        fails with it. Harmless on a task that already ended."""
        exc_type = _check_exc_type(exc, TaskInterrupted)
        w = _worker(self)
        returned = None
        try:
            with w.lock:
                w.interrupt_type = exc_type
                tid = w.tid
                returned = _send_early_locked(w, self, exc_type)
            Killable.Task.interrupt(self)
        finally:
            if returned is not None:
                returned.set()
                with _early_lock:
                    if _early_sent.get(tid, (None, None))[1] is returned:
                        del _early_sent[tid]
        _raise_self_pending()

    def kill(self):
        """Release the owner at once: the task (and its descendants) end
        ``KILLED`` now and :meth:`join` raises :class:`TaskKilled` without
        waiting. A Python worker is abandoned: it gets a :class:`TaskKilled`
        exception (unless an interrupt already reached it) and runs until
        its ``run()`` returns; see the module documentation about exit."""
        Killable.Task.kill(self)
        _raise_self_pending()

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
            if not (caused and e.error is not None and _is_killable_error(e.error) and
                    e.error.code == int(Killable.Error.STOPPED)):
                raise
        return False

    # }}}


    def set_status(self, status):
        """As :meth:`Killable.Task.set_status`; a string that holds a NUL
        character (which C would silently cut there) is a ValueError."""
        if status is not None:
            _check_no_nul(status, 'status')
        Killable.Task.set_status(self, status)


Task = override(Task)
__all__.append('Task')


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


# The virtual methods of Python tasks {{{

def _run_user_code(task):
    # Its own frame: the call of run() below is a Python-to-Python call, so
    # nothing is raised between its return and the caller's next line.
    return task.run()


def _call_target(target, args, kwargs):
    target(*args, **kwargs)


def _call_offset(func):
    calls = [i.offset for i in dis.get_instructions(func) if i.opname.startswith('CALL')]
    return calls[-1]


# An asynchronous exception raised right after one of these calls returned
# (Python checks for one after a call that it did not inline) landed after
# the user's code had ended: it is dropped.
_AFTER_USER_CODE = {
    _run_user_code.__code__: _call_offset(_run_user_code),
    _call_target.__code__: _call_offset(_call_target),
}


def _landed_after_user_code(exc):
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _AFTER_USER_CODE.get(tb.tb_frame.f_code) == tb.tb_lasti


def _do_run(self):
    w = _worker(self)
    tid = threading.get_ident()
    returned = False
    exc = None

    try:
        with w.lock:
            w.tid = tid
            w.tstate = _thread_state()
            early, w.pending = w.pending, None
        if early is not None:
            # Interrupted between the start and now: the code never runs.
            raise _instantiate(early, _stop_reason(self))
        _run_user_code(self)
        returned = True
    except BaseException as e:
        exc = e

    # Leave the user's code. From here on nothing may be sent: at most one
    # exception is ever sent, so if it lands in this loop it is the only
    # one, and it is dropped (the user's code had already ended).
    sent = None
    while True:
        try:
            sent = _leave(w, tid)
            break
        except BaseException as e:
            if not returned and exc is None:
                exc = e

    if not returned and sent is not None and type(exc) is sent and \
            _landed_after_user_code(exc):
        returned = True

    if returned:
        return True

    if w.eaten and type(exc) is RuntimeError:
        # RuntimeError("Converting the GError failed"), in place of the
        # exception sent (see _excepthook): what ended the work is the
        # interrupt.
        exc = _instantiate(w.async_type).with_traceback(exc.__traceback__)

    if isinstance(exc, TaskCancelled):
        w.exc, w.exc_tb = exc, exc.__traceback__
        error = _error_for_cancellation(exc)
        w.exc_key = None
        raise error

    if isinstance(exc, GLib.Error):
        error = exc
    else:
        text = str(exc)
        message = type(exc).__name__ + (': ' + text if text else '')
        error = GLib.Error.new_literal(_KILLABLE_ERROR, message,
                                       int(Killable.Error.FAILED))
    w.exc, w.exc_tb = exc, exc.__traceback__
    w.exc_key = _error_key(error)
    raise error


def _leave(w, tid):
    """Returns the type of the exception sent to the worker, if any."""
    sent = None
    with w.lock:
        w.tid = None
        w.tstate = None
        w.pending = None
        if w.async_state == _ASYNC_SENT:
            # Sent but maybe not landed: make sure it never does.
            _clear_async_exc(tid, None)
            sent = w.async_type
        w.async_state = _ASYNC_DONE
    return sent


def _do_interrupt(self):
    Killable.Task.do_interrupt(self)
    w = _worker(self)
    with w.lock:
        _request_locked(w, w.interrupt_type or TaskInterrupted)


def _do_kill(self):
    Killable.Task.do_kill(self)
    w = _worker(self)
    with w.lock:
        _request_locked(w, TaskKilled)


class PythonTask(Task):
    """What ``Killable.Task(target=...)`` creates."""
    __gtype_name__ = 'KillablePythonTask'
    # Not gi.overrides.*: PyGObject registers a GType only for other modules.
    __module__ = 'Killable'


_PythonTask = PythonTask

# }}}


def current_task():
    """The task whose work runs on the calling thread, or ``None``."""
    return Killable.Task.get_current()


__all__.append('current_task')
