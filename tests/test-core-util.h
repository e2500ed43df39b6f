/* test-core-util.h: handshakes shared by the core GTest suites
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Threads are synchronised with GMutex/GCond handshakes and main contexts
 * are iterated until something happened; time only appears as a failure
 * guard ("it must happen within TEST_GUARD_USEC"), never to wait for
 * something to happen.
 *
 * A suite may define TEST_GUARD_USEC (an expression, in µs) before it
 * includes this header: every bounded wait here then uses that bound.
 *
 * Every in-test time limit goes through TEST_LIMIT_USEC(), which multiplies
 * it by one factor, KILLABLE_TEST_TIME_SCALE (default 1; the valgrind test
 * setup sets 10, build-aux/run-sanitizers 4). Meson's --timeout-multiplier
 * only stretches Meson's own timeout; this stretches the tests' limits.
 */

#pragma once

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <killable.h>

G_BEGIN_DECLS

static inline gboolean
test_under_valgrind (void)
{
  return g_getenv ("KILLABLE_UNDER_VALGRIND") != NULL;
}

/* The factor every in-test time limit is multiplied by:
 * KILLABLE_TEST_TIME_SCALE (a number >= 1), else 10 under valgrind, else
 * 1. */
static inline double
test_time_scale (void)
{
  const char *text = g_getenv ("KILLABLE_TEST_TIME_SCALE");
  double scale;

  if (text == NULL || *text == '\0')
    return test_under_valgrind () ? 10. : 1.;

  scale = g_ascii_strtod (text, NULL);
  if (!(scale >= 1.))
    g_error ("KILLABLE_TEST_TIME_SCALE=%s: not a number >= 1", text);

  return scale;
}

/* A time limit of the test (a bound that fails the test when passed, never
 * a wait), scaled by test_time_scale(). */
#define TEST_LIMIT_USEC(usec) ((gint64) ((double) (usec) * test_time_scale ()))

#ifndef TEST_GUARD_USEC
/* Generous: the machine running the tests may be loaded, or valgrind. */
#define TEST_GUARD_USEC TEST_LIMIT_USEC (10 * G_USEC_PER_SEC)
#endif

#define TEST_ERROR (g_quark_from_static_string ("killable-test-error"))

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

/* Worker side: says "I am here", then waits for test_gate_open() whatever
 * happens to its task, without a bound: a worker that does not cooperate,
 * which a test may abandon (kill) and release later. */
