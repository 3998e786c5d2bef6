/*
 * ShmLRU methods on the whole table (len, scan, random_key, flush, sweep, stats, check) and the
 * journal reader.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lru_py.h"

/* SCAN takes the table lock again after this many buckets (a power of two). */
#define SCAN_LOCK_CHUNK 4096ULL

/* ---- whole-table operations ------------------------------------------------------------- */

Py_ssize_t Table_len(TableObject *self)
{
    if (table_ready(self) < 0)
        return -1;
    return (Py_ssize_t)self->t.hdr->entries;
}

PyObject *Table_scan(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
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
    /* As Redis: visit buckets until `count` keys were seen (before MATCH/TYPE filtering) or the
     * bucket budget is spent, whichever comes first. Redis's dict is sized to its keys, so ten
     * buckets per COUNT finds about COUNT keys there; this table has a fixed number of buckets,
     * mostly empty when it holds few keys, so the budget also covers the buckets expected to hold
     * COUNT keys at the current fill (nbuckets / entries per key), capped at the whole table.
     * The cursor stays the next bucket's index: the table never resizes, so a full iteration
     * still returns every key present throughout. The lock is dropped between chunks of buckets
     * (never inside one) so a sparse table's long sweep does not hold off the writers. */
    int64_t now = lru_now_ms();
    LOCK_OR_FAIL(self);
    unsigned long long nb = h->nbuckets;
    unsigned long long entries = h->entries ? h->entries : 1;
    unsigned long long budget = (unsigned long long)count * 10;
    unsigned long long spread = (unsigned long long)count * nb / entries;
    if (spread > budget)
        budget = spread;
    if (budget > nb)
        budget = nb;
    long long seen = 0;
    unsigned long long b = cursor, n = 0;
    for (; n < budget && seen < count && b < nb; n++, b++) {
        if (n && (n & (SCAN_LOCK_CHUNK - 1)) == 0) {
            lru_unlock(&self->t);
            if (lru_lock(&self->t) != 0) {
                PyErr_SetString(ShmLRUError, "cannot take the table lock");
                Py_DECREF(keys);
                return NULL;
            }
        }
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
    return Py_BuildValue("(KN)", b >= nb ? 0ULL : b, keys);
fail:
    lru_unlock(&self->t);
    Py_DECREF(keys);
    return NULL;
}

PyObject *Table_random_key(TableObject *self, PyObject *unused)
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

PyObject *Table_flush(TableObject *self, PyObject *unused)
{
    if (table_ready(self) < 0)
        return NULL;
    LOCK_OR_FAIL(self);
    uint32_t removed = lru_flush(&self->t);
    lru_unlock(&self->t);
    return PyLong_FromUnsignedLong(removed);
}

PyObject *Table_sweep(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
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

PyObject *Table_now_ms(TableObject *self, PyObject *unused)
{
    return PyLong_FromLongLong(lru_now_ms());
}

int put(PyObject *d, const char *k, PyObject *v)
{
    if (!v)
        return -1;
    int rc = PyDict_SetItemString(d, k, v);
    Py_DECREF(v);
    return rc;
}

PyObject *Table_stats(TableObject *self, PyObject *unused)
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
    uint64_t hits = 0, misses = 0;
    for (int i = 0; i < LRU_COUNTER_SHARDS; i++) {
        hits += snap.shards[i].hits;
        misses += snap.shards[i].misses;
    }
    double per_record = snap.record_size + (double)snap.nbuckets * 4 / snap.capacity;
    if (put(d, "hits", PyLong_FromUnsignedLongLong(hits)) ||
        put(d, "misses", PyLong_FromUnsignedLongLong(misses)) ||
        put(d, "sets", PyLong_FromUnsignedLongLong(s->sets)) ||
        put(d, "deletes", PyLong_FromUnsignedLongLong(s->deletes)) ||
        put(d, "evictions", PyLong_FromUnsignedLongLong(s->evictions)) ||
        put(d, "expirations", PyLong_FromUnsignedLongLong(s->expirations)) ||
        put(d, "journal_records", PyLong_FromUnsignedLongLong(s->journal_records)) ||
        put(d, "journal_overruns", PyLong_FromUnsignedLongLong(s->journal_overruns)) ||
        put(d, "lock_recoveries", PyLong_FromUnsignedLongLong(s->lock_recoveries)) ||
        put(d, "entries", PyLong_FromUnsignedLong(snap.entries)) ||
        put(d, "expiring", PyLong_FromUnsignedLong(snap.expiring)) ||
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

PyObject *Table_check(TableObject *self, PyObject *unused)
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

PyObject *Table_journal(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
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

/* ---- journal reader --------------------------------------------------------------------- */

void Reader_dealloc(ReaderObject *r)
{
    free(r->buf);
    Py_XDECREF(r->table);
    PyObject_Free(r);
}

PyObject *Reader_read(ReaderObject *r, PyObject *const *args, Py_ssize_t nargs)
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

