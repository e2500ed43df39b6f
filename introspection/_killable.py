# _killable.py: the asynchronous-exception machinery of the Killable override
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""Private to ``gi.overrides.Killable``: the task exceptions, the Python
side of a task's worker, and the asynchronous exceptions that interrupt()
and kill() raise in it. Installed beside ``Killable.py``; not an API.

Importing it changes no process-wide hook: the ``sys.excepthook`` it needs
is installed at the first asynchronous exception sent, chaining to the hook
in place then (see _install_excepthook())."""

import atexit
import collections
import ctypes
import dis
import functools
import os
import queue
import sys
import threading
import time
import weakref
import _thread

from gi.repository import GLib

from ..module import get_introspection_module

Killable = get_introspection_module('Killable')

_KILLABLE_ERROR = Killable.error_quark()
_State = Killable.TaskState

# The compiled helper (gi-killable-helper.c), built when Python's headers
# were found: the owner side of interrupt() and join()'s wait in C, the
# workers' locks and TaskCancelled.__init__. Without it, everything below
# takes its pure-Python path (the same rules).
try:
    from . import _gi_killable as _helper
except ImportError:
    _helper = None



# Exceptions {{{

class TaskCancelled(BaseException if _helper is None else _helper.CancelledBase):
    """Raised when a task was asked to end: by :meth:`Task.check`,
    :meth:`Task.sleep` and the other waits of a stopped task inside its
    worker, and by :meth:`Task.join` for a task that ended cancelled or
    killed.

    It derives from :class:`BaseException`, like :class:`KeyboardInterrupt`,
    so that ``except Exception`` does not swallow it: let it propagate out
    of ``run()`` (``finally`` blocks and context managers still run).

    :ivar error: the ``GLib.Error`` that says why (the stop's cause), or
        ``None`` when the exception was raised asynchronously. Raised by a
        stopped wait, the exception builds it when it is first read (its
        message translated then), and holds the task until then.
    """

    default_message = "the task was cancelled"

    # No class attribute ``error``: __getattr__() gives it. An exception a
    # stopped wait raised holds its task in _killable_lazy until its
    # error is first read: building the GLib.Error (a translation lookup,
    # the GError, its conversion) was most of a stopped wait's way to the
    # worker's except (issue 15).
    def __getattr__(self, name):
        if name != 'error':
            raise AttributeError("%r object has no attribute %r"
                                 % (type(self).__name__, name))
        # The task dropped only once the error is set: another thread
        # reading it meanwhile builds the same error, or finds it set.
        d = self.__dict__
        lazy = d.get('_killable_lazy')
        error = d.setdefault('error', None if lazy is None else _stop_error(lazy))
        d.pop('_killable_lazy', None)
        return error

    # With the helper, its base's __init__ (C) does the same.
    if _helper is None:
        def __init__(self, *args, error=None):
            # Lean: an interrupt instantiates the class in the worker, and
            # that is timed against the bare recipe's plain exception
            # (issue 15). BaseException.__new__ already set self.args; its
            # __init__ would only set them again, so it is called for
            # subclasses of users only, whose MRO may put a mixin's
            # __init__ after this one.
            if error is not None:
                self.error = error
            if type(self) not in _OWN_EXCEPTIONS:
                super().__init__(*args)

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


EXCEPTIONS = (TaskCancelled, TaskStopped, TaskInterrupted, TaskTimedOut, TaskKilled)
_OWN_EXCEPTIONS = frozenset(EXCEPTIONS)
if _helper is not None:
    _helper.set_own_exceptions(_OWN_EXCEPTIONS)

# Public as Killable.TaskCancelled, ...: named as before this module existed.
for _cls in EXCEPTIONS:
    _cls.__module__ = 'gi.overrides.Killable'
del _cls

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


# The domain's name, compared as a string: GLib.quark_from_string() is an
# introspected call, which hands the GIL away (a worker that the stop just
# woke would then wait for the owner to give it back).
_KILLABLE_DOMAIN = GLib.quark_to_string(_KILLABLE_ERROR)


def is_killable_error(error):
    return error is not None and error.domain == _KILLABLE_DOMAIN


def _is_interruption(error):
    return is_killable_error(error) and error.code == int(Killable.Error.INTERRUPTED)


def _class_for_error(error):
    """The TaskCancelled subclass matching a stop's cause."""
    if is_killable_error(error):
        return _CLASS_FOR_CODE.get(error.code, TaskStopped)
    return TaskStopped


def _cancellation(error, cls=None):
    if cls is None:
        cls = _class_for_error(error)
    # cls(error=error) without running TaskCancelled.__init__ (a Python
    # frame, on the way of every stopped wait): the same object.
    exc = cls.__new__(cls)
    exc.error = error
    return exc


def _lazy_cancellation(task, code, cls=None):
    """The TaskCancelled that a wait stopped with ``code`` (the library's
    code of the stop's cause, see _c_get_stop_code) raises: its error is
    built when read (TaskCancelled.__getattr__), from ``task``."""
    if cls is None:
        cls = _CLASS_FOR_CODE.get(code, TaskStopped)
    exc = cls.__new__(cls)
    exc._killable_lazy = task
    return exc


def _lazy_instance(exc_type, task):
    """_instantiate(exc_type, _stop_reason(task)), with the error built
    when read."""
    if not issubclass(exc_type, TaskCancelled):
        return exc_type()
    exc = exc_type()
    if 'error' not in exc.__dict__ and is_stop_requested(task):
        exc._killable_lazy = task
    return exc


def _set_error(exc, error):
    """exc.error = error, for a TaskCancelled that may hold a lazy one."""
    exc.__dict__.pop('_killable_lazy', None)
    exc.error = error


def _stop_error(task):
    """The GLib.Error of the stop of ``task`` (stopped), built now."""
    if _c_check_held is not None:
        w = task.__dict__.get('_killable_worker') or worker(task)
        errp = _c_void_p()
        if not _c_check_held(w.cptr or _cpointer(task, w), _byref(errp)) and errp.value:
            return _take_error(errp)
        return None
    return _stop_reason(task)


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
# - after the stop was requested, from the interrupting thread itself when
#   the worker runs the user's bytecode: Task.interrupt() right after its C
#   call returned (the vfunc then leaves it to that call, w.direct), the
#   interrupt or kill vfunc otherwise; holding the GIL all along, so that
#   the worker gets it first when the caller next releases it (no thread
#   switch interval, nothing waited for). Else
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

# _set_async_exc and _thread_frame are called with ctypes objects (a
# c_ulong, a py_object; a c_void_p) and have no argtypes: a call then runs
# no conversion in Python code (interrupt() is timed against the bare
# recipe, and 200 of them must fit in a switch interval, see
# bench-python-interrupt.py).
_set_async_exc = ctypes.PyDLL(None).PyThreadState_SetAsyncExc
_set_async_exc.restype = ctypes.c_int
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ('PyThreadState_SetAsyncExc', ctypes.pythonapi))
_thread_state = ctypes.PYFUNCTYPE(ctypes.c_void_p)(('PyThreadState_Get', ctypes.pythonapi))
# Not sys._current_frames(): it holds the interpreter's thread-list lock
# while it creates frame objects, and a garbage collection there that frees
# a GObject wrapper can wait for the GIL with that lock held.
# It returns a new reference, which a py_object result takes over (ctypes
# drops the one it adds); ValueError when the thread has no frame.
_thread_frame = ctypes.PyDLL(None).PyThreadState_GetFrame
_thread_frame.restype = ctypes.py_object

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


