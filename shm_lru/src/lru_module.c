/*
 * Python bindings for the shm_lru table: the ShmLRU type and its JournalReader.
 * Every method that touches the segment takes the table lock around the core call (the locking
 * rule is in lru_table.h); Python objects are built while the lock is held only when they copy
 * bytes out of the segment, and no Python code ever runs with the lock held.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lru_table.h"

static PyObject *ShmLRUError, *SegmentError, *WrongTypeError;

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

static PyTypeObject TableType, ReaderType;

/* ---- helpers ---------------------------------------------------------------------------- */

static int table_ready(TableObject *self)
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

static int get_bytes(PyObject *obj, const char *what, const uint8_t **data, size_t *len)
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
static int get_type_arg(PyObject *obj, int *out)
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

static int get_int64(PyObject *obj, const char *what, int64_t *out)
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
static int parse_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
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

static PyObject *value_bytes(TableObject *self, const lru_entry_t *e)
{
    PyObject *v = PyBytes_FromStringAndSize(NULL, e->head->vlen);
    if (v)
        lru_copy_value(&self->t, e, (uint8_t *)PyBytes_AS_STRING(v));
    return v;
}

static PyObject *key_bytes(TableObject *self, const lru_entry_t *e)
{
    PyObject *k = PyBytes_FromStringAndSize(NULL, e->head->klen);
    if (k)
        lru_copy_key(&self->t, e, (uint8_t *)PyBytes_AS_STRING(k));
    return k;
}

#define LOCK_OR_FAIL(self)                                                                   \
    if (lru_lock(&(self)->t) != 0) {                                                         \
        PyErr_SetString(ShmLRUError, "cannot take the table lock");                          \
        return NULL;                                                                         \
    }

/* Lookup shared by the single-key methods: parses the key, takes the lock, finds the entry. */
static int lookup(TableObject *self, PyObject *key_obj, lru_entry_t *e, int64_t *now)
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

/* ---- segment lifecycle ------------------------------------------------------------------ */

static int shm_path(PyObject *name, char *path, size_t size)
{
    const char *text = PyUnicode_AsUTF8(name);
    if (!text)
        return -1;
    size_t n = strlen(text);
    if (n == 0 || n > 200 || strchr(text, '/')) {
        PyErr_Format(PyExc_ValueError, "segment name must be 1-200 characters without '/': '%s'",
                     text);
        return -1;
    }
    snprintf(path, size, "/%s", text);
    return 0;
}

static TableObject *map_segment(PyObject *name, int fd, size_t size)
{
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        PyErr_Format(SegmentError, "cannot map shm segment '%U': %s", name, strerror(errno));
        return NULL;
    }
    TableObject *self = PyObject_New(TableObject, &TableType);
    if (!self) {
        munmap(base, size);
        return NULL;
    }
    self->t.base = base;
    self->t.hdr = base;
    self->t.size = size;
    self->name = name;
    Py_INCREF(name);
    self->open = 1;
    return self;
}

