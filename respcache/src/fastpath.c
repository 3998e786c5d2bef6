/*
 * respcache._fastpath: the per-command loop of Connection._drain, and the command counters.
 *
 * Python keeps every decision that is not "run this data command now": the general dispatch
 * path (execute), deferred replies, protocol errors, the parser's boundary bookkeeping. run()
 * takes complete requests from the hiredis reader one at a time. A request whose name is in the
 * table it is given, with an argument count in range, runs here: the downstream hook, the
 * handler (a Python function), the clock, the counters, the SLOWLOG hand-off. It returns at the
 * first request it does not take, or when the reader holds no complete request.
 *
 * The interpreter's per-bytecode cost is what this saves: on the 2-core benchmark box the same
 * loop in Python cost about as much as the handler, the table and the parser together.
 *
 * GET and the plain form of SET are handlers written here too (get_handler, set_handler): they
 * are the commands a session cache serves most, and a Python handler frame plus bytes %-format
 * cost more than the table lookup itself. They are the registered handlers, so every path (this
 * loop, execute(), MULTI/EXEC) runs the same code; SET with options is handed to Python.
 *
 * Parsing one request ahead: before it runs a request, run() takes the next one from the
 * reader (when the reader holds more) and, if it is a data command with a key, asks shm_lru for
 * that key's bucket; when the next request's turn comes, it asks for its records (the bucket is
 * in cache by then) before the handler starts. The table's cache misses (bucket, then head
 * record: two dependent loads that were most of SET's table time) so overlap with work instead
 * of stalling one after the other. A protocol error met while parsing ahead is raised only
 * after the current request ran, so replies keep their order.
 *
 * Reference rule: run() owns the request in hand (`req`) and drops it on every path; every
 * value it returns is a new reference. Entries in the table are borrowed for the length of one
 * request only: the table is never changed while run() is on the stack (registration happens
 * at import, before any connection).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#include "fastpath.h"
#include "lru_capi.h"

#define MAX_COMMANDS 1024  /* command indexes (subcommands included) handed out by the registry */

/* Per-command counters: calls and microseconds, as INFO commandstats reports them. */
static long long calls_of[MAX_COMMANDS];
static long long usec_of[MAX_COMMANDS];

static PyObject *str_gets, *str_has_data, *str_handler_failed, *str_closing,
                *str_last_command, *str_before_command, *str_slowlog_add, *str_count_error;
PyObject *fastpath_str_table;   /* shared with fastpath_strings.c (fastpath.h) */

/* shm_lru's C API (its prefetch hint), imported at module init. */
static shm_lru_capi *table_api;

/* ---- Entry: what run() needs to know of one command, read without attribute lookups ------ */

typedef struct {
    PyObject_HEAD
    Py_ssize_t index;      /* into calls_of / usec_of */
    Py_ssize_t min_args;   /* arity as a range of argv lengths */
    Py_ssize_t max_args;
    int first_key;         /* has key arguments: the downstream hook may want them first */
    PyObject *handler;     /* handler(conn, argv) -> bytes */
    PyObject *command;     /* the registry's Command, for the hook and for handler_failed */
    PyObject *name;        /* str, for conn.last_command */
} Entry;

static int
Entry_init(Entry *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"index", "min_args", "max_args", "first_key", "handler", "command",
                             "name", NULL};
    PyObject *handler, *command, *name;
    int first_key;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nnnpOOU", kwlist, &self->index,
                                     &self->min_args, &self->max_args, &first_key, &handler,
                                     &command, &name))
        return -1;
    if (self->index < 0 || self->index >= MAX_COMMANDS) {
        PyErr_SetString(PyExc_ValueError, "command index out of range");
        return -1;
    }
    self->first_key = first_key;
    Py_INCREF(handler);
    Py_XSETREF(self->handler, handler);
    Py_INCREF(command);
    Py_XSETREF(self->command, command);
    Py_INCREF(name);
    Py_XSETREF(self->name, name);
    return 0;
}

