#!/usr/bin/python3
# test_stopped_waits.py: the exception of a stopped wait, and its error
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""A worker's wait (Task.sleep, wait_fd, check, the waits of
patch_blocking_calls()) that a stop ends raises the TaskCancelled subclass
of the stop's cause. Its ``error`` is built when it is first read (issue
15: building it on every stopped wait was most of the way from the stop to
the worker's except): it must still say what the stop said, and be
translated in the language in effect when it is read."""

import ctypes
import locale
import os
import threading
import unittest

# The French catalog of the build tree, as tests/test-i18n.c loads it: the
# library binds its text domain once, at first use, so this comes before
# the import. The typelib is <builddir>/introspection, the catalogs
# <builddir>/po. LANGUAGE is set only while a test reads a French message.
if not os.environ.get('KILLABLE_LOCALEDIR'):
    _typelibs = os.environ.get('GI_TYPELIB_PATH', '').split(os.pathsep)[0]
    os.environ['KILLABLE_LOCALEDIR'] = os.path.join(os.path.dirname(_typelibs), 'po')
os.environ.pop('LANGUAGE', None)

import killabletest  # noqa: E402
from killabletest import GUARD_SECONDS  # noqa: E402

from gi.repository import GLib, Gio, Killable  # noqa: E402

import gi.overrides._killable as _killable  # noqa: E402

NBSP = '\u00a0'
FR_STOPPED = 'La tâche «' + NBSP + 'calcul' + NBSP + '» a été arrêtée'


def run_and_catch(wait, how='stop', arg=None):
    """Start a task named "calcul" whose worker blocks in ``wait(task)``
    and keeps what it raises (without reading its error) and returns;
    once the worker blocked, end the wait with ``how`` (a Task method
    name, called with ``arg`` if not None). Returns what the worker
    caught."""
    blocked = threading.Event()
    caught = []

    def hook(task):
        blocked.set()

    def work():
        task = Killable.current_task()
        try:
            wait(task)
        except BaseException as e:
            caught.append(e)

    task = Killable.Task(target=work, name='calcul')
    _killable.WAIT_HOOK = hook
    try:
        task.start()
        if not blocked.wait(GUARD_SECONDS):
            raise AssertionError('the wait never blocked')
        if arg is None:
            getattr(task, how)()
        else:
            getattr(task, how)(arg)
        try:
            # (Stopped, the task ends cancelled whatever its work returns.)
            task.join(GUARD_SECONDS)
        except Killable.TaskCancelled:
            pass
    finally:
        _killable.WAIT_HOOK = None
    if len(caught) != 1:
        raise AssertionError('the worker caught %r' % caught)
    return caught[0]


def sleep(task):
    task.sleep(3600)


def wait_fd(task):
    r, w = os.pipe()
    try:
        task.wait_fd(r, GLib.IOCondition.IN)
    finally:
        os.close(r)
        os.close(w)


def check_after_sleep(task):
    # The check that follows a stop (the sleep is only the handshake).
    try:
        task.sleep(3600)
    except Killable.TaskCancelled:
        pass
    task.check()


WAITS = (('sleep', sleep), ('wait_fd', wait_fd), ('check', check_after_sleep))


class TestStoppedWaitError(unittest.TestCase):
    """The error of a stopped wait has the stop's domain, code and
    message."""

    def assert_killable_error(self, error, code, message):
        self.assertIsInstance(error, GLib.Error)
        self.assertEqual(error.domain, GLib.quark_to_string(Killable.error_quark()))
        self.assertEqual(error.code, int(code))
        self.assertEqual(error.message, message)

    def test_stop(self):
        for name, wait in WAITS:
            with self.subTest(wait=name):
                e = run_and_catch(wait)
                self.assertIs(type(e), Killable.TaskStopped)
                self.assert_killable_error(e.error, Killable.Error.STOPPED,
                                           'Task “calcul” was stopped')
                self.assertEqual(str(e), 'Task “calcul” was stopped')

    def test_interrupt(self):
        for name, wait in WAITS:
            with self.subTest(wait=name):
                e = run_and_catch(wait, 'interrupt')
                self.assertIs(type(e), Killable.TaskInterrupted)
                self.assert_killable_error(e.error, Killable.Error.INTERRUPTED,
                                           'Task “calcul” was interrupted')

    def test_cause_of_another_domain(self):
        cause = GLib.Error.new_literal(Gio.io_error_quark(), 'the disk went away',
                                       int(Gio.IOErrorEnum.NOT_FOUND))
        for name, wait in WAITS:
            with self.subTest(wait=name):
                e = run_and_catch(wait, 'stop_with_error', cause)
                self.assertIs(type(e), Killable.TaskStopped)
                self.assertEqual(e.error.domain, GLib.quark_to_string(Gio.io_error_quark()))
                self.assertEqual(e.error.code, int(Gio.IOErrorEnum.NOT_FOUND))
                self.assertEqual(e.error.message, 'the disk went away')

    def test_built_when_read(self):
        # Not built by the wait: the exception holds its task until then,
        # and the same error is given at every read.
        e = run_and_catch(sleep)
        self.assertNotIn('error', vars(e))
        error = e.error
        self.assertIn('error', vars(e))
        self.assertIs(e.error, error)
        self.assertNotIn('_killable_lazy', vars(e))

    def test_error_given_or_none(self):
        # An exception made by hand (or sent asynchronously) has the error
        # it was given, else None.
        error = GLib.Error.new_literal(Killable.error_quark(), 'why', 1)
        e = Killable.TaskStopped(error=error)
        self.assertIs(vars(e)['error'], error)
        self.assertIsNone(Killable.TaskInterrupted().error)
        with self.assertRaises(AttributeError):
            Killable.TaskStopped().no_such_attribute

    def test_translated_when_read(self):
        # The wait ends with LANGUAGE unset (English); the error is read
        # with LANGUAGE=fr: French. gettext ignores LANGUAGE in the C
        # locale (Python's LC_MESSAGES at start), not in C.UTF-8; its
        # cache of translations is dropped when _nl_msg_cat_cntr changes.
        mo = os.path.join(os.environ['KILLABLE_LOCALEDIR'], 'fr', 'LC_MESSAGES',
                          'libkillable-1.mo')
        self.assertTrue(os.path.isfile(mo), '%s is missing: build the po/ targets' % mo)
        counter = ctypes.c_int.in_dll(ctypes.CDLL(None), '_nl_msg_cat_cntr')
        previous = locale.setlocale(locale.LC_MESSAGES)
        locale.setlocale(locale.LC_MESSAGES, 'C.UTF-8')
        try:
            e = run_and_catch(sleep)
            os.environ['LANGUAGE'] = 'fr'
            counter.value += 1
            self.assertEqual(e.error.message, FR_STOPPED)
            self.assertEqual(str(e), FR_STOPPED)
        finally:
            os.environ.pop('LANGUAGE', None)
            counter.value += 1
            locale.setlocale(locale.LC_MESSAGES, previous)


if __name__ == '__main__':
    killabletest.main()
