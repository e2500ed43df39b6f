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
- on a ``threading.Condition`` (so ``Event.wait()``, ``queue.Queue``) and
  a ``threading.Lock`` created after the patch, the worker's waiter is an
  fd of its own (an eventfd) that notify() or release() makes readable: it
  waits on it with ``Task.wait_fd()``, which the stop wakes directly (no
  stop callback, no Python code run by the stopping thread).

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
import sys
import threading
import time
import _thread

from . import _killable

_RUNNING = _killable.RUNNING
_TaskCancelled = _killable.TaskCancelled
_patch_lock = threading.Lock()
_patched = False


def _current():
    """The task whose work runs on this thread, or None (a dict lookup)."""
    return _RUNNING.get(_thread.get_ident())


class _Held(object):
    """The fds a worker's patched waits keep for the time of the work
    (_Worker.patch), closed by _killable._run() when the work ended: the
    task's cancellable's fd, the worker's waiter fd (read end, write end),
    and the children of cancelled subprocess waits (_Child), killed and
    reaped when the work ends rather than on the cancellation's way."""

    __slots__ = ('cancel', 'notify', 'later')

    def __init__(self):
        self.cancel = None   # (cancellable, its fd)
        self.notify = None   # (read fd, write fd): one eventfd, or a pipe
        self.later = []

    def close(self):
        if self.cancel is not None:
            self.cancel[0].release_fd()
        if self.notify is not None:
            rfd, wfd = self.notify
            os.close(rfd)
            if wfd != rfd:
                os.close(wfd)
        for item in self.later:
            if item.__class__ is _Child:
                item.end()
            else:
                try:
                    os.close(item)
                except OSError:
                    pass


def _held(task):
    w = _killable.worker(task)
    held = w.patch
    if held is None:
        held = w.patch = _Held()
    return held


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
    held = _held(task)
    cancel = held.cancel
    if cancel is None:
        cancellable = task.get_cancellable()
        cancel = held.cancel = (cancellable, cancellable.get_fd())
    return cancel[1]


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
        cfd = _cancel_fd(task)
        inner = self.__dict__.get('_selector')
        event = getattr(self, '_EVENT_READ', None)
        if inner is not None and event is not None:
            # A poll-like selector (poll, epoll, devpoll): the fd goes to
            # the system object only, not to the selector's map, whose
            # select() then skips it (no key) - no SelectorKey, no
            # filtering on the way out.
            inner.register(cfd, event)
            try:
                return _blocking(task, original, self, timeout)
            finally:
                inner.unregister(cfd)
        readers = self.__dict__.get('_readers')
        if readers.__class__ is set:
            # SelectSelector: the same, through its set of readers.
            readers.add(cfd)
            try:
                return _blocking(task, original, self, timeout)
            finally:
                readers.discard(cfd)
        key = self.register(cfd, selectors.EVENT_READ, _cancel_fd)
        try:
            ready = _blocking(task, original, self, timeout)
        finally:
            self.unregister(key.fd)
        return [(k, ev) for k, ev in ready if k is not key]
    return select_

# }}}


# socket {{{

def _wait_fd(task, fd, condition, timeout):
    """Task.wait_fd(): the conditions ``fd`` satisfies, as an int (0 on a
    timeout); raises the task's cancellation on a stop. ``condition`` is
    an int, ``timeout`` seconds or None."""
    if _killable._c_wait_fd_code is None:
        return int(task.wait_fd(fd, condition, timeout))
    usec = -1 if timeout is None else max(int(timeout * 1e6), 0)
    return _killable.wait_fd_code(task, fd, condition, usec)


def _sock_wait(task, sock, condition):
    """Wait until ``sock`` is ready for ``condition`` within its timeout;
    raise socket.timeout after it, the cancellation on a stop."""
    timeout = sock.gettimeout()
    if timeout == 0.0:
        return
    if not _wait_fd(task, sock.fileno(), condition, timeout):
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

_ONE = (1).to_bytes(8, sys.byteorder)


def _notify_fds(task):
    """The worker's waiter fd (read end, write end): an eventfd (a pipe
    without one), non-blocking, created at the first wait that needs it,
    closed when the work ends. Empty between waits."""
    held = _held(task)
    fds = held.notify
    if fds is None:
        if hasattr(os, 'eventfd'):
            fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            fds = (fd, fd)
        else:
            fds = os.pipe()
            for fd in fds:
                os.set_blocking(fd, False)
        held.notify = fds
    return fds


def _drain(rfd):
    try:
        os.read(rfd, 512)
    except BlockingIOError:
        pass


