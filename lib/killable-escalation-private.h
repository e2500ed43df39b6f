/* killable-escalation-private.h: timeouts, grace periods, interrupt repeats
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib-object.h>

#include "killable-timer-private.h"

G_BEGIN_DECLS

typedef enum
{
  KILLABLE_ESCALATION_TIMEOUT,   /* the deadline passed */
  KILLABLE_ESCALATION_GRACE,     /* a grace period passed after a stop; @step counts them from 1 */
  KILLABLE_ESCALATION_REPEAT,    /* time to send the interrupt signal again */
} KillableEscalationEvent;

/* Called on a timer dispatcher thread (never the timer thread itself), with a reference on @object held. For GRACE
 * and REPEAT, returning TRUE arms the same timer again (after another grace
 * period, after the next backoff delay); TIMEOUT's return value is unused.
 * The owner of the escalation decides what each event does: this module
 * only keeps time. */
typedef gboolean (*KillableEscalationFunc) (GObject                 *object,
                                            KillableEscalationEvent  event,
                                            guint                    step);

typedef struct
{
  GMutex                  lock;
  GObject                *object;          /* (unowned) immutable: the owner of this state */
  KillableEscalationFunc  func;            /* immutable */
  gint64                  grace_period;    /* protected by @lock; -1 = never escalate */
  gint64                  timeout;         /* protected by @lock; -1 = none */
  gint64                  start_time;      /* protected by @lock; 0 until started */
  KillableTimer          *timeout_source;  /* (owned) (nullable) protected by @lock */
  KillableTimer          *grace_source;    /* (owned) (nullable) protected by @lock */
  KillableTimer          *repeat_source;   /* (owned) (nullable) protected by @lock */
  gint64                  repeat_delay;    /* protected by @lock */
  guint                   step;            /* protected by @lock: grace periods passed */
  guint                   repeats;         /* protected by @lock: interrupt repeats */
  gboolean                closed;          /* protected by @lock: no timer is armed any more */
} KillableEscalation;

/* Saturating @a + @b for times in µs (b >= 0): G_MAXINT64 and its
 * neighbours mean "practically never", never a time in the past. */
static inline gint64
killable_time_add (gint64 a,
                   gint64 b)
{
  if (b < 0)
    return a;
  return a > G_MAXINT64 - b ? G_MAXINT64 : a + b;
}

void      killable_escalation_init            (KillableEscalation     *esc,
                                               GObject                *object,
                                               KillableEscalationFunc  func);
void      killable_escalation_clear           (KillableEscalation     *esc);
gint64    killable_escalation_get_grace_period(KillableEscalation     *esc);
gboolean  killable_escalation_set_grace_period(KillableEscalation     *esc,
                                               gint64                  grace);
gint64    killable_escalation_get_timeout     (KillableEscalation     *esc);
gboolean  killable_escalation_set_timeout     (KillableEscalation     *esc,
                                               gint64                  timeout);
gint64    killable_escalation_get_deadline    (KillableEscalation     *esc);
void      killable_escalation_start           (KillableEscalation     *esc);
void      killable_escalation_begin_grace     (KillableEscalation     *esc);
void      killable_escalation_start_repeat    (KillableEscalation     *esc);
void      killable_escalation_close           (KillableEscalation     *esc);

G_END_DECLS
