/* killable-owner.c: emissions on the owner's main context
 *
 * Owns: a KillableOwner per task (its place: owner context and thread,
 * shared with the other tasks of that thread and context; its newest
 * queued entry), one FIFO of entries per owner context (a GSource attached
 * to that context for as long as it lives), the count of run_async()
 * outcomes each context waits for, and the release of the owner's data
 * (destroy notifies) on the owner's context.
 * Locks: owner_lock guards every queue's entries, every KillableOwner's
 * place pointer (a place, or its pending entry, tagged: see PLACE_TAG),
 * each place's queue and the table of queues, and serialises the probes
 * of killable_owner_release(); a leaf
 * lock (no user code, no other library lock is taken under it). A queue's
 * entry count is also read without it (atomically) by its prepare().
 * Called by: killable-task.c. Calls back only through the
 * KillableOwnerFuncs its owner gave at init, and the destroy notifies
 * given to killable_owner_release(); calls killable-worker-pool.c for the
 * spin of a main loop that waits for an outcome.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "killable-owner-private.h"
#include "killable-text-private.h"
#include "killable-worker-pool-private.h"

/* Signals and notifications of a task are never emitted on a worker
 * thread: they are queued here and emitted by a source on the owner's
 * main context (the thread-default context of the thread that called
 * start() or run_async()).
 *
 * There is one FIFO per context, not one source per task, so that the
 * order between tasks survives: a child's "finished" is queued before its
 * parent's and is emitted before it. A task has at most one entry that
 * ordered emissions may join (the tail); unordered ones (progress, status)
 * coalesce into its newest entry wherever it stands, so a worker reporting
 * progress in a loop adds at most one entry.
 *
 * The FIFO is a source of its own type, created with the first emission
 * or run_async() on a context and attached to it until the context is
 * freed: an emission costs an entry and, into an empty FIFO, one wake-up
 * of the context (none when its thread is spinning for it, see below), not
 * an idle source created, attached, dispatched and destroyed.
 *
 * A main loop that waits for a run_async() outcome (the context counts
 * them) spins a moment in the FIFO's prepare() before it polls, as a
 * joiner does (adaptive, see killable-worker-pool.c): a short task's
 * outcome then comes without a wake-up on either side. No outcome waited
 * for, no spin; an idle main loop is blocked in poll() and spins not.
 *
 * Emissions nobody listens to are dropped before they are queued, so a
 * program that never runs its main loop does not pile up entries and
 * references.
 */

struct _KillableOwnerEntry
{
  KillableOwner      *owner;     /* its object is referenced by the entry */
  KillableOwnerPlace *place;     /* the owner's place while this entry is its pending one (owner_lock) */
  guint               emissions;
  GList               link;
};

/* A context's FIFO: a source attached to the context, owned by it (freed
 * with it: queue_finalize()). The tasks of a context hold a reference on
 * it (their place's), so the queue outlives every place of its context
 * and every task that may queue there. */
typedef struct
{
  GSource       source;
  GMainContext *context;    /* the context it is attached to; the key in queues */
  GQueue        entries;    /* owner_lock */
  gint          n_entries;  /* (atomic) the length of @entries, written under owner_lock */
  gint          n_expected; /* (atomic) run_async() outcomes not delivered yet */
  gint          spinning;   /* (atomic) its thread spins in prepare(): no wake-up needed */
} OwnerQueue;

static GMutex owner_lock;
static GHashTable *queues;  /* GMainContext* → OwnerQueue*, protected by owner_lock */

/* A KillableOwner's newest queued entry, the one later emissions may join,
 * is kept in the owner's own place pointer, tagged (its low bit set):
 * while an entry is pending, owner->place points to it and the entry
 * holds the place (entry->place) instead. Only owners with something
 * queued (something listens to them) have one, and a task carries no
 * pointer for it: a look costs a load and a test, not a hash table
 * lookup under the lock (insert, lookup and remove were ~310 instructions
 * per run_async() outcome). Written under owner_lock; read without it only
 * by killable_owner_set_context()'s fast path, which compares it with an
 * untagged place (a pending entry sends it to the locked path). */
#define PLACE_TAG ((guintptr) 1)

static inline gboolean
place_is_entry (gpointer p)
{
  return ((guintptr) p & PLACE_TAG) != 0;
}

