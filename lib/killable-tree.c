/* killable-tree.c: children, stop propagation, structured completion
 *
 * Owns: a KillableTreeNode per task (its tree, parent and siblings: four
 * pointers), a KillableTreeParent block per task that ever had a child or
 * a children model (children, live-children count, completion reason,
 * failed child, the owner-side children model; allocated under the tree
 * lock, freed at finalize), the task's tree byte (completion flags, child
 * policy, retain-children, kill/interrupt marks), the trees (KillableTree:
 * one lock per tree, from a type-stable pool; static stripes for lone
 * tasks) and the public tree API.
 * Locks: the lock of a task's tree guards its node, block and tree byte
 * (the byte's stores are atomic for the readers of the marks;
 * children_model is the owner thread's, published under the lock);
 * see "Trees and their locks" below. No user code runs under it; task and
 * stop-state locks may be taken under it.
 * Called by: killable-task.c, and the public API. Calls: killable-task.c
 * (the stop request, ending a pending task, emissions: task and tree call
 * each other), killable-stop-state.c, killable-timer.c, killable-error.c.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#ifndef _GNU_SOURCE
# define _GNU_SOURCE   /* mremap() */
#endif

#include <sys/mman.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "killable-error-private.h"
#include "killable-text-private.h"
#include "killable-task-private.h"
#include "killable-timer-private.h"

/* The invariant that makes stop propagation race-free: under a tree's
 * lock, a task whose stop flag is set has only children whose flags are set
 * too. A stop sets the flags of the whole subtree under the lock (running no
 * user code), then fires each task's callbacks outside it; add_child()
 * checks the parent's flag under the same lock. Every traversal is
 * iterative: a chain 100 000 deep cannot overflow the C stack.
 *
 * Trees and their locks. Each tree has its own lock, in a KillableTree that
 * every task of the tree points to (node_tree()): a stop of a big tree
 * holds only that tree's lock, and the other trees of the process go on.
 * A lone task (no parent, no child) points to none: its lock is one of
 * N_STRIPES static ones, chosen by its address and shared with other lone
 * tasks (what is done under it for a lone task is O(1)). The lock of a
 * task, its "designated" lock, is its tree's or else its stripe's.
 * A task's tree changes only under the designated lock (and under the new
 * one): a thread takes the lock it read, checks that it is still the
 * designated one, and else tries again (tree_lock()).
 *
 * KillableTree structs are type-stable: they come from a pool and go back
 * to it once no task points to one (tree_unlock() of the thread that made
 * the count drop to 0), never to malloc, so a thread that read a stale
 * pointer locks a valid mutex and sees that it is not designated. The
 * thread that takes one from the pool locks it with a trylock (a stale
 * locker may hold it: then it takes another), never waiting out of order.
 * The pool never shrinks: it keeps as many trees (56 bytes each) as were
 * ever in use at once.
 *
 * Lock order: fork_gate (read), then the tree locks by index (the stripes,
 * then the pool's structs in creation order); at most two at once, plus a
 * fresh one (add_child() joining two trees). Under a tree lock: task and
 * stop-state locks, GLib's signal lock, pool_lock, handoff_lock; never user
 * code. fork() takes fork_gate for writing (killable_tree_fork_lock()): no
 * tree is being changed while it runs, and the child starts with every
 * tree lock free.
 *
 * Connected tasks share their tree. add_child() of a lone task takes the
 * other side's tree (O(1)); of a child with a subtree of its own to a
 * parent in another tree, it moves the child's subtree to the parent's
 * tree (O(that subtree), both locks held). A task that leaves its parent
 * becomes lone if it has no child; a subtree that leaves keeps the tree of
 * its old parent (a shared lock: correct, only coarser), a parent whose
 * last child left keeps its tree until it is disposed. */

/* Bindings and the tree locks: a reference that toggles (1 ↔ 2, with a
 * binding's toggle reference) runs the binding's toggle notification, which
 * takes its lock (Python's GIL), and a thread holding that lock may be in a
 * task's dispose. So roots are referenced before a tree lock is taken
 * (descendants are held by their parents), and dispose never waits for a
 * tree lock for long: see killable_tree_dispose(). */

struct _KillableTree
{
  GMutex        lock;
  GCond         cond;           /* a live-children count of this tree dropped to 0, or
                                 * tasks of this tree moved to another one */
  guint         index;          /* lock order, immutable */
  guint         n_nodes;        /* (lock) tasks whose tree is this one */
  guint         n_cond_waiters; /* (lock) threads in g_cond_wait (&cond) */
  gboolean      in_use;         /* (lock) taken from the pool, not given back */
  int           waiters;        /* (atomic) threads blocked in tree_mutex_lock() */
  int           handoffs;       /* (atomic) how many of them got the lock */
  KillableTree *next_free;      /* (pool_lock) */
};

#define N_STRIPES 64
static KillableTree stripes[N_STRIPES];   /* index: position */

/* The pool: chunks that are never freed, linked in creation order. */
#define POOL_CHUNK 64

typedef struct _TreeChunk TreeChunk;
struct _TreeChunk
{
  TreeChunk    *next;           /* (atomic) */
  KillableTree  trees[POOL_CHUNK];
};

static GMutex pool_lock;
static TreeChunk *pool_head;    /* (atomic) */
static TreeChunk *pool_tail;    /* (pool_lock) */
static guint pool_size;         /* (pool_lock) */
static KillableTree *pool_free; /* (pool_lock) */

static GPrivate release_queue;

#define NODE(t) killable_task_get_tree_node (t)
#define STOP(t) killable_task_get_stop_state (t)

/* Relaxed accesses to the fields that are read before their lock is known
 * (plain loads and stores on the usual machines; TSan sees atomics). */
#define LOAD(p)      __atomic_load_n ((p), __ATOMIC_ACQUIRE)
#define STORE(p, v)  __atomic_store_n ((p), (v), __ATOMIC_RELEASE)

/* What only a parent needs (its block, block_of()): a pending leaf task does not
 * carry it. Allocated zeroed under the tree lock (parent_block()), then
 * published with a release store: a reader without the lock (LOAD) sees
 * NULL or a complete block. Never freed before finalize: a pointer read
 * once stays valid while the task lives. Its fields follow the node's
 * rules (the tree lock), with the same exceptions: @n_children is also
 * read atomically (a hint, and dispose's fast path), @children_model is
 * the owner thread's, published atomically. */
struct _KillableTreeParent
{
  KillableTree *tree;               /* (atomic) (nullable) the task's tree, NULL: lone */
  KillableTask *first_child;        /* (owned) each child holds a ref */
  KillableTask *last_child;         /* (unowned) */
  guint         n_children;         /* (atomic) */
  guint         n_live_children;    /* children counted_in_parent */
  GError       *completion_reason;  /* (owned) (nullable) the failed work's error, for new children */
  KillableTask *failed_child;       /* (owned) (nullable) */
  GListStore   *children_model;     /* (owned) (nullable) (atomic) owner-side mirror */
};

/* The node is part of every pending task: keep it small (issue 13). */
G_STATIC_ASSERT (sizeof (KillableTreeNode) == 4 * sizeof (gpointer));

/* The task's tree byte (killable_task_get_tree_bits()): the two
 * KillableTreeMark bits and these. */
typedef enum
{
  TB_COUNTED          = 1 << 2,  /* counted in the parent's n_live_children */
  TB_WORK_RETURNED    = 1 << 3,  /* the work returned: new pending children are stopped */
  TB_CHILDREN_CLOSED  = 1 << 4,  /* the work returned and children ended: no new child */
  TB_COMPLETE_PENDING = 1 << 5,  /* stopped while pending: complete when the children end */
  TB_RETAIN_CHILDREN  = 1 << 6,  /* the retain-children property */
  TB_ISOLATE          = 1 << 7,  /* the child policy is KILLABLE_CHILD_POLICY_ISOLATE */
} TreeBit;

G_STATIC_ASSERT ((KILLABLE_TREE_MARK_INTERRUPT | KILLABLE_TREE_MARK_KILL) < TB_COUNTED);

#define BITS(t) killable_task_get_tree_bits (t)

/* Under @t's tree lock (every writer holds it): no read-modify-write
 * instruction is needed, only an atomic store for the readers of a mark
 * without the lock. */
static inline gboolean
bit_get (KillableTask *t,
         guint8        bit)
{
  return (__atomic_load_n (BITS (t), __ATOMIC_RELAXED) & bit) != 0;
}

/* Returns the bits before. */
static inline guint8
bits_update_at (guint8 *b,
                guint8  clear,
                guint8  set)
{
  guint8 old = __atomic_load_n (b, __ATOMIC_RELAXED);

  __atomic_store_n (b, (guint8) ((old & ~clear) | set), __ATOMIC_RELEASE);

  return old;
}

static inline void
bits_update (KillableTask *t,
             guint8        clear,
             guint8        set)
{
  bits_update_at (BITS (t), clear, set);
}

static inline void
bit_put (KillableTask *t,
         guint8        bit,
         gboolean      on)
{
  bits_update (t, bit, on ? bit : 0);
}

static inline gboolean
has_mark (KillableTask     *t,
          KillableTreeMark  mark)
{
  return killable_tree_bits_have_mark (BITS (t), mark);
}

/* node->tree_or_block: a KillableTree * (or NULL), or a block with this
 * bit set (malloc() aligns it). */
#define BLOCK_TAG ((guintptr) 1)

/* Under the tree lock. */
static inline KillableTreeParent *
block_of (KillableTreeNode *node)
{
  guintptr v = node->tree_or_block;

  return (v & BLOCK_TAG) != 0 ? (KillableTreeParent *) (v - BLOCK_TAG) : NULL;
}

/* The block of a task known to have one (it has or had a child): the
 * untagging folds into the loads. */
static inline KillableTreeParent *
block_known (KillableTreeNode *node)
{
  return (KillableTreeParent *) (node->tree_or_block - BLOCK_TAG);
}

static inline KillableTree *
node_tree (KillableTreeNode *node)
{
  guintptr v = node->tree_or_block;

  return (v & BLOCK_TAG) != 0 ? ((KillableTreeParent *) (v - BLOCK_TAG))->tree
                              : (KillableTree *) v;
}

