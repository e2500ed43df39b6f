/* killable-error.c: the KILLABLE_ERROR domain and the error builder
 *
 * Owns: the error domain, the text domain binding and the errors the
 * library makes about a task ("Task “%s” was stopped", ...).
 * Locks: none (a once-guard for the text domain).
 * Called by: every module. Calls nothing of the library: a leaf.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include <string.h>

#include <gio/gio.h>

#include "killable-error-private.h"

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

/* The error about task @name for @format, built without printf when the
 * translation of @format is a plain "…%s…" (the usual case): a stop of a
 * large tree makes one per task, and printf was most of its cost. Returns
 * NULL for any other translation (positional arguments, "%%"), which the
 * caller formats with printf. */
static GError *
error_about_task (KillableError  code,
                  const char    *format,
                  const char    *name)
{
  const char *at = strstr (format, "%s");
  gsize prefix, name_len, suffix;
  char *message;
  GError *error;

  if (at == NULL || strchr (format, '%') != at || strchr (at + 2, '%') != NULL)
    return NULL;

  prefix = at - format;
  name_len = strlen (name);
  suffix = strlen (at + 2);
  message = g_malloc (prefix + name_len + suffix + 1);
  memcpy (message, format, prefix);
  memcpy (message + prefix, name, name_len);
  memcpy (message + prefix + name_len, at + 2, suffix + 1);

  /* message is a public field, freed by g_error_free() with g_free(). */
  error = g_error_new_literal (KILLABLE_ERROR, code, "");
  g_free (error->message);
  error->message = message;

  return error;
}

/* Returns the error for @code from a literal @format (kept literal for
 * xgettext and the format checks of the fallback). */
#define RETURN_TASK_ERROR(code, format) \
  G_STMT_START { \
    GError *fast_ = error_about_task ((code), _(format), name); \
    return fast_ != NULL ? fast_ : g_error_new (KILLABLE_ERROR, (code), _(format), name); \
  } G_STMT_END

GError *
killable_error_new_for_task (KillableError  code,
                             const char    *name)
{
  if (name == NULL)
    name = "";

  switch (code)
    {
    case KILLABLE_ERROR_STOPPED:
      RETURN_TASK_ERROR (code, N_("Task “%s” was stopped"));
    case KILLABLE_ERROR_INTERRUPTED:
      RETURN_TASK_ERROR (code, N_("Task “%s” was interrupted"));
    case KILLABLE_ERROR_TIMED_OUT:
      RETURN_TASK_ERROR (code, N_("Task “%s” timed out"));
    case KILLABLE_ERROR_KILLED:
      RETURN_TASK_ERROR (code, N_("Task “%s” was killed"));
    case KILLABLE_ERROR_CHILD_FAILED:
      RETURN_TASK_ERROR (code, N_("A child of task “%s” failed"));
    case KILLABLE_ERROR_FAILED:
    default:
      RETURN_TASK_ERROR (KILLABLE_ERROR_FAILED, N_("Task “%s” failed"));
    }
}

#undef RETURN_TASK_ERROR
