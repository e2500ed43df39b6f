/* test-task.vala: Vala against the generated killable-1.vapi
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * start, stop, join and the error code, for a task made from a closure and
 * for a subclass overriding run(). GTest, TAP output.
 */

const int64 HOUR = 3600 * (int64) 1000000;
/* A failure guard, scaled by KILLABLE_TEST_TIME_SCALE like the C suites'
 * limits (tests/test-core-util.h). */
static int64 guard_usec () {
  var text = Environment.get_variable ("KILLABLE_TEST_TIME_SCALE");
  double scale = text != null ? double.parse (text) : 1.0;
  return (int64) (20 * 1000000 * (scale >= 1.0 ? scale : 1.0));
}

/* A subclass that overrides run() and waits through the task; it says when
 * run() is entered, and keeps the error sleep() raised in it. */
class Waiter : Killable.Task {
  public Mutex mutex = Mutex ();
  public Cond cond = Cond ();
  public bool entered = false;
  public GLib.Error? caught = null;

  public override bool run () throws GLib.Error {
    mutex.lock ();
    entered = true;
    cond.signal ();
    mutex.unlock ();
    try {
      sleep (HOUR);
    } catch (GLib.Error e) {
      mutex.lock ();
      caught = e.copy ();
      mutex.unlock ();
      throw e;
    }
    return true;
  }

  public void wait_entered () {
    var deadline = get_monotonic_time () + guard_usec ();
    mutex.lock ();
    while (!entered) {
      if (!cond.wait_until (mutex, deadline))
        break;
    }
    var ok = entered;
    mutex.unlock ();
    assert_true (ok);
  }
}

static void
test_closure_stop_join ()
{
  Mutex mutex = Mutex ();
  Cond cond = Cond ();
  bool running = false;
  var task = new Killable.Task ("closure", (t) => {
    mutex.lock ();
    running = true;
    cond.signal ();
    mutex.unlock ();
    t.sleep (HOUR);
    return true;
  });

  assert_true (task.get_state () == Killable.TaskState.PENDING);
  try {
    task.start ();
  } catch (GLib.Error e) {
    assert_no_error (e);
  }
  assert_true (task.get_state () == Killable.TaskState.RUNNING);

  /* Wait (bounded) for the worker to be inside its work. */
  var deadline = get_monotonic_time () + guard_usec ();
  mutex.lock ();
  while (!running)
    if (!cond.wait_until (mutex, deadline))
      break;
  assert_true (running);
  mutex.unlock ();

  task.stop ();
  try {
    task.join ();
    assert_not_reached ();
  } catch (GLib.Error e) {
    assert_error (e, Killable.Error.quark (), Killable.Error.STOPPED);
    assert_true (e is Killable.Error.STOPPED);
  }
  assert_true (task.get_state () == Killable.TaskState.CANCELLED);
  assert_true (task.is_finished ());
}

static void
test_subclass_run ()
{
  var task = new Waiter ();
  try {
    task.start ();
  } catch (GLib.Error e) {
    assert_no_error (e);
  }

  /* Stopped once inside run(): the subclass's own code sees the stop. */
  task.wait_entered ();
  var reason = new GLib.Error (Killable.Error.quark (), Killable.Error.TIMED_OUT, "too slow");
  task.stop_with_error (reason);
  try {
    task.join ();
    assert_not_reached ();
  } catch (Killable.Error.TIMED_OUT e) {
    assert_cmpstr (e.message, CompareOperator.EQ, "too slow");
  } catch (GLib.Error e) {
    assert_no_error (e);
  }
  assert_true (task.get_state () == Killable.TaskState.CANCELLED);
  assert_true (task.get_error () != null);
  assert_true (task.get_error ().matches (Killable.Error.quark (), Killable.Error.TIMED_OUT));
  /* sleep() inside the overridden run() raised the stop's cause. */
  task.mutex.lock ();
  var caught = task.caught;
  task.mutex.unlock ();
  assert_true (caught != null);
  assert_error (caught, Killable.Error.quark (), Killable.Error.TIMED_OUT);
  assert_cmpstr (caught.message, CompareOperator.EQ, "too slow");
}

static void
test_success_and_failure ()
{
  var good = new Killable.Task ("good", (t) => { return true; });
  var bad = new Killable.Task ("bad", (t) => {
    throw new IOError.NOT_FOUND ("no such file");
  });

  try {
    good.start ();
    bad.start ();
    good.join ();
  } catch (GLib.Error e) {
    assert_no_error (e);
  }
  assert_true (good.get_state () == Killable.TaskState.SUCCEEDED);

  try {
    bad.join ();
    assert_not_reached ();
  } catch (GLib.Error e) {
    assert_error (e, IOError.quark (), IOError.NOT_FOUND);
  }
  assert_true (bad.get_state () == Killable.TaskState.FAILED);
  assert_false (Killable.Error.is_cancellation (bad.get_error ()));
}

static void
test_process_kill ()
{
  Killable.ProcessTask task;
  try {
    task = new Killable.ProcessTask ({ "sleep", "1000" });
    task.start ();
  } catch (GLib.Error e) {
    assert_no_error (e);
    return;
  }
  task.kill ();
  try {
    task.join ();
    assert_not_reached ();
  } catch (GLib.Error e) {
    assert_error (e, Killable.Error.quark (), Killable.Error.KILLED);
    assert_true (Killable.Error.is_cancellation (e));
  }
  assert_true (task.get_state () == Killable.TaskState.KILLED);
}

static void
test_start_twice ()
{
  var task = new Killable.Task ("twice", (t) => { return true; });
  try {
    task.start ();
    task.join ();
  } catch (GLib.Error e) {
    assert_no_error (e);
  }
  try {
    task.start ();
    assert_not_reached ();
  } catch (GLib.Error e) {
    assert_error (e, Killable.Error.quark (), Killable.Error.FAILED);
  }
}

int
main (string[] args)
{
  Test.init (ref args);
  Test.add_func ("/vala/closure-stop-join", test_closure_stop_join);
  Test.add_func ("/vala/subclass-run", test_subclass_run);
  Test.add_func ("/vala/success-and-failure", test_success_and_failure);
  Test.add_func ("/vala/process-kill", test_process_kill);
  Test.add_func ("/vala/start-twice", test_start_twice);
  return Test.run ();
}
