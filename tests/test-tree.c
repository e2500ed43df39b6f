/* test-tree.c: task trees: children, stop propagation, structured
 * completion, child policies, inherited deadlines
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <string.h>

#include <killable.h>

/* For the length of a parent's children list while its work runs. */
#include "killable-task-private.h"

/* Upper bound of every wait: reaching it is a failure, never the way a test
 * synchronises. Longer under valgrind. */
#define TEST_GUARD_USEC TEST_LIMIT_USEC (5 * G_USEC_PER_SEC)
#include "test-core-util.h"

static GThread *main_thread;

/* Sizes of the big tests: valgrind checks memory, not scale, and is ~50×
 * slower; the natural run keeps the full sizes. */
static guint
scaled (guint n)
{
  return test_scale (n, n / 10);
}

static GError *
make_cause (void)
{
  return g_error_new_literal (TEST_ERROR, 7, "custom cause");
}

static void
set_flag_cb (KillableTask *task,
             gboolean     *flag)
{
  g_assert_true (g_thread_self () == main_thread);
  *flag = TRUE;
}

/* Work functions {{{ */

static gboolean
return_true (KillableTask  *task,
             gpointer       user_data,
             GError       **error)
{
  return TRUE;
}

static gboolean
fail_boom (KillableTask  *task,
           gpointer       user_data,
           GError       **error)
{
  g_set_error_literal (error, TEST_ERROR, 1, "boom");
  return FALSE;
}

/* Announces itself on the gate (if any), then blocks until stopped and
 * returns the error that told it so: the stop's cause. */
static gboolean
wait_for_stop (KillableTask  *task,
               gpointer       user_data,
               GError       **error)
{
  TestGate *gate = user_data;

  if (gate != NULL)
    test_gate_enter (gate);

  while (killable_task_sleep (task, 60 * G_USEC_PER_SEC, error))
    ;

  return FALSE;
}

/* }}} */

/* Children list model {{{ */

typedef struct
{
  TestGate  gate;
  guint     n_children;
} SpawnData;

/* On the parent's worker: adds children from this thread, starts them
 * (they wait on the gate) and returns at once. */
static gboolean
spawn_gated_children (KillableTask  *task,
                      gpointer       user_data,
                      GError       **error)
{
  SpawnData *data = user_data;

  for (guint i = 0; i < data->n_children; i++)
    {
      g_autofree char *name = g_strdup_printf ("child-%u", i);
      g_autoptr(KillableTask) child = killable_task_new (name, test_work_pass_gate,
                                                         &data->gate, NULL);

      if (!killable_task_add_child (task, child, error))
        return FALSE;
      if (!killable_task_start (child, error))
        return FALSE;
    }

  return TRUE;
}

typedef struct
{
  guint n_emissions;
  guint max_items;
} ModelStats;

static void
items_changed_cb (GListModel *model,
                  guint       position,
                  guint       removed,
                  guint       added,
                  ModelStats *stats)
{
  /* The model belongs to the owner context: never a worker thread. */
  g_assert_true (g_thread_self () == main_thread);
  stats->n_emissions++;
  stats->max_items = MAX (stats->max_items, g_list_model_get_n_items (model));
}

static void
check_children_model (gboolean retain)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  SpawnData data;
  ModelStats stats = { 0, 0 };
  TestCounter finalized;
  GListModel *model;
  gboolean finished = FALSE;

  test_gate_init (&data.gate);
  data.n_children = 3;
  test_counter_init (&finalized);

  parent = killable_task_new ("parent", spawn_gated_children, &data, NULL);
  killable_task_set_retain_children (parent, retain);
  g_assert_cmpint (killable_task_get_retain_children (parent), ==, retain);

  model = killable_task_get_children (parent);
  g_assert_nonnull (model);
  g_assert_true (g_list_model_get_item_type (model) == KILLABLE_TYPE_TASK);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 0);
  g_signal_connect (model, "items-changed", G_CALLBACK (items_changed_cb), &stats);
  g_signal_connect (parent, "finished", G_CALLBACK (set_flag_cb), &finished);

  g_assert_true (killable_task_start (parent, &error));
  g_assert_no_error (error);

  /* The children were added on the parent's worker; the model follows on
   * this thread, when the main context runs. */
  test_gate_wait_entered (&data.gate, data.n_children);
  TEST_ITERATE_UNTIL (NULL, g_list_model_get_n_items (model) == data.n_children);
  g_assert_cmpuint (stats.n_emissions, >=, 1);

  for (guint i = 0; i < data.n_children; i++)
    {
      KillableTask *child = g_list_model_get_item (model, i);
      g_autoptr(KillableTask) child_parent = killable_task_dup_parent (child);
      g_autofree char *name = g_strdup_printf ("child-%u", i);

      g_assert_true (child_parent == parent);
      g_assert_cmpstr (killable_task_get_name (child), ==, name);
      g_assert_false (killable_task_is_finished (child));
      test_counter_watch (&finalized, child);
      g_ptr_array_add (children, child);
    }

  /* The parent's work returned, but its children still run. */
  g_assert_false (killable_task_is_finished (parent));

  test_gate_open (&data.gate);
  TEST_ITERATE_UNTIL (NULL, finished);

  g_assert_true (test_join_guarded (parent, &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_SUCCEEDED);

  for (guint i = 0; i < children->len; i++)
    {
      KillableTask *child = g_ptr_array_index (children, i);
      g_autoptr(KillableTask) child_parent = killable_task_dup_parent (child);

      g_assert_cmpint (killable_task_get_state (child), ==, KILLABLE_TASK_STATE_SUCCEEDED);
      if (retain)
        g_assert_true (child_parent == parent);
      else
        g_assert_null (child_parent);
    }

  /* `finished` of the parent comes after the model caught up. */
  if (retain)
    {
      g_assert_cmpuint (g_list_model_get_n_items (model), ==, data.n_children);
      for (guint i = 0; i < data.n_children; i++)
        {
          g_autoptr(KillableTask) item = g_list_model_get_item (model, i);

          g_assert_true (item == g_ptr_array_index (children, i));
        }
    }
  else
    {
      g_assert_cmpuint (g_list_model_get_n_items (model), ==, 0);
    }
  g_assert_cmpuint (stats.max_items, ==, data.n_children);

  /* Released, by the parent (default) or with it (retain-children). */
  g_clear_pointer (&children, g_ptr_array_unref);
  if (!retain)
    test_counter_wait (&finalized, data.n_children);
  g_signal_handlers_disconnect_by_func (model, items_changed_cb, &stats);
  test_drain (NULL);
  g_clear_object (&parent);
  test_counter_wait (&finalized, data.n_children);

  test_counter_clear (&finalized);
  test_gate_clear (&data.gate);
}

static void
test_children_model_release (void)
{
  check_children_model (FALSE);
}

static void
test_children_model_retain (void)
{
  check_children_model (TRUE);
}

/* }}} */

/* Stop propagation {{{ */

typedef struct
{
  GMutex  lock;
  guint   n_calls;
  GError *reason;
  GThread *thread;
} StopRecord;

static void
stop_record_init (StopRecord *record)
{
  g_mutex_init (&record->lock);
  record->n_calls = 0;
  record->reason = NULL;
  record->thread = NULL;
}

