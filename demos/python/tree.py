#!/usr/bin/python3
# tree.py: a tree of tasks on a GLib main loop, from Python
#
# SPDX-License-Identifier: LGPL-2.1-or-later

"""A parent task downloads "files" in child tasks; the main loop shows
their progress, then the user "presses Cancel": one stop() reaches every
child, and the parent ends after all of them. Signals arrive on the main
loop's thread."""

import threading

import gi

gi.require_version('GLib', '2.0')
gi.require_version('Killable', '1')
from gi.repository import GLib, Killable  # noqa: E402

MAIN_THREAD = threading.get_ident()


def download(n):
    task = Killable.current_task()
    for i in range(100):
        task.sleep(0.02 * (n + 1))
        task.set_progress((i + 1) / 100)


def main():
    loop = GLib.MainLoop()
    # A group task: no work of its own (and no thread); it ends when its
    # children have.
    parent = Killable.Task.new_group('downloads')
    children = [Killable.Task(target=download, args=(n,), name='file-%d' % n)
                for n in range(3)]
    last = {}
    ends = []
    wrong_thread = []

    def on_state(task, pspec):
        if threading.get_ident() != MAIN_THREAD:
            wrong_thread.append(task.name)
        # One notification per transition; the value read is the current
        # state, which may already be a later one.
        state = task.get_state()
        if last.get(task.name) == state:
            return
        last[task.name] = state
        print('%-10s %s' % (task.name, state.value_nick))

    def on_finished(task):
        # Once per task, after its terminal state; a parent's comes after
        # its children's.
        if threading.get_ident() != MAIN_THREAD:
            wrong_thread.append(task.name)
        ends.append(task.name)
        if task is parent:
            loop.quit()

    def on_progress(task, pspec):
        if threading.get_ident() != MAIN_THREAD:
            wrong_thread.append(task.name)
        if task.get_progress() >= 0.05 and not parent.stopped():
            print('%-10s progress %.0f%%: cancel!' % (task.name, task.get_progress() * 100))
            parent.stop()

    for task in [parent] + children:
        task.connect('notify::state', on_state)
        task.connect('finished', on_finished)
    for child in children:
        child.connect('notify::progress', on_progress)
        parent.add_child(child)

    parent.start()
    for child in children:
        child.start()
    GLib.timeout_add_seconds(30, loop.quit)
    loop.run()

    cancelled = all(t.get_state() == Killable.TaskState.CANCELLED
                    for t in [parent] + children)
    ok = not wrong_thread and cancelled and len(ends) == 4 and ends[-1] == 'downloads'
    print('finished: %s; all callbacks on the main thread: %s'
          % (', '.join(ends), not wrong_thread))
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