# With the helper, the fields an interrupt reads are C fields of the
# _Worker's base (WORKER_FIELDS, not repeated in its __slots__), and its
# lock is taken and released in C without a method call.
if _helper is None:
    # A C lock, not threading.Lock: after patch_blocking_calls(), that one
    # waits through the override's waits (and their bookkeeping, which
    # takes this lock) when a worker finds it taken.
    _WorkerBase, _BASE_FIELDS, _new_lock = object, frozenset(), _thread.allocate_lock
else:
    _WorkerBase, _BASE_FIELDS, _new_lock = (_helper.WorkerBase, frozenset(_helper.WORKER_FIELDS),
                                            _helper.Lock)


class _Worker(_WorkerBase):
    """The Python side of a task: the worker's thread while the user's code
    runs, and what happened to it. Guarded by ``lock``."""

    __slots__ = ('lock', 'tid', 'ctid', 'tstate', 'in_wait', 'async_state', 'async_type',
                 'interrupt_type', 'pending', 'eaten', 'exc', 'exc_tb', 'exc_key',
                 'ptr', 'cptr', 'flag', 'report', 'published', 'flush_armed',
                 'publish_lock', 'result', 'thread', 'ident', 'native_id',
                 'consumed', 'shield', 'direct', 'patch', '__weakref__')
    __slots__ = tuple(n for n in __slots__ if n not in _BASE_FIELDS)

    def __init__(self):
        self.lock = _new_lock()
        self.tid = None             # the worker's thread while run() runs
        self.ctid = None            # the same as a ctypes.c_ulong
        self.tstate = None          # and its PyThreadState * (a c_void_p)
        self.in_wait = 0            # inside sleep()/check()/wait_fd()
        self.async_state = _ASYNC_NONE
        self.async_type = None      # what is scheduled or was sent
        self.interrupt_type = None  # what interrupt(exc) asked for
        self.pending = None         # to raise synchronously in the worker
        self.eaten = False          # PyGObject swallowed what was sent
        self.exc = None             # what escaped run()
        self.exc_tb = None
        self.result = None          # what run() returned
        self.thread = None          # threading's view of the worker thread
        self.ident = None           # the worker's thread, kept after the end
        self.native_id = None
        self.consumed = False       # join()/result()/... read the outcome
        self.shield = 0             # depth of Killable.shield() blocks
        self.direct = 0             # Task.interrupt() calls in their C call
        self.patch = None           # the fds of patched waits (_killable_patch)
        # The hot calls (see "Hot calls" below).
        self.ptr = None             # the KillableTask *, set at first use
        self.cptr = None            # the same as a ctypes.c_void_p (converts faster)
        self.flag = None            # its stop word, if the library has one
        self.report = {}            # progress/status not published yet
        self.published = 0.0        # when they were last published
        self.flush_armed = False    # the flusher will publish them
        self.publish_lock = _thread.allocate_lock()
        self.exc_key = None         # the GError it became




# Failures nobody read (no join(), result(), await, run_finish()) are
# reported like an exception escaping a threading.Thread: through
# threading.excepthook, when the task is finalized, from a daemon thread.
#
# The task may be finalized on a worker thread while an asynchronous
# exception is due there: it would land in any Python function run then (a
# __del__, a weakref callback) and be lost. So the finalizer runs only C
# code: the worker of a failed task gets the class _UnreadFailure, whose
# __del__ is a property; reading it (what finalization does) calls
# _finalized.__getitem__(worker), and the defaultdict's factory (C
# functools.partial objects) stores the worker there, keeping it alive,
# and returns partial(_reports.put, None), which finalization then calls
# and which wakes the reporter thread. The reporter takes the workers out
# of _finalized and calls the hook.
_reports = queue.SimpleQueue()
_finalized = collections.defaultdict(functools.partial(functools.partial, _reports.put, None))
_reporter_started = False


class _UnreadFailure(_Worker):
    """A _Worker whose failure nobody read yet (see above)."""

    __slots__ = ()
    __del__ = property(_finalized.__getitem__)


def _reporter():
    while True:
        _reports.get()
        while _finalized:
            try:
                w, _ = _finalized.popitem()
            except KeyError:
                break
            exc = w.exc
            if type(w) is _UnreadFailure and exc is not None:
                w.__class__ = _Worker
                try:
                    threading.excepthook(threading.ExceptHookArgs(
                        (type(exc), exc, w.exc_tb, w.thread)))
                except BaseException:  # never let this thread die
                    pass
            del w, exc


def _start_reporter():
    """Called on a worker thread outside the user's code, when a failure
    was recorded (before anything may have to be reported)."""
    global _reporter_started
    with _worker_lock:
        if _reporter_started:
            return
        _reporter_started = True
    threading.Thread(target=_reporter, daemon=True, name='killable-reporter').start()


def _reset_reporter():
    global _reporter_started
    _reporter_started = False


os.register_at_fork(after_in_child=_reset_reporter)


_worker_lock = threading.Lock()


def worker(task):
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
            _know(task)
    return w


# Exit {{{
#
# A task's last reference may go on a worker thread: the worker drops its
# own after the end (unless a joiner took it), a parent's worker drops its
# children's. With a wrapper alive, PyGObject's toggle notification then
# calls PyGILState_Ensure() on that thread; once the interpreter is gone
# (a worker finishing while the program exits), that crashes in
# PyThreadState_New() (tests/python/exit_helper.py). So at exit, before
# the interpreter is torn down (an atexit function: after threading's
# shutdown and the functions registered later), every task this module
# knows that someone besides its wrapper still references gets one more
# reference, never dropped: no reference it has then is its last, whatever
# thread drops it (nor is its dispose run during the teardown). The process
# is exiting: nothing is lost.

# Every task with a _Worker, as weak references without a callback (a
# WeakSet's callback would run Python code wherever a task is freed, maybe
# on a worker where an asynchronous exception is due); the dead ones are
# dropped when the list has doubled.
_known_tasks = []
_known_limit = 64


def _know(task):
    """Called with _worker_lock held."""
    global _known_limit
    _known_tasks.append(weakref.ref(task))
    if len(_known_tasks) > _known_limit:
        _known_tasks[:] = [r for r in _known_tasks if r() is not None]
        _known_limit = max(64, 2 * len(_known_tasks))

_g_object_ref = None
try:
    # A CDLL: the GIL is released around it (a reference that goes from one
    # to two calls PyGObject's toggle notification, which takes the GIL).
    _g_object_ref = ctypes.CDLL('libgobject-2.0.so.0').g_object_ref
    _g_object_ref.restype = ctypes.c_void_p
    _g_object_ref.argtypes = [ctypes.c_void_p]
except (OSError, AttributeError):
    _g_object_ref = None


def _hold_at_exit():
    if _g_object_ref is None:
        return
    for ref in list(_known_tasks):
        task = ref()
        if task is None:
            continue
        try:
            if task.__grefcount__ > 1:
                _g_object_ref(_capsule_pointer(task.__gpointer__, None))
        except Exception:
            pass


atexit.register(_hold_at_exit)

# }}}


