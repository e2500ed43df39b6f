/* bench-cxx.cc: the C++ baselines of the stop-callback figures (issue 13)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libstdc++'s std::stop_source / std::stop_token / std::stop_callback
 * (C++20), measured in the same process as libkillable, called from
 * bench-killable.c through the C functions below. Built only when a C++20
 * compiler with <stop_token> is found (tests/bench/meson.build); otherwise
 * bench-killable.c reports the rows as "not built".
 */

#include <chrono>
#include <memory>
#include <stop_token>
#include <vector>

#include "bench-cxx.h"

namespace {

struct Counter
{
  unsigned long n = 0;
};

struct Bump
{
  Counter *counter;
  void operator() () const noexcept { counter->n++; }
};

struct RequestChild
{
  std::stop_source *child;
  void operator() () const noexcept { child->request_stop (); }
};

inline long long
now_ns ()
{
  return std::chrono::duration_cast<std::chrono::nanoseconds> (
    std::chrono::steady_clock::now ().time_since_epoch ()).count ();
}

}  // namespace

extern "C" double
bench_cxx_stop_callback_add_remove (unsigned long n)
{
  std::stop_source source;
  std::stop_token token = source.get_token ();
  Counter counter;
  long long t0, t1;

  t0 = now_ns ();
  for (unsigned long i = 0; i < n; i++)
    {
      /* registered by the constructor, removed by the destructor */
      std::stop_callback<Bump> cb (token, Bump { &counter });
    }
  t1 = now_ns ();

  return static_cast<double> (t1 - t0) / static_cast<double> (n);
}

/* Registers @n callbacks (allocated, as libkillable's are), then times
 * request_stop() alone; returns ns per callback. The callbacks are freed
 * after the clock stopped. */
extern "C" double
bench_cxx_request_stop (unsigned long n,
                        unsigned long *ran)
{
  std::stop_source source;
  std::stop_token token = source.get_token ();
  Counter counter;
  std::vector<std::unique_ptr<std::stop_callback<Bump>>> callbacks;
  long long t0, t1;

  callbacks.reserve (n);
  for (unsigned long i = 0; i < n; i++)
    callbacks.push_back (std::make_unique<std::stop_callback<Bump>> (token, Bump { &counter }));

  t0 = now_ns ();
  source.request_stop ();
  t1 = now_ns ();

  *ran = counter.n;
  callbacks.clear ();

  return static_cast<double> (t1 - t0) / static_cast<double> (n);
}

extern "C" double
bench_cxx_tree_stop (unsigned long  n,
                     double        *request_ns,
                     unsigned long *stopped)
{
  std::stop_source root;
  std::stop_token token = root.get_token ();
  std::vector<std::unique_ptr<std::stop_source>> children;
  std::vector<std::unique_ptr<std::stop_callback<RequestChild>>> links;
  long long t0, t1, t2;

  children.reserve (n);
  links.reserve (n);
  for (unsigned long i = 0; i < n; i++)
    {
      children.push_back (std::make_unique<std::stop_source> ());
      links.push_back (std::make_unique<std::stop_callback<RequestChild>> (
        token, RequestChild { children.back ().get () }));
    }

  t0 = now_ns ();
  root.request_stop ();
  t1 = now_ns ();

  *stopped = 0;
  for (const auto &child : children)
    *stopped += child->stop_requested () ? 1 : 0;

  /* Counting is not part of the timing: restart the clock for the frees. */
  t2 = now_ns ();
  links.clear ();
  children.clear ();
  t2 = now_ns () - t2;

  *request_ns = static_cast<double> (t1 - t0);
  return static_cast<double> (t1 - t0 + t2);
}