/* Without the lock: the block, once there, stays until finalize. */
static inline KillableTreeParent *
load_block (KillableTreeNode *node)
{
  guintptr v = LOAD (&node->tree_or_block);

  return (v & BLOCK_TAG) != 0 ? (KillableTreeParent *) (v - BLOCK_TAG) : NULL;
}

static inline KillableTree *
load_tree (KillableTreeNode *node)
{
  guintptr v = LOAD (&node->tree_or_block);

  return (v & BLOCK_TAG) != 0 ? LOAD (&((KillableTreeParent *) (v - BLOCK_TAG))->tree)
                              : (KillableTree *) v;
}

/* @node's parent block, allocated if it has none yet: under the tree
 * lock. It takes over the tree pointer; a reader without the lock reads
 * the same tree through either. */
static G_GNUC_NO_INLINE KillableTreeParent *
parent_block_new (KillableTreeNode *node)
{
  KillableTreeParent *block = g_new0 (KillableTreeParent, 1);

  G_STATIC_ASSERT (G_ALIGNOF (KillableTreeParent) > 1);
  block->tree = (KillableTree *) node->tree_or_block;
  STORE (&node->tree_or_block, (guintptr) block | BLOCK_TAG);

  return block;
}

static inline KillableTreeParent *
parent_block (KillableTreeNode *node)
{
  KillableTreeParent *block = block_of (node);

  if (G_LIKELY (block != NULL))
    return block;
  return parent_block_new (node);
}

/* Under the tree lock: a task without a block has no child and the
 * defaults. */
static inline KillableTask *
first_child (KillableTreeNode *node)
{
  KillableTreeParent *block = block_of (node);

  return block != NULL ? block->first_child : NULL;
}

static inline guint
n_live_children (KillableTreeNode *node)
{
  KillableTreeParent *block = block_of (node);

  return block != NULL ? block->n_live_children : 0;
}

static inline KillableTask *
failed_child (KillableTreeNode *node)
{
  KillableTreeParent *block = block_of (node);

  return block != NULL ? block->failed_child : NULL;
}

/* Without the lock. */
static inline guint
load_n_children (KillableTreeNode *node)
{
  KillableTreeParent *block = load_block (node);

  return block != NULL ? LOAD (&block->n_children) : 0;
}

static inline GListStore *
load_children_model (KillableTreeNode *node)
{
  KillableTreeParent *block = load_block (node);

  return block != NULL ? g_atomic_pointer_get (&block->children_model) : NULL;
}

static inline guint
tree_index (KillableTree *t)
{
  return t >= stripes && t < stripes + N_STRIPES ? (guint) (t - stripes) : t->index;
}

static inline KillableTree *
designated (KillableTask *task)
{
  KillableTree *t = load_tree (NODE (task));
  guintptr h;

  if (t != NULL)
    return t;
  h = ((guintptr) task >> 4) * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);
  return &stripes[(h >> 32) % N_STRIPES];
}

/* Fairness: a stop of a large tree holds its lock in batches. A thread
 * that had to wait for a tree lock is counted in it; a long pass lets such
 * a waiter have the lock between batches (tree_lock_yield()) and waits
 * until it took it, for a bounded while: a waiter is not starved by a pass
 * that releases and takes the lock again (GMutex is not fair: the
 * releasing thread usually wins the race against the woken one). */

/* How many tasks a stop visits per hold of its tree lock when a thread
 * waits for it. */
#define TREE_LOCK_BATCH 256

/* A long pass that lets a waiter in sleeps on handoff_cond until the
 * waiter took the lock (it signals it then), for at most
 * TREE_LOCK_HANDOFF_USEC: sleeping, not spinning, leaves the CPU to the
 * waiter on a loaded machine. */
static GMutex handoff_lock;
static GCond handoff_cond;
static int handoff_wanted;      /* (atomic) passes waiting on handoff_cond */

#define TREE_LOCK_HANDOFF_USEC 2000

/* Read-held around every critical section on a tree (tree_lock() to
 * tree_unlock()), write-held across fork(). Holding every tree lock across
 * fork() instead would hold an unbounded number of locks. */
static GRWLock fork_gate;

KILLABLE_STOP_PATH static void
tree_mutex_lock (KillableTree *t)
{
  if (G_LIKELY (g_mutex_trylock (&t->lock)))
    return;

  g_atomic_int_inc (&t->waiters);
  g_mutex_lock (&t->lock);
  g_atomic_int_add (&t->waiters, -1);
  g_atomic_int_inc (&t->handoffs);
  if (g_atomic_int_get (&handoff_wanted) > 0)
    {
      g_mutex_lock (&handoff_lock);
      g_cond_broadcast (&handoff_cond);
      g_mutex_unlock (&handoff_lock);
    }
}

static void
pool_give_back (KillableTree *t)
{
  g_mutex_lock (&pool_lock);
  t->next_free = pool_free;
  pool_free = t;
  g_mutex_unlock (&pool_lock);
}

/* A tree from the pool, locked, in use, with no node yet. */
static KillableTree *
pool_take_locked (void)
{
  KillableTree *busy = NULL;
  KillableTree *t;

  for (;;)
    {
      g_mutex_lock (&pool_lock);
      if (pool_free == NULL)
        {
          TreeChunk *chunk = g_new0 (TreeChunk, 1);

          for (guint i = POOL_CHUNK; i-- > 0;)
            {
              g_mutex_init (&chunk->trees[i].lock);
              g_cond_init (&chunk->trees[i].cond);
              chunk->trees[i].index = N_STRIPES + pool_size + i;
              chunk->trees[i].next_free = pool_free;
              pool_free = &chunk->trees[i];
            }
          pool_size += POOL_CHUNK;
          if (pool_tail != NULL)
            STORE (&pool_tail->next, chunk);
          else
            STORE (&pool_head, chunk);
          pool_tail = chunk;
        }
      t = pool_free;
      pool_free = t->next_free;
      g_mutex_unlock (&pool_lock);

      /* A stale locker may hold it (see the top of this file). */
      if (g_mutex_trylock (&t->lock))
        break;
      t->next_free = busy;
      busy = t;
    }

  while (busy != NULL)
    {
      KillableTree *next = busy->next_free;

      pool_give_back (busy);
      busy = next;
    }

  t->in_use = TRUE;
  t->n_nodes = 0;

  return t;
}

/* Takes the designated lock of @task (and fork_gate for reading). */
KILLABLE_STOP_PATH static KillableTree *
tree_lock (KillableTask *task)
{
  g_rw_lock_reader_lock (&fork_gate);
  for (;;)
    {
      KillableTree *t = designated (task);

      tree_mutex_lock (t);
      if (G_LIKELY (designated (task) == t))
        return t;
      g_mutex_unlock (&t->lock);
    }
}

/* Releases a tree lock, keeping fork_gate; gives the tree back to the
 * pool when the thread holding it made its last task leave it. */
KILLABLE_STOP_PATH static void
tree_release (KillableTree *t)
{
  gboolean dead = t->in_use && t->n_nodes == 0;

  if (dead)
    t->in_use = FALSE;
  g_mutex_unlock (&t->lock);
  if (dead)
    pool_give_back (t);
}

/* Releases a tree lock and fork_gate. */
KILLABLE_STOP_PATH static void
tree_unlock (KillableTree *t)
{
  tree_release (t);
  g_rw_lock_reader_unlock (&fork_gate);
}

/* Takes the designated locks of @a and @b (the same one, or two in order),
 * and fork_gate for reading: release them with tree_release() but the last
 * one, with tree_unlock(). */
static void
tree_lock_pair (KillableTask  *a,
                KillableTask  *b,
                KillableTree **ta,
                KillableTree **tb)
{
  g_rw_lock_reader_lock (&fork_gate);
  for (;;)
    {
      KillableTree *x = designated (a);
      KillableTree *y = designated (b);

      if (x == y)
        tree_mutex_lock (x);
      else if (tree_index (x) < tree_index (y))
        {
          tree_mutex_lock (x);
          tree_mutex_lock (y);
        }
      else
        {
          tree_mutex_lock (y);
          tree_mutex_lock (x);
        }

      if (designated (a) == x && designated (b) == y)
        {
          *ta = x;
          *tb = y;
          return;
        }

      g_mutex_unlock (&x->lock);
      if (y != x)
        g_mutex_unlock (&y->lock);
    }
}

/* Points @node to @t (NULL: lone), under the designated lock of @node and
 * the lock of @t. */
static inline void
node_set_tree (KillableTreeNode *node,
               KillableTree     *t)
{
  KillableTreeParent *block = block_of (node);
  KillableTree *old = node_tree (node);

  if (old == t)
    return;
  if (old != NULL)
    old->n_nodes--;
  if (t != NULL)
    t->n_nodes++;
  if (block != NULL)
    STORE (&block->tree, t);
  else
    STORE (&node->tree_or_block, (guintptr) t);
}

/* Wakes the threads waiting in @t for a live-children count to drop to 0
 * (g_cond_broadcast() is a system call even without waiters). */
static inline void
tree_broadcast (KillableTree *t)
{
  if (t->n_cond_waiters > 0)
    g_cond_broadcast (&t->cond);
}

/* Appends @child to @parent's children (same tree, its lock held). */
static inline void
link_child (KillableTask *parent,
            KillableTask *child)
{
  KillableTreeParent *p = parent_block (NODE (parent));
  KillableTreeNode *c = NODE (child);

  c->prev_sibling = p->last_child;
  c->next_sibling = NULL;
  if (p->last_child != NULL)
    NODE (p->last_child)->next_sibling = child;
  else
    p->first_child = child;
  p->last_child = child;
  STORE (&p->n_children, p->n_children + 1);
  /* Sequentially consistent, as the read of the child's state that
   * follows in add_child(): a child that completes now reads its parent
   * without the lock (killable_tree_child_ended()) after it published its
   * terminal state, so one of the two sees the other. */
  __atomic_store_n (&c->parent, parent, __ATOMIC_SEQ_CST);
}

/* Removes @child from @parent's children, under their tree's lock: the
 * parent's reference on it is now the caller's. A child without children
 * of its own becomes lone: the caller must not touch it under this lock
 * any more. */
