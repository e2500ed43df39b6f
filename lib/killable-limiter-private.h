/* killable-limiter-private.h: what killable-task.c uses of a limiter
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "killable-limiter.h"

G_BEGIN_DECLS

/* TRUE: @task took a permit. FALSE: no permit is free, @task waits in the
 * queue (which holds a reference on it) until killable_limiter_release()
 * hands it one. */
gboolean  killable_limiter_acquire_or_queue (KillableLimiter *self,
                                             GObject         *task);

/* Takes @task out of the queue. Returns FALSE if it was not there (it
 * was never queued, or release() already took it out to hand it a permit). */
gboolean  killable_limiter_remove           (KillableLimiter *self,
                                             GObject         *task);

/* A permit comes back. Returns the first waiting task, which now holds
 * that permit, with the queue's reference (transfer full); or NULL when
 * none waits (the permit is free again). */
GObject  *killable_limiter_release          (KillableLimiter *self);

G_END_DECLS
