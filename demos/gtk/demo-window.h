/* demo-window.h: the window of the GTK demo
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <adwaita.h>
#include <killable.h>

#include "demo-workloads.h"

G_BEGIN_DECLS

#define DEMO_TYPE_WINDOW (demo_window_get_type ())

G_DECLARE_FINAL_TYPE (DemoWindow, demo_window, DEMO, WINDOW, AdwApplicationWindow)

DemoWindow   *demo_window_new                (AdwApplication *application);
KillableTask *demo_window_get_root           (DemoWindow     *self);
GtkWidget    *demo_window_get_launch_button  (DemoWindow     *self,
                                              DemoWorkload    workload);
KillableTask *demo_window_get_last_launched  (DemoWindow     *self,
                                              DemoWorkload    workload);
KillableTask *demo_window_launch             (DemoWindow     *self,
                                              DemoWorkload    workload);
void          demo_window_apply_rung         (DemoWindow     *self,
                                              KillableTask   *task,
                                              DemoRung        rung);
void          demo_window_log                (DemoWindow     *self,
                                              const char     *format,
                                              ...) G_GNUC_PRINTF (2, 3);
void          demo_window_shutdown           (DemoWindow     *self);
gboolean      demo_window_is_closed_gracefully (DemoWindow   *self);

G_END_DECLS
