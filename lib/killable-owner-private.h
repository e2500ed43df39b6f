/* killable-owner-private.h: emissions on the owner's main context
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "killable-task.h"

G_BEGIN_DECLS

/* What is waiting to be emitted on the owner's context. One task's
 * emissions are made in this order, so a handler always sees stop-requested
 * before the STOPPING notification and finished last.
 */
typedef enum
{
  KILLABLE_EMIT_STOP_REQUESTED = 1 << 0,
  KILLABLE_EMIT_STATE_RUNNING  = 1 << 1,
  KILLABLE_EMIT_STATE_STOPPING = 1 << 2,
  KILLABLE_EMIT_STATE_TERMINAL = 1 << 3,
  KILLABLE_EMIT_PROGRESS       = 1 << 4,
  KILLABLE_EMIT_STATUS         = 1 << 5,
  KILLABLE_EMIT_ERROR          = 1 << 6,
  KILLABLE_EMIT_CHILDREN       = 1 << 7,
  KILLABLE_EMIT_PARENT         = 1 << 8,
  KILLABLE_EMIT_FINISHED       = 1 << 9,
  KILLABLE_EMIT_ASYNC_RETURN   = 1 << 10,
} KillableEmission;

/* Emissions whose order relative to other tasks' does not matter: they
 * coalesce into a task's pending entry wherever it stands in the queue. */
#define KILLABLE_EMIT_UNORDERED \
  (KILLABLE_EMIT_PROGRESS | KILLABLE_EMIT_STATUS | KILLABLE_EMIT_CHILDREN | KILLABLE_EMIT_PARENT)

typedef struct _KillableOwnerEntry KillableOwnerEntry;

typedef struct
{
  GMainContext       *context;   /* (owned) protected by the owner lock */
  KillableOwnerEntry *pending;   /* (nullable) this task's newest queued entry, owner lock */
} KillableOwner;

void          killable_owner_init          (KillableOwner *owner);
void          killable_owner_clear         (KillableOwner *owner);
void          killable_owner_set_context   (KillableTask  *task,
                                            GMainContext  *context);
void          killable_owner_queue         (KillableTask  *task,
                                            guint          emissions);

/* Provided by killable-task.c: which of @emissions someone listens to
 * (any thread), and the emission itself (on the owner's context). */
guint         killable_task_filter_emissions (KillableTask *task,
                                              guint         emissions);
void          killable_task_emit             (KillableTask *task,
                                              guint         emissions);

G_END_DECLS