class _FdWaiter(object):
    """What a worker's patched wait puts in the waiters of a Condition or
    a Lock: release() (called by notify(), Lock.release()) makes the
    worker's waiter fd readable. Its writer holds the lock that the worker
    takes before it leaves (the Condition's, the Lock's _wlock), so that
    no write comes after the worker left: ``released`` then says whether
    one came, and the fd is emptied only then."""

    __slots__ = ('fd', 'released')

    def __init__(self, fd):
        self.fd = fd
        self.released = False

    def release(self):
        self.released = True
        os.write(self.fd, _ONE)


def _condition_wait(original):
    @functools.wraps(original)
    def wait(self, timeout=None):
        task = _current()
        if task is None:
            return original(self, timeout)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        rfd, wfd = _notify_fds(task)
        waiter = _FdWaiter(wfd)
        self._waiters.append(waiter)
        saved = self._release_save()
        got = False
        try:
            got = _wait_fd(task, rfd, _IN, timeout) != 0
            return got
        finally:
            # notify() runs under the Condition's lock: once it is taken
            # again, no release() of this waiter is to come.
            self._acquire_restore(saved)
            if not got:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            if waiter.released:
                _drain(rfd)
    return wait


class _Lock(object):
    """threading.Lock() after the patch: a lock whose blocking acquire()
    inside a task's work returns on a stop, raising its cancellation.

    Outside task workers it is the C lock it wraps. A task's worker that
    must wait registers a waiter (see _FdWaiter) and waits on its fd with
    Task.wait_fd(): release() makes the fds of the waiters readable, the
    stop wakes the wait itself; the woken worker tries the lock again."""

    __slots__ = ('_lock', '_waiters', '_wlock', '__weakref__')

    def __init__(self):
        self._lock = _thread.allocate_lock()
        self._waiters = []
        # Guards _waiters and the writes to their fds (held briefly, never
        # over a wait).
        self._wlock = _thread.allocate_lock()

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
        rfd, wfd = _notify_fds(task)
        waiter = _FdWaiter(wfd)
        # Registered before the next try: a release after it writes to the
        # waiter, so that no wake-up is lost.
        with self._wlock:
            self._waiters.append(waiter)
        try:
            while True:
                if self._lock.acquire(False):
                    return True
                left = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                if _wait_fd(task, rfd, _IN, left):
                    with self._wlock:
                        waiter.released = False
                        _drain(rfd)
        finally:
            with self._wlock:
                self._waiters.remove(waiter)
            if waiter.released:
                _drain(rfd)

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()

    def release(self):
        self._lock.release()
        if self._waiters:
            # Each woken worker tries again; the others wait on.
            with self._wlock:
                for waiter in self._waiters:
                    waiter.release()

    def locked(self):
        return self._lock.locked()

    def _at_fork_reinit(self):
        self._lock._at_fork_reinit()
        self._wlock._at_fork_reinit()
        self._waiters = []

    def __repr__(self):
        return '<%s %s Killable lock>' % ('locked' if self.locked() else 'unlocked',
                                          type(self).__name__)

# }}}


# subprocess {{{

_pidfd_open = getattr(os, 'pidfd_open', None)
_pidfd_send_signal = getattr(signal, 'pidfd_send_signal', None)
if _pidfd_send_signal is None:
    _pidfd_open = None

# How long the end of a work waits for a child it killed to die, in ms:
# then it is reaped (else left to subprocess, as any Popen not waited for).
_REAP_MS = 1000
_unpatched_sleep = time.sleep


