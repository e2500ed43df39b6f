/* killable-process-task.h: work isolated in a process group
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined(KILLABLE_INSIDE) && !defined(KILLABLE_COMPILATION)
# error "Only <killable.h> can be included directly."
#endif

#include "killable-task.h"

G_BEGIN_DECLS

/**
 * KillableProcessFlags:
 * @KILLABLE_PROCESS_FLAGS_NONE: stdin is `/dev/null`; stdout and stderr
 *   are inherited from the calling process.
 * @KILLABLE_PROCESS_FLAGS_STDOUT_PIPE: capture stdout; read it with
 *   [method@Killable.ProcessTask.get_stdout_bytes] after the end.
 * @KILLABLE_PROCESS_FLAGS_STDOUT_SILENCE: send stdout to `/dev/null`.
 * @KILLABLE_PROCESS_FLAGS_STDERR_PIPE: capture stderr; read it with
 *   [method@Killable.ProcessTask.get_stderr_bytes] after the end.
 * @KILLABLE_PROCESS_FLAGS_STDERR_SILENCE: send stderr to `/dev/null`.
 * @KILLABLE_PROCESS_FLAGS_STDERR_MERGE: send stderr where stdout goes.
 * @KILLABLE_PROCESS_FLAGS_STDIN_INHERIT: inherit stdin instead of
 *   `/dev/null`.
 *
 * How a [class@Killable.ProcessTask] connects its child's standard streams.
 *
 * Since: 1.0
 */
typedef enum /*< flags >*/
{
  KILLABLE_PROCESS_FLAGS_NONE           = 0,
  KILLABLE_PROCESS_FLAGS_STDOUT_PIPE    = 1 << 0,
  KILLABLE_PROCESS_FLAGS_STDOUT_SILENCE = 1 << 1,
  KILLABLE_PROCESS_FLAGS_STDERR_PIPE    = 1 << 2,
  KILLABLE_PROCESS_FLAGS_STDERR_SILENCE = 1 << 3,
  KILLABLE_PROCESS_FLAGS_STDERR_MERGE   = 1 << 4,
  KILLABLE_PROCESS_FLAGS_STDIN_INHERIT  = 1 << 5,
} KillableProcessFlags;

#define KILLABLE_TYPE_PROCESS_TASK (killable_process_task_get_type ())

KILLABLE_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (KillableProcessTask, killable_process_task, KILLABLE, PROCESS_TASK, KillableTask)

KILLABLE_AVAILABLE_IN_1_0
KillableProcessTask *killable_process_task_new              (const char * const   *argv,
                                                             GError              **error);
KILLABLE_AVAILABLE_IN_1_0
const char * const  *killable_process_task_get_argv         (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
void                 killable_process_task_set_cwd          (KillableProcessTask  *self,
                                                             const char           *cwd);
KILLABLE_AVAILABLE_IN_1_0
const char          *killable_process_task_get_cwd          (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
void                 killable_process_task_set_environ      (KillableProcessTask  *self,
                                                             const char * const   *env);
KILLABLE_AVAILABLE_IN_1_0
void                 killable_process_task_setenv           (KillableProcessTask  *self,
                                                             const char           *variable,
                                                             const char           *value,
                                                             gboolean              overwrite);
KILLABLE_AVAILABLE_IN_1_0
void                 killable_process_task_unsetenv         (KillableProcessTask  *self,
                                                             const char           *variable);
KILLABLE_AVAILABLE_IN_1_0
KillableProcessFlags killable_process_task_get_flags        (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
void                 killable_process_task_set_flags        (KillableProcessTask  *self,
                                                             KillableProcessFlags  flags);
KILLABLE_AVAILABLE_IN_1_0
GPid                 killable_process_task_get_pid          (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
gboolean             killable_process_task_get_if_exited    (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
int                  killable_process_task_get_exit_status  (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
gboolean             killable_process_task_get_if_signaled  (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
int                  killable_process_task_get_term_sig     (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
GBytes              *killable_process_task_get_stdout_bytes (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_0
GBytes              *killable_process_task_get_stderr_bytes (KillableProcessTask  *self);

G_END_DECLS
