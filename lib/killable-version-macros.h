/* killable-version-macros.h: symbol visibility and versioning
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined(KILLABLE_INSIDE) && !defined(KILLABLE_COMPILATION)
# error "Only <killable.h> can be included directly."
#endif

#include <glib.h>

#include "killable-version.h"

#if defined(__GNUC__) && (__GNUC__ >= 4)
# define _KILLABLE_EXPORT __attribute__((__visibility__("default")))
#else
# define _KILLABLE_EXPORT
#endif

#define _KILLABLE_EXTERN _KILLABLE_EXPORT extern

#ifdef KILLABLE_DISABLE_DEPRECATION_WARNINGS
# define KILLABLE_DEPRECATED _KILLABLE_EXTERN
# define KILLABLE_DEPRECATED_FOR(f) _KILLABLE_EXTERN
# define KILLABLE_UNAVAILABLE(maj,min) _KILLABLE_EXTERN
#else
# define KILLABLE_DEPRECATED G_DEPRECATED _KILLABLE_EXTERN
# define KILLABLE_DEPRECATED_FOR(f) G_DEPRECATED_FOR(f) _KILLABLE_EXTERN
# define KILLABLE_UNAVAILABLE(maj,min) G_UNAVAILABLE(maj,min) _KILLABLE_EXTERN
#endif

/**
 * KILLABLE_VERSION_1_0:
 *
 * The encoded representation of libkillable 1.0.
 *
 * Since: 1.0
 */
#define KILLABLE_VERSION_1_0 (G_ENCODE_VERSION (1, 0))

/**
 * KILLABLE_VERSION_1_2:
 *
 * The encoded representation of libkillable 1.2.
 *
 * Since: 1.2
 */
#define KILLABLE_VERSION_1_2 (G_ENCODE_VERSION (1, 2))

#define KILLABLE_VERSION_CUR_STABLE \
  (G_ENCODE_VERSION (KILLABLE_MAJOR_VERSION, KILLABLE_MINOR_VERSION))

/**
 * KILLABLE_VERSION_MIN_REQUIRED:
 *
 * Define before including `<killable.h>` to the oldest libkillable version
 * the code must build against; deprecation warnings are emitted only for
 * symbols deprecated in that version or earlier.
 *
 * Since: 1.0
 */
#ifndef KILLABLE_VERSION_MIN_REQUIRED
# define KILLABLE_VERSION_MIN_REQUIRED (KILLABLE_VERSION_CUR_STABLE)
#endif

/**
 * KILLABLE_VERSION_MAX_ALLOWED:
 *
 * Define before including `<killable.h>` to the newest libkillable version
 * whose API the code may use; newer symbols then give compiler warnings.
 *
 * Since: 1.0
 */
#ifndef KILLABLE_VERSION_MAX_ALLOWED
# define KILLABLE_VERSION_MAX_ALLOWED (KILLABLE_VERSION_CUR_STABLE)
#endif

#if KILLABLE_VERSION_MAX_ALLOWED < KILLABLE_VERSION_MIN_REQUIRED
# error "KILLABLE_VERSION_MAX_ALLOWED must be >= KILLABLE_VERSION_MIN_REQUIRED"
#endif

#if KILLABLE_VERSION_MAX_ALLOWED < KILLABLE_VERSION_1_0
# define KILLABLE_AVAILABLE_IN_1_0 KILLABLE_UNAVAILABLE(1, 0)
#else
# define KILLABLE_AVAILABLE_IN_1_0 _KILLABLE_EXTERN
#endif

#if KILLABLE_VERSION_MIN_REQUIRED >= KILLABLE_VERSION_1_0
# define KILLABLE_DEPRECATED_IN_1_0 KILLABLE_DEPRECATED
# define KILLABLE_DEPRECATED_IN_1_0_FOR(f) KILLABLE_DEPRECATED_FOR(f)
#else
# define KILLABLE_DEPRECATED_IN_1_0 _KILLABLE_EXTERN
# define KILLABLE_DEPRECATED_IN_1_0_FOR(f) _KILLABLE_EXTERN
#endif

/* Symbols new in 1.2. Not checked against KILLABLE_VERSION_MAX_ALLOWED
 * until the project version is 1.2 (the default maximum is the current
 * version, 1.0, which would hide them). */
#define KILLABLE_AVAILABLE_IN_1_2 _KILLABLE_EXTERN
