/* test-stop-walk.c: a model-based check of the batched stop walk
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A stop of a big tree walks it under the tree's lock, and between batches
 * of 256 tasks it lets another thread have the lock (tree_lock_yield()).
 * Whatever that thread did meanwhile, the walk must go on so that every
 * descendant of a stopped task ends up stopped: a child missed under a
 * stopped pending parent keeps the parent, and every ancestor waiting for
 * it, from ever ending. Two such misses were found by the torture's
 * big-tree round, each in a few runs of a hundred.
 *
 * Here the test hook (killable_tree_set_yield_hook()) runs at every
 * release, on the stopping thread, and plays the other thread on purpose:
 * it picks tasks where a walk resumes (a task not stopped under a stopped
 * parent: the next child of a walk's cursor is one) and stops them, sends
 * them away and back, gives them new children, moves whole trees under
 * them, or stops other parts of the tree. Each seed is deterministic (no
 * task runs: no worker thread), so a failure names a seed that replays it
 * (KILLABLE_STOP_WALK_SEED=N). After the stop, with nothing running,
 * every stopped task must have ended, and every child of a stopped task
 * must be stopped.
 */

#include <killable.h>
#include "killable-task-private.h"
#include "test-core-util.h"

#define N_TASKS      2500   /* in the stopped tree as built: several batches */
#define N_LONE_TREES 24     /* small trees of their own, moved in by the hook */

typedef enum
{
  OP_STOP,                 /* stop a resume point (it ends and leaves) */
  OP_STOP_AND_BACK,        /* ... and add it back, finished, to its parent */
  OP_STOP_AND_STAY,        /* ... which retains it from then on */
  OP_ADD_CHILD,            /* a new child under a resume point */
  OP_ADD_SUBTREE,          /* a new small tree under a resume point */
  OP_MOVE_TREE,            /* a lone tree moved under a resume point */
  OP_STOP_ELSEWHERE,       /* a stop of any task (its own walk, nested) */
  OP_ADD_TO_STOPPED,       /* a new child under a stopped parent */
  N_OPS
} Op;

static const char *op_names[N_OPS] = {
  "stop", "stop-and-back", "stop-and-stay", "add-child", "add-subtree",
  "move-tree", "stop-elsewhere", "add-to-stopped",
};

typedef struct
{
  GRand     *rand;
  GPtrArray *tasks;     /* (element-type KillableTask) every task made */
  GPtrArray *lone;      /* (element-type KillableTask) roots of the lone trees */
  guint      depth;     /* the hook's re-entrancy (a nested stop yields too) */
  guint      yields;
  guint      ops[N_OPS];
} Fuzz;

static gboolean
return_true (KillableTask  *task,
             gpointer       user_data,
             GError       **error)
{
  return TRUE;
}

static void
count_stop_cb (KillableTask *task,
               const GError *reason,
               gpointer      user_data)
{
  int *runs = g_object_get_data (G_OBJECT (task), "stop-walk-runs");

  (*runs)++;
}

static void
notify_cb (GObject    *object,
           GParamSpec *pspec,
           gpointer    user_data)
{
}

/* A pending task, with what makes a stop take the usual path instead of
 * the batched end (a stop callback, a handler), or retaining its
 * children, now and then. */
static KillableTask *
fuzz_new_task (Fuzz       *fz,
               const char *name)
{
  KillableTask *task = killable_task_new (name, return_true, NULL, NULL);

  switch (g_rand_int_range (fz->rand, 0, 16))
    {
    case 0:
      g_object_set_data_full (G_OBJECT (task), "stop-walk-runs", g_new0 (int, 1), g_free);
      killable_task_add_stop_callback (task, count_stop_cb, NULL, NULL);
      break;
    case 1:
      g_signal_connect (task, "notify::state", G_CALLBACK (notify_cb), NULL);
      break;
    case 2:
      killable_task_set_retain_children (task, TRUE);
      break;
    default:
      break;
    }
  g_ptr_array_add (fz->tasks, task);

  return task;
}

static gboolean
is_stopped (KillableTask *task)
{
  return killable_task_is_stop_requested (task);
}

/* Tasks not stopped under a stopped parent: where a walk in progress
 * resumes (the child under its cursor is one), or what it has yet to
 * reach. */
