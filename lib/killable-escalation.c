/* killable-escalation.c: timeouts, grace periods, interrupt repeats
 *
 * Owns: a KillableEscalation (one per task): the timeout, the grace
 * period, the start time and the three timers computed from them.
 * Locks: KillableEscalation.lock guards every field but the immutable
 * object and func; nothing is called with it held but killable_timer_add()
 * (whose timer_lock is a leaf).
 * Called by: killable-task.c. Calls: killable-timer.c, and back through the
 * KillableEscalationFunc its owner gave (the owner decides the next rung):
 * it never calls into killable-task.c.
 *
 * Times are saturating: a timeout or grace period near G_MAXINT64 arms no
 * timer at all ("practically never"), so no addition overflows and no
 * GLib ready-time computation wraps to the past.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "killable-escalation-private.h"
#include "killable-text-private.h"
#include "killable-timer-private.h"

/* Interrupt signals are repeated with a growing delay. */
#define REPEAT_FIRST_USEC  (1 * G_TIME_SPAN_MILLISECOND)
#define REPEAT_MAX_USEC    (50 * G_TIME_SPAN_MILLISECOND)

/* Beyond this a deadline is "never": GLib adds 999 to a ready time when it
 * turns it into a poll timeout, so G_MAXINT64 itself would wrap. */
#define NEVER_AFTER        (G_MAXINT64 / 2)

void
killable_escalation_init (KillableEscalation     *esc,
                          GObject                *object,
                          KillableEscalationFunc  func)
{
  g_mutex_init (&esc->lock);
  esc->object = object;
  esc->func = func;
  esc->grace_period = -1;
  esc->timeout = -1;
}

void
killable_escalation_clear (KillableEscalation *esc)
{
  /* Every timer holds a reference on the object: none can be left. */
  g_assert (esc->timeout_source == NULL);
  g_assert (esc->grace_source == NULL);
  g_assert (esc->repeat_source == NULL);
  g_mutex_clear (&esc->lock);
}

static void
unref_object (gpointer data)
{
  KillableEscalation *esc = data;

  g_object_unref (esc->object);
}

/* Called with @esc->lock held. Returns NULL when @ready_time is "never". */
static KillableTimer *
arm_locked (KillableEscalation *esc,
            gint64              ready_time,
            KillableTimerFunc   func)
{
  if (esc->closed || ready_time > NEVER_AFTER)
    return NULL;

  g_object_ref (esc->object);
  return killable_timer_add (ready_time, func, esc, unref_object);
}

gint64
killable_escalation_get_grace_period (KillableEscalation *esc)
{
  gint64 ret;

  g_mutex_lock (&esc->lock);
  ret = esc->grace_period;
  g_mutex_unlock (&esc->lock);

  return ret;
}

gboolean
killable_escalation_set_grace_period (KillableEscalation *esc,
                                      gint64              grace)
{
  gboolean changed;

  g_mutex_lock (&esc->lock);
  changed = esc->grace_period != grace;
  esc->grace_period = grace;
  g_mutex_unlock (&esc->lock);

  return changed;
}

gint64
killable_escalation_get_timeout (KillableEscalation *esc)
{
  gint64 ret;

  g_mutex_lock (&esc->lock);
  ret = esc->timeout;
  g_mutex_unlock (&esc->lock);

  return ret;
}

static gboolean
timeout_cb (gpointer data)
{
  KillableEscalation *esc = data;
  KillableTimer *source = killable_timer_current ();
  gboolean current;

  g_mutex_lock (&esc->lock);
  current = esc->timeout_source == source;
  g_mutex_unlock (&esc->lock);

  if (current)
    esc->func (esc->object, KILLABLE_ESCALATION_TIMEOUT, 0);

  return G_SOURCE_REMOVE;
}

static gint64
deadline_locked (KillableEscalation *esc)
{
  if (esc->timeout < 0 || esc->start_time == 0)
    return G_MAXINT64;

  return killable_time_add (esc->start_time, esc->timeout);
}

/* Called with @esc->lock held; returns the timer it replaced. */
static KillableTimer *
arm_timeout_locked (KillableEscalation *esc)
{
  KillableTimer *old = g_steal_pointer (&esc->timeout_source);

  if (esc->timeout >= 0 && esc->start_time != 0)
    esc->timeout_source = arm_locked (esc, deadline_locked (esc), timeout_cb);

  return old;
}

