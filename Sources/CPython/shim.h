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
static inline int pykernel_is_list(PyObject *o) { return PyList_Check(o); }
// Whether str(o) runs no Python code: exact str, int, float, bool, or None.
static inline int pykernel_str_runs_no_python(PyObject *o) {
    return PyUnicode_CheckExact(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o) || PyBool_Check(o)
        || o == Py_None;
}
static inline Py_ssize_t pykernel_vectorcall_nargs(size_t nargsf) { return PyVectorcall_NARGS(nargsf); }


#endif
