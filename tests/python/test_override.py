#!/usr/bin/python3
# test_override.py: what importing and using the override does to the process
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import subprocess
import sys
import textwrap
import unittest

import killabletest
from killabletest import GUARD_SECONDS


PRELUDE = '''
import sys
import threading

import gi
gi.require_version('Killable', '1')

before = (sys.excepthook, threading.excepthook, sys.unraisablehook)
'''


def run_python(code):
    """Run PRELUDE and ``code`` in a fresh interpreter (this one already imported the
    override), with this process's environment (the uninstalled typelib,
    library and override). Returns its stdout; fails on a non-zero exit."""
    proc = subprocess.run([sys.executable, '-X', 'faulthandler', '-c',
                           PRELUDE + textwrap.dedent(code)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=os.environ.copy(), timeout=GUARD_SECONDS * 3,
                          text=True)
    if proc.returncode != 0:
        raise AssertionError('exit status %d\nstdout:\n%s\nstderr:\n%s'
                             % (proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


class TestProcessHooks(unittest.TestCase):
    """Issue 11 point 4: importing the override replaces no process-wide
    hook; what the asynchronous exceptions need is installed at the first
    one, in front of the hook in place then."""

    def test_import_module_leaves_hooks(self):
        out = run_python('''
            import gi.repository.Killable
            print(sys.excepthook is before[0], threading.excepthook is before[1],
                  sys.unraisablehook is before[2])
            ''')
        self.assertEqual(out.split(), ['True', 'True', 'True'])

    def test_from_import_leaves_hooks(self):
        out = run_python('''
            from gi.repository import Killable
            Killable.Task(target=print)   # the override's classes are set up
            print(sys.excepthook is before[0], threading.excepthook is before[1],
                  sys.unraisablehook is before[2])
            ''')
        self.assertEqual(out.split(), ['True', 'True', 'True'])

    def test_stop_leaves_hooks(self):
        # A cooperative stop sends no asynchronous exception: no hook.
        out = run_python('''
            from gi.repository import Killable
            running = threading.Event()

            def work():
                running.set()
                Killable.current_task().sleep(3600)

            t = Killable.Task(target=work)
            t.start()
            running.wait()
            t.stop()
            try:
                t.join()
            except Killable.TaskStopped:
                pass
            print(sys.excepthook is before[0], threading.excepthook is before[1],
                  sys.unraisablehook is before[2])
            ''')
        self.assertEqual(out.split(), ['True', 'True', 'True'])

    def test_first_interrupt_chains_to_current_hook(self):
        out = run_python('''
            from gi.repository import Killable

            seen = []

            def mine(exc_type, value, tb):
                seen.append(exc_type.__name__)

            # Installed after the import: the override must chain to it.
            sys.excepthook = mine
            busy = threading.Event()

            def work():
                while True:
                    busy.set()

            t = Killable.Task(target=work)
            t.start()
            busy.wait()
            t.interrupt()
            try:
                t.join()
            except Killable.TaskInterrupted:
                pass
            print(sys.excepthook is not mine)          # installed now
            print(threading.excepthook is before[1])   # never replaced
            sys.excepthook(ValueError, ValueError('x'), None)
            print(seen)
            ''')
        self.assertEqual(out.split(), ['True', 'True', "['ValueError']"])


if __name__ == '__main__':
    killabletest.main()
