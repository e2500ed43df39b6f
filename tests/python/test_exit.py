#!/usr/bin/python3
# test_exit.py: a program that exits while a task's worker is finishing
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import signal
import subprocess
import sys
import unittest

import killabletest

HERE = os.path.dirname(os.path.abspath(__file__))

# How many processes: without the override's exit hook, a run crashed in
# 7 of 8 (the worker's last unref called PyGILState_Ensure() after
# Py_Finalize()).
RUNS = 3


class TestExit(unittest.TestCase):

    def test_worker_drops_last_reference_after_finalize(self):
        """A worker that drops a task's last reference once the interpreter
        is gone (exit_helper.py) does not crash the process."""
        for _ in range(RUNS):
            proc = subprocess.run([sys.executable, '-X', 'faulthandler',
                                   '-W', 'ignore::ImportWarning',
                                   os.path.join(HERE, 'exit_helper.py')],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=60, env=os.environ)
            err = proc.stderr.decode()
            self.assertNotEqual(proc.returncode, -signal.SIGSEGV, err)
            self.assertEqual(proc.returncode, 0, err)


if __name__ == '__main__':
    killabletest.main()
