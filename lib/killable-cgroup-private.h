/* killable-cgroup-private.h: leaf cgroups for process tasks (cgroup v2)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The directory under which process tasks get their leaf cgroups: @app_dir
 * if given, else $KILLABLE_CGROUP_ROOT, else the caller's own cgroup in the
 * cgroup v2 hierarchy (found in /proc/self/mountinfo and /proc/self/cgroup).
 * NULL, with @error saying why, if it is not a writable cgroup v2 directory
 * that can hold children with cgroup.kill (Linux ≥ 5.14). The answer for
 * the default directory is cached. */
char     *killable_cgroup_find_base     (const char  *app_dir,
                                         GError     **error);

/* Creates an empty leaf cgroup under @base, with the limits (0: none).
 * A limit its controller is missing for is an error naming it. */
char     *killable_cgroup_create_leaf   (const char  *base,
                                         guint64      memory_limit,
                                         guint        max_processes,
                                         GError     **error);

/* Whether @leaf's memory controller recorded an OOM kill. */
gboolean  killable_cgroup_oom_killed    (const char  *leaf);

/* Kills what is left in @leaf, waits (at most about 2 s) until it is
 * empty and removes it. FALSE if it could not be removed. */
gboolean  killable_cgroup_destroy_leaf  (const char  *leaf);

/* Whether the controller's file (e.g. "memory.max") would exist in a leaf
 * under @base. */
gboolean  killable_cgroup_base_has_controller (const char *base,
                                               const char *controller);

G_END_DECLS
