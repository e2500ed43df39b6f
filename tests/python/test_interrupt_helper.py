#!/usr/bin/python3
# test_interrupt_helper.py: the override's compiled helper (_gi_killable)
# and its pure-Python fallback
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""The override's optional compiled helper, ``gi.overrides._gi_killable``
(introspection/gi-killable-helper.c): used when it was built (the build
says so in KILLABLE_TEST_HELPER), not needed when it is hidden, and either
way an interrupt keeps its cause (``INTERRUPTED``, translated)."""

import inspect
import os
import subprocess
import sys
import threading
import time
import unittest

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import GLib, Killable  # noqa: E402
from gi.overrides import _killable  # noqa: E402

State = Killable.TaskState

# Set by tests/python/meson.build: '1' when the helper was built.
HELPER_BUILT = os.environ.get('KILLABLE_TEST_HELPER') == '1'

# Hides the helper from the override: the import then fails, as it does
# where it was not built.
HIDE_HELPER = "import sys; sys.modules['gi.overrides._gi_killable'] = None\n"

# A program interrupting a busy worker; prints what it saw, one per line.
BUSY_PROGRAM = r'''
import threading
import gi
gi.require_version('Killable', '1')
from gi.repository import Killable
from gi.overrides import _killable

seen = []
ready = threading.Event()

def busy():
    try:
        ready.set()
        while True:
            pass
    except BaseException as e:
        seen.append(e)
        raise

t = Killable.Task(target=busy, name='busy')
t.start()
ready.wait()
t.interrupt()
try:
    t.join()
except Killable.TaskInterrupted as e:
    print('helper', _killable._helper is not None)
    print('interrupt', _killable.interrupt.__name__)
    print('landed', type(seen[0]).__name__)
    print('code', e.error.code == int(Killable.Error.INTERRUPTED))
    print('message', e.error.message)
    print('state', t.get_state().value_nick)
'''

# fork() while a worker spins and another thread holds its record's lock:
# in the child, neither thread came along (the worker's thread state is
# freed). Prints what the child saw.
FORK_PROGRAM = r'''
import os
import threading
import gi
gi.require_version('Killable', '1')
from gi.repository import Killable
from gi.overrides import _killable

ready = threading.Event()

def busy():
    ready.set()
    while True:
        pass

t = Killable.Task(target=busy, name='busy')
t.start()
ready.wait()
w = t.__dict__['_killable_worker']
held = threading.Event()
release = threading.Event()

def hold():
    with w.lock:
        held.set()
        release.wait()

holder = threading.Thread(target=hold)
holder.start()
held.wait()
print('helper', _killable._helper is not None, flush=True)
pid = os.fork()
if pid == 0:
    code = 1
    try:
        w = t.__dict__['_killable_worker']
        print('forgotten', w.tid is None and w.tstate is None, flush=True)
        unlocked = not w.lock.locked()
        print('unlocked', unlocked, flush=True)
        if unlocked:  # (else the interrupt would wait for it forever)
            t.interrupt()
            print('interrupt returned', flush=True)
            code = 0
    finally:
        os._exit(code)
print('child', os.waitpid(pid, 0)[1], flush=True)
release.set()
holder.join()
t.interrupt()
try:
    t.join()
except Killable.TaskInterrupted:
    print('parent interrupted')
'''


def run_program(source, env=None):
    """Runs ``source`` in a new interpreter with the tests' environment
    (plus ``env``); returns its output as {first word: the rest}."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    out = subprocess.run([sys.executable, '-c', source], env=full_env, capture_output=True,
                         text=True, timeout=GUARD_SECONDS)
    if out.returncode != 0:
        raise AssertionError('the program failed (%d):\n%s' % (out.returncode, out.stderr))
    return dict(line.split(' ', 1) for line in out.stdout.splitlines())


