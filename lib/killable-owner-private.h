/* killable-owner-private.h: emissions on the owner's main context
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <glib-object.h>

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
  /* Notifications of properties an owner-side setter changed. */
  KILLABLE_EMIT_TIMEOUT            = 1 << 11,
  KILLABLE_EMIT_GRACE_PERIOD       = 1 << 12,
  KILLABLE_EMIT_INTERRUPT_SYSCALLS = 1 << 13,
  KILLABLE_EMIT_CHILD_POLICY       = 1 << 14,
  KILLABLE_EMIT_RETAIN_CHILDREN    = 1 << 15,
  KILLABLE_EMIT_LIMITER            = 1 << 16,
  KILLABLE_EMIT_PAUSED             = 1 << 17,  /* pause(), resume(), or a stop lifted the pause */
} KillableEmission;

#define KILLABLE_EMIT_SETTERS \
  (KILLABLE_EMIT_TIMEOUT | KILLABLE_EMIT_GRACE_PERIOD | KILLABLE_EMIT_INTERRUPT_SYSCALLS | \
   KILLABLE_EMIT_CHILD_POLICY | KILLABLE_EMIT_RETAIN_CHILDREN | KILLABLE_EMIT_LIMITER | \
   KILLABLE_EMIT_PAUSED)

/* Emissions whose order relative to other tasks' does not matter: they
 * coalesce into a task's pending entry wherever it stands in the queue. */
#define KILLABLE_EMIT_UNORDERED \
  (KILLABLE_EMIT_PROGRESS | KILLABLE_EMIT_STATUS | KILLABLE_EMIT_CHILDREN | KILLABLE_EMIT_PARENT | \
   KILLABLE_EMIT_SETTERS)

typedef struct _KillableOwnerEntry KillableOwnerEntry;
typedef struct _KillableOwnerPlace KillableOwnerPlace;

/* Given by the object that owns a KillableOwner: which of @emissions
 * someone listens to (called on any thread), and the emission itself
 * (called on the owner's thread). */
typedef struct
{
  guint (*filter) (GObject *object,
                   guint    emissions);
  void  (*emit)   (GObject *object,
                   guint    emissions);
} KillableOwnerFuncs;

/* Embedded in the object the emissions are about, at the same offset in
 * every instance (see killable_owner_setup()): 8 bytes. Its newest queued
 * entry, if any, is in a table of the module. */
typedef struct
{
  /* (owned) the owner's context and thread (shared), owner lock; while
   * an entry of the owner is pending, that entry, tagged (killable-owner.c) */
  KillableOwnerPlace       *place;
} KillableOwner;

void          killable_owner_setup         (const KillableOwnerFuncs *funcs,
                                            gssize                    offset);
void          killable_owner_init          (KillableOwner            *owner);
void          killable_owner_clear         (KillableOwner            *owner);
void          killable_owner_set_context   (KillableOwner            *owner,
                                            GMainContext             *context);
void          killable_owner_queue         (KillableOwner            *owner,
                                            guint                     emissions);
void          killable_owner_emit          (KillableOwner            *owner,
                                            guint                     emissions);
void          killable_owner_expect        (KillableOwner            *owner,
                                            gint                      delta);
void          killable_owner_release       (KillableOwner            *owner,
                                            GDestroyNotify            notify,
                                            gpointer                  data);

void          killable_owner_fork_lock     (gboolean                  lock);

G_END_DECLS
