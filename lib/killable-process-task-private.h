/* killable-process-task-private.h: the process task's pause hook
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "killable-process-task.h"

G_BEGIN_DECLS

/* Called by killable_task_pause()/resume() (killable-task-pause.c); to
 * become KillableTaskClass vfuncs. */
void      killable_process_task_set_paused_internal (KillableProcessTask *self,
                                                     gboolean             paused);
gboolean  killable_process_task_get_paused_internal (KillableProcessTask *self);

G_END_DECLS
