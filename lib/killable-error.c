/* killable-error.c: the KILLABLE_ERROR domain
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "killable-error.h"
#include "killable-task-private.h"

/**
 * killable_error_quark:
 *
 * Gets the quark of the libkillable error domain. Use %KILLABLE_ERROR
 * rather than calling it.
 *
 * This function is thread-safe.
 *
 * Returns: the quark of the %KILLABLE_ERROR domain
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (killable-error-quark, killable_error)

/**
 * killable_error_is_cancellation:
 * @error: (nullable): an error
 *
 * Whether @error says that work was cancelled rather than that it failed:
 * %TRUE for %KILLABLE_ERROR_STOPPED, %KILLABLE_ERROR_INTERRUPTED,
 * %KILLABLE_ERROR_TIMED_OUT, %KILLABLE_ERROR_KILLED,
 * %KILLABLE_ERROR_CHILD_FAILED and %G_IO_ERROR_CANCELLED, so that GIO-style
 * code keeps its habits.
 *
 * This function is thread-safe.
 *
 * Returns: %TRUE if @error is a cancellation
 *
 * Since: 1.0
 */
gboolean
killable_error_is_cancellation (const GError *error)
{
  if (error == NULL)
    return FALSE;

  if (error->domain == KILLABLE_ERROR)
    return error->code != KILLABLE_ERROR_FAILED;

  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* Binds the gettext domain once. `KILLABLE_LOCALEDIR`, when set and not
 * empty, replaces the installed locale directory: the tests use it to load
 * the catalogs compiled in the build tree (`<builddir>/po`). */
void
killable_i18n_init (void)
{
  static gsize initialized;

  if (g_once_init_enter (&initialized))
    {
      const char *localedir = g_getenv ("KILLABLE_LOCALEDIR");

      if (localedir == NULL || localedir[0] == '\0')
        localedir = LOCALEDIR;
      bindtextdomain (GETTEXT_PACKAGE, localedir);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      g_once_init_leave (&initialized, 1);
    }
}
