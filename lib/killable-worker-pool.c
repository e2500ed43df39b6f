/* killable-worker-pool.c: the process-wide pool of worker threads
 *
 * Owns: the worker threads, the list of jobs handed to idle ones, the
 * counts (threads, idle, searching), the sleeping workers, the adaptive spin
 * budgets (an idle worker's, and one per kind of wait of
 * killable_worker_pool_spin_until(): a joiner's for the end, a joiner's for
 * the worker's release, an owner main loop's for a run_async() outcome);
 * the section gate of fork() (killable-fork.c): how many library threads are
 * inside a section; the one worker thread that has left the pool and is
 * not yet joined (workers are plain pthreads: an exiting worker joins the
 * one before it, fork()'s first handler and the process's exit join the
 * last one, bounded, so that no thread is inside GLib's exit code when the
 * process forks).
 * Locks: pool_lock guards the job list, the counts, the sleeping workers,
 * each worker's claimed flag and the free Worker records (n_queued is also
 * read without it, atomically, by spinning workers; each worker's futex word
 * is atomic). gate_lock the gate's waits (its counters are atomics) and the
 * exited worker's slot. Leaf locks.
 * Called by: killable-task.c (a task's work, its end as a section, the spins
 * of join), killable-owner.c (the spin of a main loop awaiting an outcome),
 * killable-timer.c (timer dispatchers, each timer function a section),
 * killable-fork.c (fork handlers). Calls nothing of the library.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE   /* sched_getaffinity() */
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "killable-worker-pool-private.h"

/* Jobs and threads {{{
 *
 * A job never waits behind another: it is queued only when an idle thread
 * (not running a job) is there for it, n_queued <= n_idle at all times;
 * otherwise it gets a new thread at once. So a parent task that waits for
 * its children can never starve them (the livelock of a bounded pool). A
 * thread that stays idle for idle_timeout exits, unless a queued job needs
 * it.
 *
 * Which idle thread runs a queued job is Go's scheduler's "searching
 * thread" rule: a worker that finished its job searches the list for a
 * moment (spins, a bounded and adaptive time, see "Spinning") before it
 * sleeps on its futex. A job queued while nobody searches wakes one
 * sleeping worker, which then searches; a worker that takes a job while
 * others are still queued and nobody searches wakes one more (before it
 * runs its job, so no queued job waits for a running one). A burst of short
 * jobs is so run by the few threads that are awake, with few wake-ups, and
 * a task started right after another ended finds a worker spinning: no
 * system call on either side.
 */

typedef struct
{
  GFunc    func;
  gpointer data;
} Job;

typedef struct _Worker Worker;

struct _Worker
{
  gint      futex;      /* (atomic) 1 once woken; reset to 0 under pool_lock before each sleep */
  gboolean  claimed;    /* protected by pool_lock: taken off the sleepers by a waker, counted in n_searching */
  gboolean  sleeping;   /* protected by pool_lock: in sleepers */
  Worker   *next;       /* protected by pool_lock: in sleepers, or in free_workers */
  Worker   *prev;       /* protected by pool_lock: in sleepers */
  Job       first;      /* the job a new thread starts with */
  GFunc     after;      /* worker thread only: killable_worker_pool_after_job() */
  gpointer  after_data;
};

static __thread Worker *current_worker;

static GMutex pool_lock;
/* The queued jobs: a ring buffer, protected by pool_lock (n_queued is
 * written under it with atomics, and read without it by spinners). */
static Job *ring;
static guint ring_size, ring_head;
static gint n_queued;
static guint n_threads;     /* protected by pool_lock */
static guint n_idle;        /* protected by pool_lock: threads not running a job */
static guint n_searching;   /* protected by pool_lock: spinning, or woken and not yet looking */
static gint n_running;      /* (atomic) threads running a job (written under pool_lock) */
static Worker *sleepers;    /* protected by pool_lock: most recently asleep first */
/* Records of exited threads, reused by new ones: a waker may still write
 * the futex word of a worker that went on meanwhile, so a record is never
 * freed (a stray wake-up is harmless: the sleeper looks at its claimed
 * flag). Bounded by the most threads the process ever had at once. */
static Worker *free_workers;
static gint64 idle_timeout = 15 * G_USEC_PER_SEC;   /* protected by pool_lock */
/* (atomic) Workers that left the count of threads and are not joined
 * yet (see thread_exiting()). */
