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
 * @KILLABLE_PROCESS_FLAGS_STDIN_PIPE: give the program a pipe as stdin;
 *   write to it with [method@Killable.ProcessTask.get_stdin_pipe] or
 *   [method@Killable.ProcessTask.communicate_async]. Since: 1.2
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
  KILLABLE_PROCESS_FLAGS_STDIN_PIPE     = 1 << 6,
} KillableProcessFlags;

/**
 * KillableContainment:
 * @KILLABLE_CONTAINMENT_AUTO: the strongest mode available: %KILLABLE_CONTAINMENT_CGROUP
 *   where a writable cgroup v2 directory is found, else
 *   %KILLABLE_CONTAINMENT_REAPER, else (the helper program is not
 *   installed) %KILLABLE_CONTAINMENT_GROUP.
 * @KILLABLE_CONTAINMENT_GROUP: the program runs in a process group of its
 *   own; processes that leave the group (`setsid()`, `setpgid()`) escape the
 *   stop and the kill, and outlive the owner process.
 * @KILLABLE_CONTAINMENT_REAPER: the program runs under a small helper
 *   program (`killable-reaper`, installed in libexecdir) that is a child
 *   subreaper: every process the program starts stays below it however it
 *   daemonizes; stop, interrupt, kill and pause reach all of them, and they
 *   are all killed when the owner process dies, even by `SIGKILL`. Works
 *   unprivileged.
 * @KILLABLE_CONTAINMENT_CGROUP: as %KILLABLE_CONTAINMENT_REAPER, and the
 *   program starts in a cgroup v2 of its own (created under the directory
 *   of [property@Killable.ProcessTask:cgroup-parent], or
 *   `$KILLABLE_CGROUP_ROOT`, or the caller's own cgroup): the kill is
 *   `cgroup.kill`, the pause `cgroup.freeze`, and the cgroup's memory and
 *   pids controllers give the limits. Needs a writable cgroup v2 subtree
 *   (root, or a delegated one) and Linux 5.14.
 *
 * How much of what a [class@Killable.ProcessTask] starts its stop, kill and
 * end reach. See [property@Killable.ProcessTask:containment].
 *
 * Since: 1.2
 */
typedef enum
{
  KILLABLE_CONTAINMENT_AUTO,
  KILLABLE_CONTAINMENT_GROUP,
  KILLABLE_CONTAINMENT_REAPER,
  KILLABLE_CONTAINMENT_CGROUP,
} KillableContainment;

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

KILLABLE_AVAILABLE_IN_1_2
KillableContainment  killable_process_task_get_containment  (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_2
void                 killable_process_task_set_containment  (KillableProcessTask  *self,
                                                             KillableContainment   containment);
KILLABLE_AVAILABLE_IN_1_2
const char          *killable_process_task_get_cgroup_parent (KillableProcessTask *self);
KILLABLE_AVAILABLE_IN_1_2
void                 killable_process_task_set_cgroup_parent (KillableProcessTask *self,
                                                              const char          *path);
KILLABLE_AVAILABLE_IN_1_2
guint64              killable_process_task_get_memory_limit (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_2
void                 killable_process_task_set_memory_limit (KillableProcessTask  *self,
                                                             guint64               bytes);
KILLABLE_AVAILABLE_IN_1_2
guint                killable_process_task_get_max_processes (KillableProcessTask *self);
KILLABLE_AVAILABLE_IN_1_2
void                 killable_process_task_set_max_processes (KillableProcessTask *self,
                                                              guint                max_processes);
KILLABLE_AVAILABLE_IN_1_2
GOutputStream       *killable_process_task_get_stdin_pipe   (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_2
GInputStream        *killable_process_task_get_stdout_pipe  (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_2
GInputStream        *killable_process_task_get_stderr_pipe  (KillableProcessTask  *self);
KILLABLE_AVAILABLE_IN_1_2
void                 killable_process_task_communicate_async (KillableProcessTask *self,
                                                              GBytes              *stdin_buf,
                                                              GCancellable        *cancellable,
                                                              GAsyncReadyCallback  callback,
                                                              gpointer             user_data);
KILLABLE_AVAILABLE_IN_1_2
gboolean             killable_process_task_communicate_finish (KillableProcessTask *self,
                                                               GAsyncResult        *result,
                                                               GBytes             **stdout_buf,
                                                               GBytes             **stderr_buf,
                                                               GError             **error);

G_END_DECLS
