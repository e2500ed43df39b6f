/* killable-timer-private.h: the library's timer thread
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _KillableTimer KillableTimer;

/* A timer's function: runs on a library thread that is not the timer
 * thread. To run again, it calls killable_timer_set_ready_time() on
 * killable_timer_current() and returns G_SOURCE_CONTINUE. */
typedef gboolean (*KillableTimerFunc) (gpointer data);

/* Runs @func (@data) at @ready_time (monotonic µs; 0 or past = at once), on
 * a dispatcher thread: the timer thread only keeps time, so a function that
 * blocks (on Python's GIL, say) never delays another timer. @notify (@data)
 * runs once, after the last call of @func or at killable_timer_cancel() if
 * @func is not running then. The returned reference is the caller's. Never
 * fails: without a timer thread (no thread could be created) the timer is
 * kept, and fires once a later call could create one (a warning says so). */
KillableTimer *killable_timer_add            (gint64             ready_time,
                                              KillableTimerFunc  func,
                                              gpointer           data,
                                              GDestroyNotify     notify);
KillableTimer *killable_timer_ref            (KillableTimer     *timer);
void           killable_timer_unref          (KillableTimer     *timer);

/* The timer whose function runs on the calling thread, or NULL. */
KillableTimer *killable_timer_current        (void);

/* From within the timer's own function: when it returns TRUE, it runs
 * again at @ready_time. */
void           killable_timer_set_ready_time (KillableTimer     *timer,
                                              gint64             ready_time);

/* The timer will not run again (a call in progress completes). */
void           killable_timer_cancel         (KillableTimer     *timer);

/* Cancels and releases *@timer, if any. */
void           killable_timer_clear          (KillableTimer    **timer);

/* For killable-fork.c (see there): held across fork(); the child forgets
 * the timers and threads of the parent. */
void           killable_timer_fork_prepare   (void);
void           killable_timer_fork_parent    (void);
void           killable_timer_fork_child     (void);

/* For tests: how many dispatcher threads run timer functions now. */
guint          killable_timer_get_n_dispatchers (void);

G_END_DECLS
