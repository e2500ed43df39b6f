/* killable-cgroup.c: leaf cgroups for process tasks (cgroup v2)
 *
 * Owns: finding a writable cgroup v2 directory that can hold the library's
 * leaf cgroups (the application's, $KILLABLE_CGROUP_ROOT, or found from
 * /proc/self/mountinfo and the process's own cgroup), creating, limiting
 * and removing leaves.
 * Locks: one static lock guards the cached default directory; a leaf lock.
 * Called by: killable-process-task.c. Calls nothing of the library: a leaf.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gi18n-lib.h>

#include "killable-cgroup-private.h"

/* "\040" and friends in /proc/self/mountinfo fields. */
static char *
unescape_mount_field (const char *field)
{
  GString *out = g_string_new (NULL);

  for (const char *p = field; *p != '\0'; p++)
    {
      if (p[0] == '\\' && g_ascii_isdigit (p[1]) && g_ascii_isdigit (p[2]) && g_ascii_isdigit (p[3]))
        {
          g_string_append_c (out, (char) ((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0')));
          p += 3;
        }
      else
        g_string_append_c (out, *p);
    }

  return g_string_free (out, FALSE);
}

/* The mount point of the cgroup v2 hierarchy and the root it shows. */
static gboolean
find_cgroup2_mount (char **mount_point,
                    char **mount_root)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/self/mountinfo", &contents, NULL, NULL))
    return FALSE;

  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto(GStrv) fields = g_strsplit (lines[i], " ", -1);
      guint n = g_strv_length (fields);

      for (guint j = 6; j + 1 < n; j++)
        if (strcmp (fields[j], "-") == 0)
          {
            if (strcmp (fields[j + 1], "cgroup2") == 0)
              {
                *mount_root = unescape_mount_field (fields[3]);
                *mount_point = unescape_mount_field (fields[4]);
                return TRUE;
              }
            break;
          }
    }

  return FALSE;
}

/* The caller's cgroup in the v2 hierarchy ("0::/path"). */
static char *
find_own_cgroup (void)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/self/cgroup", &contents, NULL, NULL))
    return NULL;

  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "0::"))
      return g_strdup (lines[i] + 3);

  return NULL;
}

static gboolean
check_base (const char  *base,
            GError     **error)
{
  g_autofree char *procs = g_build_filename (base, "cgroup.procs", NULL);
  g_autofree char *probe = NULL;
  g_autofree char *kill_file = NULL;
  gboolean has_kill;

  if (!g_file_test (procs, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("“%s” is not a cgroup v2 directory"), base);
      return FALSE;
    }
  if (access (base, W_OK) < 0 || access (procs, W_OK) < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   _("The cgroup “%s” is not writable: it needs a delegated cgroup v2 subtree"),
                   base);
      return FALSE;
    }

  /* cgroup.kill is in every non-root cgroup from Linux 5.14 on: look in a
   * probe child, since the root cgroup has none. */
  probe = g_strdup_printf ("%s/killable-probe-%d", base, (int) getpid ());
  if (mkdir (probe, 0755) < 0 && errno != EEXIST)
    {
      int errsv = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Could not create a cgroup in “%s”: %s"), base, g_strerror (errsv));
      return FALSE;
    }
  kill_file = g_build_filename (probe, "cgroup.kill", NULL);
  has_kill = g_file_test (kill_file, G_FILE_TEST_EXISTS);
  (void) rmdir (probe);

  if (!has_kill)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("The cgroups in “%s” have no cgroup.kill (Linux 5.14 or later is needed)"),
                   base);
      return FALSE;
    }

  return TRUE;
}

static char *
find_default_base (GError **error)
{
  const char *env = g_getenv ("KILLABLE_CGROUP_ROOT");
  g_autofree char *mount_point = NULL;
  g_autofree char *mount_root = NULL;
  g_autofree char *own = NULL;
  const char *rel;

  if (env != NULL && env[0] != '\0')
    return g_strdup (env);

  if (!find_cgroup2_mount (&mount_point, &mount_root))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("No cgroup v2 hierarchy is mounted"));
      return NULL;
    }

  own = find_own_cgroup ();
  if (own == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("This process is in no cgroup v2"));
      return NULL;
    }

  /* The mount may show a subtree only (a container's): paths are relative
   * to its root. */
  rel = own;
  if (strcmp (mount_root, "/") != 0 && g_str_has_prefix (own, mount_root))
    rel = own + strlen (mount_root);

  return g_canonicalize_filename (rel[0] == '/' ? rel + 1 : rel, mount_point);
}