def thread_sleeps(tid):
    """Whether thread ``tid`` of this process sleeps in the kernel (True if
    it is gone)."""
    try:
        with open('/proc/self/task/%d/stat' % tid, 'rb') as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rindex(b')') + 2:][:1] in (b'S', b'D')


def set_when_blocked(tid, event):
    """Sets ``event`` once thread ``tid`` sleeps in the kernel (bounded)."""
    deadline = time.monotonic() + GUARD_SECONDS
    while not thread_sleeps(tid) and time.monotonic() < deadline:
        time.sleep(0)
    event.set()


def start_busy(target_exc=BaseException):
    """A task spinning in pure Python until an exception lands; returns
    (task, seen)."""
    ready = threading.Event()
    seen = []

    def busy():
        try:
            ready.set()
            while True:
                pass
        except target_exc as e:
            seen.append(e)
            raise

    task = Killable.Task(target=busy, name='busy')
    task.start()
    if not ready.wait(GUARD_SECONDS):
        raise AssertionError('the worker did not start')
    return task, seen


class TestHelperUsed(unittest.TestCase):

    def test_helper_is_used_when_built(self):
        if HELPER_BUILT:
            helper = _killable._helper
            self.assertIsNotNone(helper)
            self.assertIs(_killable.interrupt, helper.interrupt)
            self.assertIs(_killable.join, helper.join)
            self.assertIsInstance(_killable._Worker().lock, helper.Lock)
            self.assertTrue(issubclass(Killable.TaskCancelled, helper.CancelledBase))
            # Task.interrupt() and join() are the helper's methods.
            for name in ('interrupt', 'join'):
                self.assertEqual(type(getattr(Killable.Task, name)).__name__, 'method_descriptor')
        else:
            # Not built: the pure-Python path, not a failure.
            self.assertIsNone(_killable._helper)
            self.assertIs(_killable.interrupt, _killable._interrupt_py)
            self.assertIs(_killable.join, _killable._join_py)

    def test_interrupt_busy_worker(self):
        task, seen = start_busy()
        task.interrupt()
        with self.assertRaises(Killable.TaskInterrupted) as cm:
            task.join(GUARD_SECONDS)
        self.assertEqual([type(e) for e in seen], [Killable.TaskInterrupted])
        self.assertEqual(task.get_state(), State.CANCELLED)
        # The cause is kept: INTERRUPTED, with its message.
        error = cm.exception.error
        self.assertTrue(error.matches(Killable.error_quark(), Killable.Error.INTERRUPTED))
        self.assertEqual(error.message, 'Task “busy” was interrupted')
        self.assertTrue(task.get_error().matches(Killable.error_quark(),
                                                 Killable.Error.INTERRUPTED))

    def test_interrupt_with_exception_class(self):
        task, seen = start_busy()
        task.interrupt(KeyError)
        with self.assertRaises(KeyError):
            task.join(GUARD_SECONDS)
        self.assertEqual([type(e) for e in seen], [KeyError])
        self.assertEqual(task.get_state(), State.FAILED)

    def test_interrupt_bad_exception(self):
        task, seen = start_busy()
        try:
            with self.assertRaises(TypeError):
                task.interrupt(KeyError())
            with self.assertRaises(TypeError):
                task.interrupt(5)
            # Nothing was asked: the worker still spins.
            self.assertTrue(task.is_alive())
            self.assertEqual(seen, [])
        finally:
            task.interrupt()
            with self.assertRaises(Killable.TaskInterrupted):
                task.join(GUARD_SECONDS)

    def test_interrupt_ended_task(self):
        task = Killable.Task(target=lambda: 'done')
        task.start()
        task.join(GUARD_SECONDS)
        task.interrupt()
        task.join(GUARD_SECONDS)
        self.assertEqual(task.get_state(), State.SUCCEEDED)

    def test_join_waits_for_the_end(self):
        go = threading.Event()
        started = threading.Event()

        def work():
            started.set()
            go.wait()
            return 'ok'

        task = Killable.Task(target=work)
        task.start()
        self.assertTrue(started.wait(GUARD_SECONDS))
        # The work ends once this thread sleeps in the kernel: in join().
        setter = threading.Thread(target=set_when_blocked,
                                  args=(threading.get_native_id(), go), daemon=True)
        setter.start()
        task.join()
        # join() without a timeout came back only once the work ended.
        self.assertEqual(task.get_state(), State.SUCCEEDED)
        self.assertEqual(task.result(), 'ok')
        setter.join(GUARD_SECONDS)

    def test_interrupt_worker_in_join(self):
        # The worker waits in join() for a task that is not its child (the
        # stop does not end it): the exception lands between two slices
        # of the wait, while that task still runs.
        go = threading.Event()
        other = Killable.Task(target=go.wait, name='other')
        other.start()
        self.addCleanup(other.join, GUARD_SECONDS)
        self.addCleanup(go.set)
        waiting = threading.Event()
        seen = []

        def work():
            waiting.set()
            try:
                other.join()
            except BaseException as e:
                seen.append(type(e))
                raise

        task = Killable.Task(target=work, name='joiner')
        task.start()
        self.assertTrue(waiting.wait(GUARD_SECONDS))
        # Until the worker is inside other.join(): Task.join is C code
        # (install_methods()), so the worker's innermost Python frame is
        # work(), paused at that call (this thread holds the GIL while it
        # looks), and the thread sleeps in the kernel: join()'s wait.
        # Without the helper, Task.join is the Python method: its frame.
        # With it, the helper's join() hands a task whose worker record is
        # not filled in yet to _join_py(): its frame.
        join_code = getattr(Killable.Task.join, '__code__', None)
        self.assertEqual(join_code is None, HELPER_BUILT)
        python_codes = (join_code, _killable._join_py.__code__)
        work_code = work.__code__
        inside = False
        deadline = time.monotonic() + GUARD_SECONDS
        while not inside and time.monotonic() < deadline:
            frame = sys._current_frames().get(task.ident)
            inside = (frame is not None and frame.f_code is work_code and
                      frame.f_code.co_code[frame.f_lasti] in _killable._CALL_OPS and
                      thread_sleeps(task.native_id))
            while not inside and frame is not None:
                inside = frame.f_code in python_codes
                frame = frame.f_back
            del frame
            time.sleep(0)
        self.assertTrue(inside)
        task.interrupt()
        with self.assertRaises(Killable.TaskInterrupted):
            task.join(GUARD_SECONDS)
        self.assertEqual(seen, [Killable.TaskInterrupted])
        self.assertTrue(other.is_alive())

    def test_task_methods_arguments(self):
        # Task.interrupt(exc=None) and Task.join(timeout=None), as in
        # Python, whether they are the helper's or the Python methods.
        for name, param in (('interrupt', 'exc'), ('join', 'timeout')):
            method = getattr(Killable.Task, name)
            parameters = inspect.signature(method).parameters
            self.assertEqual(list(parameters), ['self', param])
            self.assertIsNone(parameters[param].default)
            self.assertIn(':meth:', method.__doc__)
        task, seen = start_busy()
        with self.assertRaises(TypeError):
            task.interrupt(KeyError, KeyError)
        with self.assertRaises(TypeError):
            task.interrupt(cause=KeyError)
        with self.assertRaises(TypeError):
            task.join(1, 2)
        with self.assertRaises(TypeError):
            task.join(time=1)
        # A timeout, by keyword then by position: the task still runs.
        self.assertIsNone(task.join(timeout=0.001))
        self.assertIsNone(task.join(0.001))
        self.assertTrue(task.is_alive())
        self.assertEqual(seen, [])
        task.interrupt(exc=KeyError)
        with self.assertRaises(KeyError):
            task.join(timeout=GUARD_SECONDS)
        self.assertEqual([type(e) for e in seen], [KeyError])
        # Methods: they take the task as self.
        with self.assertRaises(TypeError):
            Killable.Task.join(object())

    def test_task_methods_without_docstrings(self):
        # python -OO: the Python methods have no docstring to copy; the
        # methods keep their signatures.
        out = run_program(
            "import inspect\n"
            "import gi\n"
            "gi.require_version('Killable', '1')\n"
            "from gi.repository import Killable\n"
            "print('doc', Killable.Task.join.__doc__)\n"
            "print('join', inspect.signature(Killable.Task.join))\n"
            "print('interrupt', inspect.signature(Killable.Task.interrupt))\n",
            env={'PYTHONOPTIMIZE': '2'})
        self.assertEqual(out['doc'], 'None')
        self.assertIn('timeout=None', out['join'])
        self.assertIn('exc=None', out['interrupt'])

    @unittest.skipUnless(HELPER_BUILT, 'the helper was not built: the Python methods')
    def test_task_methods_installed_once(self):
        with self.assertRaises(RuntimeError):
            _killable._helper.install_methods(Killable.Task, 0.1)
        self.assertEqual(type(Killable.Task.join).__name__, 'method_descriptor')

    def test_join_misuse(self):
        task = Killable.Task(target=lambda: None)
        with self.assertRaises(RuntimeError):
            task.join()
        errors = []

        def work():
            try:
                Killable.current_task().join()
            except RuntimeError as e:
                errors.append(e)

        task = Killable.Task(target=work)
        task.start()
        task.join(GUARD_SECONDS)
        self.assertEqual(len(errors), 1)
        self.assertIn('cannot join itself', str(errors[0]))