static PyObject *attach_impl(PyObject *name)
{
    char path[256];
    if (shm_path(name, path, sizeof(path)) < 0)
        return NULL;
    int fd = shm_open(path, O_RDWR, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return PyErr_Format(SegmentError, "shm segment '%U' does not exist", name);
        return PyErr_Format(SegmentError, "cannot open shm segment '%U': %s", name,
                            strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(lru_header_t)) {
        close(fd);
        return PyErr_Format(SegmentError, "shm segment '%U' is too small (%lld bytes) to be a "
                            "shm_lru table", name, (long long)st.st_size);
    }
    TableObject *self = map_segment(name, fd, (size_t)st.st_size);
    close(fd);
    if (!self)
        return NULL;
    const char *why = lru_validate(&self->t, self->t.size);
    if (why) {
        uint32_t found = self->t.hdr->layout_version;
        int version_problem = strcmp(why, "layout version") == 0;
        Py_DECREF(self);
        if (version_problem)
            return PyErr_Format(SegmentError, "shm segment '%U' has layout version %u; this "
                                "build of shm_lru reads layout version %d", name, found,
                                LRU_LAYOUT_VERSION);
        return PyErr_Format(SegmentError, "shm segment '%U': %s", name, why);
    }
    return (PyObject *)self;
}

static PyObject *Table_attach(PyObject *cls, PyObject *name)
{
    if (!PyUnicode_Check(name))
        return PyErr_Format(PyExc_TypeError, "name must be str");
    return attach_impl(name);
}

/* Marks an existing segment retired (if it is one of ours) and removes its name. */
static void retire_existing(PyObject *name, const char *path)
{
    PyObject *old = attach_impl(name);
    if (old) {
        ((TableObject *)old)->t.hdr->retired = 1;
        Py_DECREF(old);
    } else {
        PyErr_Clear();
    }
    shm_unlink(path);
}

static PyObject *Table_create(PyObject *cls, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    static const char *const names[] = {"name", "capacity", "record_size", "journal_bytes",
                                        "replace", "touch_interval_ms"};
    PyObject *a[6];
    if (parse_args(args, nargs, kwnames, names, 5, 6, a, "create") < 0)
        return NULL;
    if (!a[0] || !PyUnicode_Check(a[0]))
        return PyErr_Format(PyExc_TypeError, "create() needs a str name");
    long long capacity = a[1] ? PyLong_AsLongLong(a[1]) : 65536;
    long long record_size = a[2] ? PyLong_AsLongLong(a[2]) : 384;
    long long journal = (a[3] && a[3] != Py_None) ? PyLong_AsLongLong(a[3]) : -1;
    int replace = a[4] ? PyObject_IsTrue(a[4]) : 0;
    long long touch_ms = (a[5] && a[5] != Py_None) ? PyLong_AsLongLong(a[5]) : 1000;
    if (PyErr_Occurred())
        return NULL;
    if (touch_ms < 0 || touch_ms > 3600000)
        return PyErr_Format(PyExc_ValueError, "touch_interval_ms must be from 0 to 3600000, got "
                            "%lld", touch_ms);
    if (capacity < 1 || capacity > 0x7fffffff)
        return PyErr_Format(PyExc_ValueError, "capacity must be from 1 to 2147483647 records, "
                            "got %lld", capacity);
    long long min_record = (long long)LRU_HEAD_BYTES + 8;
    if (record_size < min_record || record_size > (1 << 24))
        return PyErr_Format(PyExc_ValueError, "record_size must be from %lld to %d bytes, got "
                            "%lld", min_record, 1 << 24, record_size);
    record_size = (record_size + 7) & ~7LL;  /* keeps every record header 8-byte aligned */
    if (journal < 0) {
        journal = capacity * record_size / 8;
        journal = journal < (1 << 20) ? (1 << 20) : journal > (64LL << 20) ? (64LL << 20) : journal;
    }
    if (journal != 0 && journal < 4096)
        return PyErr_Format(PyExc_ValueError, "journal_bytes must be 0 or at least 4096, got %lld",
                            journal);
    journal = (journal + 7) & ~7LL;

    char path[256];
    if (shm_path(a[0], path, sizeof(path)) < 0)
        return NULL;
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 && errno == EEXIST && replace) {
        retire_existing(a[0], path);
        fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    }
    if (fd < 0) {
        if (errno == EEXIST)
            return PyErr_Format(SegmentError, "shm segment '%U' already exists (attach to it, "
                                "or create with replace=True)", a[0]);
        return PyErr_Format(SegmentError, "cannot create shm segment '%U': %s", a[0],
                            strerror(errno));
    }
    size_t size = lru_segment_bytes((uint32_t)capacity, (uint32_t)record_size, (uint64_t)journal,
                                    NULL);
    if (ftruncate(fd, (off_t)size) < 0) {
        int err = errno;
        close(fd);
        shm_unlink(path);
        return PyErr_Format(SegmentError, "cannot size shm segment '%U' to %zu bytes: %s", a[0],
                            size, strerror(err));
    }
    TableObject *self = map_segment(a[0], fd, size);
    close(fd);
    if (!self) {
        shm_unlink(path);
        return NULL;
    }
    uint64_t generation = 0;
    if (getrandom(&generation, sizeof(generation), 0) != sizeof(generation))
        generation = (uint64_t)lru_now_ms() ^ ((uint64_t)getpid() << 32);
    lru_init(&self->t, (uint32_t)capacity, (uint32_t)record_size, (uint64_t)journal,
             generation | 1, (uint32_t)touch_ms);
    return (PyObject *)self;
}

static PyObject *Table_unlink_name(PyObject *cls, PyObject *name)
{
    char path[256];
    if (!PyUnicode_Check(name) || shm_path(name, path, sizeof(path)) < 0)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "name must be str");
    retire_existing(name, path);
    Py_RETURN_NONE;
}

static void Table_dealloc(TableObject *self)
{
    if (self->open)
        munmap(self->t.base, self->t.size);
    Py_XDECREF(self->name);
    PyObject_Free(self);
}

