// The C boundary of PyKernel: CPython's API plus static inline wrappers for what Swift cannot
// import (address-of macros, type-check macros, variadic helpers).
#ifndef PYKERNEL_CPYTHON_SHIM_H
#define PYKERNEL_CPYTHON_SHIM_H

// pyconfig.h defines _XOPEN_SOURCE, which changes libc's headers inside this module; include them
// first so they match what Glibc/Foundation see ("__fds_bits ... not present in fd_set" otherwise).
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <marshal.h>
#include <opcode.h>

// glibc's dladdr and Dl_info, which <dlfcn.h> declares only with _GNU_SOURCE (not as the
// module of libc's headers is built); under a name of its own to stay clear of that declaration.
typedef struct { const char *fname; void *fbase; const char *sname; void *saddr; } pykernel_dl_info;
extern int pykernel_dladdr(const void *address, pykernel_dl_info *info) __asm__("dladdr");
// glibc's unshare and CLONE_FS, declared by <sched.h> only with _GNU_SOURCE as well.
extern int pykernel_unshare(int flags) __asm__("unshare");
#define PYKERNEL_CLONE_FS 0x00000200
// glibc's memfd_create and MFD_CLOEXEC (<sys/mman.h>, with _GNU_SOURCE).
extern int pykernel_memfd_create(const char *name, unsigned int flags) __asm__("memfd_create");
#define PYKERNEL_MFD_CLOEXEC 0x0001U

// CPython's code in a program that links its static build (the `pykernel` program: Package.swift,
// `staticPythonLinking`): `scripts/setup` puts it in one section, whose bounds the linker defines.
// Weak: absent (null) where the shared libpython3.11.so is linked (the libraries, the tests).
extern const char __start_pykernel_cpython_text[] __attribute__((weak));
extern const char __stop_pykernel_cpython_text[] __attribute__((weak));

/// Whether `function` is CPython's code: within its section in a program linking the static
/// build (where everything shares one image), else in the loaded libpython (the image holding
/// `Py_Initialize`).
static inline int pykernel_is_libpython_code(const void *function) {
    if (__start_pykernel_cpython_text != 0) {
        const char *address = (const char *)function;
        return address >= __start_pykernel_cpython_text && address < __stop_pykernel_cpython_text;
    }
    pykernel_dl_info python, other;
    if (pykernel_dladdr((const void *)&Py_Initialize, &python) == 0 || pykernel_dladdr(function, &other) == 0) return 0;
    return python.fbase == other.fbase;
}

// A Python allocator wrapped by the engine's address space reserve (EngineMemoryReserve.swift):
// `failed` is called when an allocation smaller than `small` bytes fails. In C, so that the
// wrapper costs a call and a test in any build.
typedef struct {
    PyMemAllocatorEx wrapped;
    size_t small;
    void (*failed)(void);
} pykernel_watched_allocator;

static inline void *pykernel_watched_note(void *context, void *allocated, size_t size) {
    pykernel_watched_allocator *watched = (pykernel_watched_allocator *)context;
    if (allocated == NULL && size < watched->small) watched->failed();
    return allocated;
}
static inline void *pykernel_watched_malloc(void *context, size_t size) {
    PyMemAllocatorEx *wrapped = &((pykernel_watched_allocator *)context)->wrapped;
    return pykernel_watched_note(context, wrapped->malloc(wrapped->ctx, size), size);
}
static inline void *pykernel_watched_calloc(void *context, size_t count, size_t size) {
    PyMemAllocatorEx *wrapped = &((pykernel_watched_allocator *)context)->wrapped;
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) total = SIZE_MAX;
    return pykernel_watched_note(context, wrapped->calloc(wrapped->ctx, count, size), total);
}
static inline void *pykernel_watched_realloc(void *context, void *pointer, size_t size) {
    PyMemAllocatorEx *wrapped = &((pykernel_watched_allocator *)context)->wrapped;
    return pykernel_watched_note(context, wrapped->realloc(wrapped->ctx, pointer, size), size);
}
static inline void pykernel_watched_free(void *context, void *pointer) {
    PyMemAllocatorEx *wrapped = &((pykernel_watched_allocator *)context)->wrapped;
    wrapped->free(wrapped->ctx, pointer);
}
/// The allocator that calls `watched`'s wrapped one (`watched` lives as long as it is installed).
static inline PyMemAllocatorEx pykernel_watching_allocator(pykernel_watched_allocator *watched) {
    PyMemAllocatorEx allocator = {watched, pykernel_watched_malloc, pykernel_watched_calloc,
                                  pykernel_watched_realloc, pykernel_watched_free};
    return allocator;
}

