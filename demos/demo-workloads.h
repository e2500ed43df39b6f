/* demo-workloads.h: the real work the demos stop, interrupt and kill
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Shared by the terminal demo (killable-demo) and the GTK 4 demo: each
 * workload is one rung of the ladder, with the state it must end in.
 * Everything here is called on the main thread (the owner context), except
 * what the tasks themselves run on their worker threads.
 */

#pragma once

#include <killable.h>

G_BEGIN_DECLS

typedef enum
{
  DEMO_WORKLOAD_CPU_TREE,
  DEMO_WORKLOAD_BLOCKED_READ,
  DEMO_WORKLOAD_STUCK_LOOP,
  DEMO_WORKLOAD_PROCESS_TREE,
  DEMO_WORKLOAD_TIMEOUT,
  DEMO_N_WORKLOADS
} DemoWorkload;

typedef enum
{
  DEMO_RUNG_STOP,
  DEMO_RUNG_INTERRUPT,
  DEMO_RUNG_KILL,
  DEMO_RUNG_GRACE_PERIOD,
  DEMO_RUNG_TIMEOUT,
} DemoRung;

/* Called on the main context with a line about something a worker did
 * (a cleanup ran, a system call returned EINTR). */
typedef void (*DemoLogFunc) (const char *message,
                             gpointer    user_data);

void               demo_workloads_set_log_func       (DemoLogFunc   func,
                                                      gpointer      user_data);

const char        *demo_workload_get_title           (DemoWorkload  workload);
DemoRung           demo_workload_get_rung            (DemoWorkload  workload);
const char        *demo_rung_get_title               (DemoRung      rung);
const char        *demo_state_to_string              (KillableTaskState state);

/* Creates the workload's task (with its children, for the CPU tree),
 * not started yet. */
KillableTask      *demo_workload_new                 (DemoWorkload  workload,
                                                      GError      **error);
/* Starts @task and, for a tree, its children. */
gboolean           demo_workload_start               (KillableTask *task,
                                                      GError      **error);
/* The state @task (or one of its descendants) must end in, and the error
 * code it must end with (-1: any). */
KillableTaskState  demo_task_get_expected_state      (KillableTask *task);
int                demo_task_get_expected_error      (KillableTask *task);
/* Whether the workload is ready for its rung: the CPU tree has made some
 * progress, the reader is blocked in read(), the process tree has started
 * its grandchildren... */
gboolean           demo_task_is_ready                (KillableTask *task);

/* Workload-specific checks, called on the main thread. */
gboolean           demo_blocked_read_saw_eintr       (KillableTask *task);
gboolean           demo_stuck_loop_cleanup_ran       (KillableTask *task);
void               demo_stuck_loops_release          (void);
guint              demo_process_tree_get_pids        (KillableTask *task,
                                                      GPid         *pids,
                                                      guint         n_pids);
gboolean           demo_pid_is_alive                 (GPid          pid);

/* Waiting on the main loop (main thread). */
typedef gboolean (*DemoPredicate) (gpointer data);

gboolean           demo_main_loop_wait               (DemoPredicate predicate,
                                                      gpointer      data,
                                                      guint         timeout_ms,
                                                      GMainLoop   **running);

G_END_DECLS