static PyObject *Table_close(TableObject *self, PyObject *unused)
{
    if (self->open) {
        munmap(self->t.base, self->t.size);
        self->open = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *Table_unlink(TableObject *self, PyObject *unused)
{
    char path[256];
    if (shm_path(self->name, path, sizeof(path)) < 0)
        return NULL;
    if (self->open)
        self->t.hdr->retired = 1;  /* attached clients notice before they read a stale table */
    shm_unlink(path);
    Py_RETURN_NONE;
}

static PyObject *Table_retired(TableObject *self, PyObject *unused)
{
    return PyBool_FromLong(!self->open || self->t.hdr->retired);
}

/* ---- reads ------------------------------------------------------------------------------ */

static PyObject *Table_get(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    PyObject *key_obj, *type_obj = NULL;
    if (!kwnames && (nargs == 1 || nargs == 2)) {
        key_obj = args[0];
        type_obj = nargs == 2 ? args[1] : NULL;
    } else {
        static const char *const names[] = {"key", "type"};
        PyObject *a[2];
        if (parse_args(args, nargs, kwnames, names, 2, 2, a, "get") < 0)
            return NULL;
        if (!a[0])
            return PyErr_Format(PyExc_TypeError, "get() needs a key");
        key_obj = a[0];
        type_obj = a[1];
    }
    int want;
    if (get_type_arg(type_obj, &want) < 0)
        return NULL;
    lru_entry_t e;
    int64_t now;
    int found = lookup(self, key_obj, &e, &now);
    if (found < 0)
        return NULL;
    lru_header_t *h = self->t.hdr;
    if (!found) {
        h->stats.misses++;
        lru_unlock(&self->t);
        Py_RETURN_NONE;
    }
    if (want >= 0 && e.head->c.type != want) {
        lru_unlock(&self->t);
        PyErr_SetString(WrongTypeError, "WRONGTYPE Operation against a key holding the wrong "
                        "kind of value");
        return NULL;
    }
    h->stats.hits++;
    lru_touch(&self->t, e.index, now);
    PyObject *v = value_bytes(self, &e);
    lru_unlock(&self->t);
    return v;
}

static PyObject *Table_get_entry(TableObject *self, PyObject *key_obj)
{
    lru_entry_t e;
    int64_t now;
    int found = lookup(self, key_obj, &e, &now);
    if (found < 0)
        return NULL;
    if (!found) {
        self->t.hdr->stats.misses++;
        lru_unlock(&self->t);
        Py_RETURN_NONE;
    }
    self->t.hdr->stats.hits++;
    lru_touch(&self->t, e.index, now);
    PyObject *v = value_bytes(self, &e);
    int type = e.head->c.type;
    long long expire_at = e.head->expire_at;
    unsigned long long version = e.head->version;
    lru_unlock(&self->t);
    if (!v)
        return NULL;
    return Py_BuildValue("(NiLK)", v, type, expire_at, version);
}

/* exists/touch/type/version/info/pttl/expiretime_ms share one shape: look up, read a field. */
enum { Q_EXISTS, Q_TOUCH, Q_TYPE, Q_VERSION, Q_INFO, Q_PTTL, Q_TTL, Q_EXPIRETIME };

static PyObject *query(TableObject *self, PyObject *key_obj, int what)
{
    lru_entry_t e;
    int64_t now;
    int found = lookup(self, key_obj, &e, &now);
    if (found < 0)
        return NULL;
    PyObject *result;
    if (!found) {
        lru_unlock(&self->t);
        switch (what) {
        case Q_EXISTS:
        case Q_TOUCH:
            Py_RETURN_FALSE;
        case Q_VERSION:
            return PyLong_FromLong(0);
        case Q_PTTL:
        case Q_TTL:
        case Q_EXPIRETIME:
            return PyLong_FromLong(-2);
        default:
            Py_RETURN_NONE;
        }
    }
    lru_head_t *h = e.head;
    switch (what) {
    case Q_EXISTS:
        result = Py_True;
        Py_INCREF(result);
        break;
    case Q_TOUCH:
        lru_touch(&self->t, e.index, now);
        result = Py_True;
        Py_INCREF(result);
        break;
    case Q_TYPE:
        result = PyLong_FromLong(h->c.type);
        break;
    case Q_VERSION:
        result = PyLong_FromUnsignedLongLong(h->version);
        break;
    case Q_INFO:
        result = Py_BuildValue("(iILL)", h->c.type, h->c.nrec, (long long)(now - h->atime),
                               (long long)h->expire_at);
        break;
    case Q_PTTL:
        result = PyLong_FromLongLong(h->expire_at ? h->expire_at - now : -1);
        break;
    case Q_TTL:
        result = PyLong_FromLongLong(h->expire_at ? (h->expire_at - now + 500) / 1000 : -1);
        break;
    default:
        result = PyLong_FromLongLong(h->expire_at ? h->expire_at : -1);
        break;
    }
    lru_unlock(&self->t);
    return result;
}

static PyObject *Table_exists(TableObject *s, PyObject *k) { return query(s, k, Q_EXISTS); }
static PyObject *Table_touch(TableObject *s, PyObject *k) { return query(s, k, Q_TOUCH); }
static PyObject *Table_type(TableObject *s, PyObject *k) { return query(s, k, Q_TYPE); }
static PyObject *Table_version(TableObject *s, PyObject *k) { return query(s, k, Q_VERSION); }
static PyObject *Table_info(TableObject *s, PyObject *k) { return query(s, k, Q_INFO); }
static PyObject *Table_pttl(TableObject *s, PyObject *k) { return query(s, k, Q_PTTL); }
static PyObject *Table_ttl(TableObject *s, PyObject *k) { return query(s, k, Q_TTL); }
static PyObject *Table_expiretime(TableObject *s, PyObject *k) { return query(s, k, Q_EXPIRETIME); }

/* ---- writes ----------------------------------------------------------------------------- */

static PyObject *too_big(TableObject *self, size_t klen, size_t vlen)
{
    lru_header_t *h = self->t.hdr;
    return PyErr_Format(PyExc_ValueError,
                        "value too large for the table: key %zu + value %zu bytes need %u records "
                        "of %u bytes, the table has %u records (at most %llu bytes of key+value)",
                        klen, vlen, lru_records_for(&self->t, klen, vlen), h->record_size,
                        h->capacity,
                        (unsigned long long)(h->record_size - LRU_HEAD_BYTES) +
                            (unsigned long long)(h->capacity - 1) *
                                (h->record_size - LRU_CHAIN_BYTES));
}

static PyObject *Table_set(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    static const char *const names[] = {"key", "value", "ttl_ms", "expire_at_ms", "nx", "xx",
                                        "keepttl", "get", "type", "if_version"};
    PyObject *a[10];
    if (!kwnames && nargs == 2) {
        a[0] = args[0];
        a[1] = args[1];
        for (int i = 2; i < 10; i++)
            a[i] = NULL;
    } else if (parse_args(args, nargs, kwnames, names, 3, 10, a, "set") < 0) {
        return NULL;
    }
    if (!a[0] || !a[1])
        return PyErr_Format(PyExc_TypeError, "set() needs a key and a value");
    const uint8_t *key, *val;
    size_t klen, vlen;
    if (get_bytes(a[0], "key", &key, &klen) < 0 || get_bytes(a[1], "value", &val, &vlen) < 0)
        return NULL;
    int64_t ttl = 0, expire_at = 0;
    int has_ttl = a[2] && a[2] != Py_None, has_at = a[3] && a[3] != Py_None;
    if (has_ttl && has_at)
        return PyErr_Format(PyExc_ValueError, "give ttl_ms or expire_at_ms, not both");
    if (has_ttl) {
        if (get_int64(a[2], "ttl_ms", &ttl) < 0)
            return NULL;
        if (ttl <= 0)
            return PyErr_Format(PyExc_ValueError, "ttl_ms must be positive, got %lld",
                                (long long)ttl);
    }
    if (has_at) {
        if (get_int64(a[3], "expire_at_ms", &expire_at) < 0)
            return NULL;
        if (expire_at <= 0)
            return PyErr_Format(PyExc_ValueError, "expire_at_ms must be positive, got %lld",
                                (long long)expire_at);
    }
    int nx = a[4] ? PyObject_IsTrue(a[4]) : 0, xx = a[5] ? PyObject_IsTrue(a[5]) : 0;
    int keepttl = a[6] ? PyObject_IsTrue(a[6]) : 0, want_old = a[7] ? PyObject_IsTrue(a[7]) : 0;
    int type = 0;
    if (a[8] && get_type_arg(a[8], &type) < 0)
        return NULL;
    if (type < 0)
        type = 0;
    int has_version = a[9] && a[9] != Py_None;
    unsigned long long if_version = 0;
    if (has_version) {
        if_version = PyLong_AsUnsignedLongLong(a[9]);
        if (PyErr_Occurred())
            return NULL;
    }
    if (nx < 0 || xx < 0 || keepttl < 0 || want_old < 0)
        return NULL;
    if (klen + vlen > 0xffffffffULL || lru_records_for(&self->t, klen, vlen) > self->t.hdr->capacity)
        return too_big(self, klen, vlen);
    if (table_ready(self) < 0)
        return NULL;

    int64_t now = lru_now_ms();
    if (has_ttl) {
        if (ttl > INT64_MAX - now)
            return PyErr_Format(PyExc_ValueError, "ttl_ms %lld overflows the clock", (long long)ttl);
        expire_at = now + ttl;
    }
    uint64_t hash = lru_hash(key, klen);
    LOCK_OR_FAIL(self);
    lru_entry_t e;
    int exists = lru_find(&self->t, key, klen, hash, now, &e);
    if (want_old && exists && e.head->c.type != type) {
        lru_unlock(&self->t);
        PyErr_SetString(WrongTypeError, "WRONGTYPE Operation against a key holding the wrong "
                        "kind of value");
        return NULL;
    }
    int go = !((nx && exists) || (xx && !exists) ||
               (has_version && (exists ? e.head->version : 0) != if_version));
    PyObject *old = NULL;
    if (want_old) {
        old = exists ? value_bytes(self, &e) : (Py_INCREF(Py_None), Py_None);
        if (!old) {
            lru_unlock(&self->t);
            return NULL;
        }
    }
    if (go) {
        if (!has_ttl && !has_at && keepttl && exists)
            expire_at = e.head->expire_at;
        if (exists && e.head->c.nrec == lru_records_for(&self->t, klen, vlen)) {
            lru_overwrite(&self->t, &e, val, vlen, (uint8_t)type, expire_at, now);
        } else {
            if (exists)
                lru_remove(&self->t, e.index, 0);  /* the SET journal record stands for both */
            if (lru_store(&self->t, key, klen, hash, val, vlen, (uint8_t)type, expire_at,
                          now) < 0) {
                lru_unlock(&self->t);
                Py_XDECREF(old);
                return too_big(self, klen, vlen);
            }
        }
    }
    lru_unlock(&self->t);
    if (want_old)
        return old;
    return PyBool_FromLong(go);
}

static PyObject *Table_pop(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2)
        return PyErr_Format(PyExc_TypeError, "pop(key, type=None)");
    int want;
    if (get_type_arg(nargs == 2 ? args[1] : NULL, &want) < 0)
        return NULL;
    lru_entry_t e;
    int64_t now;
    int found = lookup(self, args[0], &e, &now);
    if (found < 0)
        return NULL;
    if (!found) {
        self->t.hdr->stats.misses++;
        lru_unlock(&self->t);
        Py_RETURN_NONE;
    }
    if (want >= 0 && e.head->c.type != want) {
        lru_unlock(&self->t);
        PyErr_SetString(WrongTypeError, "WRONGTYPE Operation against a key holding the wrong "
                        "kind of value");
        return NULL;
    }
    self->t.hdr->stats.hits++;
    PyObject *v = value_bytes(self, &e);
    if (v) {
        lru_remove(&self->t, e.index, JOP_DEL);
        self->t.hdr->stats.deletes++;
    }
    lru_unlock(&self->t);
    return v;
}

static PyObject *Table_delete(TableObject *self, PyObject *key_obj)
{
    lru_entry_t e;
    int64_t now;
    int found = lookup(self, key_obj, &e, &now);
    if (found < 0)
        return NULL;
    if (found) {
        lru_remove(&self->t, e.index, JOP_DEL);
        self->t.hdr->stats.deletes++;
    }
    lru_unlock(&self->t);
    return PyBool_FromLong(found);
}

/* New deadline for a live entry: in the past deletes it (as Redis's EXPIRE does). */
static PyObject *set_deadline(TableObject *self, PyObject *key_obj, int64_t deadline, int relative,
                              int persist)
{
    lru_entry_t e;
    int64_t now;
    int found = lookup(self, key_obj, &e, &now);
    if (found < 0)
        return NULL;
    int changed = 0;
    if (found) {
        if (persist) {
            if (e.head->expire_at) {
                e.head->expire_at = 0;
                changed = 1;
            }
        } else {
            if (relative)
                deadline = deadline > INT64_MAX - now ? INT64_MAX : now + deadline;
            if (deadline <= now) {
                lru_remove(&self->t, e.index, JOP_DEL);
                self->t.hdr->stats.deletes++;
                lru_unlock(&self->t);
                Py_RETURN_TRUE;
            }
            e.head->expire_at = deadline;
            changed = 1;
        }
        if (changed) {
            e.head->version = ++self->t.hdr->version_counter;
            lru_journal_append(&self->t, JOP_EXPIRE, &e);
        }
    }
    lru_unlock(&self->t);
    return PyBool_FromLong(changed);
}

static PyObject *Table_expire(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t ms;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "expire(key, ttl_ms)");
    if (get_int64(args[1], "ttl_ms", &ms) < 0)
        return NULL;
    return set_deadline(self, args[0], ms, 1, 0);
}

