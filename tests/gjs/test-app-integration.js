// test-app-integration.js: what GJS uses of libkillable, and what it must
// not crash on
//
// SPDX-License-Identifier: LGPL-2.1-or-later
//
// GJS runs JavaScript on the main thread only. A closure given as a cleanup
// or a stop callback used to be freed on a worker thread (a crash, exit
// 139); it is now released on the main context. Work given as a
// JavaScript function cannot run on a worker: the task ends FAILED with a
// message that says so (GJS logs a critical when it refuses the call, so
// this test runs without fatal criticals). Prints TAP.

imports.gi.versions.GLib = '2.0';
imports.gi.versions.Gio = '2.0';
imports.gi.versions.Killable = '1';
const {Gio, GLib, Killable} = imports.gi;
const System = imports.system;

Gio._promisify(Killable.Task.prototype, 'wait_async', 'wait_finish');
Gio._promisify(Killable.Task.prototype, 'run_async', 'run_finish');
Gio._promisify(Killable.Task.prototype, 'shutdown_async', 'shutdown_finish');

const State = Killable.TaskState;
const GUARD_MS = 20000;

let nTests = 0;
let nFailed = 0;

function ok(condition, what) {
    nTests++;
    if (!condition)
        nFailed++;
    print(`${condition ? 'ok' : 'not ok'} ${nTests} - ${what}`);
}

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

// The case that crashed: closures as a cleanup and as stop callbacks of a
// process task, released after the worker ran them (or refused to).
function testClosuresDoNotCrash() {
    const loop = new GLib.MainLoop(null, false);
    const task = Killable.ProcessTask.new(['sleep', '3600']);
    let stopCallbackRan = 0;
    task.add_cleanup(() => {});
    // A stop requested here, on the main thread: it runs here.
    task.add_stop_callback(() => {
        stopCallbackRan++;
    });
    task.connect('finished', () => loop.quit());
    task.start();
    GLib.idle_add(GLib.PRIORITY_DEFAULT, () => {
        task.stop();
        return GLib.SOURCE_REMOVE;
    });
    loop.run();
    ok(task.get_state() === State.CANCELLED, 'the process task was stopped');
    ok(stopCallbackRan === 1, 'the stop callback ran on the main thread');

    // Stopped by a timeout: the callback would run on libkillable's
    // timer thread; GJS refuses it there, and nothing crashes.
    const timed = Killable.ProcessTask.new(['sleep', '3600']);
    timed.add_stop_callback(() => {});
    timed.add_cleanup(() => {});
    timed.set_timeout(1000);
    timed.connect('finished', () => loop.quit());
    // Started from inside the running main loop, as the GJS page says: a
    // closure released while no main loop runs the owner context is
    // released at once, on whatever thread releases it.
    GLib.idle_add(GLib.PRIORITY_DEFAULT, () => {
        timed.start();
        return GLib.SOURCE_REMOVE;
    });
    loop.run();
    ok(timed.get_error().matches(Killable.error_quark(), Killable.Error.TIMED_OUT),
        `a timed-out task with closures ends normally (${timed.get_error()})`);
}

function testWorkInJavaScriptFails() {
    const task = Killable.Task.new('js-work', () => true);
    let finished = false;
    task.connect('finished', () => {
        finished = true;
    });
    task.start();
    iterateUntil(() => finished, 'the task with JavaScript work ended');
    ok(task.get_state() === State.FAILED, 'it FAILED');
    ok(task.get_error().message.includes('GJS'), `its message says why (${task.get_error().message})`);
}

async function testGroupAndResults() {
    const group = Killable.Task.new_group('downloads');
    const children = [1, 2, 3].map(() => Killable.ProcessTask.new(['true']));
    let ended = 0;
    for (const child of children) {
        group.add_child(child);
        child.connect('finished', () => {
            ended++;
        });
    }
    group.start();
    // On the main thread, while the group cannot end (its children are
    // pending): a group has no worker to give its value.
    group.return_value(children.length);
    children.forEach(c => c.start());
    ok(await group.wait_async(null), 'wait_async resolves once the group ended');
    ok(group.get_state() === State.SUCCEEDED, 'the group SUCCEEDED');
    const [succeeded, value] = group.propagate_value();
    ok(succeeded && value === 3, `propagate_value gives the value (${value})`);

    // A task cancelled by the caller's cancellable: GIO's CANCELLED.
    const sleeper = Killable.ProcessTask.new(['sleep', '3600']);
    const cancellable = new Gio.Cancellable();
    const promise = sleeper.run_async(cancellable);
    GLib.idle_add(GLib.PRIORITY_DEFAULT, () => {
        cancellable.cancel();
        return GLib.SOURCE_REMOVE;
    });
    try {
        await promise;
        ok(false, 'run_async rejects');
    } catch (e) {
        ok(e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED),
            `run_finish gives G_IO_ERROR_CANCELLED (${e})`);
    }
}

async function testShutdown() {
    const dir = GLib.dir_make_tmp('killable-gjs-XXXXXX');
    const ready = Gio.File.new_for_path(GLib.build_filenamev([dir, 'ready']));
    const monitor = Gio.File.new_for_path(dir).monitor_directory(Gio.FileMonitorFlags.NONE, null);
    monitor.connect('changed', () => {});
    const root = Killable.Task.new_group('app');
    const stubborn = Killable.ProcessTask.new(['sh', '-c', 'trap "" TERM INT; : > "$0"; exec sleep 1000',
        ready.get_path()]);
    root.add_child(stubborn);
    root.start();
    stubborn.start();
    // Only once it ignores SIGTERM.
    iterateUntil(() => ready.query_exists(null), 'the program ignores SIGTERM and SIGINT');
    monitor.cancel();
    ready.delete(null);
    Gio.File.new_for_path(dir).delete(null);
    ok(await root.shutdown_async(50 * 1000, null), 'shutdown completes');
    ok(stubborn.get_state() === State.KILLED,
        `the stubborn program was killed (${stubborn.get_state()}, ${stubborn.get_error()})`);
    ok(root.is_finished(), 'the tree ended');
}

async function main() {
    testClosuresDoNotCrash();
    testWorkInJavaScriptFails();
    await testGroupAndResults();
    await testShutdown();
}

const loop = new GLib.MainLoop(null, false);
let error = null;
main().catch(e => {
    error = e;
}).finally(() => loop.quit());
loop.run();
if (error !== null)
    ok(false, `no exception (${error}\n${error.stack})`);
print(`1..${nTests}`);
System.exit(nFailed === 0 ? 0 : 1);
