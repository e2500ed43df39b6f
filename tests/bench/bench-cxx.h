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

#ifdef __cplusplus
}
#endif