static inline PyObject *pykernel_none(void) { return Py_None; }
static inline PyObject *pykernel_true(void) { return Py_True; }
static inline PyObject *pykernel_false(void) { return Py_False; }
static inline int pykernel_is_unicode(PyObject *o) { return PyUnicode_Check(o); }
static inline int pykernel_is_bytes(PyObject *o) { return PyBytes_Check(o); }
static inline int pykernel_is_long(PyObject *o) { return PyLong_Check(o); }
static inline int pykernel_is_dict(PyObject *o) { return PyDict_Check(o); }
static inline int pykernel_is_tuple(PyObject *o) { return PyTuple_Check(o); }
static inline int pykernel_is_exception_instance(PyObject *o) { return PyExceptionInstance_Check(o); }
static inline int pykernel_is_exception_class(PyObject *o) { return PyExceptionClass_Check(o); }
static inline int pykernel_object_check_buffer(PyObject *o) { return PyObject_CheckBuffer(o); }
static inline int pykernel_is_exact_unicode(PyObject *o) { return PyUnicode_CheckExact(o); }
static inline int pykernel_is_exact_long(PyObject *o) { return PyLong_CheckExact(o); }
static inline int pykernel_is_code(PyObject *o) { return PyCode_Check(o); }
// A code object's constants (borrowed): what `co_consts` returns, without the attribute lookup.
static inline PyObject *pykernel_code_constants(PyObject *code) { return ((PyCodeObject *)code)->co_consts; }
static inline Py_ssize_t pykernel_reference_count(PyObject *o) { return Py_REFCNT(o); }
static inline int pykernel_is_list(PyObject *o) { return PyList_Check(o); }
// Whether str(o) runs no Python code: exact str, int, float, bool, or None.
static inline int pykernel_str_runs_no_python(PyObject *o) {
    return PyUnicode_CheckExact(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o) || PyBool_Check(o)
        || o == Py_None;
}
static inline Py_ssize_t pykernel_vectorcall_nargs(size_t nargsf) { return PyVectorcall_NARGS(nargsf); }

// Turns the `POP_TOP`s at the `count` byte offsets `offsets` of a code object that has not run
// yet into `RETURN_VALUE`s, in place: the code then returns the value it would have dropped, on
// every path that reaches one of them (same instructions, positions and exception table
// otherwise). The cached `co_code` bytes are dropped so they are made again from the patched
// instructions. 0 (nothing changed) when an instruction there is not `POP_TOP`: all or nothing.
static inline int pykernel_return_instead_of_pop_tops(PyObject *code, const Py_ssize_t *offsets, Py_ssize_t count) {
    PyCodeObject *co = (PyCodeObject *)code;
    if (count < 1) return 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t offset = offsets[i];
        if (offset < 0 || offset % 2 != 0 || offset >= _PyCode_NBYTES(co)) return 0;
        if (_Py_OPCODE(_PyCode_CODE(co)[offset / 2]) != POP_TOP) return 0;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        _PyCode_CODE(co)[offsets[i] / 2] = _Py_MAKECODEUNIT(RETURN_VALUE, 0);
    }
    Py_CLEAR(co->_co_code);
    return 1;
}

// CPython 3.11's own view of the interpreter (the internal headers python3-dev installs), for what
// the C API cannot do from another thread: make the main thread's eval loop look at pending
// signals. Included after Python.h's public view, whose headers it completes.
#define Py_BUILD_CORE 1
#include <internal/pycore_interp.h>
#include <internal/pycore_runtime.h>