G_ALWAYS_INLINE static inline void
unlink_child_at (KillableTreeParent *p,
                 KillableTreeNode   *c,
                 KillableTreeParent *cblock)
{
  if (c->prev_sibling != NULL)
    NODE (c->prev_sibling)->next_sibling = c->next_sibling;
  else
    p->first_child = c->next_sibling;
  if (c->next_sibling != NULL)
    NODE (c->next_sibling)->prev_sibling = c->prev_sibling;
  else
    p->last_child = c->prev_sibling;
  c->prev_sibling = NULL;
  c->next_sibling = NULL;
  STORE (&p->n_children, p->n_children - 1);
  STORE (&c->parent, NULL);
  if (cblock == NULL)
    {
      /* node_set_tree (c, NULL) of a task without a block. */
      KillableTree *old = (KillableTree *) c->tree_or_block;

      if (old != NULL)
        old->n_nodes--;
      STORE (&c->tree_or_block, (guintptr) NULL);
    }
  else if (cblock->first_child == NULL)
    node_set_tree (c, NULL);
}

G_ALWAYS_INLINE static inline void
unlink_child (KillableTask *parent,
              KillableTask *child)
{
  KillableTreeNode *c = NODE (child);

  unlink_child_at (block_known (NODE (parent)), c, block_of (c));
}

typedef struct _TaskStack TaskStack;

/* A small stack of tasks on the C stack, spilling to the heap only past
 * its inline slots: the re-entrancy queues below cost no allocation per
 * step (a GQueue cost a list node per push). */
#define TASK_STACK_INLINE 16

struct _TaskStack
{
  guint         len;
  GPtrArray    *spill;   /* (owned) (nullable) past the inline slots */
  gpointer      items[TASK_STACK_INLINE];
};

static void
task_stack_push (TaskStack *stack,
                 gpointer   item)
{
  if (stack->len < TASK_STACK_INLINE)
    {
      stack->items[stack->len++] = item;
      return;
    }
  if (stack->spill == NULL)
    stack->spill = g_ptr_array_new ();
  g_ptr_array_add (stack->spill, item);
}

static gpointer
task_stack_pop (TaskStack *stack)
{
  if (stack->spill != NULL && stack->spill->len > 0)
    return g_ptr_array_steal_index_fast (stack->spill, stack->spill->len - 1);
  if (stack->len > 0)
    return stack->items[--stack->len];
  return NULL;
}

static void
task_stack_clear (TaskStack *stack)
{
  g_clear_pointer (&stack->spill, g_ptr_array_unref);
}

/* For tests (killable_tree_set_yield_hook()). */
static KillableTreeYieldHook yield_hook;   /* (atomic) */
static gpointer yield_hook_data;

void
killable_tree_set_yield_hook (KillableTreeYieldHook hook,
                              gpointer              data)
{
  yield_hook_data = data;
  g_atomic_pointer_set (&yield_hook, hook);
}

guint
killable_tree_count_cond_waiters (KillableTask *task)
{
  KillableTree *held = tree_lock (task);
  guint ret = held->n_cond_waiters;

  tree_unlock (held);

  return ret;
}

/* Whether a long pass should let another thread have *@held now. */
static inline gboolean
tree_lock_contended (KillableTree *t)
{
  return g_atomic_int_get (&t->waiters) > 0 ||
         G_UNLIKELY (g_atomic_pointer_get (&yield_hook) != NULL);
}

/* Between batches of a long pass, with *@held (the designated lock of
 * @root) held: lets a waiting thread have it. Returns TRUE if the lock was
 * released; *@held is then @root's designated lock again (the tree may have
 * changed meanwhile, and @root may have moved to another tree). */
static gboolean
tree_lock_yield (KillableTree **held,
                 KillableTask  *root)
{
  KillableTree *t = *held;
  KillableTreeYieldHook hook = g_atomic_pointer_get (&yield_hook);
  int seen;
  gint64 end;

  if (G_UNLIKELY (hook != NULL))
    {
      /* A test's: it runs where a waiter would. */
      tree_unlock (t);
      hook (yield_hook_data);
      *held = tree_lock (root);
      return TRUE;
    }

  if (G_LIKELY (g_atomic_int_get (&t->waiters) == 0))
    return FALSE;

  seen = g_atomic_int_get (&t->handoffs);
  end = g_get_monotonic_time () + TREE_LOCK_HANDOFF_USEC;
  /* Counted before the release: a waiter can only take the lock after it. */
  g_atomic_int_inc (&handoff_wanted);
  tree_unlock (t);

  /* @t stays valid memory (type-stable) even if it went back to the pool. */
  g_mutex_lock (&handoff_lock);
  while (g_atomic_int_get (&t->handoffs) == seen &&
         g_atomic_int_get (&t->waiters) > 0)
    if (!g_cond_wait_until (&handoff_cond, &handoff_lock, end))
      break;
  g_mutex_unlock (&handoff_lock);

  g_atomic_int_add (&handoff_wanted, -1);
  *held = tree_lock (root);

  return TRUE;
}

/* The tasks a stop reached, parents before children: a growable array on
 * the caller's frame, pushed without a call per task. Each item is a task
 * pointer with tags in its low bits: REF (the array holds a reference),
 * ENDED and LEFT (end_pending_locked()). */
#define REF_TAG   ((guintptr) 1)
#define ENDED_TAG ((guintptr) 2)
#define LEFT_TAG  ((guintptr) 4)
#define TAGS      (REF_TAG | ENDED_TAG | LEFT_TAG)
#define UNTAG(item) ((KillableTask *) ((guintptr) (item) & ~TAGS))

/* GLib places an instance at an offset aligned to 2 × sizeof (gsize) in a
 * block malloc aligned as much: three low bits are free on every ABI. */
G_STATIC_ASSERT (2 * sizeof (gsize) >= 8);

typedef struct
{
  gpointer *items;
  guint     len;
  guint     alloc;
  guint     n_refd;   /* the items before it hold a reference (REF_TAG) */
  gboolean  mapped;   /* @items is a mapping of its own, not malloc()'s */
} TaskVec;

/* Past this many items, a vector is a mapping of its own (mmap()), not a
 * malloc() block. glibc keeps the small blocks freed since its last
 * consolidation (here: the finalized tasks' blocks, two per task of a
 * chain) in its fast bins, and walks all of them (a cache miss each) at
 * the next free() of 64 KiB or more: the vector of a stop of a million
 * tasks, freed after the tasks, paid that walk (12 % of the stop). Not
 * below: a mapping costs tens of microseconds (its page faults, and
 * munmap()'s TLB flush on the other CPUs), 30 to 60 ns per task of a
 * stop of 1 000. */
#define TASK_VEC_MAP_ITEMS 8192

G_STATIC_ASSERT (TASK_VEC_MAP_ITEMS * sizeof (gpointer) <= 64 * 1024);

/* The size of the mapping of @alloc items: whole pages. */
static inline gsize
task_vec_map_size (guint alloc)
{
  gsize page = sysconf (_SC_PAGESIZE);

  return ((gsize) alloc * sizeof (gpointer) + page - 1) / page * page;
}

/* Room for @alloc items at least. */
static G_GNUC_NO_INLINE void
task_vec_reserve (TaskVec *v,
                  guint    alloc)
{
  gsize size;
  gpointer mem;

  if (alloc <= v->alloc)
    return;
  if (alloc <= TASK_VEC_MAP_ITEMS)
    {
      g_assert (!v->mapped);
      v->items = g_renew (gpointer, v->items, alloc);
      v->alloc = alloc;
      return;
    }

  size = task_vec_map_size (alloc);
  if (v->mapped)
    mem = mremap (v->items, task_vec_map_size (v->alloc), size, MREMAP_MAYMOVE);
  else
    mem = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    g_error ("%s: cannot map %" G_GSIZE_FORMAT " bytes: %s",
             G_STRLOC, size, g_strerror (errno));
  if (!v->mapped)
    {
      if (v->len > 0)
        memcpy (mem, v->items, v->len * sizeof (gpointer));
      g_free (v->items);
      v->mapped = TRUE;
    }
  v->items = mem;
  v->alloc = size / sizeof (gpointer);
}

static G_GNUC_NO_INLINE void
task_vec_grow (TaskVec *v)
{
  task_vec_reserve (v, MAX (64, v->alloc * 2));
}

/* Frees the items (not what they point to). */
static void
task_vec_clear (TaskVec *v)
{
  if (v->mapped)
    munmap (v->items, task_vec_map_size (v->alloc));
  else
    g_free (v->items);
  v->items = NULL;
  v->len = v->alloc = v->n_refd = 0;
  v->mapped = FALSE;
}

static inline void
task_vec_push (TaskVec  *v,
               gpointer  item)
{
  if (G_UNLIKELY (v->len == v->alloc))
    task_vec_grow (v);
  v->items[v->len++] = item;
}

/* Under the tree lock, before it is released: every item from n_refd on
 * that does not own its parent's reference (LEFT) takes one of its own.
 * (Held by their parents until now: these references cannot toggle a
 * binding's, see the top of this file.) */
static void
task_vec_ref_rest (TaskVec *v)
{
  for (guint i = v->n_refd; i < v->len; i++)
    {
      guintptr item = (guintptr) v->items[i];

      if ((item & (REF_TAG | LEFT_TAG)) == 0)
        {
          g_object_ref (UNTAG (item));
          v->items[i] = (gpointer) (item | REF_TAG);
        }
    }
  v->n_refd = v->len;
}

/* The batched end of a task that a stop with a held lock reached, once
 * every child of it was visited (children first): ends it at once if it is
 * a pending task that nothing observes and that has no live child left
 * (killable_task_end_pending_locked()). Its parent's count drops and it
 * leaves its parent, whose reference becomes the caller's (LEFT); its item
 * is tagged ENDED. Otherwise it takes the usual path
 * (killable_task_request_stop_internal(), outside the lock). @notify
 * collects (referenced) parents whose children model needs a sync, @steps
 * (referenced) parents to end now. */
typedef struct
{
  TaskVec       won;
  KillableTree *held;    /* the designated lock of the stop's root */
  GPtrArray    *drop;    /* references taken for a release of the lock */
  GPtrArray    *steps;
  GPtrArray    *notify;
  gboolean      wake;    /* a live-children count of @held dropped to 0:
                          * batch_release_wake() before @held is released */
} Batch;