static GPtrArray *
resume_points (Fuzz *fz)
{
  GPtrArray *points = g_ptr_array_new ();

  for (guint i = 0; i < fz->tasks->len; i++)
    {
      KillableTask *task = g_ptr_array_index (fz->tasks, i);
      g_autoptr(KillableTask) parent = killable_task_dup_parent (task);

      if (parent != NULL && is_stopped (parent) && !is_stopped (task))
        g_ptr_array_add (points, task);
    }

  return points;
}

static KillableTask *
pick (Fuzz      *fz,
      GPtrArray *from)
{
  return g_ptr_array_index (from, g_rand_int_range (fz->rand, 0, from->len));
}

static void
fuzz_op (Fuzz *fz)
{
  g_autoptr(GPtrArray) points = resume_points (fz);
  KillableTask *task = points->len > 0 ? pick (fz, points) : pick (fz, fz->tasks);
  g_autoptr(KillableTask) parent = killable_task_dup_parent (task);
  Op op = g_rand_int_range (fz->rand, 0, N_OPS);

  fz->ops[op]++;
  switch (op)
    {
    case OP_STOP:
      killable_task_stop (task);
      break;

    case OP_STOP_AND_BACK:
    case OP_STOP_AND_STAY:
      killable_task_stop (task);
      {
        g_autoptr(KillableTask) now = killable_task_dup_parent (task);

        /* It left (unless retained): back at the end of the list, where it
         * stays if the parent retains its children from now on. Refused
         * when the parent finished meanwhile: fine. */
        if (parent != NULL && now == NULL)
          {
            if (op == OP_STOP_AND_STAY)
              killable_task_set_retain_children (parent, TRUE);
            killable_task_add_child (parent, task, NULL);
          }
      }
      break;

    case OP_ADD_CHILD:
      killable_task_add_child (task, fuzz_new_task (fz, "late"), NULL);
      break;

    case OP_ADD_SUBTREE:
      {
        KillableTask *top = fuzz_new_task (fz, "sub-top");
        guint n = g_rand_int_range (fz->rand, 1, 4);

        for (guint i = 0; i < n; i++)
          g_assert_true (killable_task_add_child (top, fuzz_new_task (fz, "sub"), NULL));
        killable_task_add_child (task, top, NULL);
      }
      break;

    case OP_MOVE_TREE:
      for (guint i = 0; i < fz->lone->len; i++)
        {
          KillableTask *root = g_ptr_array_index (fz->lone, i);
          g_autoptr(KillableTask) above = killable_task_dup_parent (root);

          if (above == NULL && !killable_task_is_finished (root))
            {
              killable_task_add_child (task, root, NULL);
              break;
            }
        }
      break;

    case OP_STOP_ELSEWHERE:
      killable_task_stop (pick (fz, fz->tasks));
      break;

    case OP_ADD_TO_STOPPED:
      for (guint tries = 0; tries < 8; tries++)
        {
          KillableTask *target = pick (fz, fz->tasks);

          if (is_stopped (target) && !killable_task_is_finished (target))
            {
              killable_task_add_child (target, fuzz_new_task (fz, "late-stopped"), NULL);
              break;
            }
        }
      break;

    case N_OPS:
    default:
      g_assert_not_reached ();
    }
}

/* At a release of the lock by a walk: what another thread might do then. */
static void
fuzz_yield_hook (gpointer data)
{
  Fuzz *fz = data;
  guint n;

  fz->yields++;
  /* A stop made here yields too: its own walk is left alone. */
  if (fz->depth > 0)
    return;

  fz->depth++;
  n = g_rand_int_range (fz->rand, 1, 5);
  for (guint i = 0; i < n; i++)
    fuzz_op (fz);
  fz->depth--;
}