// Sets the main interpreter's eval breaker, so that its main thread, running bytecode, handles
// the signals tripped before (`PyErr_SetInterruptEx`) at its next check (a backward jump, a
// function's start, a call's end) without a signal being delivered. From another thread,
// `PyErr_SetInterruptEx` leaves the breaker unset (3.11 computes it for the calling thread).
// Only while signals are pending: once the main thread has handled them (or nothing was tripped:
// a handler set to SIG_IGN), a breaker set would stay set, and slow every check, until the
// interpreter recomputes it.
static inline void pykernel_break_main_eval_loop(void) {
    if (_Py_atomic_load_relaxed(&_PyRuntime.ceval.signals_pending)) {
        _Py_atomic_store_explicit(&PyInterpreterState_Main()->ceval.eval_breaker, 1, _Py_memory_order_release);
    }
}
// In a child forked outside CPython's fork handling (libc's `fork()` called through `ctypes`, which
// let go of the GIL first), from a `pthread_atfork` child handler: the GIL made takeable as
// `PyOS_AfterFork_Child` remakes it. Its mutex and condition variables may have been held or
// waited on by threads the child lacks (the forking thread then waited forever to take it back),
// a thread the child lacks may hold it, and a drop request of such a thread would have the
// forking thread wait, as it lets go of it, for a taker that never comes. Kept held only when
// the calling thread holds it (a fork made with the GIL held). Memory writes only (glibc's
// `pthread_*_init`), as in an async-signal handler; the condition variables use the monotonic
// clock, as CPython's (`_PyThread_cond_init`).
static inline void pykernel_remake_gil_in_child(void) {
    struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
    if (_Py_atomic_load_relaxed(&gil->locked) < 0) return;  // never created
    PyThreadState *own = PyGILState_GetThisThreadState();
    PyThreadState *holder = (PyThreadState *)_Py_atomic_load_relaxed(&_PyRuntime.gilstate.tstate_current);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_mutex_init(&gil->mutex, NULL);
    pthread_cond_init(&gil->cond, &monotonic);
    pthread_mutex_init(&gil->switch_mutex, NULL);
    pthread_cond_init(&gil->switch_cond, &monotonic);
    pthread_condattr_destroy(&monotonic);
    if (own == NULL || holder != own) _Py_atomic_store_relaxed(&gil->locked, 0);
    _Py_atomic_store_relaxed(&PyInterpreterState_Main()->ceval.gil_drop_request, 0);
}
// Whether `state` holds the GIL now (3.11 keeps the holder's thread state in a process-wide
// variable, readable from any thread). A hint: the holder may change at once.
static inline int pykernel_holds_gil(PyThreadState *state) { return _PyThreadState_UncheckedGet() == state; }
// Whether the object has an instance `__dict__` with something in it (without making one).
static inline int pykernel_has_instance_attributes(PyObject *o) {
    PyObject **dict = _PyObject_GetDictPtr(o);
    return dict != NULL && *dict != NULL && PyDict_GET_SIZE(*dict) > 0;
}
// Makes a class immutable as CPython's built-in types are (`Py_TPFLAGS_IMMUTABLETYPE`): setting or
// deleting one of its attributes raises `TypeError` ("cannot set 'write' attribute of immutable
// type '_io.TextIOWrapper'"), as does assigning `__class__` to or from it.
static inline void pykernel_make_type_immutable(PyObject *type) { ((PyTypeObject *)type)->tp_flags |= Py_TPFLAGS_IMMUTABLETYPE; }

// A new instance of the exception class `type` made with the one argument `argument` (none when
// NULL) as calling the class makes it (its `tp_new`, then its `tp_init`), without the call's
// recursion check: the stop the engine raises where the code is (`KeyboardInterrupt`, its
// `TimeoutError`) is made even when the code is at the recursion limit, as CPython makes its own
// `RecursionError` there. Only for classes whose `__new__` and `__init__` are native (no Python
// code runs). NULL with the error set when it fails.
static inline PyObject *pykernel_new_exception(PyObject *type, PyObject *argument) {
    PyTypeObject *exceptionType = (PyTypeObject *)type;
    PyObject *arguments = argument == NULL ? PyTuple_New(0) : PyTuple_Pack(1, argument);
    if (arguments == NULL) return NULL;
    PyObject *instance = exceptionType->tp_new(exceptionType, arguments, NULL);
    if (instance != NULL && exceptionType->tp_init != NULL && exceptionType->tp_init(instance, arguments, NULL) < 0) {
        Py_CLEAR(instance);
    }
    Py_DECREF(arguments);
    return instance;
}

#endif