class TestExceptions(unittest.TestCase):
    """TaskCancelled.__init__ (C with the helper): the same behaviour."""

    def test_error_keyword(self):
        error = GLib.Error.new_literal(Killable.error_quark(), 'why',
                                       int(Killable.Error.STOPPED))
        e = Killable.TaskStopped(error=error)
        self.assertIs(e.error, error)
        self.assertEqual(str(e), 'why')
        self.assertEqual(e.args, ())
        self.assertIsNone(Killable.TaskStopped().error)
        self.assertIsNone(Killable.TaskStopped(error=None).error)
        self.assertEqual(str(Killable.TaskInterrupted()), 'the task was interrupted')
        self.assertEqual(Killable.TaskKilled('a', 'b').args, ('a', 'b'))

    def test_unknown_keyword(self):
        with self.assertRaises(TypeError):
            Killable.TaskStopped(reason=1)
        with self.assertRaises(TypeError):
            Killable.TaskStopped(error=None, reason=1)

    def test_user_subclass(self):
        class Mine(Killable.TaskInterrupted):
            def __init__(self, text, **kwargs):
                # A user's subclass: BaseException.__init__ gets these.
                super().__init__('mine: ' + text, **kwargs)
                self.mine = True

        e = Mine('text', error=None)
        self.assertEqual(e.args, ('mine: text',))
        self.assertTrue(e.mine)
        self.assertEqual(str(e), 'mine: text')
        self.assertIsInstance(e, Killable.TaskCancelled)
        self.assertIsInstance(e, BaseException)
        self.assertNotIsInstance(e, Exception)


