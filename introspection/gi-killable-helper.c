/* gi-killable-helper.c: the optional compiled helper of the Python override
 *
 * Owns: the Python module gi.overrides._gi_killable, private to the
 * override (_killable.py imports it when it was built; without it the
 * override takes its pure-Python path, which does the same). It does, in
 * C, the hot parts of an interrupt that the pure-Python path pays in
 * bytecode and ctypes conversions:
 *
 * - interrupt(task, exc): Task.interrupt()'s owner side: the library's
 *   stop and interrupt (_killable_task_interrupt_self_default()), then
 *   PyThreadState_SetAsyncExc() under the worker's lock, under the very
 *   rules of _killable.py's _send_first_locked() (it reads the same
 *   _Worker fields); any other case is handed to _killable._interrupt_py();
 * - join(task, deadline, slice): Task.join()'s wait without a deadline,
 *   killable_task_wait() with the GIL released; with a deadline, or when
 *   the task is not known to have started, _killable._join_py();
 * - Lock: the lock of each _Worker (a PyThread_type_lock this module can
 *   take without a method call: it knows its own layout);
 * - WorkerBase: the base of _killable._Worker holding the fields an
 *   interrupt reads, so that they are read here as C fields (the
 *   pointers and the thread id converted once, when they are set);
 * - CancelledBase: the base of Killable.TaskCancelled, whose __init__ is
 *   C (the exception an interrupt raises is created in the worker, and
 *   that is timed against the bare recipe's plain exception).
 *
 * Only Python's limited C API is used (Py_LIMITED_API 3.11): no CPython
 * structure is read (the worker's frame and code are read as attributes);
 * the only layouts known here are this module's own types. The library's
 * functions are called through the addresses _killable.py gives setup()
 * (ctypes found them in the copy of libkillable that GI loaded): this
 * module links to nothing but Python.
 *
 * Threads: every function runs holding the GIL; join() and a contended
 * Lock.acquire() release it while they block. The _Worker fields are
 * read and written under its lock, as in _killable.py.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>
#include <time.h>

/* _killable.py's _Worker.async_state values (checked by setup()). */
enum
{
  ASYNC_NONE = 0,
  ASYNC_SENT = 2,
  ASYNC_DONE = 3,
};

typedef int  (*InterruptSelfDefaultFunc) (void *task);
typedef int  (*WaitFunc)                 (void *task, long long timeout_usec);
typedef void *(*GetCurrentFunc)          (void);

typedef struct
{
  PyObject *ns;                 /* _killable's globals (owned) */
  InterruptSelfDefaultFunc interrupt_self_default;
  WaitFunc wait;
  GetCurrentFunc get_current;
  unsigned char call_ops[256];  /* opcodes that call (_CALL_OPS) */
  PyObject *lock_type;          /* Lock (owned) */
  PyObject *worker_type;        /* WorkerBase (owned) */
  PyObject *cancelled_base;     /* CancelledBase (owned) */
  PyObject *own_exceptions;     /* _OWN_EXCEPTIONS, a frozenset (owned) */
  PyObject *join_py;            /* the override's Task.join, in Python (owned) */
  PyObject *join_slice;         /* its _WAIT_SLICE, a float (owned) */
} HelperState;

static HelperState state;

/* Interned names. */
static PyObject *s_killable_worker, *s_dict, *s_do_interrupt, *s_value, *s_f_globals,
                *s_f_lasti, *s_co_code, *s_name, *s_error, *s_init,
                *s_previous_excepthook, *s_task_interrupted, *s_main_ident,
                *s_request_locked, *s_raise_self_pending, *s_interrupt_py, *s_join_py,
                *s_raise_outcome;

/* Lock {{{ */

typedef struct
{
  PyObject_HEAD
  PyThread_type_lock lock;
  int locked;
} Lock;

static PyObject *
lock_new (PyTypeObject *type,
          PyObject     *args,
          PyObject     *kwds)
{
  allocfunc alloc;
  Lock *self;

  if (PyTuple_Size (args) != 0 || (kwds != NULL && PyDict_Size (kwds) != 0))
    {
      PyErr_SetString (PyExc_TypeError, "Lock() takes no arguments");
      return NULL;
    }
  alloc = (allocfunc) PyType_GetSlot (type, Py_tp_alloc);
  self = (Lock *) alloc (type, 0);
  if (self == NULL)
    return NULL;
  self->lock = PyThread_allocate_lock ();
  if (self->lock == NULL)
    {
      Py_DECREF (self);
      PyErr_SetString (PyExc_MemoryError, "cannot allocate a lock");
      return NULL;
    }
  return (PyObject *) self;
}

static void
lock_dealloc (PyObject *obj)
{
  Lock *self = (Lock *) obj;
  PyTypeObject *type = Py_TYPE (obj);
  freefunc tp_free = (freefunc) PyType_GetSlot (type, Py_tp_free);

  if (self->lock != NULL)
    {
      if (self->locked)
        PyThread_release_lock (self->lock);
      PyThread_free_lock (self->lock);
    }
  tp_free (obj);
  Py_DECREF (type);
}

static double
monotonic_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Takes the lock, as _thread.lock does: at once if free, else blocking
 * with the GIL released, signal handlers run between tries (their
 * exception returns -1). @timeout < 0: no limit. Returns 1 when taken,
 * 0 when not (timeout), -1 on error. */
