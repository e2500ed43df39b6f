// test-process-tree.js: JavaScript on the main loop drives C tasks
//
// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Trees of KillableProcessTask are stopped from JavaScript, by a timeout
// (from libkillable's timer thread) and by the grace-period escalation to
// kill. Every signal and notification must reach JavaScript on the main
// thread: GJS cannot run JavaScript anywhere else (it would abort), and
// each handler checks it also owns the default main context. Prints TAP.

imports.gi.versions.GLib = '2.0';
imports.gi.versions.Gio = '2.0';
imports.gi.versions.Killable = '1';
const {Gio, GLib, Killable} = imports.gi;
const System = imports.system;

const State = Killable.TaskState;
// A failure guard, scaled by KILLABLE_TEST_TIME_SCALE like the C suites'
// limits (tests/test-core-util.h).
const TIME_SCALE = Math.max(1, Number(GLib.getenv('KILLABLE_TEST_TIME_SCALE') ?? '1') || 1);
const GUARD_MS = 20000 * TIME_SCALE;

let nTests = 0;
let nFailed = 0;

function ok(condition, what) {
    nTests++;
    if (!condition)
        nFailed++;
    print(`${condition ? 'ok' : 'not ok'} ${nTests} - ${what}`);
}

function diag(text) {
    print(`# ${text}`);
}

// Iterates the default main context until predicate() holds; fails after
// GUARD_MS (a failure guard, not a synchronisation).
function iterateUntil(predicate, what) {
    const context = GLib.MainContext.default();
    let timedOut = false;
    const id = GLib.timeout_add(GLib.PRIORITY_DEFAULT, GUARD_MS, () => {
        timedOut = true;
        return GLib.SOURCE_REMOVE;
    });
    while (!predicate() && !timedOut)
        context.iteration(true);
    if (!timedOut)
        GLib.source_remove(id);
    ok(!timedOut, `${what} (within ${GUARD_MS / 1000} s)`);
}

function stateName(task) {
    const state = task.get_state();
    return Object.keys(State).find(k => State[k] === state) ?? String(state);
}

// Records every emission; counts those not on the main thread.
class Watcher {
    constructor() {
        this.offThread = [];
        this.finished = [];
        this.stopRequested = new Map();
        this.states = new Map();
        this.progress = [];
    }

    check(name, what) {
        if (!GLib.MainContext.default().is_owner())
            this.offThread.push(`${name}: ${what}`);
    }

    watch(task, name) {
        this.states.set(name, []);
        task.connect('notify::state', t => {
            this.check(name, 'notify::state');
            this.states.get(name).push(t.get_state());
        });
        task.connect('notify::progress', t => {
            this.check(name, 'notify::progress');
            this.progress.push([name, t.get_progress()]);
        });
        task.connect('stop-requested', (t, reason) => {
            this.check(name, 'stop-requested');
            this.stopRequested.set(name, reason);
        });
        task.connect('finished', t => {
            this.check(name, 'finished');
            this.finished.push(name);
        });
    }
}

function sleeper() {
    return [Killable.ProcessTask.new(['sleep', '1000'])];
}

