/* killable-timer-private.h: the library's timer thread
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A source dispatched at @ready_time (monotonic µs) on the timer thread.
 * To run again, @func sets a new ready time on g_main_current_source() and
 * returns G_SOURCE_CONTINUE. The returned source is owned by the caller. */
GSource  *killable_timer_add          (gint64          ready_time,
                                       GSourceFunc     func,
                                       gpointer        data,
                                       GDestroyNotify  notify);

/* Destroys and releases *@source, if any. */
void      killable_timer_clear_source (GSource       **source);

G_END_DECLS
