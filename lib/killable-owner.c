/* killable-owner.c: emissions on the owner's main context
 *
 * Owns: a KillableOwner per task (its place: owner context and thread,
 * shared with the other tasks of that thread and context; its newest
 * queued entry), one FIFO of entries per owner context, and the release of
 * the owner's data (destroy notifies) on the owner's context.
 * Locks: owner_lock guards every queue, every KillableOwner's place and
 * the table of pending entries, and serialises the probes of
 * killable_owner_release(); a leaf lock (no user code, no other library
 * lock is taken under it).
 * Called by: killable-task.c. Calls back only through the
 * KillableOwnerFuncs its owner gave at init, and the destroy notifies
 * given to killable_owner_release(): a leaf.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "killable-owner-private.h"

/* Signals and notifications of a task are never emitted on a worker
 * thread: they are queued here and emitted by an idle source on the owner's
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
 * Emissions nobody listens to are dropped before they are queued, so a
 * program that never runs its main loop does not pile up sources and
 * references.
 */

struct _KillableOwnerEntry
{
  KillableOwner *owner;     /* its object is referenced by the entry */
  guint         emissions;
  GList         link;
};

typedef struct
{
  GMainContext *context;    /* (owned) */
  GSource      *source;     /* (owned) (nullable) armed while @entries is not empty */
  GQueue        entries;
} OwnerQueue;

static GMutex owner_lock;
static GHashTable *queues;  /* GMainContext* → OwnerQueue*, protected by owner_lock */
/* KillableOwner* → its newest queued entry, the one later emissions may
 * join; protected by owner_lock. A table rather than a field: only owners
 * with something queued (something listens to them) have one, and a task
 * nobody watches does not carry the pointer. */
static GHashTable *pending_entries;

static KillableOwnerEntry *
pending_get_locked (KillableOwner *owner)
{
  return pending_entries != NULL ? g_hash_table_lookup (pending_entries, owner) : NULL;
}

static void
pending_clear_locked (KillableOwner *owner)
{
  if (pending_entries != NULL)
    g_hash_table_remove (pending_entries, owner);
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

/* This thread's last place, released when the thread exits. */
static GPrivate cached_place = G_PRIVATE_INIT (place_unref);

/* A reference on the place of the calling thread and @context. */
static KillableOwnerPlace *
place_get (GMainContext *context)
{
  KillableOwnerPlace *place = g_private_get (&cached_place);

  if (G_LIKELY (place != NULL && place->context == context))
    return place_ref (place);

  place = g_new (KillableOwnerPlace, 1);
  place->ref_count = 2;   /* the caller's and the cache's */
  place->context = g_main_context_ref (context);
  place->thread = g_thread_ref (g_thread_self ());
  g_private_replace (&cached_place, place);

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
   * (and none is in pending_entries). */
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
   * one: then no reference changes hands, and with nothing queued anywhere
   * yet no lock is needed. Only the pointer is compared (the cached place
   * is alive, the cache holds it): were the owner's place changed
   * concurrently, this call is as if made before that change. */
  place = g_private_get (&cached_place);
  if (place != NULL && g_atomic_pointer_get (&owner->place) == place &&
      place->context == context && g_atomic_pointer_get (&pending_entries) == NULL)
    return;

  g_mutex_lock (&owner_lock);
  if (owner->place->context == context && owner->place->thread == g_thread_self ())
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
  old = owner->place;
  g_atomic_pointer_set (&owner->place, place);
  /* Emissions already queued on the old context stay there. */
  pending_clear_locked (owner);
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
  gboolean here;

  g_mutex_lock (&owner_lock);
  here = owner->place->thread == g_thread_self () || g_main_context_is_owner (owner->place->context);
  g_mutex_unlock (&owner_lock);

  if (here)
    owner_funcs->emit (owner_object (owner), emissions);
  else
    killable_owner_queue (owner, emissions);
}

static gboolean
owner_queue_dispatch (gpointer user_data)
{
  OwnerQueue *queue = user_data;
  GQueue entries;
  GList *l;

  g_mutex_lock (&owner_lock);

  entries = queue->entries;
  g_queue_init (&queue->entries);
  for (l = entries.head; l != NULL; l = l->next)
    {
      KillableOwnerEntry *entry = l->data;

      if (pending_get_locked (entry->owner) == entry)
        pending_clear_locked (entry->owner);
    }

  g_clear_pointer (&queue->source, g_source_unref);
  g_hash_table_remove (queues, queue->context);

  g_mutex_unlock (&owner_lock);

  /* @queue is gone: later emissions start a new one. */
  while ((l = g_queue_pop_head_link (&entries)) != NULL)
    {
      KillableOwnerEntry *entry = l->data;
      GObject *object = owner_object (entry->owner);

      owner_funcs->emit (object, entry->emissions);
      g_free (entry);
      g_object_unref (object);
    }

  return G_SOURCE_REMOVE;
}

static void
owner_queue_free (gpointer data)
{
  OwnerQueue *queue = data;

  g_assert (queue->entries.length == 0);
  if (queue->source != NULL)
    {
      g_source_destroy (queue->source);
      g_source_unref (queue->source);
    }
  g_main_context_unref (queue->context);
  g_free (queue);
}

void
killable_owner_queue (KillableOwner *owner,
                      guint          emissions)
{
  KillableOwnerEntry *entry;
  OwnerQueue *queue;
  GObject *ref;

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

  if (queues == NULL)
    queues = g_hash_table_new_full (NULL, NULL, NULL, owner_queue_free);

  queue = g_hash_table_lookup (queues, owner->place->context);
  if (queue == NULL)
    {
      queue = g_new0 (OwnerQueue, 1);
      queue->context = g_main_context_ref (owner->place->context);
      g_hash_table_insert (queues, queue->context, queue);
    }

  entry = g_new0 (KillableOwnerEntry, 1);
  entry->owner = owner;
  entry->emissions = emissions;
  entry->link.data = entry;
  g_queue_push_tail_link (&queue->entries, &entry->link);
  if (pending_entries == NULL)
    g_atomic_pointer_set (&pending_entries, g_hash_table_new (NULL, NULL));
  g_hash_table_insert (pending_entries, owner, entry);

  if (queue->source == NULL)
    {
      queue->source = g_idle_source_new ();
      g_source_set_priority (queue->source, G_PRIORITY_DEFAULT);
      g_source_set_static_name (queue->source, "[killable] owner emissions");
      g_source_set_callback (queue->source, owner_queue_dispatch, queue, NULL);
      g_source_attach (queue->source, queue->context);
    }

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
  here = owner->place->thread == g_thread_self () || g_main_context_is_owner (owner->place->context);
  context = g_main_context_ref (owner->place->context);
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