static gint n_unjoined;

static guint n_cpus;        /* set once (g_once): CPUs this process may run on */

static guint
get_n_cpus (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once))
    {
      cpu_set_t set;
      int n = 0;

      if (sched_getaffinity (0, sizeof set, &set) == 0)
        n = CPU_COUNT (&set);
      if (n <= 0)
        n = (int) sysconf (_SC_NPROCESSORS_ONLN);
      n_cpus = (guint) MAX (n, 1);
      g_once_init_leave (&once, 1);
    }

  return n_cpus;
}

static inline gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__)
  __asm__ __volatile__ ("yield" ::: "memory");
#else
  __asm__ __volatile__ ("" ::: "memory");
#endif
}

static void
futex_wait (gint   *word,
            gint    value,
            gint64  timeout_usec)
{
  struct timespec ts;

  ts.tv_sec = timeout_usec / G_USEC_PER_SEC;
  ts.tv_nsec = (timeout_usec % G_USEC_PER_SEC) * 1000;
  syscall (SYS_futex, word, FUTEX_WAIT_PRIVATE, value, &ts, NULL, 0);
}

static void
futex_wake (gint *word)
{
  syscall (SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* }}} */

/* Spinning {{{
 *
 * A spin pays when what it waits for comes within a few microseconds (the
 * next task of a loop, the end of a short task), and costs a whole CPU
 * otherwise, which on a loaded machine is taken from the very thread that
 * would end the wait. So each kind of wait (an idle worker's, and each
 * KillableWorkerPoolSpin: a joiner's, a joiner's for the worker to let go
 * of the task, an owner main loop's) keeps a budget learned from what its
 * last waits took:
 *
 * - a spin that was not long enough halves it (below SPIN_MIN_NS: no spin);
 * - a spin that was descheduled (a gap between two looks far above what
 *   the loop takes: another thread needed this CPU) counts as failed at once;
 * - a wait that slept but ended within SPIN_MAX_NS (the wake-up of a sleeper
 *   measures it; a joiner that did not spin probes every SPIN_PROBE_EVERY
 *   waits) sets it to twice that wait;
 * - nothing spins on a single CPU, nor while the machine's runnable
 *   threads fill its CPUs (machine_has_room()).
 *
 * On an idle machine the budgets stay up and a hand-off costs no system
 * call; on a loaded one they fall to 0 within a few waits, and the pool is
 * back to the futex hand-off of a plain thread pool. An idle process burns
 * no CPU: a worker spins once, at most SPIN_MAX_NS, after its last job.
 */

#define SPIN_MAX_NS       (20 * 1000)
#define SPIN_MIN_NS       (1000)
/* After this long the spin yields the CPU between looks. */
#define SPIN_YIELD_NS     (5 * 1000)
/* A look that took longer than this was descheduled. */
#define SPIN_PREEMPTED_NS (20 * 1000)
#define SPIN_PROBE_EVERY  16

/* How often the machine's load is looked at (by a thread about to spin). */
#define LOAD_SAMPLE_MS    2

static gint load_sampled_at;     /* (atomic) in ms of now_ns(), wrapping */
static gint load_has_room = 1;   /* (atomic) */

/* Whether a CPU is free for a spin: the runnable threads of the whole
 * machine now (the 4th field of /proc/loadavg, this thread and the one it
 * waits for included) fit in this process's CPUs. Sampled at most every
 * LOAD_SAMPLE_MS; a spinner on a saturated machine takes the CPU that the
 * thread it waits for needs. Not the one-minute load average: it counts
 * this process's own past bursts (64 tasks in flight keep it above the
 * CPUs for a minute), which turned spinning off long after the CPUs were
 * free again (start + join one at a time: 17-19 µs with it, 8-9 µs
 * without, same machine and run). Spins that do not pay off still halve
 * their budget (spin_failed()). */