/* Before the batch releases its lock (between batches and at its end):
 * wakes the threads waiting in @held for a live-children count to drop to
 * 0, once for every count that dropped since the lock was taken. Once per
 * task, g_cond_broadcast() was a system call per task of a chain whose
 * root's worker waits for its children (a third of a chain's stop). A
 * waiter checks its count under this lock, so it cannot miss a drop made
 * while the lock is held: waking it before the release is enough. */
static inline void
batch_release_wake (Batch *batch)
{
  if (batch->wake)
    {
      batch->wake = FALSE;
      tree_broadcast (batch->held);
    }
}

G_ALWAYS_INLINE static inline void
end_pending_locked (Batch        *batch,
                    KillableTask *task,
                    guint         index)
{
  KillableTreeNode *node = NODE (task);
  KillableTask *parent = node->parent;
  guintptr item = (guintptr) batch->won.items[index];
  /* Each pointer computed once: a byte store may alias the offsets. */
  guint8 *bits = BITS (task);
  guint8 *pbits = parent != NULL ? BITS (parent) : NULL;
  guint8 old;

  KillableTreeParent *block = block_of (node);

  if ((block != NULL && (block->n_live_children > 0 || block->failed_child != NULL)) ||
      (pbits != NULL && killable_tree_bits_have_mark (pbits, KILLABLE_TREE_MARK_KILL)) ||
      !killable_task_end_pending_locked (task))
    return;

  /* As killable_tree_close_pending() and child_ended() do (the count in
   * the parent is dropped below). */
  old = bits_update_at (bits, TB_COMPLETE_PENDING | TB_COUNTED, TB_CHILDREN_CLOSED);
  item |= ENDED_TAG;

  if (parent != NULL)
    {
      KillableTreeParent *pblock = block_known (NODE (parent));   /* it has a child */
      guint8 pold = __atomic_load_n (pbits, __ATOMIC_RELAXED);

      if ((old & TB_COUNTED) != 0 && --pblock->n_live_children == 0)
        {
          batch->wake = TRUE;
          if ((pold & TB_COMPLETE_PENDING) != 0)
            {
              bits_update_at (pbits, TB_COMPLETE_PENDING, 0);
              g_ptr_array_add (batch->steps, g_object_ref (parent));
            }
        }

      if (G_UNLIKELY (g_atomic_pointer_get (&pblock->children_model) != NULL) &&
          (batch->notify->len == 0 ||
           g_ptr_array_index (batch->notify, batch->notify->len - 1) != parent))
        g_ptr_array_add (batch->notify, g_object_ref (parent));

      if ((pold & TB_RETAIN_CHILDREN) == 0)
        {
          /* The parent's reference is ours now. Last: a task without
           * children is lone from here on. */
          item |= LEFT_TAG;
          unlink_child_at (pblock, node, block);
        }
    }

  batch->won.items[index] = (gpointer) item;
}

/* Memory, not instructions, makes a big stop slower per task than a small
 * one: a chain a million deep is far larger than the caches, and its walk
 * goes down it (setting flags), back up (ending tasks children first) and
 * over it once more outside the lock (finishing and releasing them), each
 * time a few cache misses per task. The way down cannot know a task before
 * its parent's lines are there (two misses per task: its node, then its
 * parent block for the first child). The way up and the last pass know the
 * tasks ahead (on the path, in @won): their lines, then the blocks these
 * point to, are asked for a few tasks early, so that the misses overlap.
 * A hint: no effect on what is done. Measured on a chain a million deep
 * (thread CPU time of the stop, ns per task, medians): 12 tasks ahead with
 * the blocks as below, about 300; the same with the whole instance (a
 * third line, the GObject header), 330 to 340: more prefetches than the
 * misses they save. */
#define PREFETCH_AHEAD 12

/* The lines of @len bytes from @start. */
static inline void
prefetch_range (gconstpointer start,
                gsize         len)
{
  const char *p = start;

  for (gsize off = 0; off < len; off += 64)
    __builtin_prefetch (p + off, 1);
  __builtin_prefetch (p + len - 1, 1);
}

/* The lines of a task's node and stop state (the first 64 bytes of its
 * private data, one or two lines as the slice allocator places it). */
static inline void
prefetch_task (KillableTask *task)
{
  __builtin_prefetch (STOP (task), 1);
  __builtin_prefetch (NODE (task), 1);
}

/* A malloc()'d block of @size bytes that is about to be read and freed:
 * with the allocator's header before it and the next block's after it,
 * which free() reads. */
static inline void
prefetch_block (gconstpointer mem,
                gsize         size)
{
  if (mem != NULL)
    prefetch_range ((const char *) mem - 2 * sizeof (gsize), size + 4 * sizeof (gsize));
}

typedef struct
{
  guint start;   /* an index in @won */
  guint len;
} PathRun;

typedef struct
{
  GArray *runs;    /* of PathRun */
  guint   depth;   /* tasks on the path */
} WalkPath;

static inline void
path_push (WalkPath *path,
           guint     index)
{
  if (path->runs->len > 0)
    {
      PathRun *run = &g_array_index (path->runs, PathRun, path->runs->len - 1);

      if (run->start + run->len == index)
        {
          run->len++;
          path->depth++;
          return;
        }
    }
  g_array_append_vals (path->runs, &(PathRun) { index, 1 }, 1);
  path->depth++;
}

/* The index in @won of the task on top. */
static inline guint
path_top (WalkPath *path)
{
  PathRun *run = &g_array_index (path->runs, PathRun, path->runs->len - 1);

  return run->start + run->len - 1;
}

static inline void
path_pop (WalkPath *path)
{
  PathRun *run = &g_array_index (path->runs, PathRun, path->runs->len - 1);

  if (--run->len == 0)
    g_array_set_size (path->runs, path->runs->len - 1);
  path->depth--;
}

/* After a release of the lock: cuts the path at the first task that left
 * its parent (the task under it on the path). Returns whether it did. */
static gboolean
path_cut_where_left (WalkPath *path,
                     TaskVec  *won)
{
  KillableTask *prev = NULL;
  guint depth = 0;

  for (guint i = 0; i < path->runs->len; i++)
    {
      PathRun *run = &g_array_index (path->runs, PathRun, i);

      for (guint j = 0; j < run->len; j++, depth++)
        {
          KillableTask *task = UNTAG (won->items[run->start + j]);

          /* Left its parent (read before its lock is known): it and the
           * path above it are no longer this tree's. */
          if (prev != NULL && LOAD (&NODE (task)->parent) != prev)
            {
              run->len = j;
              g_array_set_size (path->runs, j > 0 ? i + 1 : i);
              path->depth = depth;
              return TRUE;
            }
          prev = task;
        }
    }

  return FALSE;
}

/* Sets the stop flag of @root and its descendants; @won collects the tasks
 * whose request this call made, parents before children. A task already
 * stopped is not descended into: its subtree was stopped with it.
 *
 * Without @batch, every item is referenced (REF_TAG). With @batch (its
 * lock held), the items are not referenced (the tree holds them), each
 * task is ended at once if it can be, once its children were visited
 * (end_pending_locked()), and the lock may be released between batches for
 * a waiting thread (tree_lock_yield()).
 *
 * The walk keeps its path as the indices in @won of the tasks on it, in
 * runs of consecutive indices (WalkPath: a chain's path is one run, however
 * deep; a 24-byte frame per level made a chain a million deep touch 24 MB
 * of fresh memory, and a fresh page costs a fault, 18–26 µs on a VM), and
 * one cursor: the next child to visit of the task on top. The cursor of a task
 * below is not kept: when the walk is done with a task, the cursor of the
 * task under it is the next sibling of the task it is done with, read
 * before that task may leave the list (end_pending_locked()).
 *
 * Across a release of the lock, the items that hold no reference take one
 * (the ones that LEFT hold their parent's), and so does the cursor's child
 * (in @batch->drop, released by the caller outside the lock). After it, a
 * task on the path that left its parent ends the path there (it is
 * terminal: so are its children), and the list of the task on top starts
 * again, skipping stopped tasks, when that task's cursor left its parent
 * or is terminal, or when the path ended at a task that left. Dropping the
 * lock mid-way is safe for the stop invariant: a task whose flag is set has
 * only children whose flags are set or that this walk will visit;
 * add_child() on a stopped parent stops the newcomer itself. */
static void
request_stop_locked (KillableTask  *root,
                     const GError  *reason,
                     TaskVec       *won,
                     Batch         *batch)
{
  g_autoptr(GArray) runs = NULL;
  WalkPath path;
  KillableTask *next;   /* the cursor of the task on top of the path */
  guint visited = 0;

  if (!killable_stop_state_request (STOP (root), reason))
    return;

  /* The root is referenced by the caller, not only by the tree. */
  task_vec_push (won, (gpointer) ((guintptr) g_object_ref (root) | REF_TAG));
  if (first_child (NODE (root)) == NULL)
    goto out;

  runs = g_array_new (FALSE, FALSE, sizeof (PathRun));
  path = (WalkPath) { runs, 0 };
  path_push (&path, 0);
  next = block_of (NODE (root))->first_child;

  while (path.depth > 0)
    {
      KillableTask *child = next;
      KillableTreeNode *cnode;
      KillableTask *cfirst;

      if (child == NULL)
        {
          /* Every child of the task on top was visited. */
          guint index = path_top (&path);
          KillableTask *task = UNTAG (won->items[index]);
          PathRun *run = &g_array_index (path.runs, PathRun, path.runs->len - 1);

          /* The tasks the way up reaches next (a chain: the run below). */
          if (run->len > PREFETCH_AHEAD)
            prefetch_task (UNTAG (won->items[index - PREFETCH_AHEAD]));
          if (run->len > PREFETCH_AHEAD / 2)
            {
              KillableTreeParent *ahead = block_of (NODE (UNTAG (won->items[index - PREFETCH_AHEAD / 2])));

              /* Both of its lines: its fields are all read on the way. */
              if (ahead != NULL)
                prefetch_range (ahead, sizeof *ahead);
            }

          /* The cursor of the task under it: read before the task may
           * leave the list (an unlinked task has no next sibling). */
          next = NODE (task)->next_sibling;
          if (batch != NULL)
            end_pending_locked (batch, task, index);
          path_pop (&path);
          continue;
        }

      cnode = NODE (child);
      next = cnode->next_sibling;

      if (killable_stop_state_is_requested (STOP (child)) ||
          !killable_stop_state_request (STOP (child), reason))
        continue;

      task_vec_push (won, child);
      if ((cfirst = first_child (cnode)) != NULL)
        {
          /* The child's next sibling is read again when the walk is done
           * with it (above). */
          path_push (&path, won->len - 1);
          next = cfirst;
        }
      else if (batch != NULL)
        end_pending_locked (batch, child, won->len - 1);

      if (batch != NULL && ++visited % TREE_LOCK_BATCH == 0 &&
          tree_lock_contended (batch->held))
        {
          gboolean cut;
          KillableTask *top;

          task_vec_ref_rest (won);
          if (next != NULL)
            g_ptr_array_add (batch->drop, g_object_ref (next));
          batch_release_wake (batch);
          tree_lock_yield (&batch->held, root);
          cut = path_cut_where_left (&path, won);
          top = UNTAG (won->items[path_top (&path)]);
          /* The cursor's child is alive (referenced); if it left its
           * parent, start the list again. Also if it is terminal: only a
           * terminal task leaves its parent, and one that left may be
           * back, added again to the same parent, at the end of its list
           * (and not yet gone again, or retained): going on from there
           * would skip the siblings that were after it. And if the path
           * was cut: the cursor of the new top is not known. The list's
           * stopped tasks are skipped at once. */
          if (cut ||
              (next != NULL &&
               (LOAD (&NODE (next)->parent) != top ||
                KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (next)))))
            next = first_child (NODE (top));
        }
    }