/* Call with owner_lock held: the owner's place, wherever it is kept. */
static inline KillableOwnerPlace *
owner_place_locked (KillableOwner *owner)
{
  gpointer p = owner->place;

  if (G_UNLIKELY (place_is_entry (p)))
    return ((KillableOwnerEntry *) ((guintptr) p & ~PLACE_TAG))->place;
  return p;
}

static KillableOwnerEntry *
pending_get_locked (KillableOwner *owner)
{
  gpointer p = owner->place;

  return place_is_entry (p) ? (KillableOwnerEntry *) ((guintptr) p & ~PLACE_TAG) : NULL;
}

static void
pending_clear_locked (KillableOwner *owner)
{
  KillableOwnerEntry *entry = pending_get_locked (owner);

  if (entry != NULL)
    g_atomic_pointer_set (&owner->place, entry->place);
}

/* @entry->place is set to the owner's place by the caller. */
static void
pending_set_locked (KillableOwner      *owner,
                    KillableOwnerEntry *entry)
{
  g_assert (((guintptr) entry & PLACE_TAG) == 0);
  g_atomic_pointer_set (&owner->place, (KillableOwnerPlace *) ((guintptr) entry | PLACE_TAG));
}

/* Given once, before any KillableOwner is initialised (the owning class's
 * class_init): not stored in each KillableOwner, which saves 16 bytes per
 * object. Immutable from then. */
static const KillableOwnerFuncs *owner_funcs;
static gssize owner_offset;

/* The object a KillableOwner is embedded in. */
static inline GObject *
owner_object (KillableOwner *owner)
{
  return (GObject *) ((guint8 *) owner - owner_offset);
}

/* @offset: where each KillableOwner lies in its object, from the start of
 * the instance (the same for every instance of the class and its
 * subclasses, as a GObject's private data is). */
void
killable_owner_setup (const KillableOwnerFuncs *funcs,
                      gssize                    offset)
{
  owner_funcs = funcs;
  owner_offset = offset;
}

/* A thread and a context, shared by every owner that has them: the tasks
 * a thread creates (or starts) with the same thread-default context hold
 * one reference on one place, not two references each. Immutable but for
 * the count. Each thread keeps its last place for the next owners. */
struct _KillableOwnerPlace
{
  int           ref_count;  /* (atomic) */
  GMainContext *context;    /* (owned) */
  GThread      *thread;     /* (owned) */
  OwnerQueue   *queue;      /* (nullable) (atomic) @context's, once looked up: set once, under owner_lock */
};

static KillableOwnerPlace *
place_ref (KillableOwnerPlace *place)
{
  g_atomic_int_inc (&place->ref_count);
  return place;
}

static void
place_unref (gpointer data)
{
  KillableOwnerPlace *place = data;

  if (g_atomic_int_dec_and_test (&place->ref_count))
    {
      g_main_context_unref (place->context);
      g_thread_unref (place->thread);
      g_free (place);
    }
}

/* This thread's last place: read through a thread-local variable (each
 * task created or started reads it: g_private_get() costs a call and a
 * lookup), owned by a GPrivate, whose destructor releases it when the
 * thread exits (and clears the variable: a destructor of another key that
 * runs later may still create a task). */
static __thread KillableOwnerPlace *cached_place_fast;

static void
cached_place_free (gpointer data)
{
  if (cached_place_fast == data)
    cached_place_fast = NULL;
  place_unref (data);
}

static GPrivate cached_place = G_PRIVATE_INIT (cached_place_free);

/* A reference on the place of the calling thread and @context. */
static KillableOwnerPlace *
place_get (GMainContext *context)
{
  KillableOwnerPlace *place = cached_place_fast;

  if (G_LIKELY (place != NULL && place->context == context))
    return place_ref (place);

  place = g_new (KillableOwnerPlace, 1);
  place->ref_count = 2;   /* the caller's and the cache's */
  place->context = g_main_context_ref (context);
  place->thread = g_thread_ref (g_thread_self ());
  place->queue = NULL;
  g_private_replace (&cached_place, place);
  cached_place_fast = place;

  return place;
}

void
killable_owner_init (KillableOwner *owner)
{
  GMainContext *context = g_main_context_get_thread_default ();

  owner->place = place_get (context != NULL ? context : g_main_context_default ());
}

