/* killable-signal-private.h: the interrupt signal
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <pthread.h>

#include <glib.h>

G_BEGIN_DECLS

/* Installs the handler of the interrupt signal if needed. Returns the
 * signal, or 0 if no handler could be installed (a warning was logged). */
int   killable_signal_ensure_handler (void);
void  killable_signal_send           (pthread_t  thread,
                                      int        signum);

G_END_DECLS