out:
  if (batch != NULL && runs == NULL)
    end_pending_locked (batch, root, 0);

  /* What is returned or finished outside the lock is referenced (held by
   * the tree until now: no toggle, see the top of this file). */
  won->n_refd = 0;
  task_vec_ref_rest (won);
}

static void run_parent_step (KillableTask *parent,
                             int           step);
static gboolean release_session_begin (TaskStack *session);
static void     release_session_end   (TaskStack *session,
                                       gboolean   owner);

/* Outside the lock: the usual stop of each task a non-batched
 * request_stop_locked() reached (all referenced), parents first. */
static void
stop_won (TaskVec      *won,
          const GError *reason)
{
  for (guint i = 0; i < won->len; i++)
    killable_task_request_stop_internal (UNTAG (won->items[i]), reason, FALSE);
  for (guint i = 0; i < won->len; i++)
    g_object_unref (UNTAG (won->items[i]));
  task_vec_clear (won);
}

/* A leaf (no child) that was started, the usual target of a stop or an
 * interrupt: under one hold of the tree lock, its stop request with
 * @reason and @mark (0: none), with no batch, no array and no reference
 * (the caller holds @self). Returns FALSE, having changed nothing, unless
 * @self is a started leaf; else TRUE, and *@won tells whether this call
 * made the request: the caller then stops @self the usual way,
 * killable_task_request_stop_internal() (what end_pending_locked() does
 * for a task that is still pending, the batch's point, it does too for
 * one that start() is leaving PENDING). The child count is a hint,
 * checked again under the lock; a child added meanwhile sends the caller
 * down the general path. */
KILLABLE_STOP_PATH static gboolean
request_stop_leaf (KillableTask     *self,
                   const GError     *reason,
                   KillableTreeMark  mark,
                   gboolean         *won)
{
  KillableTree *held;
  gboolean leaf;

  if (load_n_children (NODE (self)) != 0 || !killable_task_is_started (self))
    return FALSE;

  held = tree_lock (self);
  leaf = first_child (NODE (self)) == NULL;
  if (leaf)
    {
      *won = killable_stop_state_request (STOP (self), reason);
      if (mark != 0)
        bits_update (self, 0, mark);
    }
  tree_unlock (held);

  return leaf;
}

/* Stops @self's subtree: sets every flag (request_stop_locked()), ends the
 * pending tasks that nothing observes in the same pass, children first
 * (end_pending_locked()), and returns the other tasks whose request this
 * call made, parents first, for killable_task_request_stop_internal(). */
GPtrArray *
killable_tree_request_stop (KillableTask *self,
                            const GError *reason)
{
  g_autoptr(GPtrArray) drop = NULL;
  g_autoptr(GPtrArray) steps = NULL;
  g_autoptr(GPtrArray) notify = NULL;
  g_autoptr(GError) built = NULL;
  Batch batch = { { 0 } };
  GPtrArray *rest;
  TaskStack session;
  gboolean own_session;

  /* A started leaf: no batch, no array but the one returned. */
  {
    gboolean won;

    if (request_stop_leaf (self, reason, 0, &won))
      {
        rest = g_ptr_array_new_full (1, g_object_unref);
        if (won)
          g_ptr_array_add (rest, g_object_ref (self));
        return rest;
      }
  }

  /* The lazy reason is about @self: its descendants get the reason it
   * stands for (built here, outside the lock). */
  if (reason == &killable_stop_state_lazy_reason)
    reason = built = killable_stop_state_build_lazy (STOP (self));

  drop = g_ptr_array_new ();
  steps = g_ptr_array_new ();
  notify = g_ptr_array_new ();
  batch.drop = drop;
  batch.steps = steps;
  batch.notify = notify;

  /* Room for a wide tree at once (a deeper one grows it), allocated
   * before the lock: the count is only a hint. */
  task_vec_reserve (&batch.won, MAX (64, load_n_children (NODE (self)) + 1));

  g_object_ref (self);
  batch.held = tree_lock (self);
  request_stop_locked (self, reason, &batch.won, &batch);
  batch_release_wake (&batch);
  tree_unlock (batch.held);

  for (guint i = 0; i < steps->len; i++)
    run_parent_step (g_ptr_array_index (steps, i), 0 /* STEP_COMPLETE_PENDING */);
  for (guint i = 0; i < notify->len; i++)
    {
      killable_task_queue_emissions (g_ptr_array_index (notify, i), KILLABLE_EMIT_CHILDREN);
      g_object_unref (g_ptr_array_index (notify, i));
    }

  /* The tasks ended here are released (the parent's reference too when
   * they left it), in one release session; the others are returned, in
   * order, with their references. */
  rest = g_ptr_array_new_with_free_func (g_object_unref);
  own_session = release_session_begin (&session);
  for (guint i = 0; i < batch.won.len; i++)
    {
      guintptr item = (guintptr) batch.won.items[i];
      KillableTask *task = UNTAG (item);

      /* The instance first; then, once its line with the pointers is
       * there, the blocks its finalize reads and frees. */
      if (i + PREFETCH_AHEAD < batch.won.len)
        prefetch_task (UNTAG (batch.won.items[i + PREFETCH_AHEAD]));
      if (i + PREFETCH_AHEAD / 2 < batch.won.len &&
          ((guintptr) batch.won.items[i + PREFETCH_AHEAD / 2] & ENDED_TAG) != 0)
        {
          KillableTask *ahead = UNTAG (batch.won.items[i + PREFETCH_AHEAD / 2]);

          prefetch_block (killable_task_peek_work_block (ahead), 4 * sizeof (gpointer));
          prefetch_block (load_block (NODE (ahead)), sizeof (KillableTreeParent));
        }
      if ((item & ENDED_TAG) == 0)
        {
          g_assert (item & REF_TAG);
          g_ptr_array_add (rest, task);
          continue;
        }
      killable_task_end_pending_finish (task);
      if (item & LEFT_TAG)
        g_object_unref (task);
      if (item & REF_TAG)
        g_object_unref (task);
    }
  for (guint i = 0; i < drop->len; i++)
    g_object_unref (g_ptr_array_index (drop, i));
  g_object_unref (self);
  release_session_end (&session, own_session);
  task_vec_clear (&batch.won);

  return rest;
}

/* @self and its descendants, parents before children, each with a ref.
 * With a @mark, also sets it on each of them under the tree lock, so that
 * a child added later sees it on its parent. */
GPtrArray *
killable_tree_collect_subtree (KillableTask *self,
                               KillableTreeMark  mark)
{
  GPtrArray *ret = g_ptr_array_new_full (1, g_object_unref);

  KillableTree *held;

  g_ptr_array_add (ret, g_object_ref (self));

  held = tree_lock (self);

  /* A leaf (no child), the usual case: no walk. */
  if (first_child (NODE (self)) == NULL)
    {
      if (mark != 0)
        bits_update (self, 0, mark);
      tree_unlock (held);
      return ret;
    }

  for (guint i = 0; i < ret->len; i++)
    {
      KillableTask *task = g_ptr_array_index (ret, i);

      if (mark != 0)
        bits_update (task, 0, mark);

      for (KillableTask *c = first_child (NODE (task)); c != NULL; c = NODE (c)->next_sibling)
        g_ptr_array_add (ret, g_object_ref (c));
    }

  tree_unlock (held);

  return ret;
}

/* interrupt()'s leaf case, its usual target: what
 * killable_tree_request_stop() then killable_tree_collect_subtree() with
 * KILLABLE_TREE_MARK_INTERRUPT do for a started task without children, in
 * one hold of the tree lock (request_stop_leaf()). The mark is set with
 * the flag: a child added from now on sees both. */
gboolean
killable_tree_interrupt_leaf (KillableTask *self,
                              const GError *reason,
                              gboolean     *won)
{
  return request_stop_leaf (self, reason, KILLABLE_TREE_MARK_INTERRUPT, won);
}

/* For a task stopped before it started: TRUE if it may end now; FALSE if
 * it has live children, and then it ends when the last of them does. Either
 * way it takes no new child from now on. With TRUE, *@child_failed tells
 * whether a child failed it (FAIL_FAST): read in the same critical section,
 * it cannot change any more (no live child, no new one), and the caller
 * does not need another round trip through the tree lock. */
gboolean
killable_tree_close_pending (KillableTask *self,
                             gboolean     *child_failed)
{
  KillableTreeNode *priv = NODE (self);
  KillableTree *held;
  gboolean ret;

  held = tree_lock (self);
  ret = n_live_children (priv) == 0;
  bits_update (self, TB_COMPLETE_PENDING | TB_CHILDREN_CLOSED,
               ret ? TB_CHILDREN_CLOSED : TB_COMPLETE_PENDING);
  *child_failed = failed_child (priv) != NULL;
  tree_unlock (held);

  return ret;
}

