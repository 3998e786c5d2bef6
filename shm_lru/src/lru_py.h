/*
 * Private header of the Python bindings (lru_module.c, lru_py_args.c, lru_py_access.c,
 * lru_py_whole.c): the object structs and the helpers they share. The locking rule of the core
 * (lru_table.h) holds here too: a method takes the table lock around core calls, builds Python
 * objects under it only to copy bytes out of the segment, and never runs Python code with it held.
 */
#ifndef SHM_LRU_PY_H
#define SHM_LRU_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "lru_table.h"

typedef struct {
    PyObject_HEAD
    lru_table_t t;
    PyObject *name;
    int open;
} TableObject;

typedef struct {
    PyObject_HEAD
    TableObject *table;
    uint64_t pos, seq;
    uint8_t *buf;
    size_t buf_bytes;
} ReaderObject;

extern PyObject *ShmLRUError, *SegmentError, *WrongTypeError;
extern PyTypeObject TableType, ReaderType;

#define LOCK_OR_FAIL(self)                                                                   \
    if (lru_lock(&(self)->t) != 0) {                                                         \
        PyErr_SetString(ShmLRUError, "cannot take the table lock");                          \
        return NULL;                                                                         \
    }

/* lru_py_args.c */
int table_ready(TableObject *self);
int get_bytes(PyObject *obj, const char *what, const uint8_t **data, size_t *len);
int get_type_arg(PyObject *obj, int *out);
int get_int64(PyObject *obj, const char *what, int64_t *out);
int parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               const char *const *names, int npos, int total, PyObject **out, const char *fname);
PyObject *value_bytes(TableObject *self, const lru_entry_t *e);
PyObject *key_bytes(TableObject *self, const lru_entry_t *e);
int lookup(TableObject *self, PyObject *key_obj, lru_entry_t *e, int64_t *now);
PyObject *wrong_type(void);

/* lru_py_access.c */
PyObject *Table_get(TableObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw);
PyObject *Table_get_entry(TableObject *self, PyObject *key_obj);
PyObject *Table_exists(TableObject *s, PyObject *k);
PyObject *Table_touch(TableObject *s, PyObject *k);
PyObject *Table_type(TableObject *s, PyObject *k);
PyObject *Table_version(TableObject *s, PyObject *k);
PyObject *Table_info(TableObject *s, PyObject *k);
PyObject *Table_pttl(TableObject *s, PyObject *k);
PyObject *Table_ttl(TableObject *s, PyObject *k);
PyObject *Table_expiretime(TableObject *s, PyObject *k);
PyObject *Table_set(TableObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw);
PyObject *Table_pop(TableObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *Table_delete(TableObject *self, PyObject *key_obj);
PyObject *Table_expire(TableObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *Table_expire_at(TableObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *Table_persist(TableObject *self, PyObject *key_obj);
PyObject *Table_incrby(TableObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *Table_prefetch(TableObject *self, PyObject *key_obj);
int table_prefetch(PyObject *table, PyObject *key);
int table_prefetch_bucket(PyObject *table, PyObject *key);

/* lru_py_whole.c */
Py_ssize_t Table_len(TableObject *self);
PyObject *Table_scan(TableObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw);
PyObject *Table_random_key(TableObject *self, PyObject *unused);
PyObject *Table_flush(TableObject *self, PyObject *unused);
PyObject *Table_sweep(TableObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw);
PyObject *Table_now_ms(TableObject *self, PyObject *unused);
PyObject *Table_stats(TableObject *self, PyObject *unused);
PyObject *Table_check(TableObject *self, PyObject *unused);
PyObject *Table_journal(TableObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw);
void Reader_dealloc(ReaderObject *r);
PyObject *Reader_read(ReaderObject *r, PyObject *const *args, Py_ssize_t nargs);

#endif
