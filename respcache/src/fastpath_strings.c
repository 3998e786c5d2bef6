/*
 * GET and the plain form of SET, written in C (see fastpath.c for why): the handlers the
 * registry holds for both commands, so the C loop, execute() and MULTI/EXEC run the same code.
 * Part of the _fastpath module; what they need from Python is given once by fastpath_configure().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "fastpath.h"

static PyObject *str_get, *str_set, *str_proto;

/* What GET and SET need from the Python side, given once by fastpath_configure(). */
static PyObject *string_type;      /* keyspace.STRING */
static PyObject *wrongtype_error;  /* shm_lru.WrongTypeError */
static PyObject *wrongtype_reply;  /* -WRONGTYPE ... */
static PyObject *nil_replies;      /* {proto: nil bulk} */
static PyObject *ok_reply;         /* +OK */
static PyObject *set_general;      /* strings.set_with_options(conn, argv) */

int
fastpath_strings_init(void)
{
    str_get = PyUnicode_InternFromString("get");
    str_set = PyUnicode_InternFromString("set");
    str_proto = PyUnicode_InternFromString("proto");
    return str_get && str_set && str_proto ? 0 : -1;
}

static int
configured(void)
{
    if (string_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "respcache._fastpath.configure() was not called");
        return 0;
    }
    return 1;
}

/* $<len> CRLF <value> CRLF, built in one allocation. */
static PyObject *
bulk_reply(PyObject *value)
{
    char digits[24];
    Py_ssize_t len = PyBytes_GET_SIZE(value), n = 0, i;
    size_t rest = (size_t)len;
    PyObject *reply;
    char *p;

    do {
        digits[n++] = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest != 0);
    reply = PyBytes_FromStringAndSize(NULL, 1 + n + 2 + len + 2);
    if (reply == NULL)
        return NULL;
    p = PyBytes_AS_STRING(reply);
    *p++ = '$';
    for (i = n - 1; i >= 0; i--)
        *p++ = digits[i];
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, PyBytes_AS_STRING(value), (size_t)len);
    p += len;
    *p++ = '\r';
    *p = '\n';
    return reply;
}

static PyObject *
nil_reply(PyObject *conn)
{
    PyObject *proto = PyObject_GetAttr(conn, str_proto), *reply;

    if (proto == NULL)
        return NULL;
    reply = PyObject_GetItem(nil_replies, proto);
    Py_DECREF(proto);
    return reply;
}

/* argv as a handler receives it: a list (hiredis) of at least `need` items. */
static int
handler_args(PyObject *const *argv, Py_ssize_t argc, Py_ssize_t need)
{
    if (argc != 2 || !PyList_Check(argv[1]) || PyList_GET_SIZE(argv[1]) < need) {
        PyErr_SetString(PyExc_TypeError, "handler(conn, argv)");
        return 0;
    }
    return configured();
}

const char fastpath_get_handler_doc[] = "GET key: the handler registered for GET (strings.py).";

PyObject *
fastpath_get_handler(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    PyObject *table, *value, *reply, *call_args[3];

    if (!handler_args(argv, argc, 2))
        return NULL;
    table = PyObject_GetAttr(argv[0], fastpath_str_table);
    if (table == NULL)
        return NULL;
    call_args[0] = table;
    call_args[1] = PyList_GET_ITEM(argv[1], 1);
    call_args[2] = string_type;
    value = PyObject_VectorcallMethod(str_get, call_args,
                                      3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(table);
    if (value == NULL) {
        if (PyErr_ExceptionMatches(wrongtype_error)) {
            PyErr_Clear();
            return Py_NewRef(wrongtype_reply);
        }
        return NULL;   /* a key that is not bytes: handler_failed makes it a protocol error */
    }
    if (value == Py_None) {
        Py_DECREF(value);
        return nil_reply(argv[0]);
    }
    if (!PyBytes_Check(value)) {
        Py_DECREF(value);
        PyErr_SetString(PyExc_TypeError, "the table returned a value that is not bytes");
        return NULL;
    }
    reply = bulk_reply(value);
    Py_DECREF(value);
    return reply;
}

const char fastpath_set_handler_doc[] =
    "SET key value [options]: the handler registered for SET (strings.py).";

PyObject *
fastpath_set_handler(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    PyObject *table, *done, *call_args[3];

    if (!handler_args(argv, argc, 3))
        return NULL;
    if (PyList_GET_SIZE(argv[1]) != 3)
        return PyObject_Vectorcall(set_general, argv, 2, NULL);
    table = PyObject_GetAttr(argv[0], fastpath_str_table);
    if (table == NULL)
        return NULL;
    call_args[0] = table;
    call_args[1] = PyList_GET_ITEM(argv[1], 1);
    call_args[2] = PyList_GET_ITEM(argv[1], 2);
    done = PyObject_VectorcallMethod(str_set, call_args,
                                     3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(table);
    if (done == NULL) {
        /* Too big for the table, or arguments that are not bytes: the Python form says how
         * (it tries the same write, which changes nothing, and words the error). */
        PyErr_Clear();
        return PyObject_Vectorcall(set_general, argv, 2, NULL);
    }
    Py_DECREF(done);
    return Py_NewRef(ok_reply);
}

const char fastpath_configure_doc[] =
"configure(string_type, wrongtype_error, wrongtype_reply, nil_replies, ok_reply, set_general)\n"
"What GET and SET need from the Python side; strings.py calls it once at import.";

PyObject *
fastpath_configure(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    if (argc != 6) {
        PyErr_SetString(PyExc_TypeError, "configure() takes 6 arguments");
        return NULL;
    }
    if (!PyBytes_Check(argv[2]) || !PyBytes_Check(argv[4]) || !PyCallable_Check(argv[5])) {
        PyErr_SetString(PyExc_TypeError, "configure(): replies are bytes, set_general callable");
        return NULL;
    }
    Py_XSETREF(string_type, Py_NewRef(argv[0]));
    Py_XSETREF(wrongtype_error, Py_NewRef(argv[1]));
    Py_XSETREF(wrongtype_reply, Py_NewRef(argv[2]));
    Py_XSETREF(nil_replies, Py_NewRef(argv[3]));
    Py_XSETREF(ok_reply, Py_NewRef(argv[4]));
    Py_XSETREF(set_general, Py_NewRef(argv[5]));
    Py_RETURN_NONE;
}