static int
lock_take (Lock  *self,
           int    blocking,
           double timeout)
{
  double deadline = 0;

  if (PyThread_acquire_lock_timed (self->lock, 0, 0) == PY_LOCK_ACQUIRED)
    goto taken;
  if (!blocking)
    return 0;
  if (timeout >= 0)
    deadline = monotonic_seconds () + timeout;
  for (;;)
    {
      PyLockStatus r;
      PY_TIMEOUT_T usec = -1;

      if (timeout >= 0)
        {
          double left = deadline - monotonic_seconds ();

          if (left <= 0)
            return 0;
          usec = (PY_TIMEOUT_T) (left * 1e6);
          if (usec > PY_TIMEOUT_MAX)
            usec = PY_TIMEOUT_MAX;
        }
      Py_BEGIN_ALLOW_THREADS
      r = PyThread_acquire_lock_timed (self->lock, usec, 1);
      Py_END_ALLOW_THREADS
      if (r == PY_LOCK_ACQUIRED)
        break;
      if (r == PY_LOCK_INTR)
        {
          if (PyErr_CheckSignals () < 0)
            return -1;
          continue;
        }
      if (timeout >= 0)
        return 0;
    }
taken:
  self->locked = 1;
  return 1;
}

static void
lock_give (Lock *self)
{
  self->locked = 0;
  PyThread_release_lock (self->lock);
}

static PyObject *
lock_acquire (PyObject *obj,
              PyObject *args,
              PyObject *kwds)
{
  static char *kwlist[] = { "blocking", "timeout", NULL };
  int blocking = 1;
  double timeout = -1;
  int r;

  if (!PyArg_ParseTupleAndKeywords (args, kwds, "|pd:acquire", kwlist, &blocking, &timeout))
    return NULL;
  if (!blocking && timeout != -1)
    {
      PyErr_SetString (PyExc_ValueError, "can't specify a timeout for a non-blocking call");
      return NULL;
    }
  if (timeout < 0 && timeout != -1)
    {
      PyErr_SetString (PyExc_ValueError, "timeout value must be a non-negative number");
      return NULL;
    }
  r = lock_take ((Lock *) obj, blocking, timeout);
  if (r < 0)
    return NULL;
  return PyBool_FromLong (r);
}

static PyObject *
lock_enter (PyObject *obj,
            PyObject *unused)
{
  if (lock_take ((Lock *) obj, 1, -1) < 0)
    return NULL;
  Py_INCREF (Py_True);
  return Py_True;
}

static PyObject *
lock_release (PyObject *obj,
              PyObject *unused)
{
  Lock *self = (Lock *) obj;

  if (!self->locked)
    {
      PyErr_SetString (PyExc_RuntimeError, "release unlocked lock");
      return NULL;
    }
  lock_give (self);
  Py_RETURN_NONE;
}

static PyObject *
lock_exit (PyObject *obj,
           PyObject *args)
{
  return lock_release (obj, NULL);
}

static PyObject *
lock_locked (PyObject *obj,
             PyObject *unused)
{
  return PyBool_FromLong (((Lock *) obj)->locked);
}

static PyMethodDef lock_methods[] = {
  { "acquire", (PyCFunction) (void (*) (void)) lock_acquire, METH_VARARGS | METH_KEYWORDS,
    "acquire(blocking=True, timeout=-1): as threading.Lock.acquire()." },
  { "release", lock_release, METH_NOARGS, "As threading.Lock.release()." },
  { "locked", lock_locked, METH_NOARGS, "Whether the lock is held." },
  { "__enter__", lock_enter, METH_NOARGS, "acquire()" },
  { "__exit__", lock_exit, METH_VARARGS, "release()" },
  { NULL, NULL, 0, NULL },
};

static PyType_Slot lock_slots[] = {
  { Py_tp_new, lock_new },
  { Py_tp_dealloc, lock_dealloc },
  { Py_tp_methods, lock_methods },
  { Py_tp_doc, "A lock, as threading.Lock, that the helper takes in C." },
  { 0, NULL },
};

static PyType_Spec lock_spec = {
  "gi.overrides._gi_killable.Lock",
  sizeof (Lock),
  0,
  Py_TPFLAGS_DEFAULT,
  lock_slots,
};

/* }}} */

/* WorkerBase {{{ */

static void
set_object (PyObject **field,
            PyObject  *value)
{
  PyObject *old = *field;

  Py_INCREF (value);
  *field = value;
  Py_XDECREF (old);
}


typedef struct
{
  PyObject_HEAD
  PyObject *lock;            /* a Lock, or whatever _Worker set */
  PyObject *tid;             /* the worker's thread while run() runs, or None */
  PyObject *tstate;          /* its PyThreadState * as a ctypes.c_void_p, or None */
  PyObject *ptr;             /* the KillableTask * as an int, or None */
  PyObject *ident;
  PyObject *pending;
  PyObject *async_type;
  PyObject *interrupt_type;
  int async_state;
  int in_wait;
  int shield;
  int direct;
  /* Converted when set. */
  unsigned long c_tid;
  void *c_tstate;
  void *c_ptr;
} WorkerBase;

static int
worker_traverse (PyObject *obj,
                 visitproc visit,
                 void     *arg)
{
  WorkerBase *self = (WorkerBase *) obj;

  Py_VISIT (Py_TYPE (obj));
  Py_VISIT (self->lock);
  Py_VISIT (self->tid);
  Py_VISIT (self->tstate);
  Py_VISIT (self->ptr);
  Py_VISIT (self->ident);
  Py_VISIT (self->pending);
  Py_VISIT (self->async_type);
  Py_VISIT (self->interrupt_type);
  return 0;
}