class _Child(object):
    """A child a worker's patched wait waits for, and its pidfd (or None)."""

    __slots__ = ('popen', 'fd')

    def __init__(self, task, popen):
        self.popen = popen
        self.fd = None
        if _pidfd_open is None:
            return
        try:
            self.fd = _pidfd_open(popen.pid)
        except OSError:
            pass

    def kill(self, task):
        """On the cancellation: nothing is sent on its way. The child is
        killed when the work ends (end(), from _Held.close()): a SIGKILL
        sent while the worker wakes (by the stopping thread, or by the
        worker) wakes the child on one of the machine's CPUs at the same
        moment and delays the worker's way to its except (~20 us on 2
        vCPUs: bench-python-patched.py's Popen rows x1.8-2.8 of Task.sleep
        with the stopping thread's SIGKILL, x1.2-2.1 with the kill at the
        end of the work, 3x25 runs interleaved in one process)."""
        later = _Child.__new__(_Child)
        later.popen = self.popen
        later.fd, self.fd = self.fd, None
        _held(task).later.append(later)

    def kill_if_cancelled(self, task, exc):
        """kill() when ``exc``, which ended a wait for the child, is the
        task's cancellation (or an interrupt's exception), as
        subprocess.run() kills its child on an exception. (The class
        first: one C call less on the cancellation's way.)"""
        if isinstance(exc, _TaskCancelled) or _killable.is_stop_requested(task):
            self.kill(task)

    def end(self):
        """The end of the work: SIGKILL the child, wait (at most _REAP_MS)
        for it to die and reap it (the Popen's returncode is set)."""
        fd = self.fd
        popen = self.popen
        self.fd = None
        try:
            if popen.returncode is None:
                if fd is not None:
                    _pidfd_send_signal(fd, signal.SIGKILL)
                    p = select.poll()
                    p.register(fd, select.POLLIN)
                    p.poll(_REAP_MS)
                else:
                    # The PID is still the child's (a zombie's at worst)
                    # until Popen reaps it, which sets the return code.
                    os.kill(popen.pid, signal.SIGKILL)
                    for _ in range(_REAP_MS):
                        if popen.poll() is not None:
                            break
                        _unpatched_sleep(0.001)
                popen.poll()
        except OSError:
            pass
        finally:
            if fd is not None:
                os.close(fd)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _popen_wait(original):
    @functools.wraps(original)
    def wait(self, timeout=None):
        task = _current()
        if task is None or self.returncode is not None:
            return original(self, timeout)
        child = _Child(task, self)
        deadline = _deadline(timeout)
        try:
            # (Not the subprocess module's own _wait() loops: the pidfd,
            # readable once the child ended, waited on with the stop.)
            while self.poll() is None:
                if child.fd is not None:
                    ready = _wait_fd(task, child.fd, _IN, _remaining(deadline))
                else:
                    task.sleep(min(0.005, _remaining(deadline) if deadline else 0.005))
                    ready = True
                if not ready and deadline is not None and time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(self.args, timeout)
            # The child may have ended as the stop came (on its own, or
            # killed by someone): the wait raises all the same, as the
            # other patched waits do when a stop came.
            _raise_if_stopped(task)
        except BaseException as e:
            # Killed when the work ends (see _Child.kill()).
            child.kill_if_cancelled(task, e)
            raise
        finally:
            child.close()
        return self.returncode
    return wait


def _raise_if_stopped(task):
    if _killable.is_stop_requested(task):
        exc = _killable.check_slow(task)
        if exc is not None:
            raise exc


def _read_to_end(task, f):
    """What ``f.read()`` of a binary pipe returns, read as it becomes
    readable (Task.wait_fd()); then ``f`` is closed."""
    fd = f.fileno()
    read = getattr(f, 'read1', None) or f.read   # (raw with bufsize=0)
    chunks = []
    while True:
        _wait_fd(task, fd, _IN, None)
        data = read(65536)
        if data is None:      # a non-blocking fd, not ready after all
            continue
        if not data:
            break
        chunks.append(data)
    f.close()
    return b''.join(chunks)


def _popen_communicate(original):
    @functools.wraps(original)
    def communicate(self, input=None, timeout=None):
        task = _current()
        if task is None:
            return original(self, input, timeout)
        child = _Child(task, self) if self.returncode is None else None
        try:
            if timeout is None and input is None and self.stdin is None and \
                    not self._communication_started and not self.text_mode and \
                    (self.stdout is None) != (self.stderr is None):
                # communicate()'s own shortcut for one pipe (a read to the
                # end, then wait()), made of waits the stop wakes.
                if self.stdout is not None:
                    out = _read_to_end(task, self.stdout), None
                else:
                    out = None, _read_to_end(task, self.stderr)
                # (The output may end as the stop comes.)
                _raise_if_stopped(task)
            elif timeout is not None:
                return original(self, input, timeout)
            else:
                # With a timeout, communicate() always waits through a
                # selector (patched); without, it may block in a read.
                while True:
                    try:
                        return original(self, input, 86400)
                    except subprocess.TimeoutExpired:
                        input = None   # it goes on where it was
        except BaseException as e:
            if child is not None:
                child.kill_if_cancelled(task, e)
            raise
        finally:
            if child is not None:
                child.close()
        self.wait()
        return out
    return communicate

# }}}


def patch_blocking_calls():
    global _patched, _IN, _OUT
    with _patch_lock:
        if _patched:
            return
        _patched = True
    from gi.repository import GLib
    _IN = int(GLib.IOCondition.IN)
    _OUT = int(GLib.IOCondition.OUT)

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
