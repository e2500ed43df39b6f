import time
from gi.repository import Killable


def crunch():
    total = 0
    while True:                # pure Python that never checks anything
        total += 1


task = Killable.Task(target=crunch, name="crunch")
task.start()
time.sleep(0.1)
task.interrupt()               # rung 2: an exception is raised inside crunch()
try:
    task.join()
except Killable.TaskInterrupted as e:
    print("interrupted:", e)


def nap():
    Killable.current_task().sleep(3600)   # wakes at once on stop


with Killable.Task(target=nap) as t:
    pass                       # leaving the block stops and joins the task
print(t.props.state.value_nick)           # cancelled