static int
worker_clear (PyObject *obj)
{
  WorkerBase *self = (WorkerBase *) obj;

  Py_CLEAR (self->lock);
  Py_CLEAR (self->tid);
  Py_CLEAR (self->tstate);
  Py_CLEAR (self->ptr);
  Py_CLEAR (self->ident);
  Py_CLEAR (self->pending);
  Py_CLEAR (self->async_type);
  Py_CLEAR (self->interrupt_type);
  self->c_tid = 0;
  self->c_tstate = self->c_ptr = NULL;
  return 0;
}

static void
worker_dealloc (PyObject *obj)
{
  PyTypeObject *type = Py_TYPE (obj);
  freefunc tp_free = (freefunc) PyType_GetSlot (type, Py_tp_free);

  PyObject_GC_UnTrack (obj);
  worker_clear (obj);
  tp_free (obj);
  Py_DECREF (type);
}

/* tid, tstate, ptr: stored as given, and converted for C once. */
static int
worker_set_converted (WorkerBase *self,
                      PyObject  **field,
                      PyObject   *value,
                      int         which)
{
  unsigned long c_tid = 0;
  void *c_ptr = NULL;

  if (value == NULL)
    {
      PyErr_SetString (PyExc_AttributeError, "cannot delete this field");
      return -1;
    }
  if (value != Py_None)
    {
      PyObject *v = value;

      if (which == 1 && !PyLong_Check (value))
        {
          /* A ctypes.c_void_p: its public value. */
          v = PyObject_GetAttr (value, s_value);
          if (v == NULL)
            return -1;
        }
      else
        Py_INCREF (v);
      if (which == 0)
        c_tid = PyLong_AsUnsignedLong (v);
      else if (v != Py_None)
        c_ptr = PyLong_AsVoidPtr (v);
      Py_DECREF (v);
      if (PyErr_Occurred ())
        return -1;
    }
  set_object (field, value);
  switch (which)
    {
    case 0:
      self->c_tid = c_tid;
      break;
    case 1:
      self->c_tstate = c_ptr;
      break;
    default:
      self->c_ptr = c_ptr;
      break;
    }
  return 0;
}

static PyObject *
worker_get_field (PyObject *field)
{
  if (field == NULL)
    {
      PyErr_SetString (PyExc_AttributeError, "field not set");
      return NULL;
    }
  Py_INCREF (field);
  return field;
}

/* The getters and setters of tid, tstate and ptr: the closure is which
 * one, as worker_set_converted() numbers them. */
static PyObject **
worker_field_at (PyObject *obj,
                 int       which)
{
  WorkerBase *self = (WorkerBase *) obj;

  return which == 0 ? &self->tid : which == 1 ? &self->tstate : &self->ptr;
}

static PyObject *
worker_get (PyObject *obj,
            void     *closure)
{
  return worker_get_field (*worker_field_at (obj, (int) (intptr_t) closure));
}

static int
worker_set (PyObject *obj,
            PyObject *value,
            void     *closure)
{
  int which = (int) (intptr_t) closure;

  return worker_set_converted ((WorkerBase *) obj, worker_field_at (obj, which), value, which);
}

