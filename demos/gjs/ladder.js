#!/usr/bin/env -S gjs
// ladder.js: the three rungs of libkillable on process tasks, from GJS
//
// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Run from a build tree with:
//   GI_TYPELIB_PATH=_build/introspection LD_LIBRARY_PATH=_build/lib \
//   gjs demos/gjs/ladder.js
//
// JavaScript never runs on a worker thread: the work here is external
// programs (KillableProcessTask), and every signal and run_async()
// callback arrives on the main loop.

imports.gi.versions.GLib = '2.0';
imports.gi.versions.Killable = '1';
const {GLib, Killable} = imports.gi;
const System = imports.system;

const loop = new GLib.MainLoop(null, false);
// Each rung, what it sends, and the outcome it must have: the error
// run_finish() throws and the task's final state. The demo exits 1 if a
// rung ends any other way.
const rungs = [
    ['stop()', task => task.stop(), 'SIGTERM to its process group',
        Killable.Error.STOPPED, Killable.TaskState.CANCELLED],
    ['interrupt()', task => task.interrupt(), 'SIGINT after the stop\'s SIGTERM',
        Killable.Error.INTERRUPTED, Killable.TaskState.CANCELLED],
    ['kill()', task => task.kill(), 'SIGKILL, no grace period',
        Killable.Error.KILLED, Killable.TaskState.KILLED],
];
let pending = rungs.length;
let allOk = true;

for (const [rung, act, what, expectedError, expectedState] of rungs) {
    const task = Killable.ProcessTask.new(['sleep', '1000']);
    const started = GLib.get_monotonic_time();

    // One notification per transition; the state read is the current one,
    // which may already be later: print each state once.
    let last = null;
    task.connect('notify::state', t => {
        const state = Object.keys(Killable.TaskState).find(
            k => Killable.TaskState[k] === t.get_state());
        if (state !== last)
            print(`${rung.padEnd(12)} ${state.toLowerCase()}`);
        last = state;
    });

    task.run_async(null, (obj, res) => {
        const ms = (GLib.get_monotonic_time() - started) / 1000;
        try {
            obj.run_finish(res);
            print(`${rung.padEnd(12)} succeeded?! after ${ms.toFixed(1)} ms`);
            allOk = false;
        } catch (e) {
            print(`${rung.padEnd(12)} ${e.message} (${what}) after ${ms.toFixed(1)} ms`);
            if (!(e instanceof GLib.Error) ||
                !e.matches(Killable.error_quark(), expectedError)) {
                print(`${rung.padEnd(12)} expected error ${expectedError}, got: ${e}`);
                allOk = false;
            }
        }
        if (obj.get_state() !== expectedState) {
            print(`${rung.padEnd(12)} expected state ${expectedState}, got ${obj.get_state()}`);
            allOk = false;
        }
        if (--pending === 0)
            loop.quit();
    });

    act(task);
}

// A failure guard; the tests stretch it with KILLABLE_TEST_TIME_SCALE.
const timeScale = Math.max(1, Number(GLib.getenv('KILLABLE_TEST_TIME_SCALE') ?? '1') || 1);
GLib.timeout_add_seconds(GLib.PRIORITY_DEFAULT, 30 * timeScale, () => {
    print('timed out');
    allOk = false;
    loop.quit();
    return GLib.SOURCE_REMOVE;
});
loop.run();
System.exit(allOk ? 0 : 1);
