/* test-i18n.c: translated error messages
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Loads the French catalog compiled in the build tree
 * (<builddir>/po/fr/LC_MESSAGES/libkillable-1.mo) and checks that the
 * errors and statuses libkillable hands back are translated, including
 * those with a 64-bit or size_t count (PRIu64 and %zu in their msgids).
 *
 * No French locale needs to be installed: glibc's gettext ignores LANGUAGE
 * only when LC_MESSAGES is the "C" or "POSIX" locale, and C.UTF-8 (built
 * into glibc since 2.35, always present on Debian 12) is neither, so
 * C.UTF-8 + LANGUAGE=fr selects the French catalog.
 */

#include "config.h"

#include <locale.h>
#include <signal.h>

#include <killable.h>

#include "test-core-util.h"

/* The French translations, typed out here on purpose: if fr.po changes,
 * this test must be updated with it. French puts a no-break space (U+00A0)
 * inside the guillemets. */
#define NBSP "\xc2\xa0"
#define FR_TASK            "La tâche «" NBSP "calcul" NBSP "» "
#define FR_STOPPED         FR_TASK "a été arrêtée"
#define FR_INTERRUPTED     FR_TASK "a été interrompue"
#define FR_ALREADY_STARTED FR_TASK "a déjà été démarrée"
#define FR_CHILD_OF_SELF \
  FR_TASK "ne peut être l’enfant ni d’elle-même ni de l’un de ses descendants"
#define FR_NOT_RT_SIGNAL   "Le signal 1 n’est pas un signal temps réel (%d à %d)"
#define FR_NO_PROGRAM \
  "Impossible de trouver le programme «" NBSP "killable-no-such-program" NBSP "» dans PATH"

/* Built with PRIu64 and %zu: a G_GUINT64_FORMAT inside _() cut these
 * msgids short at the macro, and they were never translated. */
#define NNBSP "\xe2\x80\xaf"
#define FR_TRUNCATED(stream, dropped, limit) \
  stream " du programme «" NBSP "sh" NBSP "» tronquée" NBSP ": " dropped \
  " octets au-delà de la limite de capture de " limit " octets ont été écartés"
#define FR_TRUNCATION_STATUS \
  FR_TRUNCATED ("Sortie standard", "3", "5") NNBSP "; " \
  FR_TRUNCATED ("Erreur standard", "5", "5")
#define FR_EXIT_UNDER_LIMIT \
  "Le programme «" NBSP "sh" NBSP "» s’est terminé avec le code de retour 3 " \
  "(sa limite de mémoire est de 536870912 octets par processus)"

typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean running;
} Handshake;

static gboolean
wait_for_stop (KillableTask  *task,
               gpointer       user_data,
               GError       **error)
{
  Handshake *hs = user_data;

  g_mutex_lock (&hs->lock);
  hs->running = TRUE;
  g_cond_signal (&hs->cond);
  g_mutex_unlock (&hs->lock);

  /* Returns FALSE with a cancellation error as soon as the task is
   * stopped; a minute is only a bound. */
  return killable_task_sleep (task, 60 * G_USEC_PER_SEC, error);
}

static void
wait_running (Handshake *hs)
{
  gint64 end = g_get_monotonic_time () + TEST_LIMIT_USEC (10 * G_USEC_PER_SEC);

  g_mutex_lock (&hs->lock);
  while (!hs->running)
    {
      if (!g_cond_wait_until (&hs->cond, &hs->lock, end))
        break;
    }
  g_assert_true (hs->running);
  g_mutex_unlock (&hs->lock);
}

static KillableTask *
start_waiting_task (Handshake *hs)
{
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;

  g_mutex_init (&hs->lock);
  g_cond_init (&hs->cond);
  hs->running = FALSE;

  task = killable_task_new ("calcul", wait_for_stop, hs, NULL);
  g_assert_true (killable_task_start (task, &error));
  g_assert_no_error (error);
  wait_running (hs);

  return g_steal_pointer (&task);
}

static void
clear_handshake (Handshake *hs)
{
  g_mutex_clear (&hs->lock);
  g_cond_clear (&hs->cond);
}

static void
test_catalog_present (void)
{
  const char *localedir = g_getenv ("KILLABLE_LOCALEDIR");
  g_autofree char *mo = NULL;

  g_assert_nonnull (localedir);
  mo = g_build_filename (localedir, "fr", "LC_MESSAGES",
                         GETTEXT_PACKAGE ".mo", NULL);
  if (!g_file_test (mo, G_FILE_TEST_IS_REGULAR))
    g_error ("%s is missing: build the po/ targets first", mo);
}

/* Runs first, before any KillableTask exists: the text domain must be
 * bound by then too. */