def _request_locked(w, exc_type):
    """Ask for exc_type to be raised in the worker, once. Called with
    w.lock held, in the interrupting thread."""
    if w.async_state != _ASYNC_NONE or w.pending is not None:
        return
    if w.tid is None or w.in_wait or w.shield or w.tid == threading.get_ident():
        # Before run() (raised instead of calling it), in a wait (raised
        # when it returns), in a shield (raised when it ends), or in the
        # worker itself (raised when the override's call returns).
        w.pending = exc_type
        w.async_state = _ASYNC_DONE
        return
    w.async_state = _ASYNC_SCHEDULED
    w.async_type = exc_type
    if w.direct:
        # Task.interrupt() is in its C call (this is its vfunc, or another
        # thread's): it sends it when that call returns.
        return
    # The calling thread holds the GIL (an interrupt or kill vfunc runs
    # Python code), so the worker is paused: send it from here at once if
    # it is in the user's bytecode, sparing the helper thread (and the
    # switch interval it would wait to get the GIL in turn). Otherwise the
    # helper looks again later.
    if not _send_locked(w, False):
        _sender.schedule(w)


def _send_first_locked(w, exc_type):
    """_request_locked() then _send_locked() for the usual case of
    interrupt(): nothing asked yet, the worker in the user's code (not in
    a wait, a shield, an interrupt() call of its own), paused at a
    bytecode that is not a call. Inlined (interrupt() is timed against
    the bare recipe); the same rules. Returns False, having changed
    nothing, when the case is not that one: the caller then takes the
    general way. Called with w.lock held, holding the GIL."""
    tid = w.tid
    if (tid is None or w.async_state != _ASYNC_NONE or w.pending is not None or
            w.in_wait or w.shield or w.direct or _previous_excepthook is None or
            tid == _get_ident()):
        return False
    try:
        frame = _thread_frame(w.tstate)
    except ValueError:
        return False
    module = frame.f_globals.get('__name__') or ''
    if module.startswith('gi.') and _is_pygobject_module(module):
        return False
    code = frame.f_code.co_code
    i = frame.f_lasti
    del frame
    if 0 <= i < len(code) and code[i] in _CALL_OPS:
        return False
    w.async_type = exc_type
    _deliver_locked(w)
    return True


_get_ident = threading.get_ident


def _worker_frame(w):
    """The innermost frame of the worker (paused: we hold the GIL), or
    None. Called with w.lock held, while the worker is in run()."""
    try:
        return _thread_frame(w.tstate)
    except ValueError:
        return None


def _is_pygobject_module(module):
    """Whether code of the module named ``module`` is PyGObject's own, not
    the override's (Killable.py and these private modules)."""
    return (module.startswith('gi.') and module != 'gi.overrides.Killable' and
            not module.startswith('gi.overrides._killable'))


def _may_land(frame, force):
    """Whether an asynchronous exception may be raised in the thread whose
    innermost frame is ``frame`` (that thread is paused: we hold the GIL)."""
    if frame is None:
        return True
    if _is_pygobject_module(frame.f_globals.get('__name__') or ''):
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
    if w.in_wait or w.shield:
        w.pending = w.async_type
        w.async_state = _ASYNC_DONE
        return True
    if not _may_land(_worker_frame(w), force):
        return False
    if _previous_excepthook is None:
        _install_excepthook()
    _deliver_locked(w)
    return True


# The override's exception classes as ctypes.py_object, for _set_async_exc().
_PY_OBJECTS = {cls: ctypes.py_object(cls) for cls in EXCEPTIONS}


def _deliver_locked(w):
    """Raises w.async_type in the worker's thread (the worker paused, at a
    bytecode where it may land), holding the GIL and w.lock."""
    exc_type = w.async_type
    n = _set_async_exc(w.ctid, _PY_OBJECTS.get(exc_type) or ctypes.py_object(exc_type))
    if n == 1:
        w.async_state = _ASYNC_SENT
        return
    if n > 1:
        # "If it returns a number greater than one, you're in trouble,
        # and you should call it again with exc=NULL to revert the
        # effect."
        _clear_async_exc(w.ctid, None)
    w.async_state = _ASYNC_DONE


class _DueQueue(object):
    """A queue of entries (a list or tuple whose first item is the monotonic
    time it is due), served by a daemon thread started on first use."""

    thread_name = None

    def __init__(self):
        self._reset()

    def _reset(self):
        # Also in a child after fork(): the thread did not come along.
        # (A C lock: see _Worker.lock; a worker's set_progress() takes it.)
        self._cond = threading.Condition(_thread.allocate_lock())
        self._queue = []
        self._thread = None

    def _push(self, entry):
        with self._cond:
            self._queue.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, daemon=True,
                                                name=self.thread_name)
                self._thread.start()
            self._cond.notify()

    def _wait_due(self, take):
        """Waits until entries are due; returns (now, those entries), taken
        out of the queue when ``take``."""
        with self._cond:
            while True:
                while not self._queue:
                    self._cond.wait()
                now = time.monotonic()
                due = [e for e in self._queue if e[0] <= now]
                if due:
                    if take:
                        self._queue = [e for e in self._queue if e[0] > now]
                    return now, due
                self._cond.wait(min(e[0] for e in self._queue) - now)


class _Sender(_DueQueue):
    """A daemon thread that sends scheduled asynchronous exceptions."""

    thread_name = 'killable-interrupter'

    def schedule(self, w, delay=0.0):
        # [due, retry delay, worker, since], unordered
        due = time.monotonic() + delay
        self._push([due, _RETRY_FIRST, w, due])

    def _main(self):
        while True:
            now, due = self._wait_due(take=False)
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


# sys.excepthook and sys.unraisablehook as they were when the first
# asynchronous exception was sent: _excepthook() and _unraisablehook() chain
# to them. Installed then, not at import, so that importing the override
# leaves the process's hooks alone.
_previous_excepthook = None
_previous_unraisablehook = None
_hook_lock = threading.Lock()


def _install_excepthook():
    """Before the first asynchronous exception is sent: put _excepthook()
    and _unraisablehook() in front of the hooks current now. Once per
    process."""
    global _previous_excepthook, _previous_unraisablehook
    with _hook_lock:
        if _previous_excepthook is None:
            _previous_excepthook = sys.excepthook
            _previous_unraisablehook = sys.unraisablehook
            sys.excepthook = _excepthook
            sys.unraisablehook = _unraisablehook


def _unraisablehook(args):
    """The exception sent to a worker landed in a finalizer (a __del__, a
    weakref callback) that the worker ran, maybe for an object of another
    task, where Python reports it as unraisable and drops it. Send it again:
    the user's code never saw it."""
    try:
        task = Killable.Task.get_current()
        w = task.__dict__.get('_killable_worker') if task is not None else None
        if w is not None and w.tid == threading.get_ident():
            with w.lock:
                if w.async_state == _ASYNC_SENT and type(args.exc_value) is w.async_type:
                    w.async_state = _ASYNC_SCHEDULED
                    _sender.schedule(w)
                    return
    except BaseException:
        pass
    previous = _previous_unraisablehook or sys.__unraisablehook__
    previous(args)


def _excepthook(exc_type, value, tb):
    """The exception sent to a worker landed in PyGObject's own Python code
    (the worker had just called a GI function that failed because of the
    stop, and PyGObject was building its GLib.Error). PyGObject prints it
    (through sys.excepthook) and raises RuntimeError("Converting the GError
    failed") in the worker instead. Do not print it, and send it again:
    the user's code never saw it. Everything else goes to the hook that
    was in place before this one."""
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
                        _is_pygobject_module(module)):
                    w.async_state = _ASYNC_SCHEDULED
                    w.eaten = True
                    _sender.schedule(w)
                    return
    except BaseException:
        pass
    previous = _previous_excepthook or sys.__excepthook__
    previous(exc_type, value, tb)


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


