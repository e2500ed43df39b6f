/* killable-fork-private.h: fork() in a process that uses libkillable
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Registers the fork handlers, once; @tree_lock is
 * killable_tree_fork_lock(). */
void killable_fork_init (void (*tree_lock) (gboolean lock));

G_END_DECLS
