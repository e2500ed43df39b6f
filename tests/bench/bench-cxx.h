/* bench-cxx.h: C entry points of the C++ baselines (bench-cxx.cc)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* ns per std::stop_callback constructed and destroyed */
double bench_cxx_stop_callback_add_remove (unsigned long  n);

/* ns per callback of std::stop_source::request_stop() with @n callbacks
 * registered; *@ran: how many callbacks ran */
double bench_cxx_request_stop             (unsigned long  n,
                                           unsigned long *ran);

/* A root std::stop_source and @n child sources, each linked to the root
 * by a std::stop_callback that requests the child's stop (what linked
 * GCancellables do). Times root.request_stop(): *@request_ns; then the
 * callbacks and sources freed too: returns ns for both. *@stopped: how
 * many children were stopped. */
double bench_cxx_tree_stop                (unsigned long  n,
                                           double        *request_ns,
                                           unsigned long *stopped);

#ifdef __cplusplus
}
#endif
