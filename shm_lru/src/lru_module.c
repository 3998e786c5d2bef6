/*
 * Python bindings for the shm_lru table: the module, the ShmLRU type (segment lifecycle here,
 * operations in lru_py_access.c and lru_py_whole.c) and the JournalReader type.
 * Every method that touches the segment takes the table lock around the core call (the locking
 * rule is in lru_table.h); Python objects are built while the lock is held only when they copy
 * bytes out of the segment, and no Python code ever runs with the lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lru_py.h"
#include "lru_capi.h"

PyObject *ShmLRUError, *SegmentError, *WrongTypeError;

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

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)(void (*)(void))Reader_read, METH_FASTCALL,
     "read(max_records=1024) -> (lost, [(op, key, value|None, type, expire_at_ms), ...])"},
    {NULL},
};

PyTypeObject ReaderType = {
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
    {"prefetch", (PyCFunction)Table_prefetch, METH_O,
     "prefetch(key): a cache hint for an operation on key coming soon (no lock, no effect)"},
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

PyTypeObject TableType = {
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
    static shm_lru_capi capi = {table_prefetch, table_prefetch_bucket};
    PyObject *capsule = PyCapsule_New(&capi, SHM_LRU_CAPI_NAME, NULL);
    if (!capsule || PyModule_AddObject(m, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
