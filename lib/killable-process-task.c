/* placeholder, replaced by the process task implementation */
#include "config.h"
#include "killable-task-private.h"
#include "killable-process-task.h"

struct _KillableProcessTask
{
  KillableTask parent_instance;
};

G_DEFINE_FINAL_TYPE (KillableProcessTask, killable_process_task, KILLABLE_TYPE_TASK)

static void killable_process_task_class_init (KillableProcessTaskClass *klass) {}
static void killable_process_task_init (KillableProcessTask *self) {}
