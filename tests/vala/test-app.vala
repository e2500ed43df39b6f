/* test-app.vala: results, group tasks, wait_async and the error domain
 * from Vala, against the generated killable-1.vapi
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GTest, TAP output.
 */

const int64 HOUR = 3600 * (int64) 1000000;

static void
test_results ()
{
  var task = new Killable.Task ("answer", (t) => {
    t.return_value (42);
    return true;
  });

  try {
    task.start ();
    task.join ();
    Value value;
    assert_true (task.propagate_value (out value));
    assert_true (value.holds (typeof (int)));
    assert_true (value.get_int () == 42);
  } catch (GLib.Error e) {
    assert_no_error (e);
  }
}

/* The error domain is a registered type: catch (Killable.Error e), and a
 * switch on the codes. */
static void
test_error_domain ()
{
  var task = new Killable.Task ("sleeper", (t) => {
    t.sleep (HOUR);
    return true;
  });
  string seen = "none";

  try {
    task.start ();
    task.stop ();
    task.join ();
  } catch (Killable.Error e) {
    switch (e.code) {
    case Killable.Error.STOPPED:
      seen = "stopped";
      break;
    default:
      seen = "other";
      break;
    }
  } catch (GLib.Error e) {
    seen = "not a Killable.Error";
  }
  assert_true (seen == "stopped");
  assert_true (typeof (Killable.Error) != Type.INVALID);
}

async void
wait_group (Killable.Task group, MainLoop loop, out bool ok)
{
  ok = false;
  try {
    ok = yield group.wait_async (null);
  } catch (GLib.Error e) {
    assert_no_error (e);
  }
  loop.quit ();
}

/* A group ends when its children have; wait_async awaits it. */
static void
test_group_wait ()
{
  var loop = new MainLoop (null, false);
  var group = new Killable.Task.group ("downloads");
  var limiter = new Killable.Limiter (1);
  Killable.Task[] children = {};
  bool ok = false;

  for (int i = 0; i < 3; i++) {
    var child = new Killable.Task ("child", (t) => { return true; });
    child.limiter = limiter;
    try {
      group.add_child (child);
    } catch (GLib.Error e) {
      assert_no_error (e);
    }
    children += child;
  }

  try {
    group.start ();
    foreach (var child in children)
      child.start ();
  } catch (GLib.Error e) {
    assert_no_error (e);
  }

  wait_group.begin (group, loop, (obj, res) => {
    wait_group.end (res, out ok);
  });
  loop.run ();
  assert_true (ok);
  assert_true (group.get_state () == Killable.TaskState.SUCCEEDED);
  /* The last permit comes back once its task's worker is idle again, a
   * moment after the task (and so the group) ended: polled, bounded. */
  var until = get_monotonic_time () + 10 * TimeSpan.SECOND;
  while (limiter.get_n_running () != 0 && get_monotonic_time () < until)
    Thread.yield ();
  assert_true (limiter.get_n_running () == 0);
}

int
main (string[] args)
{
  Test.init (ref args);
  Test.add_func ("/vala/results", test_results);
  Test.add_func ("/vala/error-domain", test_error_domain);
  Test.add_func ("/vala/group-wait", test_group_wait);
  return Test.run ();
}