def raise_self_pending():
    """After a call that may have interrupted the calling worker's own task:
    raise what it asked for, synchronously."""
    # The task whose work runs here (a dict lookup: no call that hands the
    # GIL away).
    task = RUNNING.get(threading.get_ident())
    if task is None:
        return
    w = task.__dict__.get('_killable_worker')
    if w is None or w.pending is None or w.tid != threading.get_ident() or w.shield:
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


def check_exc_type(exc, default):
    if exc is None:
        return default
    if isinstance(exc, type) and issubclass(exc, BaseException):
        return exc
    raise TypeError("exc must be an exception class, not %s" % type(exc).__name__)

# }}}


# The virtual methods of Python tasks {{{

def _run_user_code(task):
    # Its own frame: the call of run() below is a Python-to-Python call, so
    # nothing is raised between its return and the caller's next line.
    return task.run()


def call_target(target, args, kwargs):
    return target(*args, **kwargs)



def _call_offset(func):
    calls = [i.offset for i in dis.get_instructions(func) if i.opname.startswith('CALL')]
    return calls[-1]


# An asynchronous exception raised right after one of these calls returned
# (Python checks for one after a call that it did not inline) landed after
# the user's code had ended: it is dropped.
_AFTER_USER_CODE = {
    _run_user_code.__code__: _call_offset(_run_user_code),
    call_target.__code__: _call_offset(call_target),
}


def _landed_after_user_code(exc):
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _AFTER_USER_CODE.get(tb.tb_frame.f_code) == tb.tb_lasti


def do_run(self):
    error, tb = _run(self)
    # The frames in that traceback lead here (f_back): hold no task here.
    del self
    if error is None:
        return True
    # The traceback of what escaped the work is kept (join() raises it):
    # clear the override's own frames in it, whose locals hold the task,
    # so that a failed task is freed (and an unread failure reported) when
    # its last reference goes, without waiting for a garbage collection.
    _clear_override_frames(tb)
    del tb
    # A copy: the error raised here gets this frame in its traceback.
    raise GLib.Error.new_literal(GLib.quark_from_string(error.domain),
                                 error.message, error.code)


def _clear_override_frames(tb):
    """Clear the locals of the override's frames (Killable.py and these
    modules) in ``tb``; the user's frames are left alone."""
    while tb is not None:
        frame = tb.tb_frame
        module = frame.f_globals.get('__name__') or ''
        if module == 'gi.overrides.Killable' or module.startswith('gi.overrides._killable'):
            try:
                frame.clear()
            except RuntimeError:  # still running: not ours to clear
                pass
        tb = tb.tb_next


def _run(self):
    """do_run(): returns (None, None) on success, else (the GError that
    tells the C side how the work ended, the traceback to clear)."""
    w = worker(self)
    tid = threading.get_ident()
    returned = False
    exc = None

    # Before w.tid is set: nothing can be sent to this thread yet.
    thread = _enter_thread(self, w, tid)
    if w.ptr is None:
        # Here rather than in the first interrupt(), join() or check(),
        # which would pay for it with the GIL held (two foreign calls).
        _pointer(self, w)

    try:
        with w.lock:
            w.tid = tid
            w.ctid = ctypes.c_ulong(tid)
            w.tstate = ctypes.c_void_p(_thread_state())
            early, w.pending = w.pending, None
        if early is not None:
            # Interrupted between the start and now: the code never runs.
            raise _instantiate(early, _stop_reason(self))
        result = _run_user_code(self)
        returned = True
        w.result = result
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

    _leave_thread(w, tid, thread)

    held = w.patch
    if held is not None:
        # The fds patch_blocking_calls() took for its waits.
        w.patch = None
        held.close()

    # The last progress and status reach the owner before the end does,
    # including a value the flusher thread is publishing at this moment.
    publish_report(self, w, final=True)

    if not returned and sent is not None and type(exc) is sent and \
            _landed_after_user_code(exc):
        returned = True

    if returned:
        return None, None

    if w.eaten and type(exc) is RuntimeError:
        # RuntimeError("Converting the GError failed"), in place of the
        # exception sent (see _excepthook): what ended the work is the
        # interrupt.
        exc = _instantiate(w.async_type).with_traceback(exc.__traceback__)

    if isinstance(exc, TaskCancelled):
        w.exc, w.exc_tb = exc, exc.__traceback__
        error = _error_for_cancellation(exc)
        w.exc_key = None
        return error, w.exc_tb

    if isinstance(exc, GLib.Error):
        error = exc
    else:
        text = str(exc)
        message = type(exc).__name__ + (': ' + text if text else '')
        error = GLib.Error.new_literal(_KILLABLE_ERROR, message,
                                       int(Killable.Error.FAILED))
    w.exc, w.exc_tb = exc, exc.__traceback__
    w.exc_key = _error_key(error)
    if Killable.Task.get_state(self) != _State.KILLED and \
            not isinstance(exc, SystemExit) and not w.consumed:
        # (Abandoned, the task ended KILLED: this failure is nobody's.)
        _start_reporter()
        w.__class__ = _UnreadFailure
    return error, w.exc_tb


class _TaskThread(threading._DummyThread):
    """What threading.current_thread() returns inside a task's work:
    named after the task, listed by threading.enumerate() while the work
    runs (and no longer after). Not joinable: join the task."""

    def __init__(self, name):
        # Registers itself in threading's table of threads.
        super().__init__()
        self.name = name
        self._task_ended = False

    def is_alive(self):
        return not self._task_ended

    def join(self, timeout=None):
        raise RuntimeError("cannot join the thread of task %r: join the task" % self.name)


# {thread ident: task} while the task's work runs on that thread: what
# patch_blocking_calls() looks up (a dict lookup, no call into the library).
RUNNING = {}


def _forget_gone_workers():
    """In a child after fork(): only the thread that forked came along, and
    Python freed the thread states of the others. Their tasks' records no
    longer name a thread, as after the end of run(): an interrupt would
    otherwise read the freed PyThreadState through w.tstate (the helper's
    send_first_locked() and _worker_frame() both do). The running tasks'
    records, the forking worker's included, get a new lock: a thread that
    did not come along (a worker, the owner in interrupt(), the sender)
    may have held the old one, and nothing would release it."""
    me = _get_ident()
    for tid, task in list(RUNNING.items()):
        w = task.__dict__.get('_killable_worker')
        if w is not None:
            w.lock = _new_lock()
        if tid == me:
            continue
        del RUNNING[tid]
        if w is not None and w.tid == tid:
            w.tid = w.ctid = w.tstate = None


os.register_at_fork(after_in_child=_forget_gone_workers)


def _enter_thread(task, w, tid):
    """Give the worker thread threading's manners for the time of the
    work: a Thread object named after the task, the trace and profile
    functions of threading.settrace()/setprofile(). Returns what
    _leave_thread() restores."""
    RUNNING[tid] = task
    with threading._active_limbo_lock:
        previous = threading._active.pop(tid, None)
    try:
        name = Killable.Task.get_name(task) or 'Killable.Task'
    except Exception:
        name = 'Killable.Task'
    thread = _TaskThread(name)
    # Out of threading's weak set of Thread objects: freeing this one later
    # (maybe on a worker thread, while an asynchronous exception is due)
    # then runs no Python callback.
    threading._dangling.discard(thread)
    w.thread = thread
    w.ident = tid
    w.native_id = getattr(thread, 'native_id', None)
    trace = threading.gettrace()
    profile = threading.getprofile()
    if profile is not None:
        sys.setprofile(profile)
    if trace is not None:
        sys.settrace(trace)
    return thread, previous