void
killable_owner_clear (KillableOwner *owner)
{
  /* A queued entry holds a reference on its object, so none is left here
   * (and the place pointer is not tagged: taking an entry out untags it). */
  g_assert (!place_is_entry (owner->place));
  g_clear_pointer (&owner->place, place_unref);
}

/* The calling thread becomes the owner's thread, @context its context. */
void
killable_owner_set_context (KillableOwner *owner,
                            GMainContext  *context)
{
  KillableOwnerPlace *old;
  KillableOwnerPlace *place;

  /* Usually the place the task was created with, this thread's cached
   * one: then no reference changes hands, and with no entry of this owner
   * pending (none that later emissions may join: its place pointer would
   * be tagged, and differ) no lock is needed. Only the pointer is compared
   * (the cached place is alive, the cache holds it): were the owner's
   * place changed (or an entry queued) concurrently, this call is as if
   * made before that change. */
  place = cached_place_fast;
  if (place != NULL && g_atomic_pointer_get (&owner->place) == place &&
      place->context == context)
    return;

  g_mutex_lock (&owner_lock);
  old = owner_place_locked (owner);
  if (old->context == context && old->thread == g_thread_self ())
    {
      /* Emissions already queued stay where they are. */
      pending_clear_locked (owner);
      g_mutex_unlock (&owner_lock);
      return;
    }
  g_mutex_unlock (&owner_lock);

  /* Outside the lock: it may allocate and release a place. */
  place = place_get (context);

  g_mutex_lock (&owner_lock);
  /* Emissions already queued on the old context stay there. */
  old = owner_place_locked (owner);
  g_atomic_pointer_set (&owner->place, place);
  g_mutex_unlock (&owner_lock);

  place_unref (old);
}

/* Emits @emissions at once when the calling thread is the owner's (it
 * called start(), or created the task, or it is running the owner
 * context), as GObject's own setters do; queues them otherwise, so that a
 * handler never runs on another thread. */
void
killable_owner_emit (KillableOwner *owner,
                     guint          emissions)
{
  KillableOwnerPlace *place;
  gboolean here;

  g_mutex_lock (&owner_lock);
  place = owner_place_locked (owner);
  here = place->thread == g_thread_self () || g_main_context_is_owner (place->context);
  g_mutex_unlock (&owner_lock);

  if (here)
    owner_funcs->emit (owner_object (owner), emissions);
  else
    killable_owner_queue (owner, emissions);
}

static gboolean
queue_has_entries (gconstpointer data)
{
  const OwnerQueue *queue = data;

  return g_atomic_int_get (&queue->n_entries) > 0;
}

static gboolean
queue_prepare (GSource *source,
               gint    *timeout)
{
  OwnerQueue *queue = (OwnerQueue *) source;
  gboolean ready;

  *timeout = -1;
  if (queue_has_entries (queue))
    return TRUE;
  if (g_atomic_int_get (&queue->n_expected) <= 0)
    return FALSE;

  /* An outcome is awaited: a moment of spinning before the poll. The flag
   * is set before the looks and the worker reads it after it queued (both
   * sequentially consistent): either this thread sees the entry, or the
   * worker sees no spinner and wakes the context. */
  g_atomic_int_set (&queue->spinning, 1);
  ready = killable_worker_pool_spin_until (KILLABLE_WORKER_POOL_SPIN_OWNER, queue_has_entries, queue);
  g_atomic_int_set (&queue->spinning, 0);

  return ready || queue_has_entries (queue);
}

static gboolean
queue_check (GSource *source)
{
  return queue_has_entries ((OwnerQueue *) source);
}

/* Takes the queued entries out (under owner_lock); they are no longer
 * anyone's pending entry. */
static void
queue_take_locked (OwnerQueue *queue,
                   GQueue     *entries)
{
  *entries = queue->entries;
  g_queue_init (&queue->entries);
  g_atomic_int_set (&queue->n_entries, 0);
  for (GList *l = entries->head; l != NULL; l = l->next)
    {
      KillableOwnerEntry *entry = l->data;

      if (pending_get_locked (entry->owner) == entry)
        pending_clear_locked (entry->owner);
    }
}

