/* killable-sync-private.h: GMutex, GCond and g_once that ThreadSanitizer sees
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * GLib (2.74 on Linux) implements GMutex and GCond with atomics and raw
 * futex(2) system calls inside libglib, and g_once_init_leave() with an
 * atomic store inside libglib. libglib is not instrumented, so under
 * ThreadSanitizer none of them creates a happens-before edge: every field
 * protected by a GMutex, and everything published through g_once, is
 * reported as a data race. Those reports are false, they are in our own
 * frames (so no suppression limited to GLib's frames removes them), and they
 * bury the real ones.
 *
 * In a build with -fsanitize=thread (and only there), meson force-includes
 * this header in every C file of the project (lib/, tests/, demos/): the
 * g_mutex_*, g_cond_* and g_once_init_* names then resolve to the wrappers of
 * killable-sync-private.c, built on pthread mutexes and condition variables
 * that ThreadSanitizer intercepts, so it sees the locks, their
 * happens-before edges and lock-order inversions. Nothing changes in any
 * other build: the source keeps calling GLib's functions.
 *
 * GObject's reference count is kept by atomics inside libgobject, invisible
 * too: the thread that drops the last reference runs dispose and finalize
 * after every other thread's last use of the object, but ThreadSanitizer
 * cannot know it. g_object_unref() is therefore wrapped as well: each unref
 * publishes the caller's accesses (__tsan_release), and the dispose of
 * libkillable's classes starts with KILLABLE_SYNC_DISPOSING (self), which
 * acquires them all, whoever drops the last reference (our code, or GLib's:
 * a GListStore, a GTask, a signal emission).
 *
 * The renaming macros are defined *before* <glib.h> is included, so GLib's
 * own declarations (and its inline helpers, such as g_mutex_locker_new())
 * name the wrappers too: a GMutex is never handed to GLib's futex code. The
 * pthread object lives in a lazily allocated block whose address is kept in
 * the GMutex/GCond's pointer member (what GLib's own non-futex
 * implementation does), so statically zeroed mutexes keep working.
 *
 * GLib's internal locks (GMainContext, GCancellable, GObject...) stay
 * invisible: see tests/README-sanitizers.md (ignore_noninstrumented_modules).
 */

#pragma once

/* A program that does not use GLib (the reaper helper) opts out. */
#if defined(KILLABLE_NO_GLIB)
#elif defined(__SANITIZE_THREAD__)
# define KILLABLE_SYNC_PTHREAD 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer)
#  define KILLABLE_SYNC_PTHREAD 1
# endif
#endif

#ifdef KILLABLE_SYNC_PTHREAD

# define g_mutex_init          killable_sync_mutex_init
# define g_mutex_clear         killable_sync_mutex_clear
# define g_mutex_lock          killable_sync_mutex_lock
# define g_mutex_trylock       killable_sync_mutex_trylock
# define g_mutex_unlock        killable_sync_mutex_unlock
# define g_cond_init           killable_sync_cond_init
# define g_cond_clear          killable_sync_cond_clear
# define g_cond_wait           killable_sync_cond_wait
# define g_cond_wait_until     killable_sync_cond_wait_until
# define g_cond_signal         killable_sync_cond_signal
# define g_cond_broadcast      killable_sync_cond_broadcast
# define g_object_unref        killable_sync_object_unref

/* Forced in front of each file: what the file would ask for first. */
# ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
# endif

/* GLib declares the renamed functions, with its own prototypes. */
# include <glib.h>
# include <glib-object.h>

/* g_once_init_enter/leave are macros in <glib.h>: replaced after it. */
# undef g_once_init_enter
# undef g_once_init_leave
# define g_once_init_enter(location) \
  killable_sync_once_init_enter ((volatile void *) (location))
# define g_once_init_leave(location, result) \
  killable_sync_once_init_leave ((volatile void *) (location), (gsize) (result))

/* G_DEFINE_QUARK caches the quark in a plain static: a benign race that
 * ThreadSanitizer reports. The same, with atomics. */
# undef G_DEFINE_QUARK
# define G_DEFINE_QUARK(QN, q_n)                                        \
GQuark                                                                  \
q_n##_quark (void)                                                      \
{                                                                       \
  static int q;                                                         \
  GQuark quark = (GQuark) g_atomic_int_get (&q);                        \
                                                                        \
  if (G_UNLIKELY (quark == 0))                                          \
    {                                                                   \
      quark = g_quark_from_static_string (#QN);                         \
      g_atomic_int_set (&q, (int) quark);                               \
    }                                                                   \
                                                                        \
  return quark;                                                         \
}

gboolean killable_sync_once_init_enter (volatile void *location);
void     killable_sync_once_init_leave (volatile void *location,
                                        gsize          result);

# include <sanitizer/tsan_interface.h>
# define KILLABLE_SYNC_DISPOSING(object) __tsan_acquire (object)

#else /* !KILLABLE_SYNC_PTHREAD */

/* Included explicitly by the files that use this macro. */
# define KILLABLE_SYNC_DISPOSING(object) ((void) (object))

#endif /* KILLABLE_SYNC_PTHREAD */
