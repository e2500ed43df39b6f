/* killable-limiter.c: a limit on how many tasks run at once
 *
 * Owns: a KillableLimiter's count of permits in use and its FIFO of tasks
 * waiting for one.
 * Locks: KillableLimiter.lock guards @n_running and @waiting; a leaf lock
 * (no user code, no other library lock, no reference dropped under it).
 * Called by: killable-task.c (acquire, remove, release: the task decides
 * what a permit does) and the public API. Calls nothing in lib/: a leaf.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "killable-limiter-private.h"
#include "killable-sync-private.h"

/**
 * KillableLimiter:
 *
 * A limit on how many tasks run at once, shared by the tasks given it with
 * [method@Killable.Task.set_limiter] (like libdex's `DexLimiter` or the
 * pool behind [class@Gio.Task]).
 *
 * A task started beyond the limit stays %KILLABLE_TASK_STATE_PENDING,
 * first come first served, until a task holding a permit ends; it then
 * runs on the thread that task used, so that a limit of N never uses more
 * than N threads, however many tasks wait. Stopping a waiting task ends it
 * %KILLABLE_TASK_STATE_CANCELLED without running its work. A killed task
 * gives its permit back at once, even though its abandoned thread still
 * runs.
 *
 * Group tasks ([ctor@Killable.Task.new_group]) take no permit: a parent
 * waiting for its children never holds one of the permits they need.
 *
 * ```c
 * g_autoptr(KillableLimiter) limiter = killable_limiter_new (4);
 *
 * for (guint i = 0; i < n_files; i++)
 *   {
 *     g_autoptr(KillableTask) task = killable_task_new ("thumbnail", thumbnail, files[i], NULL);
 *
 *     killable_task_set_limiter (task, limiter);
 *     killable_task_add_child (group, task, NULL);
 *     killable_task_start (task, NULL);
 *   }
 * ```
 *
 * Every function of a limiter is thread-safe.
 *
 * Since: 1.2
 */

struct _KillableLimiter
{
  GObject  parent_instance;

  GMutex   lock;
  guint    max_running;   /* immutable after construction */
  guint    n_running;     /* protected by @lock: permits in use */
  GQueue   waiting;       /* protected by @lock: GObject*, each holds a reference */
};

enum {
  PROP_0,
  PROP_MAX_RUNNING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (KillableLimiter, killable_limiter, G_TYPE_OBJECT)

static void
killable_limiter_finalize (GObject *object)
{
  KillableLimiter *self = KILLABLE_LIMITER (object);

  /* Under ThreadSanitizer: every thread's use of the limiter (a worker
   * passing a permit on, then dropping its reference) happens before its
   * end, whoever drops the last reference. */
  KILLABLE_SYNC_DISPOSING (self);

  /* Each waiting task holds a reference on its limiter (its limiter
   * property): none can wait any more. */
  g_assert (self->waiting.length == 0);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (killable_limiter_parent_class)->finalize (object);
}

static void
killable_limiter_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  KillableLimiter *self = KILLABLE_LIMITER (object);

  switch (prop_id)
    {
    case PROP_MAX_RUNNING:
      g_value_set_uint (value, self->max_running);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
killable_limiter_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  KillableLimiter *self = KILLABLE_LIMITER (object);

  switch (prop_id)
    {
    case PROP_MAX_RUNNING:
      self->max_running = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
killable_limiter_class_init (KillableLimiterClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = killable_limiter_finalize;
  object_class->get_property = killable_limiter_get_property;
  object_class->set_property = killable_limiter_set_property;

  /**
   * KillableLimiter:max-running:
   *
   * How many tasks of this limiter may run at once (at least 1).
   *
   * Since: 1.2
   */
  properties[PROP_MAX_RUNNING] =
    g_param_spec_uint ("max-running", NULL, NULL, 1, G_MAXUINT, 1,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
killable_limiter_init (KillableLimiter *self)
{
  g_mutex_init (&self->lock);
  self->max_running = 1;
}

/**
 * killable_limiter_new:
 * @max_running: how many tasks may run at once; at least 1
 *
 * Creates a limiter. Give it to tasks with
 * [method@Killable.Task.set_limiter] before they start.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer full): a new limiter
 *
 * Since: 1.2
 */
KillableLimiter *
killable_limiter_new (guint max_running)
{
  g_return_val_if_fail (max_running >= 1, NULL);

  return g_object_new (KILLABLE_TYPE_LIMITER, "max-running", max_running, NULL);
}

/**
 * killable_limiter_get_max_running:
 * @self: a limiter
 *
 * Gets [property@Killable.Limiter:max-running].
 *
 * This function is thread-safe.
 *
 * Returns: the limit
 *
 * Since: 1.2
 */
guint
killable_limiter_get_max_running (KillableLimiter *self)
{
  g_return_val_if_fail (KILLABLE_IS_LIMITER (self), 0);

  return self->max_running;
}

/**
 * killable_limiter_get_n_running:
 * @self: a limiter
 *
 * Gets how many permits are in use: how many of its tasks are running (or
 * about to).
 *
 * This function is thread-safe; the value may be out of date as soon as it
 * is returned.
 *
 * Returns: the permits in use
 *
 * Since: 1.2
 */
guint
killable_limiter_get_n_running (KillableLimiter *self)
{
  guint ret;

  g_return_val_if_fail (KILLABLE_IS_LIMITER (self), 0);

  g_mutex_lock (&self->lock);
  ret = self->n_running;
  g_mutex_unlock (&self->lock);

  return ret;
}

/**
 * killable_limiter_get_n_waiting:
 * @self: a limiter
 *
 * Gets how many started tasks wait, %KILLABLE_TASK_STATE_PENDING, for a
 * permit.
 *
 * This function is thread-safe; the value may be out of date as soon as it
 * is returned.
 *
 * Returns: the number of waiting tasks
 *
 * Since: 1.2
 */
guint
killable_limiter_get_n_waiting (KillableLimiter *self)
{
  guint ret;

  g_return_val_if_fail (KILLABLE_IS_LIMITER (self), 0);

  g_mutex_lock (&self->lock);
  ret = self->waiting.length;
  g_mutex_unlock (&self->lock);

  return ret;
}

gboolean
killable_limiter_acquire_or_queue (KillableLimiter *self,
                                   GObject         *task)
{
  /* Taken before the lock: a reference may toggle a binding's. */
  GObject *ref = g_object_ref (task);

  g_mutex_lock (&self->lock);
  if (self->n_running < self->max_running)
    {
      self->n_running++;
      g_mutex_unlock (&self->lock);
      g_object_unref (ref);
      return TRUE;
    }
  g_queue_push_tail (&self->waiting, ref);
  g_mutex_unlock (&self->lock);

  return FALSE;
}

gboolean
killable_limiter_remove (KillableLimiter *self,
                         GObject         *task)
{
  gboolean ret;

  g_mutex_lock (&self->lock);
  ret = g_queue_remove (&self->waiting, task);
  g_mutex_unlock (&self->lock);

  if (ret)
    g_object_unref (task);

  return ret;
}

GObject *
killable_limiter_release (KillableLimiter *self)
{
  GObject *next;

  g_mutex_lock (&self->lock);
  next = g_queue_pop_head (&self->waiting);
  if (next == NULL)
    {
      g_assert (self->n_running > 0);
      self->n_running--;
    }
  g_mutex_unlock (&self->lock);

  return next;
}