function testStopTree() {
    diag('a tree of process tasks, stopped from JavaScript');
    const w = new Watcher();
    const [parent] = sleeper('parent');
    const [c1] = sleeper('c1');
    const [c2] = sleeper('c2');
    const [g] = sleeper('g');
    const all = [[parent, 'parent'], [c1, 'c1'], [c2, 'c2'], [g, 'g']];
    for (const [t, name] of all)
        w.watch(t, name);

    parent.add_child(c1);
    parent.add_child(c2);
    c1.add_child(g);

    let asyncError = null;
    let asyncDone = false;
    let asyncOnMain = false;
    parent.run_async(null, (obj, res) => {
        asyncOnMain = GLib.MainContext.default().is_owner();
        try {
            obj.run_finish(res);
        } catch (e) {
            asyncError = e;
        }
        asyncDone = true;
    });
    for (const [t] of all.slice(1))
        t.start();

    iterateUntil(() => all.every(([, name]) => w.states.get(name).length >= 1),
        'every task notified RUNNING');
    // Nothing was stopped yet: the first state notified is RUNNING, for
    // every task.
    ok(all.every(([, name]) => w.states.get(name)[0] === State.RUNNING),
        `the first notification is RUNNING (${all.map(([, name]) => w.states.get(name)[0])})`);

    // Progress set from here is notified on the owner context too.
    parent.set_progress(0.5);
    iterateUntil(() => w.progress.length >= 1, 'notify::progress arrives');
    ok(w.progress[0][0] === 'parent' && w.progress[0][1] === 0.5, 'progress is 0.5');

    parent.stop();
    iterateUntil(() => asyncDone, 'run_async() callback after stop()');
    ok(asyncOnMain, 'the run_async() callback runs on the main thread');
    ok(asyncError !== null &&
       asyncError.matches(Killable.error_quark(), Killable.Error.STOPPED),
    `run_finish() throws STOPPED (${asyncError})`);

    for (const [t, name] of all)
        ok(t.get_state() === State.CANCELLED, `${name} is CANCELLED (${stateName(t)})`);
    ok(w.stopRequested.size === 4, 'stop-requested reached every task');

    // Every task's `finished` arrives, once; then the order of all of them:
    // a task finishes after its children (g before c1, c1 and c2 before
    // the parent), so the parent is last.
    iterateUntil(() => w.finished.length >= 4, 'every task emitted finished');
    ok([...w.finished].sort().join(' ') === 'c1 c2 g parent',
        `each of the four finished exactly once (${w.finished.join(' ')})`);
    const at = name => w.finished.indexOf(name);
    ok(at('g') >= 0 && at('c1') >= 0 && at('g') < at('c1'),
        `g finished before its parent c1 (${w.finished.join(' ')})`);
    ok(at('c1') >= 0 && at('c2') >= 0 && at('c1') < at('parent') && at('c2') < at('parent'),
        `children finished before the parent (${w.finished.join(' ')})`);
    ok(at('parent') === 3, `the parent finished last (${w.finished.join(' ')})`);
    ok(w.offThread.length === 0, `every emission on the main thread (${w.offThread.join(', ')})`);
}

function testTimeoutTree() {
    diag('a timeout expires on libkillable\'s timer thread');
    const w = new Watcher();
    const [parent] = sleeper('parent');
    const [child] = sleeper('child');
    w.watch(parent, 'parent');
    w.watch(child, 'child');
    parent.add_child(child);
    parent.set_timeout(50 * 1000);
    parent.start();
    child.start();

    iterateUntil(() => w.finished.length === 2, 'both tasks finished');
    for (const [t, name] of [[parent, 'parent'], [child, 'child']]) {
        ok(t.get_state() === State.CANCELLED, `${name} is CANCELLED`);
        const error = t.get_error();
        ok(error !== null && error.matches(Killable.error_quark(), Killable.Error.TIMED_OUT),
            `${name} ended with TIMED_OUT (${error})`);
        const reason = w.stopRequested.get(name);
        ok(reason && reason.matches(Killable.error_quark(), Killable.Error.TIMED_OUT),
            `${name}: stop-requested carries the cause`);
    }
    ok(w.finished.join(' ') === 'child parent', `the child finished first (${w.finished.join(' ')})`);
    ok(w.offThread.length === 0, `every emission on the main thread (${w.offThread.join(', ')})`);
}

function testEscalationToKill() {
    diag('a program that ignores SIGTERM is killed one grace period later');
    const w = new Watcher();
    // The program says when it ignores SIGTERM (sleep inherits that) by
    // creating a file, which a monitor reports on the main loop.
    const dir = GLib.dir_make_tmp('killable-gjs-XXXXXX');
    const ready = Gio.File.new_for_path(GLib.build_filenamev([dir, 'ready']));
    const monitor = Gio.File.new_for_path(dir).monitor_directory(Gio.FileMonitorFlags.NONE, null);
    let isReady = false;
    monitor.connect('changed', () => {
        isReady = ready.query_exists(null);
    });
    const task = Killable.ProcessTask.new(['sh', '-c', 'trap "" TERM; : > "$0"; exec sleep 1000',
        ready.get_path()]);
    task.set_grace_period(100 * 1000);
    w.watch(task, 'stubborn');
    task.start();
    iterateUntil(() => isReady || ready.query_exists(null), 'the program ignores SIGTERM');
    monitor.cancel();
    task.stop();
    iterateUntil(() => task.is_finished() && w.finished.length === 1, 'the task ended');
    ok(task.get_state() === State.KILLED, `it is KILLED (${stateName(task)})`);
    ok(task.get_error().matches(Killable.error_quark(), Killable.Error.KILLED),
        `its error is KILLED (${task.get_error()})`);
    ok(task.get_if_signaled() && task.get_term_sig() === 9, 'the program got SIGKILL');
    ok(w.offThread.length === 0, `every emission on the main thread (${w.offThread.join(', ')})`);
    ready.delete(null);
    Gio.File.new_for_path(dir).delete(null);
}

testStopTree();
testTimeoutTree();
testEscalationToKill();

print(`1..${nTests}`);
System.exit(nFailed === 0 ? 0 : 1);