static gboolean
queue_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  OwnerQueue *queue = (OwnerQueue *) source;
  GQueue entries;
  GList *l;

  g_mutex_lock (&owner_lock);
  queue_take_locked (queue, &entries);
  g_mutex_unlock (&owner_lock);

  /* Emissions queued by the handlers go to the queue again, for the next
   * dispatch (a nested main loop included: the source may recurse). */
  while ((l = g_queue_pop_head_link (&entries)) != NULL)
    {
      KillableOwnerEntry *entry = l->data;
      GObject *object = owner_object (entry->owner);

      owner_funcs->emit (object, entry->emissions);
      g_free (entry);
      g_object_unref (object);
    }

  return G_SOURCE_CONTINUE;
}

/* The context is being freed (the source is destroyed with it): nothing
 * can be emitted there any more. Entries can be left only for tasks that
 * moved to another context since (killable_owner_set_context()); they are
 * dropped. */
static void
queue_finalize (GSource *source)
{
  OwnerQueue *queue = (OwnerQueue *) source;
  GQueue entries;
  GList *l;

  g_mutex_lock (&owner_lock);
  if (queues != NULL && g_hash_table_lookup (queues, queue->context) == queue)
    g_hash_table_remove (queues, queue->context);
  queue_take_locked (queue, &entries);
  g_mutex_unlock (&owner_lock);

  while ((l = g_queue_pop_head_link (&entries)) != NULL)
    {
      KillableOwnerEntry *entry = l->data;
      GObject *object = owner_object (entry->owner);

      g_free (entry);
      g_object_unref (object);
    }
}

static GSourceFuncs queue_funcs = {
  .prepare = queue_prepare,
  .check = queue_check,
  .dispatch = queue_dispatch,
  .finalize = queue_finalize,
};

/* The queue of @place's context, created and attached on first use. */
static OwnerQueue *
queue_get_locked (KillableOwnerPlace *place)
{
  OwnerQueue *queue = place->queue;

  if (G_LIKELY (queue != NULL))
    return queue;

  if (queues == NULL)
    queues = g_hash_table_new (NULL, NULL);

  queue = g_hash_table_lookup (queues, place->context);
  if (queue == NULL)
    {
      GSource *source = g_source_new (&queue_funcs, sizeof (OwnerQueue));

      queue = (OwnerQueue *) source;
      queue->context = place->context;
      g_queue_init (&queue->entries);
      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_can_recurse (source, TRUE);
      g_source_set_static_name (source, "[killable] owner emissions");
      g_hash_table_insert (queues, place->context, queue);
      /* The context holds the only reference from here on. */
      g_source_attach (source, place->context);
      g_source_unref (source);
    }
  /* Set once; read without the lock by killable_owner_expect(). */
  g_atomic_pointer_set (&place->queue, queue);

  return queue;
}

KILLABLE_STOP_PATH void
killable_owner_queue (KillableOwner *owner,
                      guint          emissions)
{
  KillableOwnerEntry *entry;
  KillableOwnerPlace *place;
  OwnerQueue *queue;
  GObject *ref;
  gboolean wake;

  emissions = owner_funcs->filter (owner_object (owner), emissions);
  if (emissions == 0)
    return;

  /* Taken before the lock: a reference that toggles runs a binding's
   * toggle notification (Python takes its GIL there). */
  ref = g_object_ref (owner_object (owner));

  g_mutex_lock (&owner_lock);

  entry = pending_get_locked (owner);
  if (entry != NULL &&
      ((emissions & ~KILLABLE_EMIT_UNORDERED) == 0 || entry->link.next == NULL))
    {
      entry->emissions |= emissions;
      g_mutex_unlock (&owner_lock);
      g_object_unref (ref);
      return;
    }

  place = owner_place_locked (owner);
  queue = queue_get_locked (place);

  entry = g_new (KillableOwnerEntry, 1);
  entry->owner = owner;
  entry->place = place;
  entry->emissions = emissions;
  entry->link = (GList) { entry, NULL, NULL };
  g_queue_push_tail_link (&queue->entries, &entry->link);
  /* Sequentially consistent: read after it, the spinning flag tells
   * whether the context's thread will see this entry without a wake-up. */
  wake = g_atomic_int_add (&queue->n_entries, 1) == 0 &&
         !g_atomic_int_get (&queue->spinning);
  pending_set_locked (owner, entry);

  /* Under the lock: the context lives while a task of it is queued
   * (entry → task → place → context), and once the lock is let go the
   * entry may already be dispatched. The first entry wakes the context,
   * unless this thread owns it (it is not in poll(), and looks at the
   * queue before it polls again). */
  if (wake && !g_main_context_is_owner (queue->context))
    g_main_context_wakeup (queue->context);

  g_mutex_unlock (&owner_lock);
}