gboolean
killable_escalation_set_timeout (KillableEscalation *esc,
                                 gint64              timeout)
{
  KillableTimer *old;
  gboolean changed;

  g_mutex_lock (&esc->lock);
  changed = esc->timeout != timeout;
  esc->timeout = timeout;
  old = arm_timeout_locked (esc);
  g_mutex_unlock (&esc->lock);

  killable_timer_clear (&old);

  return changed;
}

gint64
killable_escalation_get_deadline (KillableEscalation *esc)
{
  gint64 ret;

  g_mutex_lock (&esc->lock);
  ret = deadline_locked (esc);
  g_mutex_unlock (&esc->lock);

  return ret;
}

/* The task started: the timeout counts from now. */
void
killable_escalation_start (KillableEscalation *esc)
{
  KillableTimer *old;

  g_mutex_lock (&esc->lock);
  esc->start_time = g_get_monotonic_time ();
  old = arm_timeout_locked (esc);
  g_mutex_unlock (&esc->lock);

  killable_timer_clear (&old);
}

static gboolean
grace_cb (gpointer data)
{
  KillableEscalation *esc = data;
  KillableTimer *source = killable_timer_current ();
  gboolean current;
  guint step;

  g_mutex_lock (&esc->lock);
  current = esc->grace_source == source;
  step = ++esc->step;
  g_mutex_unlock (&esc->lock);

  if (!current || !esc->func (esc->object, KILLABLE_ESCALATION_GRACE, step))
    return G_SOURCE_REMOVE;

  g_mutex_lock (&esc->lock);
  current = esc->grace_source == source && !esc->closed && esc->grace_period >= 0 &&
            killable_time_add (g_get_monotonic_time (), esc->grace_period) <= NEVER_AFTER;
  if (current)
    killable_timer_set_ready_time (source, g_get_monotonic_time () + esc->grace_period);
  g_mutex_unlock (&esc->lock);

  return current ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* After a stop request: a grace period later, and after each further one,
 * the owner is told (and climbs the ladder). Once only. */
KILLABLE_STOP_PATH void
killable_escalation_begin_grace (KillableEscalation *esc)
{
  g_mutex_lock (&esc->lock);

  if (esc->grace_period >= 0 && esc->grace_source == NULL && esc->start_time != 0)
    esc->grace_source = arm_locked (esc,
                                    killable_time_add (g_get_monotonic_time (),
                                                       esc->grace_period),
                                    grace_cb);

  g_mutex_unlock (&esc->lock);
}

static gboolean
repeat_cb (gpointer data)
{
  KillableEscalation *esc = data;
  KillableTimer *source = killable_timer_current ();
  gboolean again;
  guint step;

  g_mutex_lock (&esc->lock);
  again = esc->repeat_source == source && !esc->closed;
  step = ++esc->repeats;
  g_mutex_unlock (&esc->lock);

  if (!again || !esc->func (esc->object, KILLABLE_ESCALATION_REPEAT, step))
    return G_SOURCE_REMOVE;

  g_mutex_lock (&esc->lock);
  again = esc->repeat_source == source && !esc->closed;
  if (again)
    {
      esc->repeat_delay = MIN (esc->repeat_delay * 2, REPEAT_MAX_USEC);
      killable_timer_set_ready_time (source, g_get_monotonic_time () + esc->repeat_delay);
    }
  g_mutex_unlock (&esc->lock);

  return again ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* An interrupt signal was just sent: repeat it with backoff (a signal that
 * arrived just before the worker blocked is lost) until the owner's
 * function returns FALSE or the escalation is closed. */
void
killable_escalation_start_repeat (KillableEscalation *esc)
{
  g_mutex_lock (&esc->lock);

  if (esc->repeat_source == NULL)
    {
      esc->repeat_delay = REPEAT_FIRST_USEC;
      esc->repeat_source = arm_locked (esc, g_get_monotonic_time () + REPEAT_FIRST_USEC,
                                       repeat_cb);
    }

  g_mutex_unlock (&esc->lock);
}

/* The task is terminal: no timer touches it any more, none can be armed. */
void
killable_escalation_close (KillableEscalation *esc)
{
  KillableTimer *timeout, *grace, *repeat;

  g_mutex_lock (&esc->lock);
  esc->closed = TRUE;
  timeout = g_steal_pointer (&esc->timeout_source);
  grace = g_steal_pointer (&esc->grace_source);
  repeat = g_steal_pointer (&esc->repeat_source);
  g_mutex_unlock (&esc->lock);

  killable_timer_clear (&timeout);
  killable_timer_clear (&grace);
  killable_timer_clear (&repeat);
}
