/* killable-text-private.h: where the requesting side of a stop is placed
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

/* KILLABLE_STOP_PATH marks the functions that a stop or an interrupt of a
 * started leaf task runs on the requesting thread. Those calls are rare, so
 * their code is cold when they come: a Python owner makes them right after
 * it took the GIL back from a busy worker, its CPU having sat idle, and the
 * call's time is then mostly the cache and TLB misses of what it touches.
 * Spread over the library's text, a leaf interrupt touched 8 of its pages.
 * GCC places functions marked hot in .text.hot (-freorder-functions, on
 * from -O2), which the linker keeps together: 2 pages. The attribute also
 * lets GCC optimize them for speed, which is what they are for. */
#if defined(__GNUC__) && !defined(__clang__)
#define KILLABLE_STOP_PATH __attribute__ ((hot))
#else
#define KILLABLE_STOP_PATH
#endif
