# test_process_streams.py: a process task's pipes, read while it runs
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""A progress bar fed by a program's stdout while the program runs, and
communicate() round-tripping stdin to stdout."""

import os
import unittest

import killabletest

from gi.repository import GLib, Gio, Killable  # noqa: E402

# Uninstalled runs: the reaper helper is in the build tree, next to the
# library the typelib path points at.
if 'KILLABLE_REAPER_PATH' not in os.environ:
    for d in os.environ.get('GI_TYPELIB_PATH', '').split(':'):
        candidate = os.path.join(os.path.dirname(d), 'lib', 'killable-reaper')
        if os.access(candidate, os.X_OK):
            os.environ['KILLABLE_REAPER_PATH'] = candidate
            break

# Five steps; after each one the program waits for our acknowledgement, so
# a line can only have been read while the program still runs.
PROGRESS_SCRIPT = 'for i in 1 2 3 4 5; do echo $((i * 20)); read ack || exit 9; done'


class ProgressBar:
    """What a Gtk.ProgressBar would be given."""

    def __init__(self):
        self.fractions = []

    def set_fraction(self, fraction):
        self.fractions.append(fraction)


class TestProgressFromStdout(unittest.TestCase):
    def run_progress(self, containment):
        task = Killable.ProcessTask.new(['sh', '-c', PROGRESS_SCRIPT])
        task.set_containment(containment)
        task.set_flags(Killable.ProcessFlags.STDIN_PIPE |
                       Killable.ProcessFlags.STDOUT_PIPE)
        lines = Gio.DataInputStream.new(task.get_stdout_pipe())
        stdin = task.get_stdin_pipe()
        bar = ProgressBar()
        states_seen = []
        done = []

        def on_line(stream, result):
            line, _length = stream.read_line_finish_utf8(result)
            if line is None:
                done.append(True)
                return
            # Fed while the program runs: it is blocked on our answer.
            states_seen.append(task.get_state())
            bar.set_fraction(int(line) / 100)
            stdin.write_all(b'ok\n', None)
            stream.read_line_async(GLib.PRIORITY_DEFAULT, None, on_line)

        task.start()
        lines.read_line_async(GLib.PRIORITY_DEFAULT, None, on_line)
        killabletest.run_loop_until(lambda: done)

        task.join()
        self.assertEqual(bar.fractions, [0.2, 0.4, 0.6, 0.8, 1.0])
        self.assertEqual(states_seen, [Killable.TaskState.RUNNING] * 5)
        # Streamed to us, so not also collected.
        self.assertIsNone(task.get_stdout_bytes())

    def test_progress_reaper(self):
        self.run_progress(Killable.Containment.REAPER)

    def test_progress_auto(self):
        self.run_progress(Killable.Containment.AUTO)


class TestCommunicate(unittest.TestCase):
    def test_round_trip(self):
        task = Killable.ProcessTask.new(['cat'])
        task.set_flags(Killable.ProcessFlags.STDIN_PIPE |
                       Killable.ProcessFlags.STDOUT_PIPE)
        results = []

        task.communicate_async(GLib.Bytes.new(b'hello\nworld\n'), None,
                               lambda t, res: results.append(res))
        killabletest.run_loop_until(lambda: results)

        ok, out, err = task.communicate_finish(results[0])
        self.assertTrue(ok)
        self.assertEqual(out.get_data(), b'hello\nworld\n')
        self.assertIsNone(err)

    def test_exit_error(self):
        task = Killable.ProcessTask.new(['sh', '-c', 'cat >/dev/null; exit 4'])
        task.set_flags(Killable.ProcessFlags.STDIN_PIPE)
        results = []

        task.communicate_async(GLib.Bytes.new(b'x' * 100000), None,
                               lambda t, res: results.append(res))
        killabletest.run_loop_until(lambda: results)

        with self.assertRaises(GLib.Error) as cm:
            task.communicate_finish(results[0])
        self.assertTrue(cm.exception.matches(GLib.spawn_exit_error_quark(), 4))


if __name__ == '__main__':
    killabletest.main()
