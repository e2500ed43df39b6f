#include <killable.h>

static gboolean
count_primes (KillableTask *task, gpointer user_data, GError **error)
{
  guint found = 0;

  for (guint n = 2; n < 50000000; n++)
    {
      gboolean prime = TRUE;

      if (n % 4096 == 0 && !killable_task_check (task, error))
        return FALSE;                      /* rung 1: a stop was requested */
      for (guint d = 2; d * d <= n && prime; d++)
        prime = n % d != 0;
      found += prime;
    }
  g_print ("%u primes\n", found);
  return TRUE;
}

int
main (void)
{
  g_autoptr(KillableTask) task = killable_task_new ("primes", count_primes, NULL, NULL);
  g_autoptr(GError) error = NULL;

  killable_task_start (task, NULL);
  killable_task_stop (task);               /* any thread may stop it */

  if (!killable_task_join (task, &error))
    g_print ("%s\n", error->message);      /* Task “primes” was stopped */

  return killable_task_get_state (task) == KILLABLE_TASK_STATE_CANCELLED ? 0 : 1;
}