static PyObject *Table_expire_at(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t at;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "expire_at(key, abs_ms)");
    if (get_int64(args[1], "abs_ms", &at) < 0)
        return NULL;
    return set_deadline(self, args[0], at, 0, 0);
}

static PyObject *Table_persist(TableObject *self, PyObject *key_obj)
{
    return set_deadline(self, key_obj, 0, 0, 1);
}

/* Redis's string2ll: optional '-', no '+', no spaces, no leading zeros, fits int64. */
static int parse_ll(const uint8_t *s, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return 0;
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1)
            return 0;
    }
    if (s[i] < '1' || s[i] > '9')
        return 0;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (v > (ULLONG_MAX - (s[i] - '0')) / 10)
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return 0;
        *out = (long long)(0 - v);
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return 0;
        *out = (long long)v;
    }
    return 1;
}

static PyObject *Table_incrby(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "incrby(key, delta)");
    int64_t delta;
    if (get_int64(args[1], "delta", &delta) < 0)
        return NULL;
    lru_entry_t e;
    int64_t now;
    const uint8_t *key;
    size_t klen;
    if (get_bytes(args[0], "key", &key, &klen) < 0)
        return NULL;
    int found = lookup(self, args[0], &e, &now);
    if (found < 0)
        return NULL;
    long long value = 0;
    int64_t expire_at = 0;
    if (found) {
        if (e.head->c.type != 0) {
            lru_unlock(&self->t);
            PyErr_SetString(WrongTypeError, "WRONGTYPE Operation against a key holding the "
                            "wrong kind of value");
            return NULL;
        }
        uint8_t digits[24];
        if (e.head->vlen > 20) {
            lru_unlock(&self->t);
            return PyErr_Format(PyExc_ValueError, "value is not an integer or out of range");
        }
        lru_copy_value(&self->t, &e, digits);
        if (!parse_ll(digits, e.head->vlen, &value)) {
            lru_unlock(&self->t);
            return PyErr_Format(PyExc_ValueError, "value is not an integer or out of range");
        }
        expire_at = e.head->expire_at;
    }
    if ((delta < 0 && value < LLONG_MIN - delta) || (delta > 0 && value > LLONG_MAX - delta)) {
        lru_unlock(&self->t);
        return PyErr_Format(PyExc_OverflowError, "increment or decrement would overflow");
    }
    value += delta;
    char text[24];
    int n = snprintf(text, sizeof(text), "%lld", value);
    if (found)
        lru_remove(&self->t, e.index, 0);
    int rc = lru_store(&self->t, key, klen, lru_hash(key, klen), (const uint8_t *)text,
                       (size_t)n, 0, expire_at, now);
    lru_unlock(&self->t);
    if (rc < 0)
        return too_big(self, klen, (size_t)n);
    return PyLong_FromLongLong(value);
}

