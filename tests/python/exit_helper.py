# exit_helper.py: run by test_exit.py in a process of its own.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""A task whose worker drops its last reference after the interpreter is
gone. The parent's worker waits in C for its child, ``cat`` reading a pipe
that this process holds open, while Python exits; two C exit handlers, run
by exit() after Py_Finalize(), close the pipe (``cat`` ends, so the
parent's worker completes and drops its reference on the task) and give
that worker a moment before the process ends. Exits 0 when nothing
crashed; the moment only gives a crash the time to happen (a slow machine
may miss it, never fails because of it)."""

import ctypes
import os

import gi

gi.require_version('Killable', '1')
from gi.repository import Killable  # noqa: E402

libc = ctypes.CDLL(None)
read_fd, write_fd = os.pipe()
# cat's stdin (STDIN_INHERIT): this process's fd 0, open until exit().
os.dup2(read_fd, 0)
os.close(read_fd)

child = Killable.ProcessTask.new(['cat'])
child.set_flags(Killable.ProcessFlags.STDIN_INHERIT)
parent = Killable.Task(target=lambda: None, name='parent')
parent.add_child(child)
parent.start()
child.start()

# exit() runs these last-registered first: close() of both ends of the
# pipe (cat may still be spawned in between: it then reads a closed
# stdin and ends as well), then usleep(300 ms). __cxa_atexit() passes its
# argument to the function.
handler = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
libc.__cxa_atexit(ctypes.cast(libc.usleep, handler), ctypes.c_void_p(300000), None)
libc.__cxa_atexit(ctypes.cast(libc.close, handler), ctypes.c_void_p(0), None)
libc.__cxa_atexit(ctypes.cast(libc.close, handler), ctypes.c_void_p(write_fd), None)