static void
Entry_dealloc(Entry *self)
{
    Py_XDECREF(self->handler);
    Py_XDECREF(self->command);
    Py_XDECREF(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Entry_members[] = {
    {"index", T_PYSSIZET, offsetof(Entry, index), READONLY, NULL},
    {"command", T_OBJECT, offsetof(Entry, command), READONLY, NULL},
    {NULL}
};

static PyTypeObject EntryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "respcache._fastpath.Entry",
    .tp_basicsize = sizeof(Entry),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Entry_init,
    .tp_dealloc = (destructor)Entry_dealloc,
    .tp_members = Entry_members,
    .tp_doc = "Entry(index, min_args, max_args, first_key, handler, command, name)",
};

/* ---- small helpers ------------------------------------------------------------------------ */

static long long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The entry for a request this loop may run, or NULL (with no error set) when it may not. */
static Entry *
entry_for(PyObject *table, PyObject *req, int *failed)
{
    PyObject *name, *found;
    Py_ssize_t argc;

    if (!PyList_CheckExact(req) || (argc = PyList_GET_SIZE(req)) == 0)
        return NULL;
    name = PyList_GET_ITEM(req, 0);
    if (!PyBytes_CheckExact(name))
        return NULL;
    found = PyDict_GetItemWithError(table, name);
    if (found == NULL) {
        *failed = PyErr_Occurred() != NULL;
        return NULL;
    }
    if (Py_TYPE(found) != &EntryType)
        return NULL;
    if (argc < ((Entry *)found)->min_args || argc > ((Entry *)found)->max_args)
        return NULL;
    return (Entry *)found;
}

/* A handler raised: conn.handler_failed(command, argv, exc) makes the reply (or closes the
 * connection on a protocol error). The exception is passed along so its traceback is logged. */
static PyObject *
reply_for_failure(PyObject *conn, Entry *entry, PyObject *req)
{
    PyObject *type, *value, *tb, *reply;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    reply = PyObject_CallMethodObjArgs(conn, str_handler_failed, entry->command, req,
                                       value ? value : Py_None, NULL);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return reply;
}

/* ---- parsing ahead -------------------------------------------------------------------------- */

/* What the reader holds after the request in hand, learnt before that request runs. */
enum ahead_kind {
    AHEAD_BOUNDARY,   /* nothing more: the reader stands at a request boundary */
    AHEAD_REQUEST,    /* the next request, parsed (run() holds it in `ahead`) */
    AHEAD_PARTIAL,    /* part of a request: wait for more bytes */
    AHEAD_ERROR,      /* a protocol error, kept (type, value, tb) to raise after the request */
};

struct ahead_state {
    enum ahead_kind state;
    PyObject *type, *value, *tb;
};

/*
 * Takes the next request from the reader, if it holds one, and prefetches its key when it is a
 * data command this loop will run. Asked before gets(): once gets() has said False, hiredis may
 * have taken in a partial request's bytes, and "no data" would no longer mean a boundary.
 * Returns -1 only on an error that is not the stream's (it is set).
 */
static int
parse_ahead(PyObject *has_data, PyObject *gets, PyObject *table, PyObject *key_table,
            PyObject **ahead, struct ahead_state *after)
{
    PyObject *more = PyObject_CallNoArgs(has_data), *next;
    Entry *entry;
    int failed = 0, at_boundary;

    if (more == NULL)
        return -1;
    at_boundary = more == Py_False;
    Py_DECREF(more);
    if (at_boundary) {
        after->state = AHEAD_BOUNDARY;
        return 0;
    }
    next = PyObject_CallNoArgs(gets);
    if (next == NULL) {
        after->state = AHEAD_ERROR;
        PyErr_Fetch(&after->type, &after->value, &after->tb);
        return 0;
    }
    if (next == Py_False) {
        Py_DECREF(next);
        after->state = AHEAD_PARTIAL;
        return 0;
    }
    after->state = AHEAD_REQUEST;
    *ahead = next;
    entry = entry_for(table, next, &failed);
    if (failed)
        PyErr_Clear();   /* run() looks again when it comes to this request */
    else if (entry != NULL && entry->first_key && table_api != NULL
             && PyList_GET_SIZE(next) > 1)
        table_api->prefetch_bucket(key_table, PyList_GET_ITEM(next, 1));
    return 0;
}

/* ---- run ---------------------------------------------------------------------------------- */

PyDoc_STRVAR(run_doc,
"run(conn, reader, out, table, misses, slower_than, server)\n"
"\n"
"Run the requests the reader holds while each is in `table` (bytes name -> Entry) with an\n"
"argument count in range, appending replies to `out`. Returns True when the reader is at a\n"
"request boundary, False when it holds part of a request, None when the connection closed\n"
"(a protocol error in the arguments), a 1-tuple (request,) for a request the caller must\n"
"run itself, or the object the downstream hook `misses.before_command` returned (a Future).\n"
"hiredis.ProtocolError passes through.");

static PyObject *
run(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    PyObject *conn, *reader, *out, *table, *misses, *server;
    PyObject *gets = NULL, *has_data = NULL, *result = NULL;
    PyObject *key_table = NULL, *ahead = NULL;
    struct ahead_state after = {AHEAD_BOUNDARY, NULL, NULL, NULL};
    Entry *last = NULL;
    long long slower_than, tick;

    if (argc != 7) {
        PyErr_SetString(PyExc_TypeError, "run() takes 7 arguments");
        return NULL;
    }
    conn = argv[0];
    reader = argv[1];
    out = argv[2];
    table = argv[3];
    misses = argv[4];
    server = argv[6];
    if (!PyList_CheckExact(out) || !PyDict_CheckExact(table)) {
        PyErr_SetString(PyExc_TypeError, "run() needs a list and a dict");
        return NULL;
    }
    slower_than = PyLong_AsLongLong(argv[5]);
    if (slower_than == -1 && PyErr_Occurred())
        return NULL;
    gets = PyObject_GetAttr(reader, str_gets);
    has_data = PyObject_GetAttr(reader, str_has_data);
    if (gets == NULL || has_data == NULL)
        goto done;

    key_table = PyObject_GetAttr(conn, fastpath_str_table);
    if (key_table == NULL)
        goto done;
    tick = now_ns();
    for (;;) {
        PyObject *req, *reply;
        int failed = 0;
        long long now, usec;
        Entry *entry;

        if (ahead != NULL) {
            req = ahead;
            ahead = NULL;
        } else {
            req = PyObject_CallNoArgs(gets);
            if (req == NULL)
                goto done;
            if (req == Py_False) {
                result = req;
                goto done;
            }
        }
        entry = entry_for(table, req, &failed);
        if (entry == NULL) {
            if (!failed)
                result = PyTuple_Pack(1, req);
            Py_DECREF(req);
            goto done;
        }
        if (entry->first_key && misses != Py_None) {
            PyObject *deferred = PyObject_CallMethodObjArgs(misses, str_before_command, conn,
                                                            entry->command, req, NULL);
            if (deferred != Py_None) {
                result = deferred;   /* a Future, or NULL with the hook's exception */
                Py_DECREF(req);
                goto done;
            }
            Py_DECREF(deferred);
        }

        /* Its bucket was asked for while the request before ran: now the records. */
        if (entry->first_key && table_api != NULL && PyList_GET_SIZE(req) > 1)
            table_api->prefetch(key_table, PyList_GET_ITEM(req, 1));
        if (parse_ahead(has_data, gets, table, key_table, &ahead, &after) < 0) {
            Py_DECREF(req);
            goto done;
        }

        {
            PyObject *call_args[2] = {conn, req};
            reply = PyObject_Vectorcall(entry->handler, call_args, 2, NULL);
        }
        if (reply == NULL) {
            PyObject *closing;
            reply = reply_for_failure(conn, entry, req);
            closing = reply ? PyObject_GetAttr(conn, str_closing) : NULL;
            if (closing == NULL) {
                Py_XDECREF(reply);
                Py_DECREF(req);
                goto done;
            }
            Py_DECREF(closing);
            if (closing == Py_True) {   /* a protocol error: arguments not bulk strings */
                Py_DECREF(reply);
                Py_DECREF(req);
                result = Py_NewRef(Py_None);
                goto done;
            }
        }
        if (PyBytes_Check(reply) && PyBytes_GET_SIZE(reply) > 0
            && PyBytes_AS_STRING(reply)[0] == '-') {   /* rare: INFO's error counters */
            PyObject *ok = PyObject_CallMethodObjArgs(server, str_count_error, reply, NULL);
            if (ok == NULL) {
                Py_DECREF(reply);
                Py_DECREF(req);
                goto done;
            }
            Py_DECREF(ok);
        }
        if (PyList_Append(out, reply) < 0) {
            Py_DECREF(reply);
            Py_DECREF(req);
            goto done;
        }
        Py_DECREF(reply);

        now = now_ns();
        usec = (now - tick) / 1000;
        tick = now;
        calls_of[entry->index] += 1;
        usec_of[entry->index] += usec;
        last = entry;
        if (slower_than >= 0 && usec >= slower_than) {
            PyObject *usec_obj = PyLong_FromLongLong(usec);
            PyObject *ok = usec_obj ? PyObject_CallMethodObjArgs(server, str_slowlog_add, conn,
                                                                 req, usec_obj, NULL) : NULL;
            Py_XDECREF(usec_obj);
            if (ok == NULL) {
                Py_DECREF(req);
                goto done;
            }
            Py_DECREF(ok);
        }
        Py_DECREF(req);

        switch (after.state) {
        case AHEAD_REQUEST:
            continue;
        case AHEAD_BOUNDARY:
            result = Py_NewRef(Py_True);
            goto done;
        case AHEAD_PARTIAL:
            result = Py_NewRef(Py_False);
            goto done;
        case AHEAD_ERROR:   /* the protocol error parsing ahead met, now that req has run */
            PyErr_Restore(after.type, after.value, after.tb);
            after.type = after.value = after.tb = NULL;
            goto done;
        }
    }

done:
    Py_XDECREF(ahead);   /* only on an error or a closed connection: the stream is over */
    if (after.state == AHEAD_ERROR) {
        Py_XDECREF(after.type);
        Py_XDECREF(after.value);
        Py_XDECREF(after.tb);
    }
    Py_XDECREF(key_table);
    if (last != NULL) {
        /* Keep an error in flight across the attribute store. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (PyObject_SetAttr(conn, str_last_command, last->name) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(gets);
    Py_XDECREF(has_data);
    return result;
}

/* ---- counters ----------------------------------------------------------------------------- */

static int
index_arg(PyObject *arg, Py_ssize_t *index)
{
    *index = PyLong_AsSsize_t(arg);
    if (*index == -1 && PyErr_Occurred())
        return -1;
    if (*index < 0 || *index >= MAX_COMMANDS) {
        PyErr_SetString(PyExc_IndexError, "command index out of range");
        return -1;
    }
    return 0;
}

static PyObject *
count(PyObject *module, PyObject *const *argv, Py_ssize_t argc)
{
    Py_ssize_t index;
    long long usec;

    if (argc != 2) {
        PyErr_SetString(PyExc_TypeError, "count(index, usec)");
        return NULL;
    }
    if (index_arg(argv[0], &index) < 0)
        return NULL;
    usec = PyLong_AsLongLong(argv[1]);
    if (usec == -1 && PyErr_Occurred())
        return NULL;
    calls_of[index] += 1;
    usec_of[index] += usec;
    Py_RETURN_NONE;
}

static PyObject *
stats(PyObject *module, PyObject *arg)
{
    Py_ssize_t index;

    if (index_arg(arg, &index) < 0)
        return NULL;
    return Py_BuildValue("(LL)", calls_of[index], usec_of[index]);
}

static PyObject *
reset(PyObject *module, PyObject *unused)
{
    memset(calls_of, 0, sizeof(calls_of));
    memset(usec_of, 0, sizeof(usec_of));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)(void (*)(void))run, METH_FASTCALL, run_doc},
    {"count", (PyCFunction)(void (*)(void))count, METH_FASTCALL,
     "count(index, usec): one more call of that command, taking usec microseconds."},
    {"stats", stats, METH_O, "stats(index) -> (calls, usec)"},
    {"reset", reset, METH_NOARGS, "reset(): zero every counter (CONFIG RESETSTAT)."},
    {"get_handler", (PyCFunction)(void (*)(void))fastpath_get_handler, METH_FASTCALL,
     fastpath_get_handler_doc},
    {"set_handler", (PyCFunction)(void (*)(void))fastpath_set_handler, METH_FASTCALL,
     fastpath_set_handler_doc},
    {"configure", (PyCFunction)(void (*)(void))fastpath_configure, METH_FASTCALL,
     fastpath_configure_doc},
    {"scan_headers", (PyCFunction)(void (*)(void))fastpath_scan_headers, METH_FASTCALL,
     fastpath_scan_headers_doc},
    {NULL}
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "respcache._fastpath",
    "The per-command loop of Connection._drain and the per-command counters.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *module;

    if (PyType_Ready(&EntryType) < 0)
        return NULL;
    str_gets = PyUnicode_InternFromString("gets");
    str_has_data = PyUnicode_InternFromString("has_data");
    str_handler_failed = PyUnicode_InternFromString("handler_failed");
    str_closing = PyUnicode_InternFromString("closing");
    str_last_command = PyUnicode_InternFromString("last_command");
    str_before_command = PyUnicode_InternFromString("before_command");
    str_slowlog_add = PyUnicode_InternFromString("slowlog_add");
    str_count_error = PyUnicode_InternFromString("count_error_reply");
    fastpath_str_table = PyUnicode_InternFromString("table");
    if (!str_gets || !str_has_data || !str_handler_failed || !str_closing || !str_last_command
        || !str_before_command || !str_slowlog_add || !str_count_error || !fastpath_str_table
        || fastpath_strings_init() < 0)
        return NULL;
    /* shm_lru's prefetch hint; without it requests run the same, only without the hint. */
    table_api = (shm_lru_capi *)PyCapsule_Import(SHM_LRU_CAPI_NAME, 0);
    if (table_api == NULL)
        PyErr_Clear();
    module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&EntryType);
    if (PyModule_AddObject(module, "Entry", (PyObject *)&EntryType) < 0) {
        Py_DECREF(&EntryType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "MAX_COMMANDS", MAX_COMMANDS) < 0 ||
        PyModule_AddIntConstant(module, "TABLE_PREFETCH", table_api != NULL) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