def _leave_thread(w, tid, entered):
    thread, previous = entered
    RUNNING.pop(tid, None)
    sys.settrace(None)
    sys.setprofile(None)
    thread._task_ended = True
    with threading._active_limbo_lock:
        if threading._active.get(tid) is thread:
            if previous is not None:
                threading._active[tid] = previous
            else:
                del threading._active[tid]


def _leave(w, tid):
    """Returns the type of the exception sent to the worker, if any."""
    sent = None
    with w.lock:
        w.tid = None
        w.ctid = None
        w.tstate = None
        w.pending = None
        if w.async_state == _ASYNC_SENT:
            # Sent but maybe not landed: make sure it never does.
            _clear_async_exc(tid, None)
            sent = w.async_type
        w.async_state = _ASYNC_DONE
    return sent


def do_interrupt(self):
    w = worker(self)
    # The default handler only arms EINTR for a worker that opted in with
    # interrupt-syscalls: skip the call (it hands the GIL away) otherwise.
    if _c_get_interrupt_syscalls is None or _c_get_interrupt_syscalls(_pointer(self, w)):
        Killable.Task.do_interrupt(self)
    with w.lock:
        _request_locked(w, w.interrupt_type or TaskInterrupted)


def do_kill(self):
    Killable.Task.do_kill(self)
    w = worker(self)
    with w.lock:
        _request_locked(w, TaskKilled)

# }}}


# What the Task methods of Killable.py hand over {{{

# For tests: called with the task right before a wait blocks (the worker is
# about to block; a stop from then on wakes it).
WAIT_HOOK = None


def _wait_enter(task):
    """Entering a wait (wait(), wait_c(), wait_woken()): returns the
    task's worker record, whether the calling thread is its worker, and
    the exception type an interrupt already asked for (then the wait is
    not entered: the caller raises it) or None (then, in the worker, the
    wait is counted in ``in_wait`` until _wait_left())."""
    w = task.__dict__.get('_killable_worker') or worker(task)
    mine = w.tid == _get_ident()
    exc_type = None
    if w.report:
        publish_report(task, w)
    if mine:
        with w.lock:
            exc_type = _take_pending(w)
            if exc_type is None:
                w.in_wait += 1
    if exc_type is None and WAIT_HOOK is not None:
        WAIT_HOOK(task)
    return w, mine, exc_type


def wait(task, func, *args):
    """Task.sleep()/check()/wait_fd(): call ``func(task, *args)``, a wait
    that a stop wakes, raising the task's cancellation (or the exception an
    interrupt asked for) instead of its GError."""
    w, mine, exc_type = _wait_enter(task)
    if exc_type is not None:
        raise _instantiate(exc_type, _stop_reason(task)) from None
    error = None
    ret = None
    try:
        ret = func(task, *args)
    except GLib.Error as e:
        error = e
    finally:
        if mine:
            exc_type = _wait_left(w, _is_interruption(error))
    if mine and exc_type is not None:
        raise _instantiate(exc_type, error or _stop_reason(task)) from None
    if error is not None:
        # The stop's cause: a TaskCancelled. (wait_fd() also fails with a
        # G_IO_ERROR when it cannot poll.) Asked without handing the GIL
        # away: the owner that just stopped the task would take it, and
        # this worker wait for it back before it could raise. An error of
        # the library's domain is the stop's cause: no need to ask.
        if is_killable_error(error) or is_stop_requested(task):
            raise _cancellation(error) from None
        raise error
    return ret


def _wait_left(w, interrupted):
    """In the worker, leaving a wait that ``interrupted`` (the stop of an
    interrupt() ended it): what an interrupt wants raised now, or None."""
    with w.lock:
        w.in_wait -= 1
        # (_take_pending() has nothing to take in the usual case.)
        exc_type = None
        if w.pending is not None or w.async_state != _ASYNC_NONE:
            exc_type = _take_pending(w)
        if exc_type is None and w.async_state == _ASYNC_NONE and interrupted:
            # The stop of interrupt() woke us before its interrupt vfunc
            # ran: the exception is raised here, and that vfunc then
            # sends nothing.
            exc_type = w.interrupt_type or TaskInterrupted
            w.async_state = _ASYNC_DONE
    return exc_type


def wait_c(task, cfunc, *args):
    """wait() for the library's own waits called through ctypes (see
    "The worker's waits" below): ``cfunc(task pointer, *args, GError **)``
    releases the GIL as introspection would (``args`` are ctypes objects:
    c_int64, c_int, c_uint); its GError becomes a
    GLib.Error here, never raised and caught on the way. Returns the C
    call's result (an int), or the exception to raise: the caller (Task's
    sleep(), check(), wait_fd()) raises it, so that the user's traceback
    gets one frame of the override, not two."""
    w, mine, exc_type = _wait_enter(task)
    if exc_type is not None:
        return _instantiate(exc_type, _stop_reason(task))
    ptr = w.cptr or _cpointer(task, w)
    error = None
    ret = None
    errp = _c_void_p()
    try:
        ret = cfunc(ptr, *args, _byref(errp))
        if errp.value:
            error = _take_error(errp)
    finally:
        if mine:
            exc_type = _wait_left(w, _is_interruption(error))
    if mine and exc_type is not None:
        return _instantiate(exc_type, error or _stop_reason(task))
    if error is not None:
        # As in wait().
        if is_killable_error(error) or is_stop_requested(task):
            return _cancellation(error)
        return error
    return ret


def wait_woken(task, func, *args):
    """patch_blocking_calls()'s waits: ``func(*args)``, a wait that a stop
    wakes (the task's cancel fd, a waiter a stop callback releases), as
    wait() calls its ``func``; then, if a stop came, the exception that
    Task.check() would raise, without a second wait's bookkeeping (the
    stop's cause asked keeping the GIL). Returns (the result, the
    exception to raise or None)."""
    w, mine, exc_type = _wait_enter(task)
    if exc_type is not None:
        return None, _lazy_instance(exc_type, task)
    code = _STOP_CODE_NONE
    ret = None
    try:
        ret = func(*args)
        if _c_get_stop_code is not None:
            code = _c_get_stop_code(w.cptr or _cpointer(task, w))
    finally:
        if mine:
            exc_type = _wait_left(w, code == _INTERRUPTED)
    if mine and exc_type is not None:
        return ret, _lazy_instance(exc_type, task)
    if code != _STOP_CODE_NONE:
        return ret, _lazy_cancellation(task, code)
    if _c_get_stop_code is None and is_stop_requested(task):
        return ret, check_slow(task)
    return ret, None


def wait_code(task, cfunc, *args):
    """wait_c() for the library's waits that return the code of the stop's
    cause (_c_sleep_code, _c_wait_fd_code): ``cfunc(task pointer, *args)``
    releases the GIL as introspection would. Returns the code
    (_STOP_CODE_NONE: no stop), or the exception to raise, whose error is
    built when read."""
    w, mine, exc_type = _wait_enter(task)
    if exc_type is not None:
        return _lazy_instance(exc_type, task)
    code = _STOP_CODE_NONE
    try:
        code = cfunc(w.cptr or _cpointer(task, w), *args)
    finally:
        if mine:
            exc_type = _wait_left(w, code == _INTERRUPTED)
    if mine and exc_type is not None:
        return _lazy_instance(exc_type, task)
    if code != _STOP_CODE_NONE:
        return _lazy_cancellation(task, code)
    return code