/* run_async() expects an outcome on the owner's context (@delta 1), or
 * took it (-1): while some are expected, the context's main loop spins a
 * moment before it polls. */
void
killable_owner_expect (KillableOwner *owner,
                       gint           delta)
{
  KillableOwnerPlace *place = cached_place_fast;
  OwnerQueue *queue;

  /* Usually the calling thread's cached place (alive: the cache holds
   * it), whose queue is known: no lock. As in killable_owner_set_context(),
   * a concurrent change of the owner's place makes this call as if made
   * before it. */
  if (place != NULL && g_atomic_pointer_get (&owner->place) == place &&
      (queue = g_atomic_pointer_get (&place->queue)) != NULL)
    {
      g_atomic_int_add (&queue->n_expected, delta);
      return;
    }

  g_mutex_lock (&owner_lock);
  queue = queue_get_locked (owner_place_locked (owner));
  g_atomic_int_add (&queue->n_expected, delta);
  g_mutex_unlock (&owner_lock);
}

/* For killable-fork.c: owner_lock is held across fork(), so that the
 * child's copy of the queues is consistent. */
void
killable_owner_fork_lock (gboolean lock)
{
  if (lock)
    g_mutex_lock (&owner_lock);
  else
    g_mutex_unlock (&owner_lock);
}

/* Releases {{{ */

typedef struct
{
  GDestroyNotify notify;
  gpointer       data;
} Release;


/* The fields of a Release are written and read under owner_lock: the
 * hand-over through GLib's main context is invisible to ThreadSanitizer. */
static gboolean
release_dispatch (gpointer user_data)
{
  Release *release = user_data;
  GDestroyNotify notify;
  gpointer data;

  g_mutex_lock (&owner_lock);
  notify = release->notify;
  data = release->data;
  release->notify = NULL;
  g_mutex_unlock (&owner_lock);

  if (notify != NULL)
    notify (data);

  return G_SOURCE_REMOVE;
}

static void
release_free (gpointer user_data)
{
  Release *release = user_data;
  GDestroyNotify notify;
  gpointer data;

  g_mutex_lock (&owner_lock);
  notify = release->notify;
  data = release->data;
  release->notify = NULL;
  g_mutex_unlock (&owner_lock);

  /* A context freed before it ran the source still releases the data. */
  if (notify != NULL)
    notify (data);
  g_free (release);
}

/* Runs @notify (@data), the destroy notify of something the owner gave a
 * task (a cleanup's or stop callback's data, the work function's), where
 * the owner can take it: at once on the owner's thread; queued to the
 * owner's context while a main loop runs it on another thread (a GJS
 * closure must not be freed off its thread); at once when no main loop
 * runs that context (a script that joins: nothing would ever release it).
 * Takes no lock of the caller's; the notify runs under none. */
void
killable_owner_release (KillableOwner  *owner,
                        GDestroyNotify  notify,
                        gpointer        data)
{
  g_autoptr(GMainContext) context = NULL;
  KillableOwnerPlace *place;
  GSource *source;
  Release *release;
  gboolean here;

  if (notify == NULL)
    return;

  /* A main loop holds its context for as long as it runs (g_main_loop_run(),
   * g_application_run()): when it can be acquired here, none runs it. The
   * probes are serialised by owner_lock, so that two of them never take
   * each other for a main loop (the context's own lock is already taken
   * under owner_lock, by g_source_attach() in killable_owner_queue()). */
  g_mutex_lock (&owner_lock);
  place = owner_place_locked (owner);
  here = place->thread == g_thread_self () || g_main_context_is_owner (place->context);
  context = g_main_context_ref (place->context);
  if (!here)
    {
      here = g_main_context_acquire (context);
      if (here)
        g_main_context_release (context);
    }
  g_mutex_unlock (&owner_lock);

  if (here)
    {
      notify (data);
      return;
    }

  release = g_new0 (Release, 1);
  g_mutex_lock (&owner_lock);
  release->notify = notify;
  release->data = data;
  g_mutex_unlock (&owner_lock);

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_static_name (source, "[killable] release");
  g_source_set_callback (source, release_dispatch, release, release_free);
  g_source_attach (source, context);
  g_source_unref (source);
}

/* }}} */