static gboolean
machine_has_room (void)
{
  gint now = (gint) (guint) (now_ns () / 1000000);
  gint then = g_atomic_int_get (&load_sampled_at);
  char buf[128];
  const char *slash;
  ssize_t len;
  int fd;
  gint64 runnable;
  gboolean room;

  if ((guint) now - (guint) then < LOAD_SAMPLE_MS ||
      !g_atomic_int_compare_and_exchange (&load_sampled_at, then, now))
    return g_atomic_int_get (&load_has_room);

  fd = open ("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return g_atomic_int_get (&load_has_room);
  len = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (len <= 0)
    return g_atomic_int_get (&load_has_room);
  buf[len] = '\0';

  /* "0.52 0.58 0.59 3/512 12345": the load average over a minute, then
   * runnable/total now */
  slash = strchr (buf, '/');
  if (slash == NULL)
    return g_atomic_int_get (&load_has_room);
  while (slash > buf && g_ascii_isdigit (slash[-1]))
    slash--;
  runnable = g_ascii_strtoll (slash, NULL, 10);
  room = runnable <= (gint64) n_cpus;
  g_atomic_int_set (&load_has_room, room);

  return room;
}

typedef struct
{
  gint budget_ns;   /* (atomic) */
  gint probe;       /* (atomic) waits since the budget fell to 0 */
} SpinPolicy;

static SpinPolicy idle_spin = { SPIN_MAX_NS, 0 };
/* One per KillableWorkerPoolSpin. */
static SpinPolicy wait_spins[KILLABLE_WORKER_POOL_N_SPINS] = {
  { SPIN_MAX_NS, 0 }, { SPIN_MAX_NS, 0 }, { SPIN_MAX_NS, 0 },
};

static void
spin_failed (SpinPolicy *policy)
{
  gint budget = g_atomic_int_get (&policy->budget_ns) / 2;

  g_atomic_int_set (&policy->budget_ns, budget < SPIN_MIN_NS ? 0 : budget);
}

/* A wait that ended after @wait_ns: spinning that long pays. */
static void
spin_paid (SpinPolicy *policy,
           gint64      wait_ns)
{
  gint budget = g_atomic_int_get (&policy->budget_ns);

  if (wait_ns >= SPIN_MAX_NS || 2 * wait_ns <= budget)
    return;
  g_atomic_int_set (&policy->budget_ns, (gint) MIN (SPIN_MAX_NS, MAX (SPIN_MIN_NS, 2 * wait_ns)));
}

/* Spins until @done (@data) (TRUE) or for at most @budget_ns (FALSE:
 * the policy learned it). */
static gboolean
spin (SpinPolicy               *policy,
      KillableWorkerPoolSpinDone done,
      gconstpointer             data,
      gint                      budget_ns)
{
  gint64 start = now_ns (), last = start;

  for (guint i = 1;; i++)
    {
      if (done (data))
        {
          spin_paid (policy, now_ns () - start);
          return TRUE;
        }
      cpu_relax ();
      if (i % 16 == 0)
        {
          gint64 t = now_ns ();

          if (t - start >= budget_ns || t - last >= SPIN_PREEMPTED_NS)
            break;
          last = t;
          if (t - start >= SPIN_YIELD_NS)
            sched_yield ();
        }
    }

  spin_failed (policy);
  return FALSE;
}

gboolean
killable_worker_pool_has_free_cpu (void)
{
  return get_n_cpus () > 1 && (guint) g_atomic_int_get (&n_running) < n_cpus;
}

/* Spins a moment until @done (@data) (a joiner waiting for a task's
 * terminal state, or for its worker to let go of it; a main loop waiting
 * for an outcome); TRUE when it came. */
gboolean
killable_worker_pool_spin_until (KillableWorkerPoolSpin     kind,
                                 KillableWorkerPoolSpinDone done,
                                 gconstpointer              data)
{
  SpinPolicy *policy;
  gint budget;

  g_return_val_if_fail ((guint) kind < KILLABLE_WORKER_POOL_N_SPINS, FALSE);

  /* The running jobs have a CPU each, and this thread one more. */
  if (!killable_worker_pool_has_free_cpu () || !machine_has_room ())
    return FALSE;

  policy = &wait_spins[kind];
  budget = g_atomic_int_get (&policy->budget_ns);
  if (budget == 0)
    {
      if (g_atomic_int_add (&policy->probe, 1) % SPIN_PROBE_EVERY != SPIN_PROBE_EVERY - 1)
        return FALSE;
      budget = SPIN_MAX_NS;
    }

  return spin (policy, done, data, budget);
}

/* }}} */

/* The job list {{{ */

static gboolean
job_queued (gconstpointer unused)
{
  return g_atomic_int_get (&n_queued) > 0;
}

static void
queue_push_locked (GFunc    func,
                   gpointer data)
{
  guint n = (guint) n_queued;

  if (n == ring_size)
    {
      guint new_size = MAX (64, ring_size * 2);
      Job *new_ring = g_new (Job, new_size);

      for (guint i = 0; i < n; i++)
        new_ring[i] = ring[(ring_head + i) % ring_size];
      g_free (ring);
      ring = new_ring;
      ring_size = new_size;
      ring_head = 0;
    }

  ring[(ring_head + n) % ring_size] = (Job) { func, data };
  g_atomic_int_set (&n_queued, (gint) n + 1);
}

/* Takes a sleeping worker off the list to search for the queued jobs: the
 * caller wakes it after unlocking (wake_worker()). */
static Worker *
claim_sleeper_locked (void)
{
  Worker *worker = sleepers;

  if (worker == NULL)
    return NULL;

  sleepers = worker->next;
  if (sleepers != NULL)
    sleepers->prev = NULL;
  worker->next = worker->prev = NULL;
  worker->sleeping = FALSE;
  worker->claimed = TRUE;
  n_searching++;

  return worker;
}

static void
wake_worker (Worker *worker)
{
  if (worker != NULL)
    {
      g_atomic_int_set (&worker->futex, 1);
      futex_wake (&worker->futex);
    }
}

/* The calling idle thread (not counted in n_searching) takes the first
 * queued job, if any; *@to_wake is the worker to wake after unlocking. */
static gboolean
take_job_locked (Job     *job,
                 Worker **to_wake)
{
  guint n = (guint) n_queued;

  *to_wake = NULL;
  if (n == 0)
    return FALSE;

  *job = ring[ring_head];
  ring_head = (ring_head + 1) % ring_size;
  g_atomic_int_set (&n_queued, (gint) n - 1);
  n_idle--;
  g_atomic_int_inc (&n_running);

  /* Others still wait and nobody looks for them: one more thread. */
  if (n > 1 && n_searching == 0)
    *to_wake = claim_sleeper_locked ();

  return TRUE;
}

static void
sleepers_remove_locked (Worker *worker)
{
  if (worker->prev != NULL)
    worker->prev->next = worker->next;
  else
    sleepers = worker->next;
  if (worker->next != NULL)
    worker->next->prev = worker->prev;
  worker->next = worker->prev = NULL;
  worker->sleeping = FALSE;
}

/* Sleeps until claimed (TRUE) or idle for idle_timeout with no queued job
 * needing this thread (FALSE: it is no longer counted, and must exit).
 * Called and returns with pool_lock held. */
static gboolean
sleep_locked (Worker *worker,
              gint64  idle_since_usec)
{
  worker->next = sleepers;
  worker->prev = NULL;
  if (sleepers != NULL)
    sleepers->prev = worker;
  sleepers = worker;
  worker->sleeping = TRUE;

  for (;;)
    {
      gint64 left;

      g_atomic_int_set (&worker->futex, 0);
      /* idle_timeout is read on each wake-up, so a new value applies at once */
      left = idle_since_usec + idle_timeout - g_get_monotonic_time ();
      if (left > 0)
        {
          g_mutex_unlock (&pool_lock);
          futex_wait (&worker->futex, 0, left);
          g_mutex_lock (&pool_lock);
        }

      if (worker->claimed)
        {
          worker->claimed = FALSE;
          n_searching--;
          return TRUE;
        }

      if (left > 0 && idle_since_usec + idle_timeout > g_get_monotonic_time ())
        continue;   /* a stray wake-up, or a new idle_timeout */

      /* Idle for too long: leave, unless a queued job counts on this
       * thread (then it is as good as claimed). */
      sleepers_remove_locked (worker);
      if ((guint) n_queued < n_idle)
        {
          n_idle--;
          n_threads--;
          g_atomic_int_inc (&n_unjoined);
          worker->next = free_workers;
          free_workers = worker;
          return FALSE;
        }
      return TRUE;
    }
}

/* Waits for the next job of @worker: FALSE when it idled for too long and
 * must exit (its record is then free). */
static gboolean
next_job (Worker *worker,
          Job    *job)
{
  Worker *to_wake;
  GFunc after = worker->after;
  gint64 idle_since = now_ns ();
  gint budget;
  gboolean may_spin;
  /* Outside the lock: now and then it reads /proc. */
  gboolean room = get_n_cpus () > 1 && machine_has_room ();

  g_mutex_lock (&pool_lock);
  n_idle++;
  g_atomic_int_add (&n_running, -1);

  /* Idle from here on: what the job asked to run after it (a limiter
   * permit given back) can hand a job to this very thread, which looks
   * for it next: counted as searching, so no sleeper is woken for it. */
  if (after != NULL)
    {
      gpointer after_data = worker->after_data;

      worker->after = NULL;
      worker->after_data = NULL;
      n_searching++;
      g_mutex_unlock (&pool_lock);
      after (after_data, NULL);
      g_mutex_lock (&pool_lock);
      n_searching--;
    }

  if (take_job_locked (job, &to_wake))
    {
      g_mutex_unlock (&pool_lock);
      wake_worker (to_wake);
      return TRUE;
    }

  budget = g_atomic_int_get (&idle_spin.budget_ns);
  may_spin = room && budget > 0 && n_searching < MAX (1, n_cpus - 1);
  if (may_spin)
    {
      n_searching++;
      g_mutex_unlock (&pool_lock);
      spin (&idle_spin, job_queued, NULL, budget);
      g_mutex_lock (&pool_lock);
      n_searching--;
      /* Also after a failed spin: this thread was counted as searching, so
       * a job queued meanwhile woke nobody. */
      if (take_job_locked (job, &to_wake))
        {
          g_mutex_unlock (&pool_lock);
          wake_worker (to_wake);
          return TRUE;
        }
    }

  for (;;)
    {
      if (!sleep_locked (worker, g_get_monotonic_time ()))
        {
          g_mutex_unlock (&pool_lock);
          return FALSE;
        }
      if (take_job_locked (job, &to_wake))
        {
          g_mutex_unlock (&pool_lock);
          wake_worker (to_wake);
          /* A sleep that ended this soon: spinning (longer) would have
           * paid. */
          spin_paid (&idle_spin, now_ns () - idle_since);
          return TRUE;
        }
      /* Woken, but another thread took the job: back to sleep. */
    }
}

static void thread_exiting (void);

static gpointer
worker_main (gpointer user_data)
{
  Worker *worker = user_data;
  Job job = worker->first;

  pthread_setname_np (pthread_self (), "killable-worker");
  /* GLib gives a thread its GThread on first use (g_thread_self(), a
   * GSlice block that GMainContext and others ask for): here, in a
   * section, rather than on first use somewhere outside one. */
  killable_worker_pool_section_enter ();
  (void) g_thread_self ();
  killable_worker_pool_section_leave ();

  current_worker = worker;
  worker->first = (Job) { NULL, NULL };

  do
    job.func (job.data, NULL);
  while (next_job (worker, &job));

  current_worker = NULL;
  thread_exiting ();

  return NULL;
}

gboolean
killable_worker_pool_run (GFunc     func,
                          gpointer  data,
                          GError  **error)
{
  Worker *worker;
  pthread_t thread;
  int err;

  g_mutex_lock (&pool_lock);

  /* An idle thread is there for it: queued, for a searching worker or one
   * woken now. */
  if ((guint) n_queued < n_idle)
    {
      Worker *to_wake = NULL;

      queue_push_locked (func, data);
      if (n_searching == 0)
        to_wake = claim_sleeper_locked ();
      g_mutex_unlock (&pool_lock);
      wake_worker (to_wake);
      return TRUE;
    }

  /* None: a new thread, at once. */
  worker = free_workers;
  if (worker != NULL)
    free_workers = worker->next;
  else
    worker = g_new0 (Worker, 1);
  worker->next = NULL;
  worker->first = (Job) { func, data };
  n_threads++;
  g_atomic_int_inc (&n_running);
  g_mutex_unlock (&pool_lock);

  /* A thread of our own, not a GThread: g_thread_try_new() takes a GSlice
   * block (GLib 2.74), which a fork() copying GSlice's lock held would
   * leave locked in the child. */
  err = pthread_create (&thread, NULL, worker_main, worker);
  if (err != 0)
    {
      /* GLib's own message (and translation) for this failure. */
      g_set_error (error, G_THREAD_ERROR, G_THREAD_ERROR_AGAIN,
                   g_dgettext ("glib20", "Error creating thread: %s"), g_strerror (err));
      g_mutex_lock (&pool_lock);
      n_threads--;
      g_atomic_int_add (&n_running, -1);
      worker->first = (Job) { NULL, NULL };
      worker->next = free_workers;
      free_workers = worker;
      g_mutex_unlock (&pool_lock);
      return FALSE;
    }

  return TRUE;
}

/* From a job running on a pool thread: @func (@data) runs on this thread
 * once it is back among the idle workers (at most one per job). Returns
 * FALSE, and nothing is scheduled, elsewhere. */
gboolean
killable_worker_pool_after_job (GFunc    func,
                                gpointer data)
{
  Worker *worker = current_worker;

  if (worker == NULL || worker->after != NULL)
    return FALSE;

  worker->after = func;
  worker->after_data = data;

  return TRUE;
}

guint
killable_worker_pool_get_n_threads (void)
{
  guint ret;

  g_mutex_lock (&pool_lock);
  ret = n_threads;
  g_mutex_unlock (&pool_lock);

  return ret;
}

guint
killable_worker_pool_get_n_idle (void)
{
  guint ret;

  g_mutex_lock (&pool_lock);
  ret = n_idle;
  g_mutex_unlock (&pool_lock);

  return ret;
}

void
killable_worker_pool_set_idle_timeout (gint64 usec)
{
  g_mutex_lock (&pool_lock);
  idle_timeout = usec;
  /* Wake the sleepers so that they apply the new timeout now. */
  for (Worker *w = sleepers; w != NULL; w = w->next)
    {
      g_atomic_int_set (&w->futex, 1);
      futex_wake (&w->futex);
    }
  g_mutex_unlock (&pool_lock);
}

/* }}} */

/* fork() {{{
 *
 * pool_lock is held across fork() (killable-fork.c), so the child's copy of
 * the job list and counts is consistent. In the child no worker thread
 * exists: the sleepers are forgotten, and so are the queued jobs (like the
 * job of a busy thread, they run in the parent only: their tasks stay
 * RUNNING in the child); the counts restart at 0 (or at one running thread,
 * when a job forked), so the next job gets a new thread. The records of the
 * sleepers and of busy threads are leaked there, never touched.
 */

/* The section gate: see killable-fork.c. A fork waits this long at most
 * for library threads inside a GObject section (a bound, because Python
 * holds its GIL across os.fork() and a section may wait for it): 100 ms
 * left a child hung in 1 of about 2 400 forks under AddressSanitizer on a
 * loaded machine, 1 s none in 2 400. */
#define SECTION_WAIT_USEC (1000 * G_TIME_SPAN_MILLISECOND)

static GMutex gate_lock;
static GCond gate_cond;
static gint gate_active;     /* (atomic) library threads inside a section */
static gint gate_forking;    /* (atomic) a fork() is being prepared */
static __thread guint section_depth;   /* this thread's sections, nested */
/* The worker that exited last, not yet joined (protected by gate_lock):
 * after its function returns, a thread still runs GLib's clean-ups (its
 * GThread and GSlice's per-thread caches go back under GSlice's locks), so
 * a fork waits until it is gone, and each exiting worker joins the one
 * before it. */
static pthread_t exited_thread;
static gboolean have_exited;

/* A thread leaves the gate's count: the last one out wakes a fork that
 * waits for the count to drop. */
static void
gate_out (void)
{
  if (g_atomic_int_dec_and_test (&gate_active) && g_atomic_int_get (&gate_forking))
    {
      g_mutex_lock (&gate_lock);
      g_cond_broadcast (&gate_cond);
      g_mutex_unlock (&gate_lock);
    }
}

/* Sections nest: an inner one never waits for a fork (the fork would be
 * waiting for the outer one). */
void
killable_worker_pool_section_enter (void)
{
  if (section_depth++ > 0)
    return;

  for (;;)
    {
      g_atomic_int_inc (&gate_active);
      if (G_LIKELY (!g_atomic_int_get (&gate_forking)))
        return;

      /* A fork is being prepared: wait outside until it is done. */
      gate_out ();
      g_mutex_lock (&gate_lock);
      while (g_atomic_int_get (&gate_forking))
        g_cond_wait (&gate_cond, &gate_lock);
      g_mutex_unlock (&gate_lock);
    }
}

void
killable_worker_pool_section_leave (void)
{
  g_assert (section_depth > 0);
  if (--section_depth > 0)
    return;

  gate_out ();
}

/* For tests: whether a fork() is being prepared (from the first fork
 * handler until the last). */
gboolean
killable_worker_pool_is_fork_pending (void)
{
  return g_atomic_int_get (&gate_forking) != 0;
}

/* A worker thread about to return: from here on, a fork waits until the
 * thread is gone (see exited_thread). */
static void
thread_exiting (void)
{
  pthread_t prev = 0;
  gboolean have_prev;

  g_mutex_lock (&gate_lock);
  while (g_atomic_int_get (&gate_forking))
    g_cond_wait (&gate_cond, &gate_lock);
  have_prev = have_exited;
  if (have_prev)
    prev = exited_thread;
  exited_thread = pthread_self ();
  have_exited = TRUE;
  g_mutex_unlock (&gate_lock);

  if (have_prev && pthread_join (prev, NULL) == 0)
    g_atomic_int_add (&n_unjoined, -1);
}

/* Joins the exited worker, if any, waiting @usec at most. Called with
 * gate_lock held. */
static void
join_exited_locked (gint64 usec)
{
  struct timespec abs;

  if (!have_exited)
    return;

  clock_gettime (CLOCK_REALTIME, &abs);
  abs.tv_sec += usec / G_USEC_PER_SEC;
  abs.tv_nsec += (usec % G_USEC_PER_SEC) * 1000;
  if (abs.tv_nsec >= 1000000000)
    {
      abs.tv_sec++;
      abs.tv_nsec -= 1000000000;
    }
  if (pthread_timedjoin_np (exited_thread, NULL, &abs) == 0)
    {
      have_exited = FALSE;
      g_atomic_int_add (&n_unjoined, -1);
    }
}

/* For tests: joins the last exited worker (bounded) and returns how many
 * workers that left the pool are still not joined (0: every one of them
 * is gone from the process). */
guint
killable_worker_pool_reap_exited (void)
{
  g_mutex_lock (&gate_lock);
  join_exited_locked (G_USEC_PER_SEC);
  g_mutex_unlock (&gate_lock);

  return (guint) g_atomic_int_get (&n_unjoined);
}

/* At exit: the last exited worker is joined too (bounded), so that no
 * finished thread is left unjoined (ThreadSanitizer reports one). */
static void __attribute__((destructor))
join_last_exited (void)
{
  if (!g_mutex_trylock (&gate_lock))
    return;

  join_exited_locked (G_USEC_PER_SEC);
  g_mutex_unlock (&gate_lock);
}

/* First of the fork handlers: waits (bounded) until no library thread is
 * inside a section and the last exiting worker is gone, and keeps new ones
 * out until killable_worker_pool_fork_resume(). */
void
killable_worker_pool_fork_quiesce (void)
{
  gint64 end = g_get_monotonic_time () + SECTION_WAIT_USEC;

  g_mutex_lock (&gate_lock);
  g_atomic_int_set (&gate_forking, 1);
  /* Not for the forking thread's own section, if it is in one. */
  while (g_atomic_int_get (&gate_active) > (section_depth > 0 ? 1 : 0))
    {
      if (!g_cond_wait_until (&gate_cond, &gate_lock, end))
        break;
    }

  join_exited_locked (MAX (end - g_get_monotonic_time (), 0));
  /* gate_lock stays held until killable_worker_pool_fork_resume(). */
}

void
killable_worker_pool_fork_resume (gboolean in_child)
{
  if (in_child)
    {
      /* The threads that were inside a section are gone, so are the
       * waiters and the exited thread; only this thread's own section (a
       * fork from a signal handler, say) is left. */
      g_atomic_int_set (&gate_active, section_depth > 0 ? 1 : 0);
      memset (&gate_cond, 0, sizeof gate_cond);
      have_exited = FALSE;
      g_atomic_int_set (&n_unjoined, 0);
    }
  g_atomic_int_set (&gate_forking, 0);
  g_cond_broadcast (&gate_cond);
  g_mutex_unlock (&gate_lock);
}

void
killable_worker_pool_fork_prepare (void)
{
  g_mutex_lock (&pool_lock);
}

void
killable_worker_pool_fork_parent (void)
{
  g_mutex_unlock (&pool_lock);
}

void
killable_worker_pool_fork_child (void)
{
  /* A job that forked: its thread is the child's only one, and comes back
   * to the pool when the job returns. */
  guint n = current_worker != NULL ? 1 : 0;

  sleepers = NULL;
  g_atomic_int_set (&n_queued, 0);
  ring_head = 0;
  n_threads = n;
  n_idle = 0;
  n_searching = 0;
  g_atomic_int_set (&n_running, (gint) n);

  g_mutex_unlock (&pool_lock);
}

/* }}} */