static inline void
test_gate_pass (TestGate *gate)
{
  g_mutex_lock (&gate->lock);
  gate->entered++;
  g_cond_broadcast (&gate->cond);
  while (!gate->released)
    g_cond_wait (&gate->cond, &gate->lock);
  g_mutex_unlock (&gate->lock);
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

/* Where a thread is blocked, as /proc/self/task/TID/syscall shows it: the
 * proof that a worker is *inside* a given blocking call, not about to
 * enter it, nor blocked somewhere else (a sleeping state alone, "S", is
 * any futex wait: a lock taken on the way, a gate). */
typedef enum
{
  TEST_IN_TIMED_FUTEX,   /* a futex wait with a timeout: a bounded
                          * g_cond_wait_until(), as in killable_task_sleep() */
  TEST_IN_FUTEX,         /* a futex wait without a timeout */
  TEST_IN_POLL,          /* poll() or ppoll() */
  TEST_IN_READ,          /* read() */
} TestBlockedIn;

static inline const char *
test_blocked_in_name (TestBlockedIn where)
{
  switch (where)
    {
    case TEST_IN_TIMED_FUTEX: return "a timed futex wait";
    case TEST_IN_FUTEX: return "a futex wait without timeout";
    case TEST_IN_POLL: return "poll()";
    case TEST_IN_READ: return "read()";
    default: g_assert_not_reached ();
    }
}

/* An open /proc/self/task/@tid/syscall, for test_wait_syscall_fd_in():
 * opened before a test takes away every free file descriptor. */
static inline int
test_syscall_fd_open (pid_t tid)
{
  g_autofree char *path = g_strdup_printf ("/proc/self/task/%d/syscall", (int) tid);
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  g_assert_cmpint (fd, >=, 0);
  return fd;
}

/* The system call the thread of @fd (test_syscall_fd_open()) is blocked
 * in, with its first four arguments in @args; -1 when it runs or is
 * gone. */
static inline long
test_syscall_fd_read (int      fd,
                      guint64  args[4])
{
  char contents[512];
  g_auto(GStrv) fields = NULL;
  ssize_t n;
  long nr;

  memset (args, 0, 4 * sizeof (guint64));
  n = pread (fd, contents, sizeof contents - 1, 0);
  if (n <= 0)
    return -1;
  contents[n] = '\0';

  /* "NR ARG1 ... ARG6 SP PC", "-1 SP PC" (blocked outside a system call)
   * or "running". */
  fields = g_strsplit (g_strstrip (contents), " ", -1);
  if (g_strv_length (fields) < 7 || !g_ascii_isdigit (fields[0][0]))
    return -1;
  nr = (long) g_ascii_strtoll (fields[0], NULL, 10);
  for (guint i = 0; i < 4; i++)
    args[i] = g_ascii_strtoull (fields[i + 1], NULL, 16);

  return nr;
}

static inline gboolean
test_syscall_is (long           nr,
                 const guint64 *args,
                 TestBlockedIn  where)
{
  switch (where)
    {
    case TEST_IN_TIMED_FUTEX:
    case TEST_IN_FUTEX:
      {
        /* FUTEX_WAIT (0) or FUTEX_WAIT_BITSET (9), private or not; the
         * fourth argument is the timeout. */
        guint64 op = args[1] & 0x7f;

        if (nr != SYS_futex || (op != 0 && op != 9))
          return FALSE;
        return (where == TEST_IN_TIMED_FUTEX) == (args[3] != 0);
      }
    case TEST_IN_POLL:
#ifdef SYS_poll
      if (nr == SYS_poll)
        return TRUE;
#endif
      return nr == SYS_ppoll;
    case TEST_IN_READ:
      return nr == SYS_read;
    default:
      g_assert_not_reached ();
    }
}

/* Waits until the thread of @fd (test_syscall_fd_open()) is blocked in
 * the system call @where. Bounded by the guard: a thread that never gets
 * there (it blocks elsewhere, or not at all) fails the test. */
static inline void
test_wait_syscall_fd_in (int           fd,
                         TestBlockedIn where)
{
  gint64 end = g_get_monotonic_time () + TEST_GUARD_USEC;
  guint64 args[4];
  long nr = -1;

  while (g_get_monotonic_time () < end)
    {
      nr = test_syscall_fd_read (fd, args);
      if (test_syscall_is (nr, args, where))
        return;
      g_thread_yield ();
    }

  g_error ("a thread never blocked in %s (last seen in system call %ld, "
           "arguments %#" G_GINT64_MODIFIER "x %#" G_GINT64_MODIFIER "x %#"
           G_GINT64_MODIFIER "x %#" G_GINT64_MODIFIER "x)",
           test_blocked_in_name (where), nr, args[0], args[1], args[2], args[3]);
}

/* Waits until thread @tid of this process is blocked in the system call
 * @where (test_wait_syscall_fd_in()). */
static inline void
test_wait_thread_in (pid_t         tid,
                     TestBlockedIn where)
{
  int fd;

  g_assert_cmpint (tid, >, 0);
  fd = test_syscall_fd_open (tid);
  test_wait_syscall_fd_in (fd, where);
  close (fd);
}

static inline gboolean
test_guard_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates @ctx until @expr holds; fails the test after @guard µs. */
#define TEST_ITERATE_UNTIL_GUARDED(ctx, expr, guard)                          \
  G_STMT_START {                                                              \
    gboolean timed_out_ = FALSE;                                              \
    GSource *guard_ = g_timeout_source_new ((guard) / 1000);                  \
                                                                              \
    g_source_set_callback (guard_, test_guard_cb, &timed_out_, NULL);         \
    g_source_attach (guard_, (ctx));                                          \
    while (!(expr) && !timed_out_)                                            \
      g_main_context_iteration ((ctx), TRUE);                                 \
    g_source_destroy (guard_);                                                \
    g_source_unref (guard_);                                                  \
    g_assert_true (expr);                                                     \
  } G_STMT_END

/* Iterates @ctx until @expr holds; fails the test after the guard. */
#define TEST_ITERATE_UNTIL(ctx, expr)                                         \
  TEST_ITERATE_UNTIL_GUARDED (ctx, expr, TEST_GUARD_USEC)

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

/* Polls @expr like TEST_POLL_UNTIL, dispatching what is ready on the
 * thread-default context meanwhile (a queued emission holds a reference on
 * its task). Bounded by the guard. */
#define TEST_POLL_ITERATING_UNTIL(expr)                                       \
  G_STMT_START {                                                              \
    gint64 end_ = g_get_monotonic_time () + TEST_GUARD_USEC;                  \
                                                                              \
    while (!(expr) && g_get_monotonic_time () < end_)                         \
      {                                                                       \
        g_main_context_iteration (NULL, FALSE);                               \
        g_thread_yield ();                                                    \
      }                                                                       \
    g_assert_true (expr);                                                     \
  } G_STMT_END

static inline void
test_set_flag_on_finalize (gpointer  data,
                           GObject  *where_the_object_was)
{
  g_atomic_int_set ((int *) data, 1);
}

/* Drops @object's reference, the caller's last one, and returns once
 * @object is finalized: the worker drops its own reference a moment after
 * a join, and a queued emission holds one. Tests that count fds or threads
 * call this so that what the object holds until then (a task's stop-state
 * wake-up fd) is not counted as theirs. */
static inline void
test_unref_until_finalized (gpointer object)
{
  int finalized = 0;

  g_object_weak_ref (G_OBJECT (object), test_set_flag_on_finalize, &finalized);
  g_object_unref (object);
  TEST_POLL_ITERATING_UNTIL (g_atomic_int_get (&finalized));
}

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

/* join(), after a bounded wait: a task that never ends fails the test
 * instead of hanging it. */
static inline gboolean
test_join_guarded (KillableTask  *task,
                   GError       **error)
{
  if (!killable_task_wait (task, TEST_GUARD_USEC))
    g_error ("task “%s” did not end in time", killable_task_get_name (task));

  return killable_task_join (task, error);
}

/* Works {{{ */

/* Blocks on the gate (test_gate_pass()), ignoring stops, then succeeds. */
static inline gboolean
test_work_pass_gate (KillableTask  *task,
                     gpointer       gate,
                     GError       **error)
{
  test_gate_pass (gate);
  return TRUE;
}

/* Blocks on the gate, ignoring stops, then reports a stop if there was
 * one. */
static inline gboolean
test_work_pass_gate_then_check (KillableTask  *task,
                                gpointer       gate,
                                GError       **error)
{
  test_gate_pass (gate);
  return killable_task_check (task, error);
}

/* }}} */

/* Counter of finalized objects, through weak references {{{ */

typedef struct
{
  GMutex lock;
  guint  n;
} TestCounter;

static inline void
test_counter_init (TestCounter *counter)
{
  g_mutex_init (&counter->lock);
  counter->n = 0;
}

static inline void
test_counter_clear (TestCounter *counter)
{
  g_mutex_clear (&counter->lock);
}

static inline void
test_counter_weak_notify (gpointer  data,
                          GObject  *where_the_object_was)
{
  TestCounter *counter = data;

  g_mutex_lock (&counter->lock);
  counter->n++;
  g_mutex_unlock (&counter->lock);

  /* test_counter_wait() may be blocked in the main context. */
  g_main_context_wakeup (NULL);
}

static inline void
test_counter_watch (TestCounter *counter,
                    gpointer     object)
{
  g_object_weak_ref (object, test_counter_weak_notify, counter);
}

static inline guint
test_counter_get (TestCounter *counter)
{
  guint ret;

  g_mutex_lock (&counter->lock);
  ret = counter->n;
  g_mutex_unlock (&counter->lock);

  return ret;
}

/* Waits until @n objects were finalized. Called on the main thread, it
 * iterates the global default main context meanwhile: a queued emission
 * holds a reference on its task until it is dispatched. A worker also drops
 * its reference on its task just after the task became terminal, so the
 * last finalizations may come a little after a join. */
static inline void
test_counter_wait (TestCounter *counter,
                   guint        n)
{
  TEST_ITERATE_UNTIL (NULL, test_counter_get (counter) >= n);
  g_assert_cmpuint (test_counter_get (counter), ==, n);
}

/* }}} */

/* A FIFO for programs to report to the test {{{ */

typedef struct
{
  char *dir;
  char *path;
  int   fd;
} TestFifo;

/* Makes a FIFO in a fresh temporary directory. It is opened before any
 * program, so that a program's open for writing never blocks; read and
 * write (Linux allows it on a FIFO), so that it never reports an end of
 * file between two writers. */
static inline void
test_fifo_open (TestFifo *fifo)
{
  g_autoptr(GError) error = NULL;

  fifo->dir = g_dir_make_tmp ("killable-test-XXXXXX", &error);
  g_assert_no_error (error);
  fifo->path = g_build_filename (fifo->dir, "fifo", NULL);
  g_assert_cmpint (mkfifo (fifo->path, 0600), ==, 0);
  fifo->fd = open (fifo->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  g_assert_cmpint (fifo->fd, >=, 0);
}

static inline void
test_fifo_close (TestFifo *fifo)
{
  close (fifo->fd);
  g_assert_cmpint (unlink (fifo->path), ==, 0);
  g_assert_cmpint (rmdir (fifo->dir), ==, 0);
  g_clear_pointer (&fifo->path, g_free);
  g_clear_pointer (&fifo->dir, g_free);
}

/* Reads one line written by a program, without its newline, waiting for it
 * at most @timeout_usec: a program that never writes it fails the test
 * instead of hanging it. */
static inline char *
test_fifo_read_line (TestFifo *fifo,
                     gint64    timeout_usec)
{
  GString *line = g_string_new (NULL);
  gint64 end = g_get_monotonic_time () + timeout_usec;

  for (;;)
    {
      struct pollfd pfd = { .fd = fifo->fd, .events = POLLIN };
      char c;
      gssize n;

      n = read (fifo->fd, &c, 1);
      if (n == 1)
        {
          if (c == '\n')
            break;
          g_string_append_c (line, c);
          continue;
        }
      g_assert_cmpint (n, <, 0);
      g_assert_cmpint (errno, ==, EAGAIN);

      g_assert_cmpint (g_get_monotonic_time (), <, end);
      g_assert_cmpint (poll (&pfd, 1, (int) ((end - g_get_monotonic_time ()) / 1000) + 1), ==, 1);
    }

  return g_string_free (line, FALSE);
}

/* }}} */

G_END_DECLS