static void
test_interrupt_signal_message (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = NULL;

  g_assert_false (killable_set_interrupt_signal (1, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  expected = g_strdup_printf (FR_NOT_RT_SIGNAL, SIGRTMIN, SIGRTMAX);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
test_stop_message (void)
{
  Handshake hs;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;
  const GError *stored;

  task = start_waiting_task (&hs);
  killable_task_stop (task);

  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_STOPPED);
  g_assert_cmpstr (error->message, ==, FR_STOPPED);

  g_assert_cmpint (killable_task_get_state (task), ==,
                   KILLABLE_TASK_STATE_CANCELLED);
  stored = killable_task_get_error (task);
  g_assert_nonnull (stored);
  g_assert_cmpstr (stored->message, ==, FR_STOPPED);

  clear_handshake (&hs);
}

static void
test_interrupt_message (void)
{
  Handshake hs;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;

  task = start_waiting_task (&hs);
  killable_task_interrupt (task);

  g_assert_false (killable_task_join (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_INTERRUPTED);
  g_assert_cmpstr (error->message, ==, FR_INTERRUPTED);

  clear_handshake (&hs);
}

static void
test_misuse_messages (void)
{
  Handshake hs;
  g_autoptr(KillableTask) task = NULL;
  g_autoptr(GError) error = NULL;

  task = start_waiting_task (&hs);

  g_assert_false (killable_task_start (task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_cmpstr (error->message, ==, FR_ALREADY_STARTED);
  g_clear_error (&error);

  g_assert_false (killable_task_add_child (task, task, &error));
  g_assert_error (error, KILLABLE_ERROR, KILLABLE_ERROR_FAILED);
  g_assert_cmpstr (error->message, ==, FR_CHILD_OF_SELF);
  g_clear_error (&error);

  killable_task_stop (task);
  g_assert_false (killable_task_join (task, NULL));

  clear_handshake (&hs);
}

static void
test_process_task_message (void)
{
  const char * const argv[] = { "killable-no-such-program", NULL };
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;

  task = killable_process_task_new (argv, &error);
  g_assert_null (task);
  g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT);
  g_assert_cmpstr (error->message, ==, FR_NO_PROGRAM);
}

static void
test_truncation_status (void)
{
  const char * const argv[] = { "sh", "-c", "printf abcdefgh; printf ABCDEFGHIJ >&2", NULL };
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *status = NULL;

  task = killable_process_task_new (argv, &error);
  g_assert_no_error (error);
  killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_GROUP);
  killable_process_task_set_flags (task, KILLABLE_PROCESS_FLAGS_STDOUT_PIPE |
                                         KILLABLE_PROCESS_FLAGS_STDERR_PIPE);
  killable_process_task_set_capture_limit (task, 5);
  g_assert_true (killable_task_start (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);
  g_assert_true (test_join_guarded (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);

  status = killable_task_dup_status (KILLABLE_TASK (task));
  g_assert_cmpstr (status, ==, FR_TRUNCATION_STATUS);
}

/* RLIMIT_AS, set by the reaper: the exit status comes with the limit. */
static void
test_memory_limit_message (void)
{
  const char * const argv[] = { "sh", "-c", "exit 3", NULL };
  g_autoptr(KillableProcessTask) task = NULL;
  g_autoptr(GError) error = NULL;

  task = killable_process_task_new (argv, &error);
  g_assert_no_error (error);
  killable_process_task_set_containment (task, KILLABLE_CONTAINMENT_REAPER);
  killable_process_task_set_memory_limit (task, 512 * 1024 * 1024);
  g_assert_true (killable_task_start (KILLABLE_TASK (task), &error));
  g_assert_no_error (error);

  g_assert_false (test_join_guarded (KILLABLE_TASK (task), &error));
  g_assert_error (error, G_SPAWN_EXIT_ERROR, 3);
  g_assert_cmpstr (error->message, ==, FR_EXIT_UNDER_LIMIT);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("The library's messages through gettext: the French catalog from the build tree.");

  /* Both must be in place before libkillable binds its text domain (once,
   * on first use). Unless KILLABLE_LOCALEDIR says otherwise, the catalogs
   * are those of the build tree: <builddir>/po, next to <builddir>/tests. */
  if (g_getenv ("KILLABLE_LOCALEDIR") == NULL)
    {
      g_autofree char *po = g_test_build_filename (G_TEST_BUILT, "..", "po", NULL);

      g_setenv ("KILLABLE_LOCALEDIR", po, TRUE);
    }
  g_setenv ("LANGUAGE", "fr", TRUE);
  if (setlocale (LC_ALL, "C.UTF-8") == NULL)
    g_error ("the C.UTF-8 locale is not available");

  g_test_add_func ("/i18n/catalog-present", test_catalog_present);
  g_test_add_func ("/i18n/interrupt-signal", test_interrupt_signal_message);
  g_test_add_func ("/i18n/stop", test_stop_message);
  g_test_add_func ("/i18n/interrupt", test_interrupt_message);
  g_test_add_func ("/i18n/misuse", test_misuse_messages);
  g_test_add_func ("/i18n/process-task", test_process_task_message);
  g_test_add_func ("/i18n/truncation-status", test_truncation_status);
  g_test_add_func ("/i18n/memory-limit", test_memory_limit_message);

  return g_test_run ();
}
