# killabletest.py: shared helpers of the Python tests
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""Helpers for the libkillable Python tests: main-loop waits with a failure
guard, and a unittest runner that speaks TAP to ``meson test``."""

import os
import sys
import threading
import time
import unittest

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Gio', '2.0')
gi.require_version('Killable', '1')

from gi.repository import GLib  # noqa: E402

# A failure guard, never a synchronisation: waits end as soon as what they
# wait for happened.
# Every in-test limit scales with the one factor the sanitizer and valgrind
# setups raise (tests/test-core-util.h reads the same variable).
try:
    GUARD_SECONDS = 20 * max(1.0, float(os.environ.get('KILLABLE_TEST_TIME_SCALE', '1')))
except ValueError:
    GUARD_SECONDS = 20

MAIN_THREAD = threading.get_ident()


def run_loop_until(predicate, timeout=GUARD_SECONDS, context=None):
    """Iterate ``context`` (the global default one by default) until
    ``predicate()`` holds; fail after ``timeout`` seconds."""
    if context is None:
        context = GLib.MainContext.default()
    timed_out = []

    def on_timeout(*args):
        timed_out.append(True)
        return GLib.SOURCE_REMOVE

    source = GLib.timeout_source_new(int(timeout * 1000))
    source.set_callback(on_timeout)
    source.attach(context)
    try:
        while not predicate():
            if timed_out:
                raise AssertionError("timed out after %s s waiting for %r"
                                     % (timeout, predicate))
            context.iteration(True)
    finally:
        source.destroy()


def start_sleeper(catch=BaseException):
    """Start a task whose worker sleeps an hour in ``Task.sleep``, and wait
    until it is about to. Returns ``(task, seen)``: ``seen`` collects what
    the worker caught of type ``catch``, which it re-raises."""
    from gi.repository import Killable

    running = threading.Event()
    seen = []
    tid = []

    def work():
        try:
            tid.append(threading.get_native_id())
            running.set()
            Killable.current_task().sleep(3600)
        except catch as e:
            seen.append(e)
            raise

    task = Killable.Task(target=work)
    task.start()
    if not running.wait(GUARD_SECONDS):
        raise AssertionError("the sleeper did not start within %s s" % GUARD_SECONDS)
    wait_in_timed_futex(tid[0])
    return task, seen


def wait_in_timed_futex(tid):
    """Wait until thread ``tid`` of this process is blocked in a futex wait
    with a timeout (``Task.sleep``'s bounded wait), as the C suites do:
    /proc/self/task/TID/syscall gives the system call and its arguments.
    Set before the call, an event would let a stop land before the wait."""
    import platform
    futex = {'x86_64': 202, 'aarch64': 98}.get(platform.machine())
    path = '/proc/self/task/%d/syscall' % tid
    end = time.monotonic() + GUARD_SECONDS
    last = ''
    while time.monotonic() < end:
        try:
            with open(path) as f:
                last = f.read().split()
        except OSError:
            last = []
        # FUTEX_WAIT (0) or FUTEX_WAIT_BITSET (9), private or not, with a
        # timeout (4th argument).
        if futex is None or (len(last) >= 5 and last[0] == str(futex) and
                             int(last[2], 16) & 0x7f in (0, 9) and int(last[4], 16) != 0):
            return
        time.sleep(0)
    raise AssertionError('thread %d never blocked in a timed futex wait (last: %s)' % (tid, last))


# System call numbers, for wait_in_syscall().
_SYSCALLS = {
    'x86_64': {'read': 0, 'poll': 7, 'select': 23, 'accept': 43, 'recvfrom': 45,
               'wait4': 61, 'futex': 202, 'clock_nanosleep': 230, 'epoll_wait': 232,
               'pselect6': 270, 'ppoll': 271, 'epoll_pwait': 281, 'accept4': 288,
               'waitid': 247},
    'aarch64': {'read': 63, 'epoll_pwait': 22, 'pselect6': 72, 'ppoll': 73,
                'futex': 98, 'clock_nanosleep': 115, 'accept': 202, 'recvfrom': 207,
                'accept4': 242, 'wait4': 260, 'waitid': 95},
}


def syscall_of(tid):
    """The name of the system call thread ``tid`` of this process is
    blocked in, or None (running, gone, or not one of _SYSCALLS)."""
    import platform
    table = _SYSCALLS.get(platform.machine(), {})
    try:
        with open('/proc/self/task/%d/syscall' % tid) as f:
            fields = f.read().split()
    except OSError:
        return None
    if not fields or not fields[0].isdigit():
        return None
    nr = int(fields[0])
    for name, number in table.items():
        if number == nr:
            return name
    return None


def wait_in_syscall(tid, names):
    """Wait until thread ``tid`` of this process is blocked in one of the
    system calls ``names`` (/proc/self/task/TID/syscall): the proof that a
    worker is inside a blocking call, not about to enter it."""
    import platform
    if platform.machine() not in _SYSCALLS:
        raise unittest.SkipTest('no system call table for %s' % platform.machine())
    end = time.monotonic() + GUARD_SECONDS
    last = None
    while time.monotonic() < end:
        last = syscall_of(tid)
        if last in names:
            return last
        time.sleep(0)
    raise AssertionError('thread %d never blocked in %s (last: %s)' % (tid, names, last))


class TapResult(unittest.TestResult):
    """Prints one TAP line per test."""

    def __init__(self, stream, descriptions, verbosity):
        super().__init__(stream, descriptions, verbosity)
        self.stream = stream
        self.n = 0

    def _line(self, ok, test, extra=''):
        self.n += 1
        self.stream.write('%s %d - %s%s\n' % ('ok' if ok else 'not ok', self.n,
                                              test.id(), extra))
        self.stream.flush()

    def _diag(self, text):
        for line in text.rstrip().splitlines():
            self.stream.write('# %s\n' % line)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        self._diag(self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        self._diag(self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, ' # SKIP %s' % reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._line(False, test, ' (expected failure: not allowed)')

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line(False, test, ' (unexpected success)')


def main():
    """Run the tests of the calling module, printing TAP on stdout."""
    module = sys.modules['__main__']
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    if len(sys.argv) > 1:
        wanted = sys.argv[1:]
        tests = []

        def walk(s):
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    walk(t)
                elif any(w in t.id() for w in wanted):
                    tests.append(t)
        walk(suite)
        suite = unittest.TestSuite(tests)
    sys.stdout.write('1..%d\n' % suite.countTestCases())
    sys.stdout.flush()
    result = TapResult(sys.stdout, False, 0)
    suite.run(result)
    sys.stdout.flush()
    sys.exit(0 if result.wasSuccessful() else 1)