class TestLock(unittest.TestCase):
    """The workers' lock (the helper's Lock when built, else
    threading.Lock): threading.Lock's manners."""

    def test_acquire_release(self):
        lock = _killable._new_lock()
        self.assertFalse(lock.locked())
        self.assertTrue(lock.acquire())
        self.assertTrue(lock.locked())
        self.assertFalse(lock.acquire(False))
        self.assertFalse(lock.acquire(timeout=0.01))
        lock.release()
        self.assertFalse(lock.locked())
        with self.assertRaises(RuntimeError):
            lock.release()
        with lock:
            self.assertTrue(lock.locked())
        self.assertFalse(lock.locked())
        with self.assertRaises(ValueError):
            lock.acquire(False, 1)

    def test_contended_acquire_waits(self):
        lock = _killable._new_lock()
        lock.acquire()
        order = []
        taken = threading.Event()

        def other():
            # Blocks, releasing the GIL, until the release below.
            with lock:
                order.append('other')
            taken.set()

        thread = threading.Thread(target=other, daemon=True)
        thread.start()
        order.append('main')
        lock.release()
        self.assertTrue(taken.wait(GUARD_SECONDS))
        thread.join(GUARD_SECONDS)
        self.assertEqual(order, ['main', 'other'])


class TestFallback(unittest.TestCase):
    """With the helper hidden (as where it was not built), the
    pure-Python path does the same."""

    def test_fallback_interrupts(self):
        out = run_program(HIDE_HELPER + BUSY_PROGRAM)
        self.assertEqual(out['helper'], 'False')
        self.assertEqual(out['interrupt'], '_interrupt_py')
        self.assertEqual(out['landed'], 'TaskInterrupted')
        self.assertEqual(out['code'], 'True')
        self.assertEqual(out['message'], 'Task “busy” was interrupted')
        self.assertEqual(out['state'], 'cancelled')

    def test_same_outcome_either_way(self):
        outs = [run_program(BUSY_PROGRAM), run_program(HIDE_HELPER + BUSY_PROGRAM)]
        self.assertEqual(outs[0]['helper'], str(HELPER_BUILT))
        for out in outs:
            del out['helper'], out['interrupt']
        self.assertEqual(outs[0], outs[1])


