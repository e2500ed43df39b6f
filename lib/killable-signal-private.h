/* killable-signal-private.h: the interrupt signal
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <pthread.h>

#include <glib.h>

G_BEGIN_DECLS

#include <signal.h>

/* Installs the handler of the interrupt signal if needed (on a free
 * signal: never over the application's handler). Returns the signal, or 0
 * if none could be installed (a warning was logged once). */
int       killable_signal_ensure_handler (void);

/* Sends @signum to @thread if it still is ours; FALSE otherwise. */
gboolean  killable_signal_send           (pthread_t       thread,
                                          int             signum);

/* The signal chosen now (cheap: an atomic read once chosen). */
int       killable_signal_get_current    (void);

/* Worker side, around a task's work: unblocks @signum in the calling
 * thread. Returns TRUE if it was blocked, and then @old must be given back
 * to killable_signal_restore() afterwards. */
gboolean  killable_signal_unblock        (int             signum,
                                          sigset_t       *old);
void      killable_signal_restore        (const sigset_t *old);

/* For killable-fork.c. */
void      killable_signal_fork_lock      (gboolean        lock);

G_END_DECLS