gboolean
killable_tree_has_live_children (KillableTask *self)
{
  KillableTree *held;
  gboolean ret;

  held = tree_lock (self);
  ret = n_live_children (NODE (self)) > 0;
  tree_unlock (held);

  return ret;
}

/* Drops references on tasks without recursion: a task's dispose drops its
 * children, whose dispose drops theirs... With a chain 100 000 deep that
 * would be 100 000 nested finalizers. The outermost call on a thread owns a
 * stack; nested calls push onto it and return.
 *
 * A release session: while it runs on a thread, the references dropped
 * there (g_object_unref() or release_tasks()) that end in a dispose
 * queue the children instead of recursing. Returns TRUE if this call
 * started it (then release_session_end() runs the queue). */
static gboolean
release_session_begin (TaskStack *session)
{
  if (g_private_get (&release_queue) != NULL)
    return FALSE;

  session->len = 0;
  session->spill = NULL;
  g_private_set (&release_queue, session);

  return TRUE;
}

static void
release_session_end (TaskStack *session,
                     gboolean   owner)
{
  KillableTask *task;

  if (!owner)
    return;

  while ((task = task_stack_pop (session)) != NULL)
    g_object_unref (task);
  g_private_set (&release_queue, NULL);
  task_stack_clear (session);
}

static void
release_tasks (KillableTask **tasks,
               guint          n_tasks)
{
  TaskStack *queue = g_private_get (&release_queue);
  TaskStack local;
  KillableTask *task;

  if (queue != NULL)
    {
      for (guint i = 0; i < n_tasks; i++)
        task_stack_push (queue, tasks[i]);
      return;
    }

  local.len = 0;
  local.spill = NULL;
  for (guint i = 0; i < n_tasks; i++)
    task_stack_push (&local, tasks[i]);

  g_private_set (&release_queue, &local);
  while ((task = task_stack_pop (&local)) != NULL)
    g_object_unref (task);
  g_private_set (&release_queue, NULL);
  task_stack_clear (&local);
}

/* The end of a child can end its parent (stopped while pending, or killed
 * while a child could not be abandoned), whose end can end its own parent:
 * on a chain 100 000 deep that must not nest. Same trampoline as above:
 * the outermost call on a thread runs the queued steps in a loop (the step
 * is in the pointer's low bit: a task is aligned). */
typedef enum { STEP_COMPLETE_PENDING = 0, STEP_KILL = 1 } ParentStep;

static GPrivate parent_steps;

static void
run_parent_step (KillableTask *parent,   /* (transfer full) */
                 int           step)
{
  TaskStack *queue = g_private_get (&parent_steps);
  TaskStack local;
  gpointer item;

  G_STATIC_ASSERT (G_ALIGNOF (GObject) >= 2);

  if (queue != NULL)
    {
      task_stack_push (queue, (gpointer) ((guintptr) parent | step));
      return;
    }

  local.len = 0;
  local.spill = NULL;
  task_stack_push (&local, (gpointer) ((guintptr) parent | step));
  g_private_set (&parent_steps, &local);

  while ((item = task_stack_pop (&local)) != NULL)
    {
      KillableTask *task = (KillableTask *) ((guintptr) item & ~(guintptr) 1);

      switch ((ParentStep) ((guintptr) item & 1))
        {
        case STEP_COMPLETE_PENDING:
          killable_task_complete_pending (task, 0);
          break;
        case STEP_KILL:
          if (!KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (task)))
            KILLABLE_TASK_GET_CLASS (task)->kill (task);
          break;
        default:
          g_assert_not_reached ();
        }
      g_object_unref (task);
    }

  g_private_set (&parent_steps, NULL);
  task_stack_clear (&local);
}

static void
release_task (KillableTask *task)
{
  release_tasks (&task, 1);
}

static void child_ended (KillableTask *child,
                         gboolean      at_add);

/**
 * killable_task_add_child:
 * @self: the parent
 * @child: (transfer none): the task to add
 * @error: return location for a #GError
 *
 * Makes @child a child of @self; @self holds a reference on it.
 *
 * A stop of @self, with its cause, reaches @child and its descendants; a
 * child added to a parent that was already stopped is stopped at once.
 * @self becomes terminal only after all its children are (structured
 * completion): when its work returns, children that were never started are
 * stopped, those that run are waited for, and if its work failed they are
 * stopped with its error. Under %KILLABLE_CHILD_POLICY_FAIL_FAST a child
 * that fails stops @self with %KILLABLE_ERROR_CHILD_FAILED.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE on success; %FALSE with @error set if @child already has a
 *   parent, is @self or one of its ancestors, or @self already finished
 *
 * Since: 1.0
 */
gboolean
killable_task_add_child (KillableTask  *self,
                         KillableTask  *child,
                         GError       **error)
{
  KillableTreeNode *priv;
  KillableTreeNode *cpriv;
  KillableTree *tp, *tc, *fresh = NULL, *moved_from = NULL;
  TaskVec won = { 0 };
  g_autoptr(GError) reason = NULL;
  gboolean child_terminal, kill, interrupt;
  const char *fail = NULL;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);
  g_return_val_if_fail (KILLABLE_IS_TASK (child), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = NODE (self);
  cpriv = NODE (child);

  /* The parent's reference on the child, taken before the lock (see the
   * top of this file). */
  g_object_ref (child);

  tree_lock_pair (self, child, &tp, &tc);

  if (cpriv->parent != NULL)
    fail = "parent";

  /* Only a task with children can be an ancestor of @self (then both are
   * in one tree, under tp): building a chain downwards does not walk the
   * whole chain at each step. */
  for (KillableTask *t = self;
       fail == NULL && t != NULL && (t == child || first_child (cpriv) != NULL);
       t = NODE (t)->parent)
    if (t == child)
      fail = "cycle";

  if (fail == NULL &&
      (bit_get (self, TB_CHILDREN_CLOSED) ||
       KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (self))))
    fail = "finished";

  if (fail != NULL)
    {
      if (tc != tp)
        tree_release (tc);
      tree_unlock (tp);
      g_object_unref (child);
      if (g_str_equal (fail, "parent"))
        g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                     _("Task “%s” already has a parent"), killable_task_get_name (child));
      else if (g_str_equal (fail, "cycle"))
        g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                     _("Task “%s” cannot be a child of itself or of its own descendant"),
                     killable_task_get_name (child));
      else
        g_set_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED,
                     _("Task “%s” already finished and cannot take children"),
                     killable_task_get_name (self));
      return FALSE;
    }

  /* One tree for both (see the top of this file). */
  if (node_tree (priv) == NULL && node_tree (cpriv) == NULL)
    {
      fresh = pool_take_locked ();
      node_set_tree (priv, fresh);
      node_set_tree (cpriv, fresh);
    }
  else if (node_tree (priv) == NULL)
    node_set_tree (priv, node_tree (cpriv));
  else if (node_tree (cpriv) == NULL)
    node_set_tree (cpriv, node_tree (priv));
  else if (node_tree (priv) != node_tree (cpriv))
    {
      /* The child's subtree moves: a walk without a stack (the links are
       * stable under both locks). */
      KillableTask *t = child;

      moved_from = node_tree (cpriv);
      for (;;)
        {
          KillableTreeNode *n = NODE (t);

          node_set_tree (n, node_tree (priv));
          if (first_child (n) != NULL)
            {
              t = block_of (n)->first_child;
              continue;
            }
          while (t != child && NODE (t)->next_sibling == NULL)
            t = NODE (t)->parent;
          if (t == child)
            break;
          t = NODE (t)->next_sibling;
        }
      /* A thread waiting in its old tree's cond looks again. */
      tree_broadcast (moved_from);
    }

  link_child (self, child);

  /* "Live" is decided here once, under the lock that child_ended() takes:
   * a child completing right now is counted here and uncounted by its own
   * child_ended(); one that already completed is not counted, and the call
   * at the end of this function gives it the end it missed. */
  child_terminal = KILLABLE_TASK_STATE_IS_TERMINAL (killable_task_get_state (child));
  if (!child_terminal)
    {
      block_of (priv)->n_live_children++;
      bit_put (child, TB_COUNTED, TRUE);
    }

  if (killable_stop_state_is_requested (STOP (self)))
    {
      reason = killable_stop_state_dup_reason (STOP (self));
      request_stop_locked (child, reason, &won, NULL);
    }
  else if (bit_get (self, TB_WORK_RETURNED) &&
           (block_of (priv)->completion_reason != NULL ||
            killable_task_get_state (child) == KILLABLE_TASK_STATE_PENDING))
    {
      /* The parent's work already returned: treat the newcomer as its
       * completion treated the others (pending ones are stopped; all are if
       * the work failed). */
      if (block_of (priv)->completion_reason != NULL)
        reason = g_error_copy (block_of (priv)->completion_reason);
      request_stop_locked (child, reason, &won, NULL);
    }

  kill = has_mark (self, KILLABLE_TREE_MARK_KILL);
  interrupt = has_mark (self, KILLABLE_TREE_MARK_INTERRUPT);

  if (fresh != NULL)
    tree_release (fresh);
  if (tc != tp)
    tree_release (tc);
  tree_unlock (tp);

  stop_won (&won, reason);

  /* The parent was interrupted or killed: so is its new child. */
  if (kill)
    killable_task_kill (child);
  else if (interrupt)
    killable_task_interrupt (child);

  killable_task_queue_emissions (self, KILLABLE_EMIT_CHILDREN);
  killable_task_queue_emissions (child, KILLABLE_EMIT_PARENT);

  /* Already finished: it leaves (or fails its parent) as it would have. */
  if (child_terminal)
    child_ended (child, TRUE);

  return TRUE;
}

/* Called once @child is terminal (by complete()), and by add_child() for a
 * child that was already terminal (@at_add). Acts once per child and
 * parent: on a counted child, or at its addition. */