static void
stop_record_clear (StopRecord *record)
{
  g_clear_error (&record->reason);
  g_mutex_clear (&record->lock);
}

static void
record_stop_cb (KillableTask *task,
                const GError *reason,
                gpointer      user_data)
{
  StopRecord *record = user_data;

  g_mutex_lock (&record->lock);
  record->n_calls++;
  record->thread = g_thread_self ();
  g_clear_error (&record->reason);
  if (reason != NULL)
    record->reason = g_error_copy (reason);
  g_mutex_unlock (&record->lock);
}

static void
test_add_child_to_stopped_parent (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(KillableTask) pending = NULL;
  g_autoptr(KillableTask) running = NULL;
  g_autoptr(GError) cause = make_cause ();
  g_autoptr(GError) error = NULL;
  TestGate parent_gate, child_gate;
  StopRecord record;

  test_gate_init (&parent_gate);
  test_gate_init (&child_gate);
  stop_record_init (&record);

  parent = killable_task_new ("parent", test_work_pass_gate_then_check, &parent_gate, NULL);
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&parent_gate, 1);

  killable_task_stop_with_error (parent, cause);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_STOPPING);

  /* A pending child: stopped at once, in this thread, with the cause; it
   * never ran, so it is CANCELLED right away. */
  pending = killable_task_new ("pending", return_true, NULL, NULL);
  g_assert_cmpuint (killable_task_add_stop_callback (pending, record_stop_cb, &record, NULL),
                    !=, 0);
  g_assert_true (killable_task_add_child (parent, pending, &error));
  g_assert_no_error (error);

  g_assert_true (killable_task_is_stop_requested (pending));
  g_assert_cmpuint (record.n_calls, ==, 1);
  g_assert_true (record.thread == g_thread_self ());
  g_assert_error (record.reason, TEST_ERROR, 7);
  g_assert_cmpint (killable_task_get_state (pending), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_error (killable_task_get_error (pending), TEST_ERROR, 7);
  g_assert_cmpstr (killable_task_get_error (pending)->message, ==, "custom cause");

  /* A child that already runs: stopped at once too. */
  running = killable_task_new ("running", wait_for_stop, &child_gate, NULL);
  g_assert_true (killable_task_start (running, NULL));
  test_gate_wait_entered (&child_gate, 1);
  g_assert_false (killable_task_is_stop_requested (running));
  g_assert_true (killable_task_add_child (parent, running, &error));
  g_assert_no_error (error);
  g_assert_true (killable_task_is_stop_requested (running));

  g_assert_false (test_join_guarded (running, &error));
  g_assert_error (error, TEST_ERROR, 7);
  g_clear_error (&error);
  g_assert_cmpint (killable_task_get_state (running), ==, KILLABLE_TASK_STATE_CANCELLED);

  test_gate_open (&parent_gate);
  g_assert_false (test_join_guarded (parent, &error));
  g_assert_error (error, TEST_ERROR, 7);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_CANCELLED);

  stop_record_clear (&record);
  test_gate_clear (&child_gate);
  test_gate_clear (&parent_gate);
}

static void
test_propagation_depth3 (void)
{
  KillableTask *tasks[4];
  StopRecord records[4];
  g_autoptr(GError) cause = make_cause ();
  TestGate gate;

  test_gate_init (&gate);

  /* root → a → b → c, built while pending, then all started. */
  for (guint i = 0; i < G_N_ELEMENTS (tasks); i++)
    {
      g_autofree char *name = g_strdup_printf ("level-%u", i);

      tasks[i] = killable_task_new (name, wait_for_stop, &gate, NULL);
      stop_record_init (&records[i]);
      killable_task_add_stop_callback (tasks[i], record_stop_cb, &records[i], NULL);
      if (i > 0)
        {
          g_autoptr(GError) error = NULL;

          g_assert_true (killable_task_add_child (tasks[i - 1], tasks[i], &error));
          g_assert_no_error (error);
        }
    }

  for (guint i = 0; i < G_N_ELEMENTS (tasks); i++)
    g_assert_true (killable_task_start (tasks[i], NULL));
  test_gate_wait_entered (&gate, G_N_ELEMENTS (tasks));

  killable_task_stop_with_error (tasks[0], cause);

  /* Every stop callback already ran, in this thread, with the cause. */
  for (guint i = 0; i < G_N_ELEMENTS (tasks); i++)
    {
      g_assert_true (killable_task_is_stop_requested (tasks[i]));
      g_assert_cmpuint (records[i].n_calls, ==, 1);
      g_assert_true (records[i].thread == g_thread_self ());
      g_assert_error (records[i].reason, TEST_ERROR, 7);
    }

  /* Deepest first: join must not depend on the order. */
  for (guint i = G_N_ELEMENTS (tasks); i > 0; i--)
    {
      KillableTask *task = tasks[i - 1];
      g_autoptr(GError) error = NULL;

      g_assert_false (test_join_guarded (task, &error));
      g_assert_error (error, TEST_ERROR, 7);
      g_assert_cmpstr (error->message, ==, "custom cause");
      g_assert_cmpint (killable_task_get_state (task), ==, KILLABLE_TASK_STATE_CANCELLED);
    }

  for (guint i = 0; i < G_N_ELEMENTS (tasks); i++)
    {
      g_object_unref (tasks[i]);
      stop_record_clear (&records[i]);
    }
  test_gate_clear (&gate);
}

/* A chain of tasks, each the only child of the next one. */
typedef struct
{
  guint          depth;
  KillableTask  *root;       /* (owned) */
  KillableTask  *leaf;       /* (owned) */
  TestCounter    finalized;  /* of the tasks of the chain */
} Chain;

/* Builds a chain scaled (100000) deep, bottom-up (add_child() walks the new
 * parent's ancestors to refuse cycles: a new root has none). The chain
 * holds a reference on its root and on its leaf. */
static void
chain_init (Chain    *chain,
            gboolean  retain)
{
  KillableTask *top;

  chain->depth = scaled (100000);
  test_counter_init (&chain->finalized);

  chain->leaf = killable_task_new ("leaf", return_true, NULL, NULL);
  killable_task_set_retain_children (chain->leaf, retain);
  test_counter_watch (&chain->finalized, chain->leaf);
  top = g_object_ref (chain->leaf);

  for (guint i = 1; i < chain->depth; i++)
    {
      KillableTask *task = killable_task_new ("link", return_true, NULL, NULL);
      GError *error = NULL;

      killable_task_set_retain_children (task, retain);
      test_counter_watch (&chain->finalized, task);
      if (!killable_task_add_child (task, top, &error))
        g_error ("add_child failed at depth %u: %s", i, error->message);
      g_object_unref (top);
      top = task;
    }

  chain->root = top;
}

/* Once the chain's references were dropped. */
static void
chain_clear (Chain *chain)
{
  test_counter_clear (&chain->finalized);
}

/* Stops the chain from its root with the custom cause, timing it; both
 * ends are then CANCELLED by it. */