def wait_fd_code(task, fd, condition, usec):
    """Task.wait_fd() through _c_wait_fd_code: the conditions ``fd``
    satisfies (0 on a timeout), an int; raises the task's cancellation on
    a stop, the G_IO_ERROR if polling failed."""
    out = c_uint()
    errp = _c_void_p()
    r = wait_code(task, _c_wait_fd_code, c_int(fd), c_uint(condition), c_int64(usec),
                  _byref(out), _byref(errp))
    if r.__class__ is not int:
        if errp.value:
            _g_error_free(errp)
        raise r from None
    if errp.value:
        error = _take_error(errp)
        if is_stop_requested(task):
            raise _lazy_cancellation(task, _c_get_stop_code(_cpointer(task, worker(task)))) \
                from None
        raise error
    return out.value


def check_slow(task):
    """Task.check() once its stop word is set (stopped or paused): the
    exception to raise, or None. Once a stop was requested the library's
    check() returns at once: called keeping the GIL (the woken worker does
    not hand it away on its way to raising); paused, it blocks: called
    releasing it."""
    if _c_get_stop_code is not None and is_stop_requested(task):
        r = wait_code(task, _c_get_stop_code)
    elif _c_check_held is not None and is_stop_requested(task):
        r = wait_c(task, _c_check_held)
    elif _c_check is not None:
        r = wait_c(task, _c_check)
    else:
        try:
            wait(task, Killable.Task.check)
        except BaseException as e:
            return e
        return None
    return None if r.__class__ is int else r


def raise_outcome(task):
    """Raise what join() raises for a task that ended; return if it
    succeeded. The outcome counts as read."""
    state = task.get_state()
    w = task.__dict__.get('_killable_worker')
    if w is not None:
        w.consumed = True
        if type(w) is _UnreadFailure:
            w.__class__ = _Worker
    if state == _State.SUCCEEDED:
        return
    error = task.get_error()
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
        _set_error(exc, error)
        raise exc.with_traceback(w.exc_tb)
    raise _cancellation(error, cls) from None


def _interrupt_py(task, exc):
    """Task.interrupt() (interrupt(): the helper's, or this one), ``exc``
    an exception class or None (TaskInterrupted): the C call (the stop, the descendants, EINTR for a
    worker that opted in), then the exception, sent from here at once when
    the worker runs the user's bytecode: it lands as soon as the worker
    gets the GIL, after the stop, without waiting for anything. (The C call
    keeps the GIL: the worker is paused until this returns.)"""
    exc_type = check_exc_type(exc, TaskInterrupted)
    w = task.__dict__.get('_killable_worker') or worker(task)
    if _c_interrupt_self_default is not None and type(task).do_interrupt is do_interrupt:
        # The task's own vfunc is do_interrupt(): the library runs the
        # default handler in its place and returns whether the vfunc would
        # have run; its Python part is done here, without the way from C
        # back into Python. (A single store: the vfunc that another
        # thread's interrupt of an ancestor may run reads it.)
        w.interrupt_type = exc_type
        if _c_interrupt_self_default(w.cptr or _cpointer(task, w)):
            # try/finally rather than a with block: the same, with fewer
            # instructions.
            lock = w.lock
            lock.acquire()
            try:
                if not _send_first_locked(w, exc_type):
                    _request_locked(w, exc_type)
            finally:
                lock.release()
        if w.pending is not None:
            raise_self_pending()
        return
    with w.lock:
        w.interrupt_type = exc_type
        w.direct += 1
    try:
        if _c_interrupt is not None:
            _c_interrupt(w.ptr or _pointer(task, w))
        else:
            Killable.Task.interrupt(task)
    finally:
        with w.lock:
            w.direct -= 1
            # What the interrupt vfunc left to this call (or to another
            # interrupt() in its C call meanwhile: whichever comes first).
            if w.async_state == _ASYNC_SCHEDULED and not _send_locked(w, False):
                _sender.schedule(w)
    if w.pending is not None:
        raise_self_pending()

# }}}


# Hot calls {{{
#
# check(), stopped() and is_stop_requested() run in every step of a
# worker's loop; set_progress() and set_status() often as well. An
# introspected call releases the GIL and takes it back: a worker doing that
# every millisecond keeps the owner's main loop (which waits for the GIL)
# from running, because CPython forces a switch only after a waiter went a
# whole switch interval (5 ms) without any hand-over. So:
#
# - the stop is read through ctypes.PyDLL, which keeps the GIL: the
#   library's stop word if it exports killable_task_get_stop_flag() (a
#   load, no call), else killable_task_is_stop_requested() (an atomic load
#   in C; it takes no lock, so holding the GIL over it cannot deadlock);
# - progress and status set by the worker are kept in Python and published
#   (through introspection, releasing the GIL) at most every
#   _PUBLISH_EVERY; what is left is published by the worker before it
#   waits (sleep(), wait_fd(), a blocking check()) and when run() ends, or
#   by a helper thread _PUBLISH_LATE after it was set.

_PUBLISH_EVERY = 0.010
_PUBLISH_LATE = 0.050
_HAND_OVER = 0.00005
# Not the patched time.sleep() (patch_blocking_calls()), which would raise.
_time_sleep = time.sleep
_MISSING = object()


def _load_library():
    """The library GI already loaded, through ctypes.PyDLL (its calls keep
    the GIL), or None. dlopen() of the soname finds the loaded copy
    wherever it came from."""
    try:
        lib = ctypes.PyDLL('libkillable-1.so.0')
        is_requested = lib.killable_task_is_stop_requested
    except (OSError, AttributeError):
        return None, None, None
    is_requested.restype = ctypes.c_int
    is_requested.argtypes = [ctypes.c_void_p]
    get_flag = getattr(lib, 'killable_task_get_stop_flag', None)
    if get_flag is not None:
        get_flag.restype = ctypes.c_void_p
        get_flag.argtypes = [ctypes.c_void_p]
    return lib, is_requested, get_flag


_lib, _c_is_stop_requested, _c_get_stop_flag = _load_library()

# interrupt() keeps the GIL too: handing it away and waiting to get it back
# while N workers run Python code costs about N/2 switch intervals (any
# waiting thread may win it), so interrupting N busy workers one by one was
# quadratic. killable_task_interrupt() runs the stop callbacks and the
# interrupt vfuncs (Python code, fine: this thread holds the GIL) and takes
# the library's locks only around code that calls no binding (the library
# keeps that rule, see killable-owner.c), so holding the GIL over it cannot
# deadlock.
_c_interrupt = None
_c_get_interrupt_syscalls = None
if _lib is not None:
    try:
        _c_interrupt = _lib.killable_task_interrupt
        _c_interrupt.restype = None
        _c_interrupt.argtypes = [ctypes.c_void_p]
        _c_get_interrupt_syscalls = _lib.killable_task_get_interrupt_syscalls
        _c_get_interrupt_syscalls.restype = ctypes.c_int
        _c_get_interrupt_syscalls.argtypes = [ctypes.c_void_p]
    except AttributeError:
        _c_interrupt = _c_get_interrupt_syscalls = None

# killable_task_interrupt() for a task whose interrupt vfunc is
# do_interrupt(): the library runs the default handler (EINTR for a worker
# that opted in) in place of the vfunc and returns whether the vfunc would
# have run; interrupt() then does do_interrupt()'s own part. Not API (in no
# header, not in the typelib): a library without it takes the usual path.
_c_interrupt_self_default = None
if _c_interrupt is not None:
    try:
        _c_interrupt_self_default = _lib._killable_task_interrupt_self_default
        _c_interrupt_self_default.restype = ctypes.c_int
        # (No argtypes: called with the task's c_void_p.)
    except AttributeError:
        _c_interrupt_self_default = None