static void
child_ended (KillableTask *child,
             gboolean      at_add)
{
  KillableTreeNode *cpriv = NODE (child);
  KillableTask *parent;
  KillableTree *held;
  TaskVec won = { 0 };
  g_autoptr(GError) reason = NULL;
  gboolean released = FALSE;
  gboolean parent_pending_done = FALSE;
  gboolean parent_kill_again = FALSE;

  held = tree_lock (child);

  parent = cpriv->parent;
  if (parent == NULL || (!at_add && !bit_get (child, TB_COUNTED)))
    {
      tree_unlock (held);
      return;
    }

  /* Alive: it holds @child, and its dispose takes this lock. (This
   * reference may toggle a binding's: dispose never waits long for the
   * lock, see killable_tree_dispose().) */
  g_object_ref (parent);

  if (bit_get (child, TB_COUNTED) &&
      (bit_put (child, TB_COUNTED, FALSE), --block_of (NODE (parent))->n_live_children == 0))
    {
      tree_broadcast (held);
      /* A parent stopped (or killed) before it started, or killed while a
       * child could not be abandoned, ends now. */
      if (bit_get (parent, TB_COMPLETE_PENDING))
        {
          bit_put (parent, TB_COMPLETE_PENDING, FALSE);
          parent_pending_done = TRUE;
        }
      else if (has_mark (parent, KILLABLE_TREE_MARK_KILL))
        parent_kill_again = TRUE;
    }

  if (killable_task_get_state (child) == KILLABLE_TASK_STATE_FAILED &&
      !bit_get (parent, TB_ISOLATE) &&
      !killable_stop_state_is_requested (STOP (parent)))
    {
      reason = g_error_new (KILLABLE_ERROR, KILLABLE_ERROR_CHILD_FAILED,
                            _("Child task “%s” failed: %s"),
                            killable_task_get_name (child),
                            killable_task_get_error (child)->message);
      request_stop_locked (parent, reason, &won, NULL);
      block_of (NODE (parent))->failed_child = g_object_ref (child);
    }

  /* Last: a child without children is lone from here on. */
  if (!bit_get (parent, TB_RETAIN_CHILDREN))
    {
      unlink_child (parent, child);
      released = TRUE;
    }

  tree_unlock (held);

  stop_won (&won, reason);

  if (parent_pending_done)
    run_parent_step (g_object_ref (parent), STEP_COMPLETE_PENDING);
  else if (parent_kill_again)
    run_parent_step (g_object_ref (parent), STEP_KILL);

  killable_task_queue_emissions (parent, KILLABLE_EMIT_CHILDREN);
  if (released)
    {
      killable_task_queue_emissions (child, KILLABLE_EMIT_PARENT);
      release_task (child);
    }
  release_task (parent);
}

void
killable_tree_child_ended (KillableTask *child)
{
  /* A child without a parent (a lone task, the common case) has nothing
   * to do here: no lock. Called after @child published its terminal state
   * (sequentially consistent), as add_child() publishes the parent before
   * it reads the child's state (link_child()): a parent linked after this
   * read saw the terminal state and gave the child its end itself. */
  if (__atomic_load_n (&NODE (child)->parent, __ATOMIC_SEQ_CST) == NULL)
    return;

  child_ended (child, FALSE);
}

/* On the worker, after the work returned: stop children that never
 * started (and all of them if the work failed), then wait for every child
 * to be terminal. */
void
killable_tree_before_completion (KillableTask *self,
                                 gboolean      run_failed,
                                 const GError *run_error)
{
  KillableTreeNode *priv = NODE (self);
  /* Allocated for the first child to stop: most tasks have none. */
  g_autoptr(GPtrArray) to_stop = NULL;
  g_autoptr(GError) reason = NULL;
  KillableTree *held;

  if (run_failed && run_error != NULL && !killable_error_is_cancellation (run_error))
    reason = g_error_copy (run_error);

  held = tree_lock (self);

  /* From here on, add_child() treats a newcomer like the children below. */
  bit_put (self, TB_WORK_RETURNED, TRUE);

  /* No child to wait for: closed at once, nothing reads the reason. */
  if (n_live_children (priv) == 0)
    {
      bit_put (self, TB_CHILDREN_CLOSED, TRUE);
      tree_unlock (held);
      return;
    }

  /* A live child: the block is there. */
  if (reason != NULL)
    block_of (priv)->completion_reason = g_error_copy (reason);

  /* Stopped: the stop that set our flag stops every child (it may still be
   * on its way, holding this lock in batches: walking a large children
   * list here would only hold the lock longer and race it). */
  for (KillableTask *child = killable_stop_state_is_requested (STOP (self)) ? NULL : block_of (priv)->first_child;
       child != NULL; child = NODE (child)->next_sibling)
    {
      int state = killable_task_get_state (child);

      /* Already stopped: by the tree invariant, whoever stopped it is
       * ending it; only its end is awaited below. */
      if (killable_stop_state_is_requested (STOP (child)))
        continue;

      if (run_failed ? !KILLABLE_TASK_STATE_IS_TERMINAL (state)
                     : state == KILLABLE_TASK_STATE_PENDING)
        {
          if (to_stop == NULL)
            to_stop = g_ptr_array_new_with_free_func (g_object_unref);
          g_ptr_array_add (to_stop, g_object_ref (child));
        }
    }

  tree_unlock (held);

  for (guint i = 0; to_stop != NULL && i < to_stop->len; i++)
    killable_task_request_stop_internal (g_ptr_array_index (to_stop, i), reason, TRUE);

  /* Closed in the same critical section that sees the last child end, so
   * that no child can slip in between (cleanups and the terminal state come
   * next; add_child() then fails as for a finished parent). */
  held = tree_lock (self);
  while (n_live_children (priv) > 0)
    {
      /* fork_gate is not held while waiting (a fork() would wait for the
       * children); nor is it taken again under the tree lock (the order is
       * fork_gate, then a tree lock): the lock is taken again from the
       * start, and may be another one if @self moved to another tree
       * meanwhile (add_child() broadcast the old one's cond). */
      held->n_cond_waiters++;
      g_rw_lock_reader_unlock (&fork_gate);
      g_cond_wait (&held->cond, &held->lock);
      held->n_cond_waiters--;
      tree_release (held);
      held = tree_lock (self);
    }
  bit_put (self, TB_CHILDREN_CLOSED, TRUE);
  tree_unlock (held);
}

static GPrivate in_reaper;

static gboolean
reap_cb (gpointer data)
{
  g_private_set (&in_reaper, GINT_TO_POINTER (TRUE));
  g_object_unref (data);
  g_private_set (&in_reaper, NULL);

  return G_SOURCE_REMOVE;
}

/* Takes @self's tree lock for a dispose, or gives up after a short while
 * (NULL). A binding may dispose a task while holding its own lock (Python's
 * GIL), and the holder of the tree lock may be waiting for that lock (a
 * toggle notification): waiting here could deadlock. The timer thread,
 * which holds no binding lock, may wait. */
static KillableTree *
lock_for_dispose (KillableTask *self)
{
  if (g_private_get (&in_reaper) != NULL)
    return tree_lock (self);

  for (guint i = 0; i < 10000; i++)
    {
      KillableTree *t;

      /* Not waiting for a fork() either: it waits for the holders of
       * tree locks. */
      if (!g_rw_lock_reader_trylock (&fork_gate))
        {
          g_thread_yield ();
          continue;
        }
      t = designated (self);
      if (g_mutex_trylock (&t->lock))
        {
          if (designated (self) == t)
            return t;
          g_mutex_unlock (&t->lock);
          g_rw_lock_reader_unlock (&fork_gate);
          continue;
        }
      g_rw_lock_reader_unlock (&fork_gate);
      g_thread_yield ();
    }

  return NULL;
}

/* Returns FALSE if the task was handed to the timer thread, which drops it
 * again later: the caller must not chain up then. */
gboolean
killable_tree_dispose (KillableTask *self)
{
  KillableTreeNode *priv = NODE (self);
  KillableTreeParent *block = load_block (priv);
  g_autoptr(GPtrArray) children = NULL;
  KillableTask *failed;
  KillableTree *held;

  /* Nobody can reach a task without a parent (it would hold a reference)
   * nor children (they would point to it) but through a reference, and a
   * lone task is in no tree: no lock is needed. */
  if (load_tree (priv) == NULL &&
      LOAD (&priv->parent) == NULL &&
      (block == NULL ||
       (LOAD (&block->n_children) == 0 &&
        g_atomic_pointer_get (&block->failed_child) == NULL)))
    {
      if (block != NULL)
        {
          g_clear_error (&block->completion_reason);
          g_clear_object (&block->children_model);
        }
      return TRUE;
    }

  held = lock_for_dispose (self);
  if (held == NULL)
    {
      /* Resurrected for the timer thread: this reference does not toggle,
       * a binding's toggle reference is gone when dispose runs. */
      g_object_ref (self);
      killable_timer_unref (killable_timer_add (0, reap_cb, self, NULL));
      return FALSE;
    }

  /* Read again under the lock. */
  block = block_of (priv);
  children = g_ptr_array_sized_new ((block != NULL ? block->n_children : 0) + 1);
  failed = NULL;
  if (block != NULL)
    {
      while (block->first_child != NULL)
        {
          KillableTask *child = block->first_child;

          bit_put (child, TB_COUNTED, FALSE);
          g_ptr_array_add (children, child);
          unlink_child (self, child);
        }
      block->n_live_children = 0;
      failed = g_steal_pointer (&block->failed_child);
      g_clear_error (&block->completion_reason);
    }
  /* No parent (it would hold a reference), no child: lone. */
  node_set_tree (priv, NULL);

  tree_unlock (held);

  if (failed != NULL)
    g_ptr_array_add (children, failed);
  release_tasks ((KillableTask **) children->pdata, children->len);

  /* The block stays (until finalize); the owner thread's model goes. */
  if (block != NULL)
    g_clear_object (&block->children_model);

  return TRUE;
}

/* The owner-side mirror {{{ */

/* @self's children, referenced. With a @store (a new model), also
 * publishes it in the same critical section: a change made after the
 * snapshot sees the model and queues a sync, one made before is in it. */
static GPtrArray *
snapshot_children (KillableTask *self,
                   GListStore   *store)
{
  GPtrArray *ret = g_ptr_array_new_with_free_func (g_object_unref);
  KillableTree *held;

  held = tree_lock (self);
  if (store != NULL)
    g_atomic_pointer_set (&parent_block (NODE (self))->children_model, store);
  for (KillableTask *c = first_child (NODE (self)); c != NULL; c = NODE (c)->next_sibling)
    g_ptr_array_add (ret, g_object_ref (c));
  tree_unlock (held);

  return ret;
}

