/* killable-timer.c: the library's timer thread
 *
 * Owns: one private GMainContext and the thread that runs it, started on
 * first use. Everything timed in the library (timeouts, grace periods,
 * interrupt repeats, deferred disposal) is a source attached here.
 * Locks: none of its own (GMainContext locks itself; the once-guard).
 * Called by: killable-escalation.c and killable-tree.c. Calls nothing of
 * the library: a leaf.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "killable-timer-private.h"

static GMainContext *timer_context;

static gpointer
timer_thread_main (gpointer data)
{
  GMainLoop *loop = g_main_loop_new (timer_context, FALSE);

  g_main_context_push_thread_default (timer_context);
  g_main_loop_run (loop);

  g_assert_not_reached ();
  return NULL;
}

static GMainContext *
get_timer_context (void)
{
  static gsize initialized;

  if (g_once_init_enter (&initialized))
    {
      timer_context = g_main_context_new ();
      g_thread_unref (g_thread_new ("killable-timer", timer_thread_main, NULL));
      g_once_init_leave (&initialized, 1);
    }

  return timer_context;
}

static gboolean
ready_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs ready_funcs = {
  .dispatch = ready_dispatch,
};

GSource *
killable_timer_add (gint64         ready_time,
                    GSourceFunc    func,
                    gpointer       data,
                    GDestroyNotify notify)
{
  GSource *source = g_source_new (&ready_funcs, sizeof (GSource));

  g_source_set_static_name (source, "[killable] timer");
  g_source_set_callback (source, func, data, notify);
  g_source_set_ready_time (source, MAX (ready_time, 0));
  g_source_attach (source, get_timer_context ());

  return source;
}

void
killable_timer_clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}