/* ---- whole-table operations ------------------------------------------------------------- */

static Py_ssize_t Table_len(TableObject *self)
{
    if (table_ready(self) < 0)
        return -1;
    return (Py_ssize_t)self->t.hdr->entries;
}

static PyObject *Table_scan(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    static const char *const names[] = {"cursor", "match", "count", "type"};
    PyObject *a[4];
    if (parse_args(args, nargs, kwnames, names, 4, 4, a, "scan") < 0)
        return NULL;
    unsigned long long cursor = a[0] ? PyLong_AsUnsignedLongLong(a[0]) : 0;
    long long count = (a[2] && a[2] != Py_None) ? PyLong_AsLongLong(a[2]) : 10;
    int want;
    if (PyErr_Occurred() || get_type_arg(a[3], &want) < 0)
        return NULL;
    const uint8_t *pat = NULL;
    size_t plen = 0;
    if (a[1] && a[1] != Py_None && get_bytes(a[1], "match", &pat, &plen) < 0)
        return NULL;
    if (table_ready(self) < 0)
        return NULL;
    PyObject *keys = PyList_New(0);
    if (!keys)
        return NULL;
    lru_header_t *h = self->t.hdr;
    if (count < 1)
        count = 1;
    if ((unsigned long long)count > h->nbuckets)
        count = h->nbuckets;
    /* As Redis: visit buckets until `count` keys were seen (before MATCH/TYPE filtering) or
     * ten times `count` buckets were visited, whichever comes first. */
    long long budget = count * 10, seen = 0;
    int64_t now = lru_now_ms();
    LOCK_OR_FAIL(self);
    unsigned long long b = cursor;
    for (long long n = 0; n < budget && seen < count && b < h->nbuckets; n++, b++) {
        uint32_t guard = h->capacity;
        for (uint32_t link = lru_bucket_first(&self->t, (uint32_t)b); link && guard--;) {
            lru_entry_t e = {link - 1, lru_head_at(&self->t, link - 1)};
            link = e.head->hnext;
            if (e.head->expire_at && e.head->expire_at <= now)
                continue;
            seen++;
            if (want >= 0 && e.head->c.type != want)
                continue;
            PyObject *k = key_bytes(self, &e);
            if (!k)
                goto fail;
            if (pat && !lru_glob_match(pat, plen, (const uint8_t *)PyBytes_AS_STRING(k),
                                       (size_t)PyBytes_GET_SIZE(k), 0)) {
                Py_DECREF(k);
                continue;
            }
            int rc = PyList_Append(keys, k);
            Py_DECREF(k);
            if (rc < 0)
                goto fail;
        }
    }
    lru_unlock(&self->t);
    return Py_BuildValue("(KN)", b >= h->nbuckets ? 0ULL : b, keys);
fail:
    lru_unlock(&self->t);
    Py_DECREF(keys);
    return NULL;
}

