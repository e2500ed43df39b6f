/* killable-sync-private.c: pthread-based GMutex/GCond/g_once for ThreadSanitizer
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Built only with -fsanitize=thread; see killable-sync-private.h.
 *
 * Owns: a pthread mutex or condition variable behind each GMutex/GCond
 * (installed in its pointer on first use, by compare-and-exchange), and
 * g_once emulation. Locks: once_lock guards the g_once entries in
 * progress; a leaf lock. Called by: every lib/ and test file of a TSan
 * build, through the macros of killable-sync-private.h. Calls nothing of
 * the library: a leaf.
 */

#include "config.h"

#include "killable-sync-private.h"

#ifdef KILLABLE_SYNC_PTHREAD

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <sanitizer/tsan_interface.h>

/* Programs built in the tree (tests, demos, examples) get the renaming too
 * and may link the shared library: the wrappers are exported from it (in
 * ThreadSanitizer builds only). */
#define KILLABLE_SYNC_EXPORT __attribute__ ((visibility ("default")))

static pthread_mutex_t *
get_mutex (GMutex *mutex)
{
  pthread_mutex_t *impl = __atomic_load_n (&mutex->p, __ATOMIC_ACQUIRE);

  if (G_UNLIKELY (impl == NULL))
    {
      pthread_mutex_t *fresh = malloc (sizeof *fresh);
      gpointer expected = NULL;

      if (fresh == NULL)
        g_error ("out of memory");
      pthread_mutex_init (fresh, NULL);
      if (__atomic_compare_exchange_n (&mutex->p, &expected, fresh, FALSE,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;

      pthread_mutex_destroy (fresh);
      free (fresh);
      impl = expected;
    }

  return impl;
}

static pthread_cond_t *
get_cond (GCond *cond)
{
  pthread_cond_t *impl = __atomic_load_n (&cond->p, __ATOMIC_ACQUIRE);

  if (G_UNLIKELY (impl == NULL))
    {
      pthread_cond_t *fresh = malloc (sizeof *fresh);
      pthread_condattr_t attr;
      gpointer expected = NULL;

      if (fresh == NULL)
        g_error ("out of memory");
      /* g_cond_wait_until() takes a g_get_monotonic_time() deadline. */
      pthread_condattr_init (&attr);
      pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
      pthread_cond_init (fresh, &attr);
      pthread_condattr_destroy (&attr);
      if (__atomic_compare_exchange_n (&cond->p, &expected, fresh, FALSE,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return fresh;

      pthread_cond_destroy (fresh);
      free (fresh);
      impl = expected;
    }

  return impl;
}

KILLABLE_SYNC_EXPORT void
killable_sync_mutex_init (GMutex *mutex)
{
  mutex->p = NULL;
}

KILLABLE_SYNC_EXPORT void
killable_sync_mutex_clear (GMutex *mutex)
{
  pthread_mutex_t *impl = mutex->p;

  if (impl != NULL)
    {
      pthread_mutex_destroy (impl);
      free (impl);
      mutex->p = NULL;
    }
}

KILLABLE_SYNC_EXPORT void
killable_sync_mutex_lock (GMutex *mutex)
{
  int ret = pthread_mutex_lock (get_mutex (mutex));

  if (G_UNLIKELY (ret != 0))
    g_error ("pthread_mutex_lock: %s", g_strerror (ret));
}

KILLABLE_SYNC_EXPORT gboolean
killable_sync_mutex_trylock (GMutex *mutex)
{
  return pthread_mutex_trylock (get_mutex (mutex)) == 0;
}

KILLABLE_SYNC_EXPORT void
killable_sync_mutex_unlock (GMutex *mutex)
{
  int ret = pthread_mutex_unlock (get_mutex (mutex));

  if (G_UNLIKELY (ret != 0))
    g_error ("pthread_mutex_unlock: %s", g_strerror (ret));
}

KILLABLE_SYNC_EXPORT void
killable_sync_cond_init (GCond *cond)
{
  cond->p = NULL;
}

KILLABLE_SYNC_EXPORT void
killable_sync_cond_clear (GCond *cond)
{
  pthread_cond_t *impl = cond->p;

  if (impl != NULL)
    {
      pthread_cond_destroy (impl);
      free (impl);
      cond->p = NULL;
    }
}

KILLABLE_SYNC_EXPORT void
killable_sync_cond_wait (GCond  *cond,
                         GMutex *mutex)
{
  int ret = pthread_cond_wait (get_cond (cond), get_mutex (mutex));

  if (G_UNLIKELY (ret != 0))
    g_error ("pthread_cond_wait: %s", g_strerror (ret));
}

KILLABLE_SYNC_EXPORT gboolean
killable_sync_cond_wait_until (GCond  *cond,
                               GMutex *mutex,
                               gint64  end_time)
{
  struct timespec ts;
  int ret;

  ts.tv_sec = end_time / G_USEC_PER_SEC;
  ts.tv_nsec = (end_time % G_USEC_PER_SEC) * 1000;
  if (ts.tv_nsec < 0)
    {
      ts.tv_sec--;
      ts.tv_nsec += 1000000000;
    }

  ret = pthread_cond_timedwait (get_cond (cond), get_mutex (mutex), &ts);
  if (G_UNLIKELY (ret != 0 && ret != ETIMEDOUT))
    g_error ("pthread_cond_timedwait: %s", g_strerror (ret));

  return ret != ETIMEDOUT;
}

KILLABLE_SYNC_EXPORT void
killable_sync_cond_signal (GCond *cond)
{
  pthread_cond_signal (get_cond (cond));
}

KILLABLE_SYNC_EXPORT void
killable_sync_cond_broadcast (GCond *cond)
{
  pthread_cond_broadcast (get_cond (cond));
}

/* g_once as GLib does it, with primitives ThreadSanitizer sees: no lock is
 * held while an initializer runs (it may run other initializers, take
 * GLib's type locks...); a second thread waits for the first to leave. */
static pthread_mutex_t once_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t once_cond = PTHREAD_COND_INITIALIZER;
static GSList *once_in_progress;   /* (element-type gsize*) protected by once_lock */

KILLABLE_SYNC_EXPORT gboolean
killable_sync_once_init_enter (volatile void *location)
{
  gsize *value = (gsize *) location;
  gboolean need_init = FALSE;

  if (__atomic_load_n (value, __ATOMIC_ACQUIRE) != 0)
    return FALSE;

  pthread_mutex_lock (&once_lock);
  if (__atomic_load_n (value, __ATOMIC_ACQUIRE) == 0)
    {
      if (g_slist_find (once_in_progress, value) == NULL)
        {
          need_init = TRUE;
          once_in_progress = g_slist_prepend (once_in_progress, value);
        }
      else
        {
          while (g_slist_find (once_in_progress, value) != NULL)
            pthread_cond_wait (&once_cond, &once_lock);
        }
    }
  pthread_mutex_unlock (&once_lock);

  return need_init;
}

KILLABLE_SYNC_EXPORT void
killable_sync_once_init_leave (volatile void *location,
                               gsize          result)
{
  gsize *value = (gsize *) location;

  g_return_if_fail (result != 0);

  pthread_mutex_lock (&once_lock);
  __atomic_store_n (value, result, __ATOMIC_RELEASE);
  once_in_progress = g_slist_remove (once_in_progress, value);
  pthread_cond_broadcast (&once_cond);
  pthread_mutex_unlock (&once_lock);
}

/* GLib's own g_object_unref(): its declaration in <gobject/gobject.h> was
 * renamed by the header. */
#undef g_object_unref
extern void g_object_unref (gpointer object);

KILLABLE_SYNC_EXPORT void
killable_sync_object_unref (gpointer object)
{
  /* Everything this thread did with the object happens before its
   * dispose, wherever the last reference is dropped: the dispose of
   * libkillable's classes acquires it (KILLABLE_SYNC_DISPOSING). */
  __tsan_release (object);
  g_object_unref (object);
}

#endif /* KILLABLE_SYNC_PTHREAD */