class TestFork(unittest.TestCase):
    """In a child after fork(), the records of the workers whose threads
    did not come along name no thread: an interrupt there must not read
    their freed PyThreadState (valgrind: an invalid read in
    PyThreadState_GetFrame(), from the helper's send_first_locked() or
    the pure-Python _worker_frame()); and their lock is free, though a
    thread that did not come along held it."""

    def check(self, out, helper):
        self.assertEqual(out['helper'], str(helper))
        self.assertEqual(out['forgotten'], 'True')
        self.assertEqual(out['unlocked'], 'True')
        self.assertEqual(out['interrupt'], 'returned')
        self.assertEqual(out['child'], '0')
        # The parent's worker was left alone.
        self.assertEqual(out['parent'], 'interrupted')

    def test_interrupt_in_forked_child(self):
        self.check(run_program(FORK_PROGRAM), HELPER_BUILT)

    def test_interrupt_in_forked_child_fallback(self):
        self.check(run_program(HIDE_HELPER + FORK_PROGRAM), False)


class TestTranslatedReason(unittest.TestCase):
    """The reason of an interrupt is translated (French catalog of the
    build tree; LANGUAGE needs no installed locale, see test-i18n.c)."""

    def french(self, prefix=''):
        build = os.path.dirname(os.environ['GI_TYPELIB_PATH'].split(os.pathsep)[0])
        env = {'LANGUAGE': 'fr', 'LC_ALL': 'C.UTF-8',
               'KILLABLE_LOCALEDIR': os.path.join(build, 'po')}
        # (gettext reads LC_MESSAGES, which Python leaves at "C".)
        setlocale = "import locale; locale.setlocale(locale.LC_ALL, '')\n"
        return run_program(prefix + setlocale + BUSY_PROGRAM, env)

    def test_translated(self):
        out = self.french()
        self.assertEqual(out['helper'], str(HELPER_BUILT))
        self.assertEqual(out['code'], 'True')
        self.assertEqual(out['message'], 'La tâche «\u00a0busy\u00a0» a été interrompue')

    def test_translated_fallback(self):
        out = self.french(HIDE_HELPER)
        self.assertEqual(out['helper'], 'False')
        self.assertEqual(out['message'], 'La tâche «\u00a0busy\u00a0» a été interrompue')


if __name__ == '__main__':
    killabletest.main()