# join() and the override's other waits on the end hand the GIL away only
# once, in the wait itself: killable_task_get_state() and
# killable_task_get_current() are atomic loads or a thread-local read
# (through the PyDLL: no GIL round trip), killable_task_wait() goes through
# a CDLL (the GIL released, as introspection would, with less marshalling
# in front of it).
_c_get_state = _c_get_current = _c_wait = None
if _lib is not None:
    try:
        _c_get_state = _lib.killable_task_get_state
        _c_get_state.restype = ctypes.c_int
        _c_get_state.argtypes = [ctypes.c_void_p]
        _c_get_current = _lib.killable_task_get_current
        _c_get_current.restype = ctypes.c_void_p
        _c_get_current.argtypes = []
        _c_wait = ctypes.CDLL(_lib._name).killable_task_wait
        _c_wait.restype = ctypes.c_int
        _c_wait.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    except AttributeError:
        _c_get_state = _c_get_current = _c_wait = None

_PENDING = int(_State.PENDING)

# The worker's waits {{{
#
# Task.sleep(), check() (once stopped or paused) and wait_fd() call the
# library through a CDLL (the GIL released around the call, as
# introspection does) and read the GError themselves: a stopped wait then
# raises its TaskCancelled without PyGObject's marshalling and without a
# GLib.Error raised and caught on the way (wait_c()). The stop() of the
# owner goes the same way.


class _GError(ctypes.Structure):
    _fields_ = [('domain', ctypes.c_uint32), ('code', ctypes.c_int),
                ('message', ctypes.c_char_p)]


_c_void_p = ctypes.c_void_p
c_int64 = ctypes.c_int64
c_int = ctypes.c_int
c_uint = ctypes.c_uint
_byref = ctypes.byref

_c_sleep = _c_check = _c_check_held = _c_wait_fd = _c_stop = None
_g_error_free = _g_quark_to_string = None
if _lib is not None:
    try:
        _glib = ctypes.PyDLL('libglib-2.0.so.0')
        _g_error_free = _glib.g_error_free
        # No argtypes here and below: the callers pass ctypes objects (a
        # call then converts nothing through Python code).
        _g_error_free.restype = None
        _g_quark_to_string = _glib.g_quark_to_string
        _g_quark_to_string.restype = ctypes.c_char_p
        _g_quark_to_string.argtypes = [ctypes.c_uint32]
        _cdll = ctypes.CDLL(_lib._name)
        _c_sleep = _cdll.killable_task_sleep
        _c_sleep.restype = ctypes.c_int
        _c_check = _cdll.killable_task_check
        _c_check.restype = ctypes.c_int
        _c_check_held = _lib.killable_task_check   # the PyDLL: keeps the GIL
        _c_check_held.restype = ctypes.c_int
        _c_wait_fd = _cdll.killable_task_wait_fd
        _c_wait_fd.restype = ctypes.c_uint
        _c_stop = _cdll.killable_task_stop
        _c_stop.restype = None
        _c_stop.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        _c_sleep = _c_check = _c_check_held = _c_wait_fd = _c_stop = None

_KILLABLE_QUARK = int(_KILLABLE_ERROR)

# The same waits returning the code of the stop's cause, not a GError:
# the exception a stopped wait raises builds its error when read (see
# TaskCancelled). Not API (in no header, not in the typelib): without
# them, the waits above.
_STOP_CODE_NONE = -1            # the wait ended without a stop
_INTERRUPTED = int(Killable.Error.INTERRUPTED)
_c_get_stop_code = _c_sleep_code = _c_wait_fd_code = None
if _c_sleep is not None:
    try:
        # The PyDLL: it keeps the GIL (a load, no lock).
        _c_get_stop_code = _lib._killable_task_get_stop_code
        _c_get_stop_code.restype = ctypes.c_int
        _c_sleep_code = _cdll._killable_task_sleep_code
        _c_sleep_code.restype = ctypes.c_int
        _c_wait_fd_code = _cdll._killable_task_wait_fd_code
        _c_wait_fd_code.restype = ctypes.c_int
    except AttributeError:
        _c_get_stop_code = _c_sleep_code = _c_wait_fd_code = None


def _take_error(errp):
    """The GLib.Error of the GError ``errp`` (a c_void_p) points to, which
    is freed (what PyGObject would have built)."""
    e = _GError.from_address(errp.value)
    if e.domain == _KILLABLE_QUARK:
        domain = _KILLABLE_DOMAIN
    else:
        domain = (_g_quark_to_string(e.domain) or b'').decode('utf-8', 'replace')
    message = e.message
    message = '' if message is None else message.decode('utf-8', 'replace')
    # GLib.Error(message, domain, code) without running its __init__ (a
    # Python frame): the same object.
    error = _GLibError.__new__(_GLibError, message)
    error.message = message
    error.domain = domain
    error.code = e.code
    _g_error_free(errp)
    return error


_GLibError = GLib.Error


def stop(task):
    """Task.stop(): killable_task_stop() through the CDLL (less
    marshalling than introspection; the GIL released the same way)."""
    if _c_stop is None:
        Killable.Task.stop(task)
        return
    w = task.__dict__.get('_killable_worker') or worker(task)
    _c_stop(w.cptr or _cpointer(task, w))

# }}}


def _join_py(task, deadline, slice_seconds):
    """Task.join()'s wait (join(): the helper's, or this one): RuntimeError before the start or in the task's
    own worker; then waits in slices of ``slice_seconds`` (so that signal
    handlers and asynchronous exceptions get a chance), until the task
    ended (returns True) or the monotonic ``deadline``, if not None,
    passed (returns False). The GIL is handed away only in the waits."""
    w = task.__dict__.get('_killable_worker') or worker(task)
    if _c_wait is None:
        if task.get_state() == _State.PENDING:
            raise RuntimeError("cannot join task %r before it is started" % task.get_name())
        if Killable.Task.get_current() is task:
            raise RuntimeError("a task cannot join itself")
        wait = Killable.Task.wait
    else:
        cptr = w.cptr or _cpointer(task, w)
        # A task whose work started (w.ident is set then, and kept) is not
        # pending: no call to ask.
        if w.ident is None and _c_get_state(cptr) == _PENDING:
            raise RuntimeError("cannot join task %r before it is started" % task.get_name())
        # The main thread is never a task's worker: no call to ask.
        if _get_ident() != _main_ident and _c_get_current() == w.ptr:
            raise RuntimeError("a task cannot join itself")
        task = cptr
        wait = _c_wait
    usec = int(slice_seconds * 1e6)
    while True:
        if deadline is not None:
            usec = int(min(slice_seconds, max(deadline - time.monotonic(), 0)) * 1e6)
        if wait(task, usec):
            return True
        raise_self_pending()
        if deadline is not None and time.monotonic() >= deadline:
            return False


# The main thread's ident (never a task's worker); None in a child after
# fork() (its main thread is the thread that forked, maybe a worker).
_main_ident = threading.main_thread().ident


def _forget_main_ident():
    global _main_ident
    _main_ident = None


os.register_at_fork(after_in_child=_forget_main_ident)


_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ('PyCapsule_GetPointer', ctypes.pythonapi))


def _pointer(task, w):
    """The task's KillableTask * (its wrapper keeps it alive)."""
    ptr = w.ptr
    if ptr is None:
        ptr = _capsule_pointer(task.__gpointer__, None)
        w.cptr = ctypes.c_void_p(ptr)
        if _c_get_stop_flag is not None:
            w.flag = ctypes.c_int.from_address(_c_get_stop_flag(w.cptr))
        w.ptr = ptr
    return ptr