static PyObject *Table_random_key(TableObject *self, PyObject *unused)
{
    if (table_ready(self) < 0)
        return NULL;
    lru_header_t *h = self->t.hdr;
    int64_t now = lru_now_ms();
    uint32_t start;
    if (getrandom(&start, sizeof(start), GRND_NONBLOCK) != sizeof(start))
        start = (uint32_t)now;
    LOCK_OR_FAIL(self);
    PyObject *result = NULL;
    for (uint32_t n = 0; n < h->nbuckets && !result; n++) {
        uint32_t b = (start + n) & (h->nbuckets - 1);
        for (uint32_t link = lru_bucket_first(&self->t, b); link;) {
            lru_entry_t e = {link - 1, lru_head_at(&self->t, link - 1)};
            link = e.head->hnext;
            if (!e.head->expire_at || e.head->expire_at > now) {
                result = key_bytes(self, &e);
                break;
            }
        }
    }
    lru_unlock(&self->t);
    if (!result && !PyErr_Occurred())
        Py_RETURN_NONE;
    return result;
}

static PyObject *Table_flush(TableObject *self, PyObject *unused)
{
    if (table_ready(self) < 0)
        return NULL;
    LOCK_OR_FAIL(self);
    uint32_t removed = lru_flush(&self->t);
    lru_unlock(&self->t);
    return PyLong_FromUnsignedLong(removed);
}

static PyObject *Table_sweep(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    static const char *const names[] = {"max_checks"};
    PyObject *a[1];
    if (parse_args(args, nargs, kwnames, names, 1, 1, a, "sweep") < 0)
        return NULL;
    long long checks = a[0] ? PyLong_AsLongLong(a[0]) : 1000;
    if (PyErr_Occurred())
        return NULL;
    if (checks < 0)
        return PyErr_Format(PyExc_ValueError, "max_checks must not be negative");
    if (table_ready(self) < 0)
        return NULL;
    int64_t now = lru_now_ms();
    LOCK_OR_FAIL(self);
    uint32_t expired = lru_sweep(&self->t, checks > 0xffffffffLL ? 0xffffffffU : (uint32_t)checks,
                                 now);
    lru_unlock(&self->t);
    return PyLong_FromUnsignedLong(expired);
}

static PyObject *Table_now_ms(TableObject *self, PyObject *unused)
{
    return PyLong_FromLongLong(lru_now_ms());
}

