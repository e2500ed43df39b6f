/* test-core-util.h: handshakes shared by the core GTest suites
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Threads are synchronised with GMutex/GCond handshakes and main contexts
 * are iterated until something happened; time only appears as a failure
 * guard ("it must happen within TEST_GUARD_USEC"), never to wait for
 * something to happen.
 */

#pragma once

#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <killable.h>

G_BEGIN_DECLS

/* Generous: the machine running the tests may be loaded, or valgrind. */
#define TEST_GUARD_USEC (10 * G_USEC_PER_SEC)

static inline gboolean
test_under_valgrind (void)
{
  return g_getenv ("KILLABLE_UNDER_VALGRIND") != NULL;
}

/* @n normally, @n_slow under valgrind. */
static inline guint
test_scale (guint n,
            guint n_slow)
{
  return test_under_valgrind () ? n_slow : n;
}

static inline pid_t
test_gettid (void)
{
  return (pid_t) syscall (SYS_gettid);
}

/* A point in a worker the test waits for, and a release the worker waits
 * for. Every field is protected by @lock. */
typedef struct
{
  GMutex    lock;
  GCond     cond;
  int       entered;        /* bumped each time a thread reaches the point */
  gboolean  released;       /* set by the test */
  gboolean  result;         /* what a stuck worker returns once released */
  gboolean  use_check;      /* a stuck worker returns killable_task_check() */
  int       ran;            /* how many times the work ran */
  GThread  *worker_thread;  /* the thread the work ran on */
  pid_t     worker_tid;
  gint64    returned_time;  /* monotonic, when a blocking call returned */
  GError   *seen_error;     /* (owned) what the blocking call reported */
  int       cleanup_ran;
  GThread  *cleanup_thread;
} TestGate;

static inline void
test_gate_init (TestGate *gate)
{
  memset (gate, 0, sizeof *gate);
  g_mutex_init (&gate->lock);
  g_cond_init (&gate->cond);
  gate->result = TRUE;
}

static inline void
test_gate_clear (TestGate *gate)
{
  g_clear_error (&gate->seen_error);
  g_cond_clear (&gate->cond);
  g_mutex_clear (&gate->lock);
}

/* Worker side: records who runs the work. */
static inline void
test_gate_note_worker (TestGate *gate)
{
  g_mutex_lock (&gate->lock);
  gate->ran++;
  gate->worker_thread = g_thread_self ();
  gate->worker_tid = test_gettid ();
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);
}

/* Worker side: says "I am here". */
static inline void
test_gate_enter (TestGate *gate)
{
  g_mutex_lock (&gate->lock);
  gate->entered++;
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);
}

/* Worker side: says "I am here", then waits for test_gate_open() and
 * ignores every stop meanwhile. Fails the test after the guard. */
static inline void
test_gate_enter_and_wait (TestGate *gate)
{
  gint64 end = g_get_monotonic_time () + TEST_GUARD_USEC;
  gboolean released;

  g_mutex_lock (&gate->lock);
  gate->entered++;
  g_cond_broadcast (&gate->cond);
  while (!gate->released)
    {
      if (!g_cond_wait_until (&gate->cond, &gate->lock, end))
        break;
    }
  released = gate->released;
  g_mutex_unlock (&gate->lock);

  g_assert_true (released);
}

/* Test side: waits until @n threads reached the point. */
static inline void
test_gate_wait_entered (TestGate *gate,
                        int       n)
{
  gint64 end = g_get_monotonic_time () + TEST_GUARD_USEC;
  int entered;

  g_mutex_lock (&gate->lock);
  while (gate->entered < n)
    {
      if (!g_cond_wait_until (&gate->cond, &gate->lock, end))
        break;
    }
  entered = gate->entered;
  g_mutex_unlock (&gate->lock);

  g_assert_cmpint (entered, >=, n);
}

static inline void
test_gate_open (TestGate *gate)
{
  g_mutex_lock (&gate->lock);
  gate->released = TRUE;
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);
}

/* Waits until *@counter (protected by @gate's lock) reaches @n. */
static inline void
test_gate_wait_count (TestGate *gate,
                      int      *counter,
                      int       n)
{
  gint64 end = g_get_monotonic_time () + TEST_GUARD_USEC;
  int value;

  g_mutex_lock (&gate->lock);
  while (*counter < n)
    {
      if (!g_cond_wait_until (&gate->cond, &gate->lock, end))
        break;
    }
  value = *counter;
  g_mutex_unlock (&gate->lock);

  g_assert_cmpint (value, >=, n);
}

/* The scheduler state of thread @tid of this process ('R', 'S', 'D', ...),
 * or 0 if it is gone. */
static inline char
test_thread_state (pid_t tid)
{
  g_autofree char *path = g_strdup_printf ("/proc/self/task/%d/stat", (int) tid);
  g_autofree char *contents = NULL;
  const char *paren;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return 0;

  /* "tid (comm) S ...": comm may hold spaces and parentheses. */
  paren = strrchr (contents, ')');
  if (paren == NULL || paren[1] != ' ')
    return 0;

  return paren[2];
}

/* Waits until thread @tid is blocked in the kernel (a futex, poll(), read()):
 * the proof that a worker is *inside* a blocking call, not about to enter
 * it. Bounded by the guard. */
static inline void
test_wait_thread_blocked (pid_t tid)
{
  gint64 end = g_get_monotonic_time () + TEST_GUARD_USEC;
  char state;

  g_assert_cmpint (tid, >, 0);

  while ((state = test_thread_state (tid)) != 'S' && state != 'D' &&
         g_get_monotonic_time () < end)
    g_thread_yield ();

  g_assert_true (state == 'S' || state == 'D');
}

static inline gboolean
test_guard_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates @ctx until @expr holds; fails the test after the guard. */
#define TEST_ITERATE_UNTIL(ctx, expr)                                         \
  G_STMT_START {                                                              \
    gboolean timed_out_ = FALSE;                                              \
    GSource *guard_ = g_timeout_source_new (TEST_GUARD_USEC / 1000);          \
                                                                              \
    g_source_set_callback (guard_, test_guard_cb, &timed_out_, NULL);         \
    g_source_attach (guard_, (ctx));                                          \
    while (!(expr) && !timed_out_)                                            \
      g_main_context_iteration ((ctx), TRUE);                                 \
    g_source_destroy (guard_);                                                \
    g_source_unref (guard_);                                                  \
    g_assert_true (expr);                                                     \
  } G_STMT_END

/* Polls @expr, for a state that only a timer or a thread returning to its
 * cache changes and that nothing signals. Bounded by the guard. */
#define TEST_POLL_UNTIL(expr)                                                 \
  G_STMT_START {                                                              \
    gint64 end_ = g_get_monotonic_time () + TEST_GUARD_USEC;                  \
                                                                              \
    while (!(expr) && g_get_monotonic_time () < end_)                         \
      g_thread_yield ();                                                      \
    g_assert_true (expr);                                                     \
  } G_STMT_END

/* Dispatches whatever is ready on @ctx; returns how many iterations
 * dispatched something. */
static inline guint
test_drain (GMainContext *ctx)
{
  guint n = 0;

  while (g_main_context_iteration (ctx, FALSE))
    n++;

  return n;
}

G_END_DECLS