static PyGetSetDef worker_getset[] = {
  { "tid", worker_get, worker_set, NULL, (void *) (intptr_t) 0 },
  { "tstate", worker_get, worker_set, NULL, (void *) (intptr_t) 1 },
  { "ptr", worker_get, worker_set, NULL, (void *) (intptr_t) 2 },
  { NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef worker_members[] = {
  { "lock", T_OBJECT_EX, offsetof (WorkerBase, lock), 0, NULL },
  { "ident", T_OBJECT_EX, offsetof (WorkerBase, ident), 0, NULL },
  { "pending", T_OBJECT_EX, offsetof (WorkerBase, pending), 0, NULL },
  { "async_type", T_OBJECT_EX, offsetof (WorkerBase, async_type), 0, NULL },
  { "interrupt_type", T_OBJECT_EX, offsetof (WorkerBase, interrupt_type), 0, NULL },
  { "async_state", T_INT, offsetof (WorkerBase, async_state), 0, NULL },
  { "in_wait", T_INT, offsetof (WorkerBase, in_wait), 0, NULL },
  { "shield", T_INT, offsetof (WorkerBase, shield), 0, NULL },
  { "direct", T_INT, offsetof (WorkerBase, direct), 0, NULL },
  { NULL, 0, 0, 0, NULL },
};

/* The names above, for _Worker's __slots__ (which must not repeat them). */
#define WORKER_FIELDS \
  "lock", "tid", "tstate", "ptr", "ident", "pending", "async_type", \
  "interrupt_type", "async_state", "in_wait", "shield", "direct"

static PyType_Slot worker_slots[] = {
  { Py_tp_traverse, worker_traverse },
  { Py_tp_clear, worker_clear },
  { Py_tp_dealloc, worker_dealloc },
  { Py_tp_getset, worker_getset },
  { Py_tp_members, worker_members },
  { Py_tp_doc, "The base of _killable._Worker: the fields an interrupt reads." },
  { 0, NULL },
};

static PyType_Spec worker_spec = {
  "gi.overrides._gi_killable.WorkerBase",
  sizeof (WorkerBase),
  0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
  worker_slots,
};

/* }}} */

/* CancelledBase {{{ */

/* TaskCancelled.__init__(self, *args, error=None): sets error if not None;
 * for a subclass that is not the override's own, the next __init__ in the
 * MRO after this type gets *args (the Python version's super().__init__). */
static int
cancelled_init (PyObject *self,
                PyObject *args,
                PyObject *kwds)
{
  PyObject *error = NULL;
  int own;

  if (kwds != NULL && PyDict_Size (kwds) != 0)
    {
      Py_ssize_t n = PyDict_Size (kwds);

      error = PyDict_GetItemWithError (kwds, s_error);
      if (error == NULL && PyErr_Occurred ())
        return -1;
      if (error == NULL || n != 1)
        {
          PyObject *key = NULL, *value;
          Py_ssize_t pos = 0;

          while (PyDict_Next (kwds, &pos, &key, &value))
            if (PyUnicode_Compare (key, s_error) != 0)
              break;
          PyErr_Format (PyExc_TypeError,
                        "TaskCancelled.__init__() got an unexpected keyword argument '%S'", key);
          return -1;
        }
      if (error != Py_None && PyObject_SetAttr (self, s_error, error) < 0)
        return -1;
    }
  own = state.own_exceptions != NULL ?
        PySet_Contains (state.own_exceptions, (PyObject *) Py_TYPE (self)) : 0;
  if (own < 0)
    return -1;
  if (!own)
    {
      PyObject *super, *init, *r;

      super = PyObject_CallFunctionObjArgs ((PyObject *) &PySuper_Type,
                                            state.cancelled_base, self, NULL);
      if (super == NULL)
        return -1;
      init = PyObject_GetAttr (super, s_init);
      Py_DECREF (super);
      if (init == NULL)
        return -1;
      r = PyObject_Call (init, args, NULL);
      Py_DECREF (init);
      if (r == NULL)
        return -1;
      Py_DECREF (r);
    }
  return 0;
}

static PyType_Slot cancelled_slots[] = {
  { Py_tp_init, cancelled_init },
  { Py_tp_doc, "The base of Killable.TaskCancelled: its __init__." },
  { 0, NULL },
};

static PyType_Spec cancelled_spec = {
  "gi.overrides._gi_killable.CancelledBase",
  0,  /* BaseException's size */
  0,
  Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
  cancelled_slots,
};

/* }}} */

/* The _Worker's fields {{{ */

/* task.__dict__.get('_killable_worker') if it is a WorkerBase: a new
 * reference, or NULL (an exception set only on error). */
static PyObject *
task_worker (PyObject *task)
{
  PyObject *dict, *w;

  dict = PyObject_GetAttr (task, s_dict);
  if (dict == NULL)
    return NULL;
  if (!PyDict_Check (dict))
    {
      Py_DECREF (dict);
      return NULL;
    }
  w = PyDict_GetItemWithError (dict, s_killable_worker);
  if (w != NULL && !PyObject_TypeCheck (w, (PyTypeObject *) state.worker_type))
    w = NULL;
  Py_XINCREF ((PyObject *) w);
  Py_DECREF (dict);
  return w;
}

/* A name (interned) of _killable's globals: borrowed, NULL if missing (an
 * exception set only on error). */
static PyObject *
ns_get (PyObject *name)
{
  if (state.ns == NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, "_gi_killable.setup() was not called");
      return NULL;
    }
  return PyDict_GetItemWithError (state.ns, name);
}

static PyObject *
ns_call (PyObject *name,
         PyObject *arg1,
         PyObject *arg2,
         PyObject *arg3)
{
  PyObject *func = ns_get (name);

  if (func == NULL)
    {
      if (!PyErr_Occurred ())
        PyErr_Format (PyExc_RuntimeError, "_killable.%U is missing", name);
      return NULL;
    }
  return PyObject_CallFunctionObjArgs (func, arg1, arg2, arg3, NULL);
}

/* }}} */

/* The owner side of an interrupt {{{ */

/* Whether @name (a module's __name__) is PyGObject's own module, not the
 * override's (_killable.py's _is_pygobject_module()). */
static int
is_pygobject_module (PyObject *name)
{
  const char *s;
  Py_ssize_t len;

  if (name == NULL || !PyUnicode_Check (name))
    return 0;
  s = PyUnicode_AsUTF8AndSize (name, &len);
  if (s == NULL)
    {
      PyErr_Clear ();
      return 0;
    }
  /* Most workers pause in their own code: answered without a call into
   * the C library (this runs cold, see helper_interrupt()). */
  if (len < 3 || s[0] != 'g' || s[1] != 'i' || s[2] != '.')
    return 0;
  if (strcmp (s, "gi.overrides.Killable") == 0 ||
      strncmp (s, "gi.overrides._killable", strlen ("gi.overrides._killable")) == 0)
    return 0;
  return 1;
}

/* Whether the worker paused at @frame may get the exception now: not in
 * PyGObject's code, not at a call (_killable.py's _may_land(), not
 * forced). 1, 0, or -1 on error. */
static int
frame_may_land (PyObject *frame)
{
  PyObject *globals, *name, *code, *co_code, *lasti;
  long i;
  int r = 0;

  globals = PyObject_GetAttr (frame, s_f_globals);
  if (globals == NULL)
    return -1;
  name = PyDict_Check (globals) ? PyDict_GetItemWithError (globals, s_name) : NULL;
  if (name == NULL && PyErr_Occurred ())
    {
      Py_DECREF (globals);
      return -1;
    }
  r = is_pygobject_module (name);
  Py_DECREF (globals);
  if (r)
    return 0;

  code = (PyObject *) PyFrame_GetCode ((PyFrameObject *) frame);
  co_code = PyObject_GetAttr (code, s_co_code);
  Py_DECREF (code);
  if (co_code == NULL)
    return -1;
  lasti = PyObject_GetAttr (frame, s_f_lasti);
  if (lasti == NULL)
    {
      Py_DECREF (co_code);
      return -1;
    }
  i = PyLong_AsLong (lasti);
  Py_DECREF (lasti);
  if (i == -1 && PyErr_Occurred ())
    r = -1;
  else if (PyBytes_Check (co_code) && 0 <= i && i < PyBytes_Size (co_code))
    r = !state.call_ops[(unsigned char) PyBytes_AsString (co_code)[i]];
  else
    r = 1;
  Py_DECREF (co_code);
  return r;
}

/* _killable.py's _send_first_locked() then _deliver_locked(): 1 sent, 0
 * not that case (nothing changed), -1 on error. Called with w.lock held,
 * holding the GIL (the worker is paused). */
static int
send_first_locked (WorkerBase *w,
                   PyObject   *exc_type)
{
  PyObject *hook, *frame;
  int r, n;

  if (w->tid == NULL || w->tid == Py_None || w->async_state != ASYNC_NONE ||
      (w->pending != NULL && w->pending != Py_None) ||
      w->in_wait || w->shield || w->direct || w->c_tstate == NULL)
    return 0;
  hook = ns_get (s_previous_excepthook);
  if (hook == NULL || hook == Py_None)
    return PyErr_Occurred () ? -1 : 0;
  if (w->c_tid == PyThread_get_thread_ident ())
    return 0;

  frame = (PyObject *) PyThreadState_GetFrame ((PyThreadState *) w->c_tstate);
  if (frame == NULL)
    return PyErr_Occurred () ? -1 : 0;
  r = frame_may_land (frame);
  Py_DECREF (frame);
  if (r <= 0)
    return r;

  set_object (&w->async_type, exc_type);
  n = PyThreadState_SetAsyncExc (w->c_tid, exc_type);
  if (n == 1)
    {
      w->async_state = ASYNC_SENT;
      return 1;
    }
  /* "If it returns a number greater than one, you're in trouble, and you
   * should call it again with exc=NULL to revert the effect." */
  if (n > 1)
    PyThreadState_SetAsyncExc (w->c_tid, NULL);
  w->async_state = ASYNC_DONE;
  return 1;
}

/* interrupt(task, exc) */
static PyObject *
helper_interrupt (PyObject *module,
                  PyObject *const *args,
                  Py_ssize_t nargs)
{
  PyObject *task, *exc, *vfunc, *r;
  WorkerBase *w = NULL;
  Lock *lock;
  int sent;

  if (nargs != 2)
    {
      PyErr_SetString (PyExc_TypeError, "interrupt() takes 2 arguments");
      return NULL;
    }
  task = args[0];
  exc = args[1];
  if (state.ns == NULL)
    goto general;
  if (exc == Py_None)
    {
      exc = ns_get (s_task_interrupted);
      if (exc == NULL)
        goto general;
    }
  else if (!PyType_Check (exc) || !PyType_IsSubtype ((PyTypeObject *) exc,
                                                     (PyTypeObject *) PyExc_BaseException))
    goto general;  /* its TypeError */

  w = (WorkerBase *) task_worker (task);
  if (w == NULL)
    {
      if (PyErr_Occurred ())
        return NULL;
      goto general;
    }
  /* The task's own vfunc is do_interrupt(): the library runs the default
   * handler in its place (see _killable._interrupt_py()). */
  vfunc = PyObject_GetAttr ((PyObject *) Py_TYPE (task), s_do_interrupt);
  if (vfunc == NULL)
    goto fail;
  Py_DECREF (vfunc);
  if (vfunc != ns_get (s_do_interrupt) || w->c_ptr == NULL || w->lock == NULL ||
      !PyObject_TypeCheck (w->lock, (PyTypeObject *) state.lock_type))
    goto general;
  lock = (Lock *) w->lock;
  Py_INCREF ((PyObject *) lock);

  /* A single store: the vfunc that another thread's interrupt of an
   * ancestor may run reads it. */
  set_object (&w->interrupt_type, exc);
  if (state.interrupt_self_default (w->c_ptr))
    {
      if (lock_take (lock, 1, -1) < 0)
        {
          Py_DECREF ((PyObject *) lock);
          goto fail;
        }
      sent = send_first_locked (w, exc);
      if (sent == 0)
        {
          r = ns_call (s_request_locked, (PyObject *) w, exc, NULL);
          sent = r == NULL ? -1 : 1;
          Py_XDECREF (r);
        }
      lock_give (lock);
      if (sent < 0)
        {
          Py_DECREF ((PyObject *) lock);
          goto fail;
        }
    }
  Py_DECREF ((PyObject *) lock);
  if (w->pending != NULL && w->pending != Py_None)
    {
      r = ns_call (s_raise_self_pending, NULL, NULL, NULL);
      if (r == NULL)
        goto fail;
      Py_DECREF (r);
    }
  Py_DECREF ((PyObject *) w);
  Py_RETURN_NONE;

general:
  Py_XDECREF ((PyObject *) w);
  return ns_call (s_interrupt_py, task, args[1], NULL);

fail:
  Py_XDECREF ((PyObject *) w);
  return NULL;
}

/* }}} */

/* join(task, deadline, slice) {{{ */

static PyObject *
helper_join (PyObject *module,
             PyObject *const *args,
             Py_ssize_t nargs)
{
  PyObject *task, *main_ident, *r;
  WorkerBase *w;
  void *ptr;
  double slice;
  long long usec;
  int ended;

  if (nargs != 3)
    {
      PyErr_SetString (PyExc_TypeError, "join() takes 3 arguments");
      return NULL;
    }
  task = args[0];
  if (state.ns == NULL || args[1] != Py_None)
    goto general;
  slice = PyFloat_AsDouble (args[2]);
  if (slice == -1 && PyErr_Occurred ())
    return NULL;
  w = (WorkerBase *) task_worker (task);
  if (w == NULL)
    {
      if (PyErr_Occurred ())
        return NULL;
      goto general;
    }
  /* A task whose work started (w.ident is set then, and kept) is not
   * pending; else _join_py() asks. */
  ptr = w->c_ptr;
  if (w->ident == NULL || w->ident == Py_None || ptr == NULL)
    {
      Py_DECREF ((PyObject *) w);
      goto general;
    }
  Py_DECREF ((PyObject *) w);  /* the wrapper holds it, and the task */
  /* The main thread is never a task's worker: no call to ask. */
  main_ident = ns_get (s_main_ident);
  if (main_ident == NULL || main_ident == Py_None ||
      PyLong_AsUnsignedLong (main_ident) != PyThread_get_thread_ident ())
    {
      if (PyErr_Occurred ())
        return NULL;
      if (state.get_current () == ptr)
        goto general;  /* its RuntimeError */
    }

  usec = (long long) (slice * 1e6);
  for (;;)
    {
      Py_BEGIN_ALLOW_THREADS
      ended = state.wait (ptr, usec);
      Py_END_ALLOW_THREADS
      if (ended)
        Py_RETURN_TRUE;
      /* Between slices: signal handlers, and what an interrupt of this
       * thread's own task asked for. */
      if (PyErr_CheckSignals () < 0)
        return NULL;
      r = ns_call (s_raise_self_pending, NULL, NULL, NULL);
      if (r == NULL)
        return NULL;
      Py_DECREF (r);
    }

general:
  return ns_call (s_join_py, task, args[1], args[2]);
}

/* }}} */

/* Task.interrupt() and Task.join() in C {{{ */

/* The override's Task.interrupt(exc=None) and Task.join(timeout=None),
 * as method descriptors of its class (install_methods()): no Python frame
 * between the caller and the code above. In the usual sequence, a busy
 * worker interrupted then joined, both calls run right after the owner
 * took the GIL back from the worker, when all they touch is cold: the
 * frame of a Python method and its lookups were a tenth of the call. */

/* The one optional argument of such a method, by position or by @kw: a
 * borrowed reference in *@out (None when not given), or -1 with a
 * TypeError. */
static int
one_optional_arg (const char       *fname,
                  const char       *kw,
                  PyObject *const  *args,
                  Py_ssize_t        nargs,
                  PyObject         *kwnames,
                  PyObject        **out)
{
  Py_ssize_t nkw = kwnames != NULL ? PyTuple_Size (kwnames) : 0;

  *out = Py_None;
  if (nkw < 0)
    return -1;
  if (nargs + nkw > 1)
    {
      PyErr_Format (PyExc_TypeError, "%s() takes at most 1 argument (%zd given)",
                    fname, nargs + nkw);
      return -1;
    }
  if (nkw == 1)
    {
      PyObject *name = PyTuple_GetItem (kwnames, 0);

      if (name == NULL)
        return -1;
      if (PyUnicode_CompareWithASCIIString (name, kw) != 0)
        {
          PyErr_Format (PyExc_TypeError, "%s() got an unexpected keyword argument '%U'",
                        fname, name);
          return -1;
        }
    }
  if (nargs + nkw == 1)
    *out = args[0];
  return 0;
}

static PyObject *
task_interrupt_method (PyObject         *self,
                       PyObject *const  *args,
                       Py_ssize_t        nargs,
                       PyObject         *kwnames)
{
  PyObject *pair[2];

  if (one_optional_arg ("interrupt", "exc", args, nargs, kwnames, &pair[1]) < 0)
    return NULL;
  pair[0] = self;
  return helper_interrupt (NULL, pair, 2);
}

static PyObject *
task_join_method (PyObject         *self,
                  PyObject *const  *args,
                  Py_ssize_t        nargs,
                  PyObject         *kwnames)
{
  PyObject *timeout, *call[3], *r;

  if (one_optional_arg ("join", "timeout", args, nargs, kwnames, &timeout) < 0)
    return NULL;
  /* A timeout needs a deadline: the Python method computes it. */
  if (timeout != Py_None)
    return PyObject_CallFunctionObjArgs (state.join_py, self, timeout, NULL);
  call[0] = self;
  call[1] = Py_None;
  call[2] = state.join_slice;
  r = helper_join (NULL, call, 3);
  if (r == NULL)
    return NULL;
  if (PyObject_IsTrue (r))
    {
      Py_DECREF (r);
      /* The task ended: its outcome, raised (or None if it succeeded). */
      r = PyObject_CallMethodObjArgs (self, s_raise_outcome, NULL);
      if (r == NULL)
        return NULL;
    }
  Py_DECREF (r);
  Py_RETURN_NONE;
}

static PyMethodDef task_interrupt_def = {
  "interrupt", (PyCFunction) (void (*) (void)) task_interrupt_method,
  METH_FASTCALL | METH_KEYWORDS, NULL
};

static PyMethodDef task_join_def = {
  "join", (PyCFunction) (void (*) (void)) task_join_method,
  METH_FASTCALL | METH_KEYWORDS, NULL
};

/* @def's docstring: @signature then the Python method's own, kept for the
 * process's life (as the PyMethodDef). Once. */
static int
set_doc (PyMethodDef *def,
         const char  *signature,
         PyObject    *func)
{
  PyObject *doc, *text;
  const char *utf8;
  char *copy;
  Py_ssize_t len;

  if (def->ml_doc != NULL)
    return 0;
  doc = PyObject_GetAttrString (func, "__doc__");
  if (doc == NULL)
    return -1;
  /* None under python -OO: the signature alone. */
  if (PyUnicode_Check (doc))
    text = PyUnicode_FromFormat ("%s\n--\n\n%U", signature, doc);
  else
    text = PyUnicode_FromFormat ("%s\n--\n\n", signature);
  Py_DECREF (doc);
  if (text == NULL)
    return -1;
  utf8 = PyUnicode_AsUTF8AndSize (text, &len);
  copy = utf8 != NULL ? PyMem_Malloc (len + 1) : NULL;
  if (copy == NULL)
    {
      Py_DECREF (text);
      if (!PyErr_Occurred ())
        PyErr_NoMemory ();
      return -1;
    }
  memcpy (copy, utf8, len + 1);
  Py_DECREF (text);
  def->ml_doc = copy;
  return 0;
}

/* install_methods(cls, join_slice): replaces cls.interrupt and cls.join
 * (the override's Python methods, kept as the docs and, for a join with a
 * timeout, the code) with the methods above. */
static PyObject *
helper_install_methods (PyObject *module,
                        PyObject *args)
{
  PyObject *cls, *slice, *interrupt_py, *join_py, *d_interrupt = NULL, *d_join = NULL;
  PyObject *ret = NULL;

  if (!PyArg_ParseTuple (args, "O!O!:install_methods", &PyType_Type, &cls,
                         &PyFloat_Type, &slice))
    return NULL;
  if (state.join_py != NULL)
    {
      PyErr_SetString (PyExc_RuntimeError, "install_methods() was called already");
      return NULL;
    }
  interrupt_py = PyObject_GetAttrString (cls, "interrupt");
  join_py = PyObject_GetAttrString (cls, "join");
  if (interrupt_py == NULL || join_py == NULL)
    goto out;
  if (!PyCallable_Check (interrupt_py) || !PyCallable_Check (join_py))
    {
      PyErr_SetString (PyExc_TypeError, "install_methods(): interrupt and join must be functions");
      goto out;
    }
  if (set_doc (&task_interrupt_def, "interrupt($self, /, exc=None)", interrupt_py) < 0 ||
      set_doc (&task_join_def, "join($self, /, timeout=None)", join_py) < 0)
    goto out;
  d_interrupt = PyDescr_NewMethod ((PyTypeObject *) cls, &task_interrupt_def);
  d_join = PyDescr_NewMethod ((PyTypeObject *) cls, &task_join_def);
  if (d_interrupt == NULL || d_join == NULL)
    goto out;
  if (PyObject_SetAttrString (cls, "interrupt", d_interrupt) < 0 ||
      PyObject_SetAttrString (cls, "join", d_join) < 0)
    goto out;
  set_object (&state.join_py, join_py);
  set_object (&state.join_slice, slice);
  ret = Py_NewRef (Py_None);

out:
  Py_XDECREF (interrupt_py);
  Py_XDECREF (join_py);
  Py_XDECREF (d_interrupt);
  Py_XDECREF (d_join);
  return ret;
}

/* }}} */

/* setup(ns, interrupt_self_default, wait, get_current) {{{ */

static PyObject *
helper_setup (PyObject *module,
              PyObject *args)
{
  PyObject *ns, *call_ops, *it, *item, *v;
  unsigned long long f_interrupt, f_wait, f_current;

  if (!PyArg_ParseTuple (args, "O!KKK:setup", &PyDict_Type, &ns,
                         &f_interrupt, &f_wait, &f_current))
    return NULL;
  if (f_interrupt == 0 || f_wait == 0 || f_current == 0)
    {
      PyErr_SetString (PyExc_ValueError, "setup() needs the library's functions");
      return NULL;
    }
  /* The constants this file mirrors. */
  v = PyDict_GetItemString (ns, "_ASYNC_NONE");
  if (v == NULL || PyLong_AsLong (v) != ASYNC_NONE ||
      (v = PyDict_GetItemString (ns, "_ASYNC_SENT")) == NULL || PyLong_AsLong (v) != ASYNC_SENT ||
      (v = PyDict_GetItemString (ns, "_ASYNC_DONE")) == NULL || PyLong_AsLong (v) != ASYNC_DONE)
    {
      if (!PyErr_Occurred ())
        PyErr_SetString (PyExc_ValueError, "setup(): the _ASYNC_* constants differ");
      return NULL;
    }
  call_ops = PyDict_GetItemString (ns, "_CALL_OPS");
  if (call_ops == NULL)
    {
      PyErr_SetString (PyExc_ValueError, "setup(): _CALL_OPS is missing");
      return NULL;
    }
  memset (state.call_ops, 0, sizeof state.call_ops);
  it = PyObject_GetIter (call_ops);
  if (it == NULL)
    return NULL;
  while ((item = PyIter_Next (it)) != NULL)
    {
      long op = PyLong_AsLong (item);

      Py_DECREF (item);
      if (op >= 0 && op < 256)
        state.call_ops[op] = 1;
    }
  Py_DECREF (it);
  if (PyErr_Occurred ())
    return NULL;

  Py_INCREF (ns);
  Py_XDECREF (state.ns);
  state.ns = ns;
  state.interrupt_self_default = (InterruptSelfDefaultFunc) (uintptr_t) f_interrupt;
  state.wait = (WaitFunc) (uintptr_t) f_wait;
  state.get_current = (GetCurrentFunc) (uintptr_t) f_current;
  Py_RETURN_NONE;
}

/* set_own_exceptions(frozenset): the override's own exception classes
 * (their __init__ does not call the next one). */
static PyObject *
helper_set_own_exceptions (PyObject *module,
                           PyObject *arg)
{
  if (!PyFrozenSet_Check (arg))
    {
      PyErr_SetString (PyExc_TypeError, "a frozenset is needed");
      return NULL;
    }
  Py_INCREF (arg);
  Py_XDECREF (state.own_exceptions);
  state.own_exceptions = arg;
  Py_RETURN_NONE;
}

/* }}} */

static PyMethodDef helper_methods[] = {
  { "setup", helper_setup, METH_VARARGS,
    "setup(namespace, interrupt_self_default, wait, get_current): _killable's "
    "globals and the addresses of the library's functions." },
  { "set_own_exceptions", helper_set_own_exceptions, METH_O,
    "set_own_exceptions(frozenset): the override's exception classes." },
  { "interrupt", (PyCFunction) (void (*) (void)) helper_interrupt, METH_FASTCALL,
    "interrupt(task, exc): Task.interrupt()." },
  { "join", (PyCFunction) (void (*) (void)) helper_join, METH_FASTCALL,
    "join(task, deadline, slice): Task.join()'s wait." },
  { "install_methods", helper_install_methods, METH_VARARGS,
    "install_methods(cls, join_slice): Task.interrupt() and Task.join() in C." },
  { NULL, NULL, 0, NULL },
};

static int
intern_names (void)
{
#define INTERN(var, text) \
  if ((var = PyUnicode_InternFromString (text)) == NULL) \
    return -1
  INTERN (s_killable_worker, "_killable_worker");
  INTERN (s_dict, "__dict__");
  INTERN (s_do_interrupt, "do_interrupt");
  INTERN (s_value, "value");
  INTERN (s_f_globals, "f_globals");
  INTERN (s_f_lasti, "f_lasti");
  INTERN (s_co_code, "co_code");
  INTERN (s_name, "__name__");
  INTERN (s_error, "error");
  INTERN (s_init, "__init__");
  INTERN (s_previous_excepthook, "_previous_excepthook");
  INTERN (s_task_interrupted, "TaskInterrupted");
  INTERN (s_main_ident, "_main_ident");
  INTERN (s_request_locked, "_request_locked");
  INTERN (s_raise_self_pending, "raise_self_pending");
  INTERN (s_interrupt_py, "_interrupt_py");
  INTERN (s_join_py, "_join_py");
  INTERN (s_raise_outcome, "_raise_outcome");
#undef INTERN
  return 0;
}

static struct PyModuleDef helper_module = {
  PyModuleDef_HEAD_INIT,
  "gi.overrides._gi_killable",
  "Private to gi.overrides.Killable: the compiled part of its interrupts.",
  -1,
  helper_methods,
  NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gi_killable (void);

PyMODINIT_FUNC
PyInit__gi_killable (void)
{
  PyObject *m, *bases, *fields;

  if (intern_names () < 0)
    return NULL;
  m = PyModule_Create (&helper_module);
  if (m == NULL)
    return NULL;
  state.lock_type = PyType_FromSpec (&lock_spec);
  if (state.lock_type == NULL)
    goto fail;
  bases = PyTuple_Pack (1, PyExc_BaseException);
  if (bases == NULL)
    goto fail;
  state.cancelled_base = PyType_FromSpecWithBases (&cancelled_spec, bases);
  Py_DECREF (bases);
  if (state.cancelled_base == NULL)
    goto fail;
  Py_INCREF (state.lock_type);
  if (PyModule_AddObject (m, "Lock", state.lock_type) < 0)
    {
      Py_DECREF (state.lock_type);
      goto fail;
    }
  Py_INCREF (state.cancelled_base);
  if (PyModule_AddObject (m, "CancelledBase", state.cancelled_base) < 0)
    {
      Py_DECREF (state.cancelled_base);
      goto fail;
    }
  state.worker_type = PyType_FromSpec (&worker_spec);
  if (state.worker_type == NULL)
    goto fail;
  Py_INCREF (state.worker_type);
  if (PyModule_AddObject (m, "WorkerBase", state.worker_type) < 0)
    {
      Py_DECREF (state.worker_type);
      goto fail;
    }
  fields = Py_BuildValue ("(ssssssssssss)", WORKER_FIELDS);
  if (fields == NULL || PyModule_AddObject (m, "WORKER_FIELDS", fields) < 0)
    {
      Py_XDECREF (fields);
      goto fail;
    }
  return m;

fail:
  Py_DECREF (m);
  return NULL;
}