static int put(PyObject *d, const char *k, PyObject *v)
{
    if (!v)
        return -1;
    int rc = PyDict_SetItemString(d, k, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *Table_stats(TableObject *self, PyObject *unused)
{
    if (table_ready(self) < 0)
        return NULL;
    LOCK_OR_FAIL(self);
    lru_header_t snap = *self->t.hdr;
    lru_unlock(&self->t);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    lru_stats_t *s = &snap.stats;
    double per_record = snap.record_size + (double)snap.nbuckets * 4 / snap.capacity;
    if (put(d, "hits", PyLong_FromUnsignedLongLong(s->hits)) ||
        put(d, "misses", PyLong_FromUnsignedLongLong(s->misses)) ||
        put(d, "sets", PyLong_FromUnsignedLongLong(s->sets)) ||
        put(d, "deletes", PyLong_FromUnsignedLongLong(s->deletes)) ||
        put(d, "evictions", PyLong_FromUnsignedLongLong(s->evictions)) ||
        put(d, "expirations", PyLong_FromUnsignedLongLong(s->expirations)) ||
        put(d, "journal_records", PyLong_FromUnsignedLongLong(s->journal_records)) ||
        put(d, "journal_overruns", PyLong_FromUnsignedLongLong(s->journal_overruns)) ||
        put(d, "lock_recoveries", PyLong_FromUnsignedLongLong(s->lock_recoveries)) ||
        put(d, "entries", PyLong_FromUnsignedLong(snap.entries)) ||
        put(d, "used_records", PyLong_FromUnsignedLong(snap.capacity - snap.free_records)) ||
        put(d, "free_records", PyLong_FromUnsignedLong(snap.free_records)) ||
        put(d, "capacity", PyLong_FromUnsignedLong(snap.capacity)) ||
        put(d, "record_size", PyLong_FromUnsignedLong(snap.record_size)) ||
        put(d, "head_overhead_bytes", PyLong_FromSize_t(LRU_HEAD_BYTES)) ||
        put(d, "chain_overhead_bytes", PyLong_FromSize_t(LRU_CHAIN_BYTES)) ||
        put(d, "bytes_per_record", PyFloat_FromDouble(per_record)) ||
        put(d, "segment_bytes", PyLong_FromUnsignedLongLong(snap.segment_bytes)) ||
        put(d, "journal_bytes", PyLong_FromUnsignedLongLong(snap.journal_bytes)) ||
        put(d, "generation", PyLong_FromUnsignedLongLong(snap.generation)) ||
        put(d, "touch_interval_ms", PyLong_FromUnsignedLong(snap.touch_interval_ms))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *Table_check(TableObject *self, PyObject *unused)
{
    if (table_ready(self) < 0)
        return NULL;
    size_t bytes = 1 << 16;
    char *report = malloc(bytes);
    if (!report)
        return PyErr_NoMemory();
    if (lru_lock(&self->t) != 0) {
        free(report);
        PyErr_SetString(ShmLRUError, "cannot take the table lock");
        return NULL;
    }
    lru_check(&self->t, report, bytes);
    lru_unlock(&self->t);
    PyObject *list = PyList_New(0);
    for (char *line = report; list && *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        PyObject *s = PyUnicode_FromStringAndSize(line, (Py_ssize_t)n);
        if (!s || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(s);
        line += n + (end ? 1 : 0);
    }
    free(report);
    return list;
}

static PyObject *Table_journal(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    static const char *const names[] = {"from_start"};
    PyObject *a[1];
    if (parse_args(args, nargs, kwnames, names, 1, 1, a, "journal") < 0)
        return NULL;
    int from_start = a[0] ? PyObject_IsTrue(a[0]) : 0;
    if (from_start < 0 || table_ready(self) < 0)
        return NULL;
    ReaderObject *r = PyObject_New(ReaderObject, &ReaderType);
    if (!r)
        return NULL;
    r->table = self;
    Py_INCREF(self);
    r->buf_bytes = self->t.hdr->journal_bytes / 4 + 4096;
    r->buf = malloc(r->buf_bytes);
    if (!r->buf) {
        Py_DECREF(r);
        return PyErr_NoMemory();
    }
    LOCK_OR_FAIL(self);
    lru_header_t *h = self->t.hdr;
    if (from_start && h->journal_write <= h->journal_bytes) {
        r->pos = 0;
        r->seq = 0;
    } else {
        r->pos = h->journal_write;
        r->seq = h->journal_seq;
    }
    lru_unlock(&self->t);
    return (PyObject *)r;
}

static PyObject *Table_get_name(TableObject *self, void *c) { Py_INCREF(self->name); return self->name; }
static PyObject *Table_get_capacity(TableObject *self, void *c)
{
    return PyLong_FromUnsignedLong(self->open ? self->t.hdr->capacity : 0);
}
static PyObject *Table_get_record_size(TableObject *self, void *c)
{
    return PyLong_FromUnsignedLong(self->open ? self->t.hdr->record_size : 0);
}
static PyObject *Table_get_generation(TableObject *self, void *c)
{
    return PyLong_FromUnsignedLongLong(self->open ? self->t.hdr->generation : 0);
}

/* ---- journal reader --------------------------------------------------------------------- */

static void Reader_dealloc(ReaderObject *r)
{
    free(r->buf);
    Py_XDECREF(r->table);
    PyObject_Free(r);
}

static PyObject *Reader_read(ReaderObject *r, PyObject *const *args, Py_ssize_t nargs)
{
    long long max = nargs ? PyLong_AsLongLong(args[0]) : 1024;
    if (PyErr_Occurred())
        return NULL;
    if (max < 1)
        max = 1;
    TableObject *self = r->table;
    if (table_ready(self) < 0)
        return NULL;
    uint64_t lost = 0;
    LOCK_OR_FAIL(self);
    size_t n = lru_journal_copy(&self->t, &r->pos, &r->seq, &lost, r->buf, r->buf_bytes,
                                max > 0xffffffffLL ? 0xffffffffU : (uint32_t)max);
    lru_unlock(&self->t);
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (size_t off = 0; off < n;) {
        lru_jrec_t *rec = (lru_jrec_t *)(r->buf + off);
        const char *data = (const char *)rec + sizeof(lru_jrec_t);
        PyObject *value;
        if (rec->has_value)
            value = PyBytes_FromStringAndSize(data + rec->klen, rec->vlen);
        else
            value = (Py_INCREF(Py_None), Py_None);
        PyObject *item = value ? Py_BuildValue("(iy#NiL)", rec->op, data, (Py_ssize_t)rec->klen,
                                               value, rec->type, (long long)rec->expire_at)
                               : NULL;
        if (!item || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
        off += rec->bytes;
    }
    return Py_BuildValue("(KN)", (unsigned long long)lost, list);
}

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)(void (*)(void))Reader_read, METH_FASTCALL,
     "read(max_records=1024) -> (lost, [(op, key, value|None, type, expire_at_ms), ...])"},
    {NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shm_lru.JournalReader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = Reader_methods,
    .tp_doc = "A cursor over a table's change journal.",
};

/* ---- type and module -------------------------------------------------------------------- */

#define FAST(name, fn, doc) {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL, doc}
#define FASTKW(name, fn, doc) {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL | METH_KEYWORDS, doc}

static PyMethodDef Table_methods[] = {
    {"create", (PyCFunction)(void (*)(void))Table_create,
     METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "create(name, capacity=65536, record_size=384, journal_bytes=None, replace=False, "
     "touch_interval_ms=1000)"},
    {"attach", (PyCFunction)Table_attach, METH_O | METH_CLASS, "attach(name)"},
    {"unlink_name", (PyCFunction)Table_unlink_name, METH_O | METH_CLASS, "unlink_name(name)"},
    FASTKW("get", Table_get, "get(key, type=None) -> bytes | None"),
    {"get_entry", (PyCFunction)Table_get_entry, METH_O,
     "get_entry(key) -> None | (value, type, expire_at_ms, version)"},
    {"exists", (PyCFunction)Table_exists, METH_O, "exists(key) -> bool"},
    {"touch", (PyCFunction)Table_touch, METH_O, "touch(key) -> bool"},
    {"type", (PyCFunction)Table_type, METH_O, "type(key) -> int | None"},
    {"version", (PyCFunction)Table_version, METH_O, "version(key) -> int"},
    {"info", (PyCFunction)Table_info, METH_O,
     "info(key) -> None | (type, records_used, idle_ms, expire_at_ms)"},
    {"pttl", (PyCFunction)Table_pttl, METH_O, "pttl(key) -> int"},
    {"ttl", (PyCFunction)Table_ttl, METH_O, "ttl(key) -> int"},
    {"expiretime_ms", (PyCFunction)Table_expiretime, METH_O, "expiretime_ms(key) -> int"},
    FASTKW("set", Table_set,
           "set(key, value, ttl_ms=None, *, expire_at_ms=None, nx=False, xx=False, "
           "keepttl=False, get=False, type=0, if_version=None)"),
    FAST("pop", Table_pop, "pop(key, type=None) -> bytes | None"),
    {"delete", (PyCFunction)Table_delete, METH_O, "delete(key) -> bool"},
    FAST("expire", Table_expire, "expire(key, ttl_ms) -> bool"),
    FAST("expire_at", Table_expire_at, "expire_at(key, abs_ms) -> bool"),
    {"persist", (PyCFunction)Table_persist, METH_O, "persist(key) -> bool"},
    FAST("incrby", Table_incrby, "incrby(key, delta) -> int"),
    FASTKW("scan", Table_scan, "scan(cursor=0, match=None, count=10, type=None)"),
    {"random_key", (PyCFunction)Table_random_key, METH_NOARGS, "random_key() -> bytes | None"},
    {"flush", (PyCFunction)Table_flush, METH_NOARGS, "flush() -> int"},
    FASTKW("sweep", Table_sweep, "sweep(max_checks=1000) -> int"),
    {"now_ms", (PyCFunction)Table_now_ms, METH_NOARGS, "now_ms() -> int"},
    {"stats", (PyCFunction)Table_stats, METH_NOARGS, "stats() -> dict"},
    {"check", (PyCFunction)Table_check, METH_NOARGS, "check() -> list of problems"},
    FASTKW("journal", Table_journal, "journal(from_start=False) -> JournalReader"),
    {"retired", (PyCFunction)Table_retired, METH_NOARGS, "retired() -> bool"},
    {"close", (PyCFunction)Table_close, METH_NOARGS, "close()"},
    {"unlink", (PyCFunction)Table_unlink, METH_NOARGS, "unlink()"},
    {NULL},
};

static PyGetSetDef Table_getset[] = {
    {"name", (getter)Table_get_name, NULL, "segment name", NULL},
    {"capacity", (getter)Table_get_capacity, NULL, "records", NULL},
    {"record_size", (getter)Table_get_record_size, NULL, "bytes per record", NULL},
    {"generation", (getter)Table_get_generation, NULL, "unique per create()", NULL},
    {NULL},
};

static PySequenceMethods Table_as_sequence = {.sq_length = (lenfunc)Table_len};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shm_lru.ShmLRU",
    .tp_basicsize = sizeof(TableObject),
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = Table_methods,
    .tp_getset = Table_getset,
    .tp_as_sequence = &Table_as_sequence,
    .tp_doc = "A shared-memory LRU table (see shm_lru/API.md).",
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_shm_lru",
                                       "Shared-memory LRU table (C core).", -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__shm_lru(void)
{
    if (PyType_Ready(&TableType) < 0 || PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m)
        return NULL;
    ShmLRUError = PyErr_NewException("shm_lru.ShmLRUError", NULL, NULL);
    SegmentError = PyErr_NewException("shm_lru.SegmentError", ShmLRUError, NULL);
    WrongTypeError = PyErr_NewException("shm_lru.WrongTypeError", ShmLRUError, NULL);
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "ShmLRU", (PyObject *)&TableType) < 0 ||
        PyModule_AddObject(m, "ShmLRUError", ShmLRUError) < 0 ||
        PyModule_AddObject(m, "SegmentError", SegmentError) < 0 ||
        PyModule_AddObject(m, "WrongTypeError", WrongTypeError) < 0 ||
        PyModule_AddIntConstant(m, "OP_SET", JOP_SET) < 0 ||
        PyModule_AddIntConstant(m, "OP_DEL", JOP_DEL) < 0 ||
        PyModule_AddIntConstant(m, "OP_EXPIRE", JOP_EXPIRE) < 0 ||
        PyModule_AddIntConstant(m, "OP_EXPIRED", JOP_EXPIRED) < 0 ||
        PyModule_AddIntConstant(m, "OP_EVICTED", JOP_EVICTED) < 0 ||
        PyModule_AddIntConstant(m, "OP_FLUSH", JOP_FLUSH) < 0 ||
        PyModule_AddIntConstant(m, "LAYOUT_VERSION", LRU_LAYOUT_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "HEAD_OVERHEAD", (long)LRU_HEAD_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "CHAIN_OVERHEAD", (long)LRU_CHAIN_BYTES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
