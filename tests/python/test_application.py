# test_application.py: a real Gio.Application through bind → work → quit →
# shutdown, from Python
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import os
import threading
import unittest

import killabletest
from killabletest import GUARD_SECONDS

from gi.repository import Gio, GLib, Killable  # noqa: E402

State = Killable.TaskState


class TestApplication(unittest.TestCase):

    def test_bind_work_quit_shutdown(self):
        app = Gio.Application(application_id='org.killable.PyTestApplication',
                              flags=Gio.ApplicationFlags.NON_UNIQUE)
        state = {}
        entered = threading.Semaphore(0)
        release_stuck = threading.Event()

        def cooperative():
            entered.release()
            Killable.current_task().sleep(3600)

        def stuck():
            # Ignores the stop and the interrupt's exception: climbs the
            # ladder and is abandoned, then returns once killed.
            entered.release()
            while not release_stuck.wait(0.001 if False else GUARD_SECONDS):
                pass

        def on_stuck_state(task, pspec):
            if task.get_state() == State.KILLED:
                release_stuck.set()

        def on_shutdown(root, result):
            state['shutdown'] = root.shutdown_finish(result)
            state['abandoned'] = Killable.get_abandoned_thread_count()

        def quit():
            # Not app.quit(): the application ends once nothing holds it.
            state['root'].shutdown_async(20000, None, on_shutdown)
            return GLib.SOURCE_REMOVE

        def on_activate(app):
            try:
                activate(app)
            except BaseException as e:
                state['error'] = e

        def activate(app):
            root = Killable.Task.new_group('app')
            coop = Killable.Task(target=cooperative, name='cooperative')
            blocker = Killable.Task(target=stuck, name='stuck')
            blocker.connect('notify::state', on_stuck_state)
            proc = Killable.ProcessTask.new(['sleep', '3600'])
            for child in (coop, blocker, proc):
                root.add_child(child)
            root.bind_application(app)
            root.start()
            for child in (coop, blocker, proc):
                child.start()
            state.update(root=root, coop=coop, blocker=blocker, proc=proc)
            for _ in range(2):
                self.assertTrue(entered.acquire(timeout=GUARD_SECONDS))
            GLib.idle_add(quit)

        app.connect('activate', on_activate)
        status = app.run(['test-application'])
        if 'error' in state:
            raise state['error']

        self.assertEqual(status, 0)
        self.assertTrue(state['shutdown'])
        self.assertEqual(state['abandoned'], 0)
        self.assertEqual(Killable.get_abandoned_thread_count(), 0)
        for name in ('root', 'coop', 'blocker', 'proc'):
            self.assertTrue(state[name].is_finished(), name)
        self.assertEqual(state['coop'].get_state(), State.CANCELLED)
        self.assertEqual(state['blocker'].get_state(), State.KILLED)
        pid = state['proc'].get_pid()
        if pid > 0:
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)


if __name__ == '__main__':
    killabletest.main()
