/* test-fast-path.c: the C fast path of killable_task_check() (Since 1.2)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Built against the shared library WITHOUT KILLABLE_COMPILATION, as an
 * application is: killable_task_check() here is the header inline that
 * reads killable_task_get_stop_flag()'s word, and the tests prove it sees
 * the same word as the library, for the base class and for a subclass with
 * its own private data.
 */

#include <killable.h>

#ifndef killable_task_check
# error "the inline killable_task_check() is not in use: this test checks it"
#endif

/* A subclass with private data of its own: its instances lay out the base
 * class's private data at the same offset, which the inline relies on. */
typedef struct
{
  KillableTask parent_instance;
} FastSub;

typedef struct
{
  char padding[200];
  int  value;
} FastSubPrivate;

typedef KillableTaskClass FastSubClass;

GType fast_sub_get_type (void);
G_DEFINE_TYPE_WITH_PRIVATE (FastSub, fast_sub, KILLABLE_TYPE_TASK)

static void
fast_sub_init (FastSub *self)
{
  FastSubPrivate *priv = fast_sub_get_instance_private (self);

  /* Non-zero bytes around: a read at a wrong offset would see them. */
  memset (priv->padding, 0x5a, sizeof priv->padding);
  priv->value = 1;
}

static void
fast_sub_class_init (FastSubClass *klass)
{
}

static gboolean
noop_func (KillableTask  *task,
           gpointer       user_data,
           GError       **error)
{
  return TRUE;
}

static void
check_flag_and_inline (KillableTask *task)
{
  g_autoptr(GError) error = NULL;
  const int *flag = killable_task_get_stop_flag (task);

  g_assert_nonnull (flag);
  g_assert_true (flag == killable_task_get_stop_flag (task));
  g_assert_cmpint (__atomic_load_n (flag, __ATOMIC_RELAXED), ==, 0);

  /* not stopped: the inline says go on, and so does the function */
  g_assert_true (killable_task_check (task, &error));
  g_assert_no_error (error);
  g_assert_true ((killable_task_check) (task, &error));
  g_assert_no_error (error);

  killable_task_stop (task);

  /* the same address, now non-zero */
  g_assert_true (flag == killable_task_get_stop_flag (task));
  g_assert_cmpint (__atomic_load_n (flag, __ATOMIC_RELAXED), !=, 0);

  g_assert_false (killable_task_check (task, NULL));
  g_assert_false (killable_task_check (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_clear_error (&error);
  g_assert_false ((killable_task_check) (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
}

static void
test_fast_path_base (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("fast", noop_func, NULL, NULL);

  check_flag_and_inline (task);
}

static void
test_fast_path_subclass (void)
{
  g_autoptr(KillableTask) task = g_object_new (fast_sub_get_type (), NULL);

  check_flag_and_inline (task);
}

/* Each task has its own word: stopping one does not move another's. */
static void
test_fast_path_per_task (void)
{
  g_autoptr(KillableTask) a = killable_task_new ("a", noop_func, NULL, NULL);
  g_autoptr(KillableTask) b = killable_task_new ("b", noop_func, NULL, NULL);

  g_assert_true (killable_task_get_stop_flag (a) != killable_task_get_stop_flag (b));
  killable_task_stop (a);
  g_assert_false (killable_task_check (a, NULL));
  g_assert_true (killable_task_check (b, NULL));
}

/* A stop through the parent reaches the child's word. */
static void
test_fast_path_tree (void)
{
  g_autoptr(KillableTask) parent = killable_task_new ("parent", noop_func, NULL, NULL);
  g_autoptr(KillableTask) child = killable_task_new ("child", noop_func, NULL, NULL);

  g_assert_true (killable_task_add_child (parent, child, NULL));
  g_assert_true (killable_task_check (child, NULL));
  killable_task_stop (parent);
  g_assert_cmpint (__atomic_load_n (killable_task_get_stop_flag (child), __ATOMIC_RELAXED), !=, 0);
  g_assert_false (killable_task_check (child, NULL));
}

/* Bad input: the inline sends NULL to the function's critical. */
static void
test_fast_path_null (void)
{
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*KILLABLE_IS_TASK*");
  g_assert_false (killable_task_check (NULL, NULL));
  g_test_assert_expected_messages ();
}

static void
test_fast_path_null_flag (void)
{
  g_test_expect_message ("Killable", G_LOG_LEVEL_CRITICAL, "*KILLABLE_IS_TASK*");
  g_assert_null (killable_task_get_stop_flag (NULL));
  g_test_assert_expected_messages ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fast-path/base", test_fast_path_base);
  g_test_add_func ("/fast-path/subclass", test_fast_path_subclass);
  g_test_add_func ("/fast-path/per-task", test_fast_path_per_task);
  g_test_add_func ("/fast-path/tree", test_fast_path_tree);
  g_test_add_func ("/fast-path/null", test_fast_path_null);
  g_test_add_func ("/fast-path/null-flag", test_fast_path_null_flag);

  g_test_summary ("The C inline of killable_task_check() and killable_task_get_stop_flag()");

  return g_test_run ();
}