static void
chain_stop (Chain      *chain,
            const char *how)
{
  g_autoptr(GError) cause = make_cause ();
  gint64 t0 = g_get_monotonic_time ();

  killable_task_stop_with_error (chain->root, cause);
  g_test_message ("stopping a chain %u deep%s: %.1f ms", chain->depth, how,
                  (g_get_monotonic_time () - t0) / 1000.);

  g_assert_cmpint (killable_task_get_state (chain->root), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (killable_task_get_state (chain->leaf), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_error (killable_task_get_error (chain->leaf), TEST_ERROR, 7);
}

/* Drops the root, the last reference on the chain (the leaf's was dropped),
 * timing it: the whole chain is released in this thread, synchronously,
 * without recursion. */
static void
chain_release (Chain      *chain,
               const char *what)
{
  gint64 t0 = g_get_monotonic_time ();

  g_clear_object (&chain->root);
  g_test_message ("releasing %s chain %u deep: %.1f ms", what, chain->depth,
                  (g_get_monotonic_time () - t0) / 1000.);
  g_assert_cmpuint (test_counter_get (&chain->finalized), ==, chain->depth);
}

static void
test_deep_chain_stop (void)
{
  g_autoptr(KillableTask) leaf_parent = NULL;
  Chain chain;

  /* retain-children keeps the chain whole after the stop, so that its
   * release below is deep too. */
  chain_init (&chain, TRUE);
  chain_stop (&chain, "");

  leaf_parent = killable_task_dup_parent (chain.leaf);
  g_assert_nonnull (leaf_parent);
  g_assert_cmpint (killable_task_get_state (leaf_parent), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_clear_object (&leaf_parent);
  g_clear_object (&chain.leaf);
  g_assert_cmpuint (test_counter_get (&chain.finalized), ==, 0);

  chain_release (&chain, "a");

  chain_clear (&chain);
}

static void
test_deep_chain_release (void)
{
  Chain chain;

  /* Never started nor stopped: dropping the root drops the whole chain. */
  chain_init (&chain, FALSE);
  g_clear_object (&chain.leaf);
  chain_release (&chain, "a pending");

  chain_clear (&chain);
}

static void
test_deep_chain_stop_default (void)
{
  Chain chain;

  /* Default: each task leaves its parent as it ends, during the stop. */
  chain_init (&chain, FALSE);
  chain_stop (&chain, " (released as it ends)");
  g_assert_null (killable_task_dup_parent (chain.leaf));

  /* Only the test's references are left. */
  g_assert_cmpuint (test_counter_get (&chain.finalized), ==, chain.depth - 2);
  g_clear_object (&chain.leaf);
  g_clear_object (&chain.root);
  g_assert_cmpuint (test_counter_get (&chain.finalized), ==, chain.depth);

  chain_clear (&chain);
}

/* Stops a pending parent with @n pending children; returns the time the
 * stop took, in µs. */
static gint64
stop_wide (guint n)
{
  g_autoptr(KillableTask) parent = killable_task_new ("wide", return_true, NULL, NULL);
  g_autoptr(GPtrArray) children = g_ptr_array_new_full (n, g_object_unref);
  TestCounter finalized;
  gint64 t0, elapsed;

  test_counter_init (&finalized);

  for (guint i = 0; i < n; i++)
    {
      KillableTask *child = killable_task_new ("child", return_true, NULL, NULL);

      test_counter_watch (&finalized, child);
      g_assert_true (killable_task_add_child (parent, child, NULL));
      g_ptr_array_add (children, child);
    }

  t0 = g_get_monotonic_time ();
  killable_task_stop (parent);
  elapsed = g_get_monotonic_time () - t0;

  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_CANCELLED);
  for (guint i = 0; i < n; i++)
    {
      KillableTask *child = g_ptr_array_index (children, i);

      if (killable_task_get_state (child) != KILLABLE_TASK_STATE_CANCELLED)
        g_error ("child %u of %u was not cancelled", i, n);
    }
  g_assert_error (killable_task_get_error (g_ptr_array_index (children, n - 1)),
                  KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);

  g_clear_pointer (&children, g_ptr_array_unref);
  g_assert_cmpuint (test_counter_get (&finalized), ==, n);
  g_clear_object (&parent);
  test_counter_clear (&finalized);

  return elapsed;
}

static void
test_wide_stop (void)
{
  gint64 small = G_MAXINT64, large = G_MAXINT64;
  guint runs = test_under_valgrind () ? 1 : 3;

  /* Best of a few runs: the machine is shared. */
  for (guint i = 0; i < runs; i++)
    small = MIN (small, stop_wide (scaled (10000)));
  for (guint i = 0; i < MAX (runs - 1, 1); i++)
    large = MIN (large, stop_wide (scaled (100000)));

  g_test_message ("stopping a parent with %u children: %.1f ms; with %u: %.1f ms "
                  "(ratio %.1f, linear is 10)",
                  scaled (10000), small / 1000., scaled (100000), large / 1000.,
                  (double) large / MAX (small, 1));

  /* No timed assertion here (a loaded machine made a 30x guard flaky): the
   * cost per task from 1 000 to 1 000 000 is the benchmark's "tree stop
   * linearity" row, a ratio measured side by side. This test asserts what
   * stop_wide() checks: every child stopped and released. */
}

/* }}} */

/* Stop racing add_child {{{ */

typedef struct
{
  KillableTask *parent;
  GPtrArray    *children;    /* (owned) written by the adder only */
  guint         n_children;
  guint         stop_after;
  guint         n_added_stopped;  /* added to an already stopped parent */
  TestCounter   finalized;
  TestGate      reached;     /* entered once stop_after children were added */
} RaceData;

static gpointer
race_adder_thread (gpointer user_data)
{
  RaceData *data = user_data;

  for (guint i = 0; i < data->n_children; i++)
    {
      KillableTask *child = killable_task_new ("race-child", return_true, NULL, NULL);
      GError *error = NULL;

      test_counter_watch (&data->finalized, child);
      if (killable_task_is_stop_requested (data->parent))
        data->n_added_stopped++;
      if (!killable_task_add_child (data->parent, child, &error))
        g_error ("add_child %u failed: %s", i, error->message);
      g_ptr_array_add (data->children, child);

      if (i == data->stop_after)
        {
          /* Tell the stopper, and go on adding at once. */
          test_gate_enter (&data->reached);
        }
    }

  return NULL;
}

static gpointer
race_stopper_thread (gpointer user_data)
{
  RaceData *data = user_data;

  test_gate_wait_entered (&data->reached, 1);
  killable_task_stop (data->parent);

  return NULL;
}

/* A child added while it ends: add_child() publishes the parent, then reads
 * the child's state; the child publishes its terminal state, then reads its
 * parent without the tree lock (a lone task takes no lock at its end). One
 * of the two sees the other, so every child is uncounted once and the
 * parent, whose work returns after the last add, ends and releases them
 * all. A child whose end was missed would keep the parent waiting for it. */
static void
test_add_child_while_ending (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(GError) error = NULL;
  TestCounter finalized;
  TestGate gate;
  guint n = scaled (5000);

  test_gate_init (&gate);
  test_counter_init (&finalized);
  parent = killable_task_new ("parent", test_work_pass_gate, &gate, NULL);
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&gate, 1);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(KillableTask) child = killable_task_new ("ending", return_true, NULL, NULL);

      test_counter_watch (&finalized, child);
      g_assert_true (killable_task_start (child, NULL));
      /* Any time: before, while or after the child ends. */
      g_assert_true (killable_task_add_child (parent, child, &error));
      g_assert_no_error (error);
    }

  test_gate_open (&gate);
  g_assert_true (test_join_guarded (parent, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (killable_tree_count_children (parent), ==, 0);
  test_counter_wait (&finalized, n);

  test_drain (NULL);
  g_clear_object (&parent);
  test_counter_clear (&finalized);
  test_gate_clear (&gate);
}

/* @n pending tasks called @name added to @parent, held by the array (the
 * yield tests below: a stop ends each of them at once). */
static GPtrArray *
add_pending_tasks (KillableTask *parent,
                   const char   *name,
                   guint         n)
{
  GPtrArray *tasks = g_ptr_array_new_full (n, g_object_unref);

  for (guint i = 0; i < n; i++)
    {
      KillableTask *task = killable_task_new (name, return_true, NULL, NULL);

      g_ptr_array_add (tasks, task);
      g_assert_true (killable_task_add_child (parent, task, NULL));
    }

  return tasks;
}

/* Asserts that every task of @tasks finished, then releases them. */
static void
assert_finished_and_free (GPtrArray *tasks)
{
  for (guint i = 0; i < tasks->len; i++)
    g_assert_true (killable_task_is_finished (g_ptr_array_index (tasks, i)));
  g_ptr_array_unref (tasks);
}

/* A batched stop that lets another thread have the tree lock mid-way
 * (tree_lock_yield(), forced here by the test hook) resumes at the child
 * it was about to visit. If that child meanwhile ended, left its parent
 * and was added to the same parent again (at the end of its list; it
 * stays there when the parent retains its children), the stop must not go
 * on from the child's new place: the siblings that were after it would
 * never be stopped, and the parent, waiting for them, would never end. */
typedef struct
{
  KillableTask  *parent;
  GPtrArray     *children;
  guint          calls;
  KillableTask  *moved;
} YieldMoveData;

static void
yield_move_hook (gpointer data)
{
  YieldMoveData *d = data;
  g_autoptr(GError) error = NULL;

  if (d->calls++ > 0)
    return;

  /* The first child not stopped yet: the one the stop visits next. */
  for (guint i = 0; i < d->children->len && d->moved == NULL; i++)
    if (!killable_task_is_stop_requested (g_ptr_array_index (d->children, i)))
      d->moved = g_ptr_array_index (d->children, i);
  g_assert_nonnull (d->moved);
  g_assert_true (d->moved != g_ptr_array_index (d->children, d->children->len - 1));

  /* It ends and leaves its parent (which does not retain children yet),
   * then comes back, finished, at the end of the list, and stays. */
  killable_task_stop (d->moved);
  g_assert_true (killable_task_is_finished (d->moved));
  {
    g_autoptr(KillableTask) gone = killable_task_dup_parent (d->moved);

    g_assert_null (gone);
  }
  killable_task_set_retain_children (d->parent, TRUE);
  g_assert_true (killable_task_add_child (d->parent, d->moved, &error));
  g_assert_no_error (error);
  {
    g_autoptr(KillableTask) back = killable_task_dup_parent (d->moved);

    g_assert_true (back == d->parent);
  }
}

static void
test_stop_resume_after_move (void)
{
  g_autoptr(KillableTask) parent = killable_task_new ("parent", return_true, NULL, NULL);
  g_autoptr(GError) error = NULL;
  YieldMoveData d = { parent, add_pending_tasks (parent, "child", 600), 0, NULL };

  killable_tree_set_yield_hook (yield_move_hook, &d);
  killable_task_stop (parent);
  killable_tree_set_yield_hook (NULL, NULL);

  /* The stop released its lock at least once, and a child moved then. */
  g_assert_cmpuint (d.calls, >=, 1);
  g_assert_nonnull (d.moved);
  for (guint i = 0; i < d.children->len; i++)
    if (!killable_task_is_stop_requested (g_ptr_array_index (d.children, i)))
      g_error ("child %u of %u was not stopped (the stop resumed past it)", i, d.children->len);

  g_assert_false (test_join_guarded (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  assert_finished_and_free (d.children);
  test_drain (NULL);
}

/* The same resume, where the list starts again at the child the stop is
 * descending into: the cursor then stays on that child until the stop is
 * done with its subtree, and the child, pending and unobserved, ends and
 * leaves the list at that moment (an unlinked task has no next sibling).
 * The cursor must move on before: the siblings after that child were
 * never stopped, and their stopped parent never ended (found by the
 * torture's big-tree round). */
typedef struct
{
  KillableTask *gone;    /* ends and leaves during the yield */
  guint         calls;
} YieldRestartData;

static void
yield_restart_hook (gpointer data)
{
  YieldRestartData *d = data;

  if (d->calls++ > 0)
    return;

  /* The cursor of the stop's root is on it: it leaves, and the root's
   * list starts again, at the child being descended into. */
  g_assert_false (killable_task_is_stop_requested (d->gone));
  killable_task_stop (d->gone);
  g_assert_true (killable_task_is_finished (d->gone));
}

static void
test_stop_restart_at_descended_child (void)
{
  g_autoptr(KillableTask) parent = killable_task_new ("parent", return_true, NULL, NULL);
  g_autoptr(KillableTask) big = killable_task_new ("big", return_true, NULL, NULL);
  g_autoptr(KillableTask) gone = killable_task_new ("gone", return_true, NULL, NULL);
  g_autoptr(KillableTask) last = killable_task_new ("last", return_true, NULL, NULL);
  g_autoptr(GError) error = NULL;
  YieldRestartData d = { gone, 0 };
  GPtrArray *grandchildren;

  g_assert_true (killable_task_add_child (parent, big, NULL));
  g_assert_true (killable_task_add_child (parent, gone, NULL));
  g_assert_true (killable_task_add_child (parent, last, NULL));
  /* More grandchildren than one batch: the lock is released under @big. */
  grandchildren = add_pending_tasks (big, "grandchild", 300);

  killable_tree_set_yield_hook (yield_restart_hook, &d);
  killable_task_stop (parent);
  killable_tree_set_yield_hook (NULL, NULL);

  g_assert_cmpuint (d.calls, >=, 1);
  g_assert_true (killable_task_is_finished (big));
  if (!killable_task_is_stop_requested (last))
    g_error ("the child after a restarted cursor was not stopped");

  g_assert_false (test_join_guarded (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_true (killable_task_is_finished (last));
  assert_finished_and_free (grandchildren);
  test_drain (NULL);
}

/* The same resume, where a task on the stop's path itself ended and left
 * its parent meanwhile (a started task whose work returned once its
 * children were gone): the path is cut back to the parent, whose list
 * must start again. Here the release comes just after the walk visited
 * the last of that task's children: the cursor it held was NULL, and
 * going on from it would end the parent's list there, never stopping the
 * sibling after the task that left. */
typedef struct
{
  KillableTask *runner;   /* on the path; ends and leaves during the yield */
  TestGate     *gate;
  guint         calls;
} YieldCutData;

static void
yield_cut_hook (gpointer data)
{
  YieldCutData *d = data;

  if (d->calls++ > 0)
    return;

  /* Its children were all ended by the walk: once its work returns, it
   * ends (CANCELLED: stopped) and leaves its parent. */
  g_assert_true (killable_task_is_stop_requested (d->runner));
  g_assert_cmpuint (killable_tree_count_children (d->runner), ==, 0);
  test_gate_open (d->gate);
  TEST_POLL_UNTIL (({ g_autoptr(KillableTask) p = killable_task_dup_parent (d->runner); p == NULL; }));
}

static void
test_stop_resume_after_path_cut (void)
{
  g_autoptr(KillableTask) parent = killable_task_new ("parent", return_true, NULL, NULL);
  g_autoptr(KillableTask) runner = NULL;
  g_autoptr(KillableTask) sibling = killable_task_new ("sibling", return_true, NULL, NULL);
  g_autoptr(GError) error = NULL;
  TestGate gate;
  YieldCutData d;
  GPtrArray *grandchildren;

  test_gate_init (&gate);
  runner = killable_task_new ("runner", test_work_pass_gate, &gate, NULL);
  d = (YieldCutData) { runner, &gate, 0 };

  g_assert_true (killable_task_add_child (parent, runner, NULL));
  g_assert_true (killable_task_add_child (parent, sibling, NULL));
  /* The walk visits the runner, then its children: the 256th visit (one
   * batch) is its last child, where the lock is released. */
  grandchildren = add_pending_tasks (runner, "grandchild", 255);
  g_assert_true (killable_task_start (runner, NULL));
  test_gate_wait_entered (&gate, 1);

  killable_tree_set_yield_hook (yield_cut_hook, &d);
  killable_task_stop (parent);
  killable_tree_set_yield_hook (NULL, NULL);

  g_assert_cmpuint (d.calls, ==, 1);
  g_assert_true (killable_task_is_finished (runner));
  if (!killable_task_is_stop_requested (sibling))
    g_error ("the sibling after a task that left the stop's path was not stopped");

  g_assert_false (test_join_guarded (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_true (killable_task_is_finished (sibling));
  assert_finished_and_free (grandchildren);
  test_drain (NULL);
  g_clear_object (&runner);
  test_gate_clear (&gate);
}

/* A batched stop ends pending children under the tree lock and wakes the
 * threads that wait in the tree for a live-children count to drop to 0
 * once per release of the lock, not once per count (a system call per task
 * of a chain). A parent whose worker waits for its children while the
 * stop ends them must still be woken: here the test hook holds the stop
 * after its first batch until the parent's worker waits, and the last
 * child's end, in a later batch, must wake it. */
typedef struct
{
  KillableTask *parent;
  guint         calls;
} YieldWaiterData;

static void
yield_waiter_hook (gpointer data)
{
  YieldWaiterData *d = data;

  if (d->calls++ > 0)
    return;

  /* Stopped at the start of the walk, the parent's work returned; its
   * worker now waits for the children the walk has not ended yet. */
  g_assert_true (killable_task_is_stop_requested (d->parent));
  g_assert_cmpuint (killable_tree_count_children (d->parent), >, 0);
  TEST_POLL_UNTIL (killable_tree_count_cond_waiters (d->parent) == 1);
}

static void
test_stop_wakes_waiting_parents (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(GError) error = NULL;
  YieldWaiterData d;
  GPtrArray *children;
  TestGate gate;

  test_gate_init (&gate);
  parent = killable_task_new ("parent", wait_for_stop, &gate, NULL);
  d = (YieldWaiterData) { parent, 0 };
  /* More than one batch: the lock is released while the parent has
   * children left. */
  children = add_pending_tasks (parent, "child", 600);
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&gate, 1);

  killable_tree_set_yield_hook (yield_waiter_hook, &d);
  killable_task_stop (parent);
  killable_tree_set_yield_hook (NULL, NULL);

  g_assert_cmpuint (d.calls, >=, 1);
  /* Not woken: it would wait for children that all ended. */
  g_assert_false (test_join_guarded (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  assert_finished_and_free (children);
  test_drain (NULL);
  test_gate_clear (&gate);
}

static void
test_stop_races_add_child (void)
{
  for (guint round = 0; round < 3; round++)
    {
      g_autoptr(GError) error = NULL;
      GThread *adder, *stopper;
      RaceData data;
      TestGate gate;

      test_gate_init (&gate);
      test_counter_init (&data.finalized);
      test_gate_init (&data.reached);
      data.n_added_stopped = 0;
      data.n_children = scaled (10000);
      data.stop_after = g_test_rand_int_range (0, data.n_children);
      data.children = g_ptr_array_new_full (data.n_children, g_object_unref);

      /* The parent's work ignores the stop until the end, so that every
       * add_child() succeeds. */
      data.parent = killable_task_new ("race-parent", test_work_pass_gate_then_check, &gate, NULL);
      test_counter_watch (&data.finalized, data.parent);
      g_assert_true (killable_task_start (data.parent, NULL));
      test_gate_wait_entered (&gate, 1);

      stopper = g_thread_new ("stopper", race_stopper_thread, &data);
      adder = g_thread_new ("adder", race_adder_thread, &data);
      g_thread_join (adder);
      g_thread_join (stopper);

      g_assert_cmpint (data.reached.entered, ==, 1);
      g_assert_true (killable_task_is_stop_requested (data.parent));
      g_assert_cmpuint (data.children->len, ==, data.n_children);

      /* None missed: each child was stopped, by the propagation or when it
       * was added to the stopped parent, and never having started it is
       * CANCELLED. */
      for (guint i = 0; i < data.children->len; i++)
        {
          KillableTask *child = g_ptr_array_index (data.children, i);

          if (!killable_task_is_stop_requested (child) ||
              killable_task_get_state (child) != KILLABLE_TASK_STATE_CANCELLED)
            g_error ("round %u: child %u of %u (stop after %u) was missed: state %d",
                     round, i, data.n_children, data.stop_after,
                     killable_task_get_state (child));
          g_assert_error (killable_task_get_error (child), KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
        }
      g_test_message ("round %u: stop after child %u; %u children added to the stopped parent",
                      round, data.stop_after, data.n_added_stopped);

      test_gate_open (&gate);
      g_assert_false (test_join_guarded (data.parent, &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
      g_assert_cmpint (killable_task_get_state (data.parent), ==, KILLABLE_TASK_STATE_CANCELLED);

      /* None leaked: the children, and the parent. */
      g_clear_pointer (&data.children, g_ptr_array_unref);
      g_clear_object (&data.parent);
      test_counter_wait (&data.finalized, data.n_children + 1);

      test_gate_clear (&data.reached);
      test_counter_clear (&data.finalized);
      test_gate_clear (&gate);
    }
}

/* }}} */

/* add_child() misuse {{{ */

static void
test_add_child_errors (void)
{
  g_autoptr(KillableTask) a = killable_task_new ("a", return_true, NULL, NULL);
  g_autoptr(KillableTask) b = killable_task_new ("b", return_true, NULL, NULL);
  g_autoptr(KillableTask) c = killable_task_new ("c", return_true, NULL, NULL);
  g_autoptr(KillableTask) done = killable_task_new ("done", return_true, NULL, NULL);
  g_autoptr(KillableTask) orphan = killable_task_new ("orphan", return_true, NULL, NULL);
  g_autoptr(KillableTask) p = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (killable_task_add_child (a, b, &error));
  g_assert_no_error (error);

  /* b already has a parent. */
  g_assert_false (killable_task_add_child (c, b, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "“b”"));
  g_clear_error (&error);
  p = killable_task_dup_parent (b);
  g_assert_true (p == a);
  g_clear_object (&p);

  /* Itself. */
  g_assert_false (killable_task_add_child (c, c, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_null (killable_task_dup_parent (c));

  /* a → b → c, then a under c: a cycle. */
  g_assert_true (killable_task_add_child (b, c, &error));
  g_assert_no_error (error);
  g_assert_false (killable_task_add_child (c, a, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_null (killable_task_dup_parent (a));

  /* The parent already finished. */
  killable_task_stop (done);
  g_assert_true (killable_task_is_finished (done));
  g_assert_false (killable_task_add_child (done, orphan, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_null (killable_task_dup_parent (orphan));
  g_assert_cmpint (killable_task_get_state (orphan), ==, KILLABLE_TASK_STATE_PENDING);
  g_assert_false (killable_task_is_stop_requested (orphan));

  /* Bad input: a critical, a safe return. */
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*KILLABLE_IS_TASK*");
  g_assert_false (killable_task_add_child (a, NULL, &error));
  g_test_assert_expected_messages ();
  g_assert_no_error (error);
}

/* }}} */

/* Child policies {{{ */

/* Starts @parent, and @n_siblings children of it that run @func on @gate
 * (as @parent does), until all of them reached the gate; then adds a child
 * that fails, and returns it once it failed. */
static KillableTask *
start_family_and_fail_one (KillableTask      *parent,
                           KillableTaskFunc   func,
                           TestGate          *gate,
                           KillableTask     **siblings,
                           guint              n_siblings)
{
  g_autoptr(GError) error = NULL;
  KillableTask *bad;

  g_assert_true (killable_task_start (parent, NULL));

  for (guint i = 0; i < n_siblings; i++)
    {
      siblings[i] = killable_task_new ("sibling", func, gate, NULL);
      g_assert_true (killable_task_add_child (parent, siblings[i], NULL));
      g_assert_true (killable_task_start (siblings[i], NULL));
    }
  test_gate_wait_entered (gate, 1 + n_siblings);

  bad = killable_task_new ("bad", fail_boom, NULL, NULL);
  g_assert_true (killable_task_add_child (parent, bad, NULL));
  g_assert_true (killable_task_start (bad, NULL));

  g_assert_false (test_join_guarded (bad, &error));
  g_assert_error (error, TEST_ERROR, 1);
  g_assert_cmpint (killable_task_get_state (bad), ==, KILLABLE_TASK_STATE_FAILED);

  return bad;
}

static void
test_fail_fast (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(KillableTask) bad = NULL;
  KillableTask *siblings[2];
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);

  parent = killable_task_new ("parent", wait_for_stop, &gate, NULL);
  g_assert_cmpint (killable_task_get_child_policy (parent), ==, KILLABLE_CHILD_POLICY_FAIL_FAST);
  bad = start_family_and_fail_one (parent, wait_for_stop, &gate,
                                   siblings, G_N_ELEMENTS (siblings));

  g_assert_false (test_join_guarded (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED);
  g_assert_nonnull (strstr (error->message, "boom"));
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_FAILED);
  g_assert_error (killable_task_get_error (parent), KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED);
  g_clear_error (&error);

  for (guint i = 0; i < G_N_ELEMENTS (siblings); i++)
    {
      g_assert_true (killable_task_is_finished (siblings[i]));
      g_assert_false (test_join_guarded (siblings[i], &error));
      g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED);
      g_assert_nonnull (strstr (error->message, "boom"));
      g_clear_error (&error);
      g_assert_cmpint (killable_task_get_state (siblings[i]), ==, KILLABLE_TASK_STATE_CANCELLED);
      g_object_unref (siblings[i]);
    }

  test_gate_clear (&gate);
}

/* The parent never ran: a failing child still fails it. */
static void
test_fail_fast_pending_parent (void)
{
  g_autoptr(KillableTask) parent = killable_task_new ("parent", return_true, NULL, NULL);
  g_autoptr(KillableTask) bad = killable_task_new ("bad", fail_boom, NULL, NULL);
  g_autoptr(GError) error = NULL;

  g_assert_true (killable_task_add_child (parent, bad, NULL));
  g_assert_true (killable_task_start (bad, NULL));
  g_assert_false (test_join_guarded (bad, &error));
  g_assert_error (error, TEST_ERROR, 1);
  g_clear_error (&error);

  /* The child's joiners are woken before its end reaches the parent. */
  g_assert_true (killable_task_wait (parent, TEST_GUARD_USEC));
  g_assert_error (killable_task_get_error (parent), KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED);
  g_assert_nonnull (strstr (killable_task_get_error (parent)->message, "boom"));
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_FAILED);
}

static void
test_isolate (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(KillableTask) bad = NULL;
  KillableTask *siblings[2];
  g_autoptr(GError) error = NULL;
  TestGate gate;

  test_gate_init (&gate);

  parent = killable_task_new ("parent", test_work_pass_gate, &gate, NULL);
  killable_task_set_child_policy (parent, KILLABLE_CHILD_POLICY_ISOLATE);
  g_assert_cmpint (killable_task_get_child_policy (parent), ==, KILLABLE_CHILD_POLICY_ISOLATE);
  bad = start_family_and_fail_one (parent, test_work_pass_gate, &gate,
                                   siblings, G_N_ELEMENTS (siblings));

  /* Nobody else was touched. */
  g_assert_false (killable_task_is_stop_requested (parent));
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_RUNNING);
  for (guint i = 0; i < G_N_ELEMENTS (siblings); i++)
    {
      g_assert_false (killable_task_is_stop_requested (siblings[i]));
      g_assert_cmpint (killable_task_get_state (siblings[i]), ==, KILLABLE_TASK_STATE_RUNNING);
    }

  test_gate_open (&gate);
  g_assert_true (test_join_guarded (parent, &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_SUCCEEDED);
  for (guint i = 0; i < G_N_ELEMENTS (siblings); i++)
    {
      g_assert_cmpint (killable_task_get_state (siblings[i]), ==, KILLABLE_TASK_STATE_SUCCEEDED);
      g_object_unref (siblings[i]);
    }

  test_gate_clear (&gate);
}

/* }}} */

/* Deadlines {{{ */

static void
test_inherited_deadline (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(KillableTask) child = NULL;
  g_autoptr(GError) error = NULL;
  gint64 deadline, t0;
  TestGate gate;

  test_gate_init (&gate);

  parent = killable_task_new ("parent", wait_for_stop, &gate, NULL);
  child = killable_task_new ("child", wait_for_stop, &gate, NULL);
  /* An hour first, so that nothing fires while the deadlines are read (a
   * 100 ms timeout fired before the reads under valgrind on a loaded
   * machine); then 100 ms, which the child obeys. */
  killable_task_set_timeout (parent, G_TIME_SPAN_HOUR);
  g_assert_true (killable_task_add_child (parent, child, NULL));

  g_assert_cmpint (killable_task_get_timeout (child), ==, -1);
  g_assert_cmpint (killable_task_get_deadline (child), ==, G_MAXINT64);

  t0 = g_get_monotonic_time ();
  g_assert_true (killable_task_start (parent, NULL));
  g_assert_true (killable_task_start (child, NULL));
  test_gate_wait_entered (&gate, 2);

  deadline = killable_task_get_deadline (parent);
  g_assert_cmpint (deadline, !=, G_MAXINT64);
  g_assert_cmpint (deadline, >=, t0 + G_TIME_SPAN_HOUR);
  g_assert_cmpint (killable_task_get_deadline (child), ==, deadline);
  g_assert_cmpint (killable_task_get_timeout (child), ==, -1);

  /* A new timeout counts from the start too: the child's deadline moves
   * with its parent's. */
  killable_task_set_timeout (parent, 100 * G_TIME_SPAN_MILLISECOND);
  deadline = killable_task_get_deadline (parent);
  g_assert_cmpint (deadline, <, t0 + G_TIME_SPAN_HOUR);
  g_assert_cmpint (deadline, >=, t0 + 100 * G_TIME_SPAN_MILLISECOND);

  g_assert_false (test_join_guarded (child, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_clear_error (&error);
  g_assert_cmpint (killable_task_get_state (child), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_cmpint (g_get_monotonic_time (), >=, deadline);

  g_assert_false (test_join_guarded (parent, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_TIMED_OUT);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_CANCELLED);

  test_gate_clear (&gate);
}

/* }}} */

/* Structured completion {{{ */

typedef struct
{
  GPtrArray *order;   /* (element-type KillableTask) unowned, finished order */
  gboolean   parent_finished;
  KillableTask *parent;
} OrderData;

static void
record_finished_cb (KillableTask *task,
                    OrderData    *data)
{
  g_assert_true (g_thread_self () == main_thread);
  g_assert_true (killable_task_is_finished (task));
  g_ptr_array_add (data->order, task);
  if (task == data->parent)
    data->parent_finished = TRUE;
}

static gboolean
return_true_announce (KillableTask  *task,
                      gpointer       user_data,
                      GError       **error)
{
  test_gate_enter (user_data);
  return TRUE;
}

static void
test_completion_order (void)
{
  g_autoptr(KillableTask) parent = NULL;
  KillableTask *children[2];
  g_autoptr(GError) error = NULL;
  TestGate children_gate, parent_gate;
  OrderData data;

  test_gate_init (&children_gate);
  test_gate_init (&parent_gate);
  data.order = g_ptr_array_new ();
  data.parent_finished = FALSE;

  parent = killable_task_new ("parent", return_true_announce, &parent_gate, NULL);
  data.parent = parent;
  g_signal_connect (parent, "finished", G_CALLBACK (record_finished_cb), &data);

  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      children[i] = killable_task_new ("child", test_work_pass_gate, &children_gate, NULL);
      g_signal_connect (children[i], "finished", G_CALLBACK (record_finished_cb), &data);
      g_assert_true (killable_task_add_child (parent, children[i], NULL));
      g_assert_true (killable_task_start (children[i], NULL));
    }
  test_gate_wait_entered (&children_gate, G_N_ELEMENTS (children));

  /* The parent's work returns at once; the parent waits for its children. */
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&parent_gate, 1);
  g_assert_false (killable_task_wait (parent, 100 * G_TIME_SPAN_MILLISECOND));
  g_assert_false (killable_task_is_finished (parent));
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_RUNNING);

  test_gate_open (&children_gate);
  g_assert_true (test_join_guarded (parent, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    g_assert_true (killable_task_is_finished (children[i]));

  TEST_ITERATE_UNTIL (NULL, data.parent_finished);
  test_drain (NULL);
  g_assert_cmpuint (data.order->len, ==, 1 + G_N_ELEMENTS (children));
  g_assert_true (g_ptr_array_index (data.order, data.order->len - 1) == parent);
  for (guint i = 0; i < G_N_ELEMENTS (children); i++)
    {
      guint index;

      g_assert_true (g_ptr_array_find (data.order, children[i], &index));
      g_assert_cmpuint (index, <, data.order->len - 1);
      g_object_unref (children[i]);
    }

  g_ptr_array_unref (data.order);
  test_gate_clear (&parent_gate);
  test_gate_clear (&children_gate);
}

typedef struct
{
  KillableTask *children[2];   /* (owned) for the test to check */
} PendingData;

static gboolean
add_pending_children (KillableTask  *task,
                      gpointer       user_data,
                      GError       **error)
{
  PendingData *data = user_data;

  for (guint i = 0; i < G_N_ELEMENTS (data->children); i++)
    {
      data->children[i] = killable_task_new ("never-started", return_true, NULL, NULL);
      if (!killable_task_add_child (task, data->children[i], error))
        return FALSE;
    }

  return TRUE;
}

static void
test_pending_children_stopped (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(GError) error = NULL;
  PendingData data = { { NULL, NULL } };

  parent = killable_task_new ("parent", add_pending_children, &data, NULL);
  g_assert_true (killable_task_start (parent, NULL));
  g_assert_true (test_join_guarded (parent, &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_SUCCEEDED);

  for (guint i = 0; i < G_N_ELEMENTS (data.children); i++)
    {
      g_assert_nonnull (data.children[i]);
      g_assert_true (killable_task_is_stop_requested (data.children[i]));
      g_assert_cmpint (killable_task_get_state (data.children[i]), ==,
                       KILLABLE_TASK_STATE_CANCELLED);
      g_assert_error (killable_task_get_error (data.children[i]),
                      KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
      g_object_unref (data.children[i]);
    }
}

static void
gate_enter_stop_cb (KillableTask *task,
                    const GError *reason,
                    gpointer      user_data)
{
  test_gate_enter (user_data);
}

/* A pending child added while the parent waits for its children (its work
 * returned) must not keep the parent from ending. */
static void
test_late_pending_child (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(KillableTask) pending = NULL;
  g_autoptr(KillableTask) running = NULL;
  g_autoptr(KillableTask) late = NULL;
  g_autoptr(GError) error = NULL;
  TestGate stopped, gate;

  test_gate_init (&stopped);
  test_gate_init (&gate);

  parent = killable_task_new ("parent", return_true, NULL, NULL);
  pending = killable_task_new ("pending", return_true, NULL, NULL);
  running = killable_task_new ("running", test_work_pass_gate, &gate, NULL);
  killable_task_add_stop_callback (pending, gate_enter_stop_cb, &stopped, NULL);
  g_assert_true (killable_task_add_child (parent, pending, NULL));
  g_assert_true (killable_task_add_child (parent, running, NULL));
  g_assert_true (killable_task_start (running, NULL));
  test_gate_wait_entered (&gate, 1);

  /* The parent's worker stops its pending children once its work returned
   * (the stop callback runs there), then waits for the running one. */
  g_assert_true (killable_task_start (parent, NULL));
  test_gate_wait_entered (&stopped, 1);
  /* Stop callbacks run before the task ends. */
  g_assert_true (killable_task_wait (pending, TEST_GUARD_USEC));
  g_assert_cmpint (killable_task_get_state (pending), ==, KILLABLE_TASK_STATE_CANCELLED);
  g_assert_false (killable_task_is_finished (parent));

  late = killable_task_new ("late", return_true, NULL, NULL);
  g_assert_true (killable_task_add_child (parent, late, &error));
  g_assert_no_error (error);

  test_gate_open (&gate);
  g_assert_true (test_join_guarded (parent, &error));
  g_assert_no_error (error);
  g_assert_cmpint (killable_task_get_state (running), ==, KILLABLE_TASK_STATE_SUCCEEDED);
  g_assert_cmpint (killable_task_get_state (late), ==, KILLABLE_TASK_STATE_CANCELLED);

  test_gate_clear (&gate);
  test_gate_clear (&stopped);
}

typedef struct
{
  TestGate      gate;
  KillableTask *children[2];   /* (owned) */
} FailingParentData;

static gboolean
start_children_then_fail (KillableTask  *task,
                          gpointer       user_data,
                          GError       **error)
{
  FailingParentData *data = user_data;

  for (guint i = 0; i < G_N_ELEMENTS (data->children); i++)
    {
      data->children[i] = killable_task_new ("child", wait_for_stop, &data->gate, NULL);
      if (!killable_task_add_child (task, data->children[i], error) ||
          !killable_task_start (data->children[i], error))
        return FALSE;
    }
  test_gate_wait_entered (&data->gate, G_N_ELEMENTS (data->children));

  g_set_error_literal (error, TEST_ERROR, 3, "parent failed");
  return FALSE;
}

static void
test_failing_parent (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(GError) error = NULL;
  FailingParentData data;

  test_gate_init (&data.gate);

  parent = killable_task_new ("parent", start_children_then_fail, &data, NULL);
  g_assert_true (killable_task_start (parent, NULL));
  g_assert_false (test_join_guarded (parent, &error));

  /* Its own error, not a CHILD_FAILED made of its own error. */
  g_assert_error (error, TEST_ERROR, 3);
  g_assert_cmpint (killable_task_get_state (parent), ==, KILLABLE_TASK_STATE_FAILED);
  g_clear_error (&error);

  for (guint i = 0; i < G_N_ELEMENTS (data.children); i++)
    {
      g_assert_true (killable_task_is_finished (data.children[i]));
      g_assert_false (test_join_guarded (data.children[i], &error));
      g_assert_error (error, TEST_ERROR, 3);
      g_assert_cmpstr (error->message, ==, "parent failed");
      g_clear_error (&error);
      g_assert_cmpint (killable_task_get_state (data.children[i]), ==,
                       KILLABLE_TASK_STATE_CANCELLED);
      g_object_unref (data.children[i]);
    }

  test_gate_clear (&data.gate);
}

/* }}} */

/* Many short children {{{ */

typedef struct
{
  guint        n_children;
  guint        max_children;   /* longest children list seen by the parent */
  TestCounter  finalized;
} ManyData;

static gboolean
spawn_many (KillableTask  *task,
            gpointer       user_data,
            GError       **error)
{
  ManyData *data = user_data;

  for (guint i = 0; i < data->n_children; i++)
    {
      g_autoptr(KillableTask) child = killable_task_new ("short", return_true, NULL, NULL);
      guint len;

      test_counter_watch (&data->finalized, child);
      if (!killable_task_add_child (task, child, error) ||
          !killable_task_start (child, error) ||
          !test_join_guarded (child, error))
        return FALSE;

      len = killable_tree_count_children (task);
      data->max_children = MAX (data->max_children, len);
    }

  return TRUE;
}

static void
test_many_short_children (void)
{
  g_autoptr(KillableTask) parent = NULL;
  g_autoptr(GError) error = NULL;
  ModelStats stats = { 0, 0 };
  ManyData data;
  gboolean finished = FALSE;
  GListModel *model;
  gint64 t0;

  data.n_children = scaled (100000);
  data.max_children = 0;
  test_counter_init (&data.finalized);

  parent = killable_task_new ("spawner", spawn_many, &data, NULL);
  model = killable_task_get_children (parent);
  g_signal_connect (model, "items-changed", G_CALLBACK (items_changed_cb), &stats);
  g_signal_connect (parent, "finished", G_CALLBACK (set_flag_cb), &finished);

  t0 = g_get_monotonic_time ();
  g_assert_true (killable_task_start (parent, NULL));

  /* The model follows on this thread while the parent works (a few
   * seconds when the machine is loaded). */
  TEST_ITERATE_UNTIL_GUARDED (NULL, finished, 12 * TEST_GUARD_USEC);
  g_assert_true (test_join_guarded (parent, &error));
  g_assert_no_error (error);
  g_test_message ("%u short children: %.1f ms, %u model changes, at most %u listed",
                  data.n_children, (g_get_monotonic_time () - t0) / 1000.,
                  stats.n_emissions, stats.max_items);

  /* A child leaves the list when it ends: the list never grew. Right after
   * its join a child may still be listed while its worker finishes its end
   * (a few of them on a loaded machine); 100 000 would be a leak. */
  g_assert_cmpuint (data.max_children, <=, 100);
  g_assert_cmpuint (stats.max_items, <=, 100);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 0);

  /* Every child was released. */
  test_counter_wait (&data.finalized, data.n_children);

  g_signal_handlers_disconnect_by_func (model, items_changed_cb, &stats);
  test_drain (NULL);
  g_clear_object (&parent);
  test_counter_clear (&data.finalized);
}

/* }}} */

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("Trees of tasks: add_child, child policies, stop propagation, retained children, deep and wide trees.");

  main_thread = g_thread_self ();

  g_test_add_func ("/tree/children-model/release", test_children_model_release);
  g_test_add_func ("/tree/children-model/retain", test_children_model_retain);
  g_test_add_func ("/tree/add-child/stopped-parent", test_add_child_to_stopped_parent);
  g_test_add_func ("/tree/add-child/errors", test_add_child_errors);
  g_test_add_func ("/tree/add-child/while-ending", test_add_child_while_ending);
  g_test_add_func ("/tree/propagation/depth3", test_propagation_depth3);
  g_test_add_func ("/tree/propagation/deep-chain", test_deep_chain_stop);
  g_test_add_func ("/tree/propagation/deep-chain-default", test_deep_chain_stop_default);
  g_test_add_func ("/tree/propagation/deep-chain-release", test_deep_chain_release);
  g_test_add_func ("/tree/propagation/wide", test_wide_stop);
  g_test_add_func ("/tree/propagation/races-add-child", test_stop_races_add_child);
  g_test_add_func ("/tree/propagation/resume-after-move", test_stop_resume_after_move);
  g_test_add_func ("/tree/propagation/restart-at-descended-child", test_stop_restart_at_descended_child);
  g_test_add_func ("/tree/propagation/resume-after-path-cut", test_stop_resume_after_path_cut);
  g_test_add_func ("/tree/propagation/wakes-waiting-parents", test_stop_wakes_waiting_parents);
  g_test_add_func ("/tree/policy/fail-fast", test_fail_fast);
  g_test_add_func ("/tree/policy/fail-fast-pending-parent", test_fail_fast_pending_parent);
  g_test_add_func ("/tree/policy/isolate", test_isolate);
  g_test_add_func ("/tree/deadline/inherited", test_inherited_deadline);
  g_test_add_func ("/tree/completion/order", test_completion_order);
  g_test_add_func ("/tree/completion/pending-children", test_pending_children_stopped);
  g_test_add_func ("/tree/completion/late-pending-child", test_late_pending_child);
  g_test_add_func ("/tree/completion/failing-parent", test_failing_parent);
  g_test_add_func ("/tree/completion/many-short-children", test_many_short_children);

  return g_test_run ();
}