char *
killable_cgroup_find_base (const char  *app_dir,
                           GError     **error)
{
  static GMutex lock;
  static gboolean cached;
  static char *cached_base;
  static GError *cached_error;
  char *ret = NULL;

  if (app_dir != NULL)
    return check_base (app_dir, error) ? g_strdup (app_dir) : NULL;

  g_mutex_lock (&lock);
  if (!cached)
    {
      cached_base = find_default_base (&cached_error);
      if (cached_base != NULL && !check_base (cached_base, &cached_error))
        g_clear_pointer (&cached_base, g_free);
      cached = TRUE;
    }
  if (cached_base != NULL)
    ret = g_strdup (cached_base);
  else if (error != NULL)
    *error = g_error_copy (cached_error);
  g_mutex_unlock (&lock);

  return ret;
}

gboolean
killable_cgroup_base_has_controller (const char *base,
                                     const char *controller)
{
  g_autofree char *path = g_build_filename (base, "cgroup.subtree_control", NULL);
  g_autofree char *contents = NULL;
  g_auto(GStrv) names = NULL;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return FALSE;

  names = g_strsplit_set (g_strstrip (contents), " \n", -1);
  return g_strv_contains ((const char * const *) names, controller);
}

static gboolean
write_cgroup_file (const char  *leaf,
                   const char  *name,
                   const char  *value,
                   GError     **error)
{
  g_autofree char *path = g_build_filename (leaf, name, NULL);
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  ssize_t n = -1;
  int errsv;

  if (fd >= 0)
    n = write (fd, value, strlen (value));
  errsv = errno;
  if (fd >= 0)
    close (fd);

  if (n < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Could not write “%s” to “%s”: %s"), value, path, g_strerror (errsv));
      return FALSE;
    }

  return TRUE;
}

char *
killable_cgroup_create_leaf (const char  *base,
                             guint64      memory_limit,
                             guint        max_processes,
                             GError     **error)
{
  static guint counter;
  g_autofree char *leaf = NULL;
  char value[32];

  leaf = g_strdup_printf ("%s/killable-%d-%u", base, (int) getpid (),
                          g_atomic_int_add (&counter, 1));
  if (mkdir (leaf, 0755) < 0)
    {
      int errsv = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Could not create the cgroup “%s”: %s"), leaf, g_strerror (errsv));
      return NULL;
    }

  if (memory_limit > 0)
    {
      g_snprintf (value, sizeof value, "%" G_GUINT64_FORMAT, memory_limit);
      if (!write_cgroup_file (leaf, "memory.max", value, error))
        goto failed;
      /* No swapping around the limit, where swap is accounted. */
      {
        g_autofree char *swap = g_build_filename (leaf, "memory.swap.max", NULL);

        if (g_file_test (swap, G_FILE_TEST_EXISTS) &&
            !write_cgroup_file (leaf, "memory.swap.max", "0", error))
          goto failed;
      }
    }
  if (max_processes > 0)
    {
      g_snprintf (value, sizeof value, "%u", max_processes);
      if (!write_cgroup_file (leaf, "pids.max", value, error))
        goto failed;
    }

  return g_steal_pointer (&leaf);

failed:
  (void) rmdir (leaf);
  return NULL;
}

static gboolean
read_key (const char *leaf,
          const char *file,
          const char *key,
          gint64     *value)
{
  g_autofree char *path = g_build_filename (leaf, file, NULL);
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  gsize key_len = strlen (key);

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return FALSE;

  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (strncmp (lines[i], key, key_len) == 0 && lines[i][key_len] == ' ')
      {
        *value = g_ascii_strtoll (lines[i] + key_len + 1, NULL, 10);
        return TRUE;
      }

  return FALSE;
}

gboolean
killable_cgroup_oom_killed (const char *leaf)
{
  gint64 n = 0;

  return read_key (leaf, "memory.events", "oom_kill", &n) && n > 0;
}

gboolean
killable_cgroup_destroy_leaf (const char *leaf)
{
  g_autofree char *events = g_build_filename (leaf, "cgroup.events", NULL);
  gint64 populated = 0;
  gint64 deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
  int fd;

  if (!g_file_test (leaf, G_FILE_TEST_IS_DIR))
    return TRUE;

  fd = open (events, O_RDONLY | O_CLOEXEC);
  while (read_key (leaf, "cgroup.events", "populated", &populated) && populated != 0)
    {
      struct pollfd pfd = { fd, POLLPRI, 0 };
      gint64 left = deadline - g_get_monotonic_time ();

      if (left <= 0)
        break;
      (void) write_cgroup_file (leaf, "cgroup.kill", "1", NULL);
      /* cgroup.events changes wake a poll for POLLPRI; the timeout is a
       * safety net only. */
      (void) poll (&pfd, fd >= 0 ? 1 : 0, (int) MIN (left / 1000 + 1, 50));
    }
  if (fd >= 0)
    close (fd);

  for (int i = 0; i < 100; i++)
    {
      if (rmdir (leaf) == 0 || errno == ENOENT)
        return TRUE;
      if (errno != EBUSY)
        break;
      g_usleep (10 * 1000);
    }

  return FALSE;
}
