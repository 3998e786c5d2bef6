/*
 * Argument parsing and small helpers shared by the binding files (see lru_py.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lru_py.h"


int table_ready(TableObject *self)
{
    if (!self->open) {
        PyErr_SetString(SegmentError, "the table is closed");
        return -1;
    }
    if (self->t.hdr->retired) {
        PyErr_Format(SegmentError, "shm segment '%U' was retired by its owner (it restarted or "
                     "shut down); attach again", self->name);
        return -1;
    }
    return 0;
}

int get_bytes(PyObject *obj, const char *what, const uint8_t **data, size_t *len)
{
    if (!PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    *data = (const uint8_t *)PyBytes_AS_STRING(obj);
    *len = (size_t)PyBytes_GET_SIZE(obj);
    return 0;
}

/* An optional small int argument: the type tag (-1 when None/absent). */
int get_type_arg(PyObject *obj, int *out)
{
    if (obj == NULL || obj == Py_None) {
        *out = -1;
        return 0;
    }
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v > 255) {
        PyErr_Format(PyExc_ValueError, "type must be from 0 to 255, got %ld", v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int get_int64(PyObject *obj, const char *what, int64_t *out)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        PyErr_Format(PyExc_ValueError, "%s is out of range (64-bit milliseconds)", what);
        return -1;
    }
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* Parses fastcall positional + keyword arguments against names; missing ones stay NULL. */
int parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                      const char *const *names, int npos, int total, PyObject **out,
                      const char *fname)
{
    for (int i = 0; i < total; i++)
        out[i] = NULL;
    if (nargs > npos) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments", fname, npos);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        out[i] = args[i];
    if (kwnames) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            const char *kw = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, k));
            if (!kw)
                return -1;
            int found = 0;
            for (int i = 0; i < total; i++) {
                if (strcmp(kw, names[i]) == 0) {
                    if (out[i]) {
                        PyErr_Format(PyExc_TypeError, "%s() got multiple values for '%s'", fname, kw);
                        return -1;
                    }
                    out[i] = args[nargs + k];
                    found = 1;
                    break;
                }
            }
            if (!found) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%s'",
                             fname, kw);
                return -1;
            }
        }
    }
    return 0;
}

PyObject *value_bytes(TableObject *self, const lru_entry_t *e)
{
    PyObject *v = PyBytes_FromStringAndSize(NULL, e->head->vlen);
    if (v)
        lru_copy_value(&self->t, e, (uint8_t *)PyBytes_AS_STRING(v));
    return v;
}

PyObject *key_bytes(TableObject *self, const lru_entry_t *e)
{
    PyObject *k = PyBytes_FromStringAndSize(NULL, e->head->klen);
    if (k)
        lru_copy_key(&self->t, e, (uint8_t *)PyBytes_AS_STRING(k));
    return k;
}


/* Lookup shared by the single-key methods: parses the key, takes the lock, finds the entry. */
int lookup(TableObject *self, PyObject *key_obj, lru_entry_t *e, int64_t *now)
{
    const uint8_t *key;
    size_t klen;
    if (get_bytes(key_obj, "key", &key, &klen) < 0 || table_ready(self) < 0)
        return -1;
    *now = lru_now_ms();
    uint64_t hash = lru_hash(key, klen);
    if (lru_lock(&self->t) != 0) {
        PyErr_SetString(ShmLRUError, "cannot take the table lock");
        return -1;
    }
    return lru_find(&self->t, key, klen, hash, *now, e);
}


PyObject *wrong_type(void)
{
    PyErr_SetString(WrongTypeError, "WRONGTYPE Operation against a key holding the wrong kind of "
                    "value");
    return NULL;
}
