# _killable_patch.py: Killable.patch_blocking_calls()
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""Private to ``gi.overrides.Killable``: make the standard library's
blocking calls return at once on a stop or an interrupt when they are made
inside a task's work (the way gevent's ``monkey.patch_all()`` makes them
cooperative). Outside task workers the patched calls do what they did.

Inside a worker, each patched call waits on what it waited for and on the
task's stop at once:

- on file descriptors (``select``, ``selectors``, sockets, a child's pidfd)
  it adds the fd of the task's ``GCancellable`` (cancelled by every stop) or
  uses ``Task.wait_fd()``;
- on a ``threading.Condition`` (so ``Event.wait()``, ``queue.Queue``) a
  stop callback of the task releases the waiter;
- a ``threading.Lock`` created after the patch: a worker that must wait
  blocks on a waiter of its own, opened by release() or by the stop.

Then it raises the task's cancellation, as ``Task.check()`` does (the
exception of an interrupt, ``TaskStopped``, ...)."""

import errno
import functools
import os
import select
import selectors
import signal
import socket
import subprocess
import threading
import time
import _thread

from ..module import get_introspection_module
from . import _killable

Killable = get_introspection_module('Killable')

_RUNNING = _killable.RUNNING
_patch_lock = threading.Lock()
_patched = False


def _current():
    """The task whose work runs on this thread, or None (a dict lookup)."""
    return _RUNNING.get(_thread.get_ident())


def _blocking(task, func, *args):
    """Run ``func(*args)``, a wait the stop wakes, as the override's own
    waits do (an interrupt's exception is raised after it, never inside),
    then raise the task's cancellation if a stop came."""
    ret, exc = _killable.wait_woken(task, func, *args)
    if exc is not None:
        raise exc from None
    return ret


def _deadline(timeout):
    return None if timeout is None else time.monotonic() + max(timeout, 0)


def _remaining(deadline):
    return None if deadline is None else max(deadline - time.monotonic(), 0)


# time.sleep {{{

def _sleep(original):
    @functools.wraps(original)
    def sleep(seconds):
        task = _current()
        if task is None:
            return original(seconds)
        task.sleep(seconds)
    return sleep

# }}}


# select, selectors {{{

def _cancel_fd(task):
    """The fd of the task's cancellable, readable once a stop came: taken
    at the first patched wait of the work, released when the work ends (so
    that no wait pays a call into the library on its way out)."""
    w = _killable.worker(task)
    held = w.cancel_fd
    if held is None:
        cancellable = task.get_cancellable()
        held = w.cancel_fd = (cancellable, cancellable.get_fd())
    return held[1]


def _select(original):
    @functools.wraps(original)
    def select_(rlist, wlist, xlist, timeout=None):
        task = _current()
        if task is None:
            return original(rlist, wlist, xlist, timeout)
        cfd = _cancel_fd(task)
        r, w, x = _blocking(task, original, list(rlist) + [cfd], wlist, xlist, timeout)
        return [f for f in r if f is not cfd], w, x
    return select_


def _selector_select(original):
    @functools.wraps(original)
    def select_(self, timeout=None):
        task = _current()
        if task is None:
            return original(self, timeout)
        key = self.register(_cancel_fd(task), selectors.EVENT_READ, _cancel_fd)
        try:
            ready = _blocking(task, original, self, timeout)
        finally:
            self.unregister(key.fd)
        return [(k, ev) for k, ev in ready if k is not key]
    return select_

# }}}


# socket {{{

def _sock_wait(task, sock, condition):
    """Wait until ``sock`` is ready for ``condition`` within its timeout;
    raise socket.timeout after it, the cancellation on a stop."""
    timeout = sock.gettimeout()
    if timeout == 0.0:
        return
    ready = task.wait_fd(sock.fileno(), condition, timeout)
    if not ready:
        raise socket.timeout('timed out')


_IN = None
_OUT = None


def _sock_method(original, condition):
    @functools.wraps(original)
    def method(self, *args, **kwargs):
        task = _current()
        if task is not None and self.gettimeout() != 0.0:
            _sock_wait(task, self, condition())
        return original(self, *args, **kwargs)
    return method


def _sock_send(original):
    @functools.wraps(original)
    def send(self, data, flags=0):
        task = _current()
        if task is None or self.gettimeout() == 0.0:
            return original(self, data, flags)
        while True:
            _sock_wait(task, self, _OUT)
            try:
                # What fits now (a blocking send() could wait for more).
                return original(self, data, flags | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
    return send


def _sock_sendall(original_send, original_sendall):
    @functools.wraps(original_sendall)
    def sendall(self, data, flags=0):
        task = _current()
        if task is None or self.gettimeout() == 0.0:
            return original_sendall(self, data, flags)
        view = memoryview(data).cast('B')
        while view:
            _sock_wait(task, self, _OUT)
            try:
                # A blocking send() of a stream socket waits until all is
                # sent: send what fits now.
                n = original_send(self, view, flags | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            view = view[n:]
        return None
    return sendall


def _sock_connect(original, return_error):
    @functools.wraps(original)
    def connect(self, address):
        task = _current()
        if task is None or self.gettimeout() == 0.0:
            return original(self, address)
        timeout = self.gettimeout()
        self.settimeout(0.0)
        try:
            err = self.connect_ex(address)
            if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
                self.settimeout(timeout)
                _sock_wait(task, self, _OUT)
                err = self.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        finally:
            self.settimeout(timeout)
        if return_error:
            return err
        if err:
            raise OSError(err, os.strerror(err))
        return None
    return connect

# }}}


# threading {{{

def _stop_callback(task, func):
    """Call ``func()`` when the task is stopped (at once if it is). Returns
    the handle to remove it."""
    def on_stop(*args):
        try:
            func()
        except RuntimeError:  # already released
            pass
    return Killable.Task.add_stop_callback(task, on_stop)


def _condition_wait(original):
    @functools.wraps(original)
    def wait(self, timeout=None):
        task = _current()
        if task is None:
            return original(self, timeout)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        saved = self._release_save()
        got = False
        handle = _stop_callback(task, waiter.release)
        try:
            if timeout is None:
                got = _killable.wait(task, lambda t: waiter.acquire())
            else:
                got = _killable.wait(task, lambda t: waiter.acquire(True, max(timeout, 0)))
            return got
        finally:
            if handle:
                Killable.Task.remove_stop_callback(task, handle)
            self._acquire_restore(saved)
            if not got or _killable.is_stop_requested(task):
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            if _killable.is_stop_requested(task):
                task.check()
    return wait


class _Lock(object):
    """threading.Lock() after the patch: a lock whose blocking acquire()
    inside a task's work returns on a stop, raising its cancellation.

    Outside task workers it is the C lock it wraps. A task's worker that
    must wait registers a waiter (a C lock it holds, that it then blocks
    on): release() opens the waiters, and so does a stop callback of the
    task; the woken worker tries the lock again. A worker blocked here
    wakes on the stop itself, not after a polling slice."""

    __slots__ = ('_lock', '_waiters', '__weakref__')

    def __init__(self):
        self._lock = _thread.allocate_lock()
        self._waiters = []

    def acquire(self, blocking=True, timeout=-1):
        task = _current()
        if task is None or not blocking:
            return self._lock.acquire(blocking, timeout)
        if self._lock.acquire(False):
            return True
        if timeout is not None and timeout >= 0:
            deadline = time.monotonic() + timeout
        elif timeout == -1:
            deadline = None
        else:
            # What the C lock says about a bad timeout.
            return self._lock.acquire(blocking, timeout)
        waiter = _thread.allocate_lock()
        waiter.acquire()
        # Registered before the next try: a release after it opens the
        # waiter, so that no wake-up is lost.
        self._waiters.append(waiter)
        handle = _stop_callback(task, waiter.release)
        try:
            if _killable.WAIT_HOOK is not None:
                _killable.WAIT_HOOK(task)
            while True:
                if self._lock.acquire(False):
                    return True
                if _killable.is_stop_requested(task):
                    task.check()
                if deadline is None:
                    _killable.wait(task, lambda t: waiter.acquire())
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    _killable.wait(task, lambda t: waiter.acquire(True, left))
        finally:
            if handle:
                Killable.Task.remove_stop_callback(task, handle)
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()

    def release(self):
        self._lock.release()
        if self._waiters:
            # Each woken worker tries again; the others sleep on.
            for waiter in list(self._waiters):
                try:
                    waiter.release()
                except RuntimeError:   # already open
                    pass

    def locked(self):
        return self._lock.locked()

    def _at_fork_reinit(self):
        self._lock._at_fork_reinit()
        self._waiters = []

    def __repr__(self):
        return '<%s %s Killable lock>' % ('locked' if self.locked() else 'unlocked',
                                          type(self).__name__)

# }}}


# subprocess {{{

def _kill(popen, pidfd=None):
    """SIGKILL the child now, without waiting for it to die: the
    cancellation is not delayed by it. Through its pidfd when there is one,
    else with os.kill() while the Popen has no return code: one system
    call. (Popen.kill() also polls first, a waitpid() more. The PID cannot
    be recycled meanwhile: until Popen reaps the child, which sets the
    return code, the PID stays the child's, a zombie's at worst.) Reaped
    as any Popen is: by the next wait() or poll(), or, once the Popen
    object is gone, by subprocess itself (its list of children still to
    reap)."""
    try:
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        elif popen.returncode is None:
            os.kill(popen.pid, signal.SIGKILL)
    except (AttributeError, OSError):
        try:
            popen.kill()
        except OSError:
            pass


def _popen_wait(original):
    @functools.wraps(original)
    def wait(self, timeout=None):
        task = _current()
        if task is None or self.returncode is not None:
            return original(self, timeout)
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            fd = None
        try:
            deadline = _deadline(timeout)
            while self.poll() is None:
                if fd is not None:
                    left = _remaining(deadline)
                    ready = task.wait_fd(fd, _IN, left)
                else:
                    task.sleep(min(0.005, _remaining(deadline) if deadline else 0.005))
                    ready = True
                if not ready and deadline is not None and time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(self.args, timeout)
        except BaseException:
            if self.returncode is None and _killable.is_stop_requested(task):
                # As subprocess.run() does on an exception (which also
                # waits for the child to die: not here, see _kill()).
                _kill(self, fd)
            raise
        finally:
            if fd is not None:
                os.close(fd)
        return self.returncode
    return wait


def _popen_communicate(original):
    @functools.wraps(original)
    def communicate(self, input=None, timeout=None):
        task = _current()
        if task is None:
            return original(self, input, timeout)
        try:
            if timeout is not None:
                return original(self, input, timeout)
            # With a timeout, communicate() always waits through a
            # selector (patched); without, it may block in a read.
            while True:
                try:
                    return original(self, input, 86400)
                except subprocess.TimeoutExpired:
                    input = None   # it goes on where it was
        except _killable.TaskCancelled:
            if self.returncode is None:
                _kill(self)
            raise
    return communicate

# }}}


def patch_blocking_calls():
    global _patched, _IN, _OUT
    with _patch_lock:
        if _patched:
            return
        _patched = True
    from gi.repository import GLib
    _IN = GLib.IOCondition.IN
    _OUT = GLib.IOCondition.OUT

    time.sleep = _sleep(time.sleep)
    select.select = _select(select.select)
    # Every class of the module that defines select() (PollSelector
    # inherits it from a private base).
    classes = {id(c): c for c in vars(selectors).values() if isinstance(c, type)}
    for cls in classes.values():   # (by id: DefaultSelector is an alias)
        if issubclass(cls, selectors.BaseSelector) and \
                'select' in cls.__dict__ and cls is not selectors.BaseSelector:
            cls.select = _selector_select(cls.__dict__['select'])

    S = socket.socket
    for name in ('accept', 'recv', 'recv_into', 'recvfrom', 'recvfrom_into', 'recvmsg',
                 'recvmsg_into'):
        if hasattr(S, name):
            setattr(S, name, _sock_method(getattr(S, name), lambda: _IN))
    original_send = socket._socket.socket.send
    S.send = _sock_send(original_send)
    for name in ('sendto', 'sendmsg'):
        if hasattr(S, name):
            setattr(S, name, _sock_method(getattr(S, name), lambda: _OUT))
    S.sendall = _sock_sendall(original_send, S.sendall)
    S.connect = _sock_connect(S.connect, False)
    S.connect_ex = _sock_connect(S.connect_ex, True)

    threading.Condition.wait = _condition_wait(threading.Condition.wait)
    threading.Lock = _Lock

    subprocess.Popen.wait = _popen_wait(subprocess.Popen.wait)
    subprocess.Popen.communicate = _popen_communicate(subprocess.Popen.communicate)