/* Brings the model up to date with one splice of the part that changed,
 * so that views (GtkTreeListModel) keep the rows that did not. */
void
killable_tree_sync_model (KillableTask *self)
{
  GListStore *store = load_children_model (NODE (self));
  GListModel *model = G_LIST_MODEL (store);
  g_autoptr(GPtrArray) now = NULL;
  guint n_old, prefix = 0, suffix = 0;

  if (store == NULL)
    return;

  now = snapshot_children (self, NULL);
  n_old = g_list_model_get_n_items (model);

  while (prefix < n_old && prefix < now->len)
    {
      g_autoptr(GObject) item = g_list_model_get_item (model, prefix);

      if (item != g_ptr_array_index (now, prefix))
        break;
      prefix++;
    }

  while (suffix < n_old - prefix && suffix < now->len - prefix)
    {
      g_autoptr(GObject) item = g_list_model_get_item (model, n_old - 1 - suffix);

      if (item != g_ptr_array_index (now, now->len - 1 - suffix))
        break;
      suffix++;
    }

  if (prefix + suffix == n_old && prefix + suffix == now->len)
    return;

  g_list_store_splice (G_LIST_STORE (model), prefix, n_old - prefix - suffix,
                       now->pdata + prefix, now->len - prefix - suffix);
}

/**
 * killable_task_get_children:
 * @self: a task
 *
 * Gets the children of @self as a list model of [class@Killable.Task]. The
 * model belongs to the owner's main context: it changes, and emits
 * [signal@Gio.ListModel::items-changed], only there, when that context is
 * iterated, so it can back a GTK view directly. Unless
 * [property@Killable.Task:retain-children] is set, children leave it once
 * they are terminal.
 *
 * Call it from the thread of the task's owner context.
 *
 * Returns: (transfer none): the children
 *
 * Since: 1.0
 */
GListModel *
killable_task_get_children (KillableTask *self)
{
  GListStore *store;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  /* Only this thread sets it. */
  store = load_children_model (NODE (self));
  if (store == NULL)
    {
      g_autoptr(GPtrArray) now = NULL;

      store = g_list_store_new (KILLABLE_TYPE_TASK);
      now = snapshot_children (self, store);
      g_list_store_splice (store, 0, 0, now->pdata, now->len);
    }

  return G_LIST_MODEL (store);
}

/* }}} */

/**
 * killable_task_dup_parent: (get-property parent)
 * @self: a task
 *
 * Gets the parent of @self.
 *
 * This function is thread-safe.
 *
 * Returns: (transfer full) (nullable): the parent, or %NULL
 *
 * Since: 1.0
 */
KillableTask *
killable_task_dup_parent (KillableTask *self)
{
  KillableTree *held;
  KillableTask *ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), NULL);

  held = tree_lock (self);
  ret = NODE (self)->parent != NULL ? g_object_ref (NODE (self)->parent) : NULL;
  tree_unlock (held);

  return ret;
}

/**
 * killable_task_get_child_policy:
 * @self: a task
 *
 * Gets [property@Killable.Task:child-policy].
 *
 * This function is thread-safe.
 *
 * Returns: the policy
 *
 * Since: 1.0
 */
KillableChildPolicy
killable_task_get_child_policy (KillableTask *self)
{
  KillableTree *held;
  KillableChildPolicy ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), KILLABLE_CHILD_POLICY_FAIL_FAST);

  held = tree_lock (self);
  ret = bit_get (self, TB_ISOLATE) ? KILLABLE_CHILD_POLICY_ISOLATE : KILLABLE_CHILD_POLICY_FAIL_FAST;
  tree_unlock (held);

  return ret;
}

/**
 * killable_task_set_child_policy:
 * @self: a task
 * @policy: the policy
 *
 * Sets [property@Killable.Task:child-policy].
 *
 * This function is thread-safe; `notify::child-policy` is emitted in the
 * calling thread.
 *
 * Since: 1.0
 */
void
killable_task_set_child_policy (KillableTask        *self,
                                KillableChildPolicy  policy)
{
  KillableTree *held;
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_TASK (self));
  g_return_if_fail (policy == KILLABLE_CHILD_POLICY_FAIL_FAST ||
                    policy == KILLABLE_CHILD_POLICY_ISOLATE);

  held = tree_lock (self);
  changed = bit_get (self, TB_ISOLATE) != (policy == KILLABLE_CHILD_POLICY_ISOLATE);
  bit_put (self, TB_ISOLATE, policy == KILLABLE_CHILD_POLICY_ISOLATE);
  tree_unlock (held);

  if (changed)
    killable_task_emit_setter (self, KILLABLE_EMIT_CHILD_POLICY);
}

/**
 * killable_task_get_retain_children:
 * @self: a task
 *
 * Gets [property@Killable.Task:retain-children].
 *
 * This function is thread-safe.
 *
 * Returns: whether finished children are kept
 *
 * Since: 1.0
 */
gboolean
killable_task_get_retain_children (KillableTask *self)
{
  KillableTree *held;
  gboolean ret;

  g_return_val_if_fail (KILLABLE_IS_TASK (self), FALSE);

  held = tree_lock (self);
  ret = bit_get (self, TB_RETAIN_CHILDREN);
  tree_unlock (held);

  return ret;
}

/**
 * killable_task_set_retain_children:
 * @self: a task
 * @retain: whether finished children stay in the children list
 *
 * Sets [property@Killable.Task:retain-children]. It applies to children
 * that finish from now on.
 *
 * This function is thread-safe; `notify::retain-children` is emitted in
 * the calling thread.
 *
 * Since: 1.0
 */
void
killable_task_set_retain_children (KillableTask *self,
                                   gboolean      retain)
{
  KillableTree *held;
  gboolean changed;

  g_return_if_fail (KILLABLE_IS_TASK (self));

  held = tree_lock (self);
  changed = bit_get (self, TB_RETAIN_CHILDREN) != !!retain;
  bit_put (self, TB_RETAIN_CHILDREN, retain);
  tree_unlock (held);

  if (changed)
    killable_task_emit_setter (self, KILLABLE_EMIT_RETAIN_CHILDREN);
}

gint64
killable_tree_get_deadline (KillableTask *self)
{
  KillableTree *held;
  gint64 ret = G_MAXINT64;

  held = tree_lock (self);

  for (KillableTask *t = self; t != NULL; t = NODE (t)->parent)
    {
      ret = MIN (ret, killable_task_get_own_deadline (t));
    }

  tree_unlock (held);

  return ret;
}

/* For tests: how many children @self holds right now. */
guint
killable_tree_count_children (KillableTask *self)
{
  KillableTree *held;
  guint ret;

  held = tree_lock (self);
  ret = block_of (NODE (self)) != NULL ? block_of (NODE (self))->n_children : 0;
  tree_unlock (held);

  return ret;
}

gboolean
killable_tree_has_failed_child (KillableTask *self)
{
  KillableTree *held;
  gboolean ret;

  /* No block: it never had a child, so none failed (the block, once
   * published, stays; a child being added now is as if added after this
   * call). No lock for a task without children. */
  if (load_block (NODE (self)) == NULL)
    return FALSE;

  held = tree_lock (self);
  ret = failed_child (NODE (self)) != NULL;
  tree_unlock (held);

  return ret;
}

gboolean
killable_tree_has_model (KillableTask *self)
{
  return load_children_model (NODE (self)) != NULL;
}

void
killable_tree_node_init (KillableTreeNode *node,
                         KillableTask     *task)
{
  /* All zero: no child, FAIL_FAST, no mark. */
}

/* At finalize (after dispose: no child, no failed child, no model). */
void
killable_tree_node_clear (KillableTreeNode *node)
{
  KillableTreeParent *block = block_of (node);

  if (block == NULL)
    return;
  node->tree_or_block = 0;
  g_warn_if_fail (block->first_child == NULL && block->failed_child == NULL);
  g_clear_error (&block->completion_reason);
  g_clear_object (&block->children_model);
  g_free (block);
}

/* In the child of a fork(): every tree lock and cond starts afresh (see
 * killable_tree_fork_lock()). */
static void
fork_child_reset (void)
{
  for (guint i = 0; i < N_STRIPES; i++)
    {
      g_mutex_init (&stripes[i].lock);
      g_cond_init (&stripes[i].cond);
      stripes[i].n_cond_waiters = 0;
      stripes[i].waiters = 0;
    }
  for (TreeChunk *c = pool_head; c != NULL; c = c->next)
    for (guint i = 0; i < POOL_CHUNK; i++)
      {
        g_mutex_init (&c->trees[i].lock);
        g_cond_init (&c->trees[i].cond);
        c->trees[i].n_cond_waiters = 0;
        c->trees[i].waiters = 0;
      }
  handoff_wanted = 0;
}

/* For killable-fork.c: fork_gate is held for writing across fork(), so
 * that no tree is being changed (the child's copy of every tree is
 * consistent); then pool_lock (no tree is taken or given back), then
 * handoff_lock (a yielding stop may hold it). In the child (told by its
 * pid), every tree lock and cond starts afresh: a thread of the parent
 * that waited for children (killable_tree_before_completion()) may have
 * held its tree's lock without fork_gate for a moment, and no thread of the
 * parent but the forking one exists there. */
static pid_t fork_pid;   /* under fork_gate (write) */

void
killable_tree_fork_lock (gboolean lock)
{
  if (lock)
    {
      g_rw_lock_writer_lock (&fork_gate);
      g_mutex_lock (&pool_lock);
      g_mutex_lock (&handoff_lock);
      fork_pid = getpid ();
    }
  else
    {
      g_mutex_unlock (&handoff_lock);
      g_mutex_unlock (&pool_lock);
      /* A pthread rwlock knows its writer by thread id, which the forking
       * thread changed in the child: it cannot be unlocked there, only made
       * afresh. */
      if (getpid () != fork_pid)
        {
          g_rw_lock_init (&fork_gate);
          fork_child_reset ();
        }
      else
        g_rw_lock_writer_unlock (&fork_gate);
    }
}