def _cpointer(task, w):
    """The task's KillableTask * as a ctypes.c_void_p."""
    cptr = w.cptr
    if cptr is None:
        _pointer(task, w)
        cptr = w.cptr
    return cptr


def is_stop_requested(task):
    """Killable.Task.is_stop_requested() without releasing the GIL."""
    if _c_is_stop_requested is None:
        return Killable.Task.is_stop_requested(task)
    w = task.__dict__.get('_killable_worker') or worker(task)
    ptr = w.ptr or _pointer(task, w)
    flag = w.flag
    if flag is not None and not flag.value:
        return False
    return bool(_c_is_stop_requested(ptr))


def slow_path_wanted(task):
    """Whether check() must call into the library: a stop was requested
    (or, with the stop word, the task is paused)."""
    if _c_is_stop_requested is None:
        return Killable.Task.is_stop_requested(task)
    w = task.__dict__.get('_killable_worker') or worker(task)
    ptr = w.ptr or _pointer(task, w)
    flag = w.flag
    if flag is not None:
        return flag.value != 0
    return bool(_c_is_stop_requested(ptr))


def set_report(task, key, value):
    """set_progress() (key 'progress') and set_status() ('status'): from
    the worker's own thread, coalesced; from any other thread, at once."""
    w = task.__dict__.get('_killable_worker') or worker(task)
    if w.tid != threading.get_ident():
        with w.publish_lock:
            # Whatever the worker left is older than this value.
            w.report.pop(key, None)
            _publish_one(task, key, value)
        return
    w.report[key] = value
    now = time.monotonic()
    if now - w.published >= _PUBLISH_EVERY:
        publish_report(task, w, now)
        # Hand the GIL over for a moment: the owner's notify handler needs
        # it, and a thread waiting for it (the owner's main loop) mostly
        # loses the race for the GIL that the publication's call released
        # (its wake-up takes longer than this thread's retake), and that
        # retake restarts its switch interval: it then waited two switch
        # intervals per publication (bench-python-ui.py: median gap x2.0 of
        # the Event worker's, x0.85-x0.99 with this). At most once per
        # _PUBLISH_EVERY: 0.5 % of a busy worker's time.
        _time_sleep(_HAND_OVER)
    elif not w.flush_armed:
        w.flush_armed = True
        _flusher.schedule(task, w, now + _PUBLISH_LATE)


def _publish_one(task, key, value):
    if key == 'progress':
        Killable.Task.set_progress(task, value)
    else:
        Killable.Task.set_status(task, value)


def publish_report(task, w=None, now=None, final=False):
    """Publish what set_report() kept. Any thread. With final, also wait
    for a publication in progress on another thread (the flusher pops a
    value, then publishes it: an empty report does not mean published)."""
    if w is None:
        w = task.__dict__.get('_killable_worker')
        if w is None:
            return
    if not w.report and not final:
        return
    with w.publish_lock:
        w.published = time.monotonic() if now is None else now
        # pop(): one step under the GIL, so that a value the worker sets
        # meanwhile is kept for the next publication, never lost.
        for key in ('progress', 'status'):
            value = w.report.pop(key, _MISSING)
            if value is not _MISSING:
                _publish_one(task, key, value)


class _Flusher(_DueQueue):
    """A daemon thread that publishes what workers left unpublished."""

    thread_name = 'killable-progress'

    def schedule(self, task, w, due):
        self._push((due, task, w))

    def _main(self):
        while True:
            _, due = self._wait_due(take=True)
            for _, task, w in due:
                w.flush_armed = False
                try:
                    publish_report(task, w)
                except BaseException:  # never let this thread die
                    pass
            del due, task, w


_flusher = _Flusher()
os.register_at_fork(after_in_child=_flusher._reset)

# }}}


# Shields {{{

# killable_task_shield_begin()/end() (libkillable 1.2) through the PyDLL:
# they take the task's lock briefly and call no binding, so the GIL is kept.
_c_shield_begin = _c_shield_end = None
if _lib is not None:
    try:
        _c_shield_begin = _lib.killable_task_shield_begin
        _c_shield_begin.restype = None
        _c_shield_begin.argtypes = [ctypes.c_void_p]
        _c_shield_end = _lib.killable_task_shield_end
        _c_shield_end.restype = ctypes.c_int
        _c_shield_end.argtypes = [ctypes.c_void_p]
    except AttributeError:
        _c_shield_begin = _c_shield_end = None


def _shield_c(task, w, begin):
    """The library's shield: the interrupt signal held back (begin), or
    sent if it was (end). Nothing with a library older than 1.2."""
    if _c_shield_begin is not None:
        ptr = w.ptr or _pointer(task, w)
        if begin:
            _c_shield_begin(ptr)
        else:
            _c_shield_end(ptr)
    elif hasattr(Killable.Task, 'shield_begin'):
        if begin:
            Killable.Task.shield_begin(task)
        else:
            Killable.Task.shield_end(task)


class Shield(object):
    """``with Killable.shield():`` (see Killable.shield())."""

    __slots__ = ('_task', '_w')

    def __init__(self):
        self._task = None
        self._w = None

    def __enter__(self):
        task = Killable.Task.get_current()
        if task is None:
            return self
        w = worker(task)
        if w.tid != threading.get_ident():
            return self
        with w.lock:
            # An exception sent but not landed yet: revoked, and raised
            # when the shield ends instead (it may also land before this
            # line: then the block does not run).
            if w.async_state == _ASYNC_SENT:
                _clear_async_exc(w.tid, None)
                w.pending = w.async_type
                w.async_state = _ASYNC_DONE
            w.shield += 1
            outermost = w.shield == 1
            self._task = task
            self._w = w
        if outermost:
            # The interrupt signal (EINTR) is held back too.
            _shield_c(task, w, True)
        return self

    def __exit__(self, exc_type, exc, tb):
        w = self._w
        if w is None:
            return False
        task = self._task
        self._w = self._task = None
        with w.lock:
            w.shield -= 1
            outermost = not w.shield
            pending = None
            if outermost and w.pending is not None:
                pending, w.pending = w.pending, None
        if outermost:
            _shield_c(task, w, False)
        if pending is not None:
            raise _instantiate(pending, _stop_reason(task))
        return False

# }}}


# The compiled helper's interrupt() and join() {{{
#
# They need the library's functions that the pure-Python path calls
# through ctypes; given by address (the copy of libkillable GI loaded).

def _setup_helper(interrupt_self_default):
    """Give the helper this module's globals and the library's functions
    (tests pass a ctypes function of their own in place of
    _c_interrupt_self_default)."""
    _helper.setup(globals(),
                  ctypes.cast(interrupt_self_default, ctypes.c_void_p).value,
                  ctypes.cast(_c_wait, ctypes.c_void_p).value,
                  ctypes.cast(_c_get_current, ctypes.c_void_p).value)


interrupt = _interrupt_py
join = _join_py
if (_helper is not None and _c_interrupt_self_default is not None and
        _c_wait is not None and _c_get_current is not None):
    _setup_helper(_c_interrupt_self_default)
    interrupt = _helper.interrupt
    join = _helper.join


def install_task_methods(cls, join_slice):
    """Gives ``cls`` (the override's Task) its interrupt() and join() in C
    when the helper is in use (the same behaviour, without a Python frame
    on the way); else ``cls`` keeps its Python ones."""
    if _helper is not None and interrupt is _helper.interrupt:
        _helper.install_methods(cls, join_slice)

# }}}