static void
fuzz_round (guint32 seed)
{
  Fuzz fz = { 0 };
  g_autofree char *where = NULL;
  GPtrArray *members;
  KillableTask *root;

  fz.rand = g_rand_new_with_seed (seed);
  fz.tasks = g_ptr_array_new_with_free_func (g_object_unref);
  fz.lone = g_ptr_array_new ();

  /* Random shape: each task under a random earlier one, or under the
   * newest (chains: deep walks). */
  root = fuzz_new_task (&fz, "root");
  members = g_ptr_array_new ();
  g_ptr_array_add (members, root);
  for (guint i = 1; i < N_TASKS; i++)
    {
      KillableTask *task = fuzz_new_task (&fz, "built");
      KillableTask *parent = g_rand_boolean (fz.rand)
                               ? g_ptr_array_index (members, members->len - 1)
                               : pick (&fz, members);

      g_assert_true (killable_task_add_child (parent, task, NULL));
      g_ptr_array_add (members, task);
    }
  g_ptr_array_unref (members);

  for (guint i = 0; i < N_LONE_TREES; i++)
    {
      KillableTask *top = fuzz_new_task (&fz, "lone");
      guint n = g_rand_int_range (fz.rand, 0, 4);

      for (guint j = 0; j < n; j++)
        g_assert_true (killable_task_add_child (top, fuzz_new_task (&fz, "lone-child"), NULL));
      g_ptr_array_add (fz.lone, top);
    }

  killable_tree_set_yield_hook (fuzz_yield_hook, &fz);
  killable_task_stop (root);
  killable_tree_set_yield_hook (NULL, NULL);

  where = g_strdup_printf ("seed %" G_GUINT32_FORMAT " (KILLABLE_STOP_WALK_SEED=%" G_GUINT32_FORMAT
                           " replays it), %u releases of the lock", seed, seed, fz.yields);
  g_test_message ("%s; operations: %s %u, %s %u, %s %u, %s %u, %s %u, %s %u, %s %u, %s %u; %u tasks",
                  where, op_names[0], fz.ops[0], op_names[1], fz.ops[1], op_names[2], fz.ops[2],
                  op_names[3], fz.ops[3], op_names[4], fz.ops[4], op_names[5], fz.ops[5],
                  op_names[6], fz.ops[6], op_names[7], fz.ops[7], fz.tasks->len);

  /* The walk released its lock: the hook ran. */
  if (fz.yields == 0)
    g_error ("%s: the stop never released its lock", where);

  /* No child of a stopped task is left unstopped (what a missed child
   * is); then, as nothing runs, every stopped task has ended by the time
   * stop() returns. */
  for (guint i = 0; i < fz.tasks->len; i++)
    {
      KillableTask *task = g_ptr_array_index (fz.tasks, i);
      g_autoptr(KillableTask) parent = killable_task_dup_parent (task);

      if (parent != NULL && is_stopped (parent) && !is_stopped (task))
        g_error ("%s: task %u (%s) was not stopped under its stopped parent (%s)",
                 where, i, killable_task_get_name (task), killable_task_get_name (parent));
    }
  for (guint i = 0; i < fz.tasks->len; i++)
    {
      KillableTask *task = g_ptr_array_index (fz.tasks, i);
      int *runs = g_object_get_data (G_OBJECT (task), "stop-walk-runs");

      if (is_stopped (task) && !killable_task_is_finished (task))
        g_error ("%s: task %u (%s) was stopped and did not end", where, i,
                 killable_task_get_name (task));
      if (runs != NULL && *runs != (is_stopped (task) ? 1 : 0))
        g_error ("%s: task %u: its stop callback ran %d times, stop requested: %d",
                 where, i, *runs, is_stopped (task));
    }
  if (!killable_task_is_finished (root))
    g_error ("%s: the stopped root did not end", where);

  /* The lone trees never moved in, then the queued emissions. */
  for (guint i = 0; i < fz.lone->len; i++)
    killable_task_stop (g_ptr_array_index (fz.lone, i));
  test_drain (NULL);

  g_ptr_array_unref (fz.lone);
  g_ptr_array_unref (fz.tasks);
  g_rand_free (fz.rand);
}

static void
test_yield_fuzz (void)
{
  const char *replay = g_getenv ("KILLABLE_STOP_WALK_SEED");
  guint32 first = (guint32) g_test_rand_int ();
  guint n = test_scale (60, 6);

  if (replay != NULL)
    {
      fuzz_round ((guint32) g_ascii_strtoull (replay, NULL, 10));
      return;
    }

  for (guint i = 0; i < n; i++)
    fuzz_round (first + i);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/stop-walk/yield-fuzz", test_yield_fuzz);

  return g_test_run ();
}
