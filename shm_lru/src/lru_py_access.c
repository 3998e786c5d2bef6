/*
 * ShmLRU methods on one key: reads (get, get_entry, exists, ttl, ...) and writes (set, pop,
 * delete, expire, persist, incrby).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lru_py.h"

/* ---- reads ------------------------------------------------------------------------------ */

/*
 * The locked lookup shared by get() and pop(): counts the hit or miss and checks the type.
 * Returns 1 with the lock held and *e filled; 0 (absent) or -1 (error set, WRONGTYPE included)
 * with the lock released.
 */
static int find_typed(TableObject *self, PyObject *key_obj, int want, lru_entry_t *e,
                      int64_t *now)
{
    int found = lookup(self, key_obj, e, now);
    if (found < 0)
        return -1;
    if (!found) {
        lru_count(&self->t, 0);
        lru_unlock(&self->t);
        return 0;
    }
    if (want >= 0 && e->head->c.type != want) {
        lru_unlock(&self->t);
        wrong_type();
        return -1;
    }
    lru_count(&self->t, 1);
    return 1;
}

/* A sentinel: the optimistic path could not answer, take the lock. */
#define NOT_DONE ((PyObject *)&_Py_NotImplementedStruct)

/*
 * get() without the lock: look up and copy under the seqlock (lru_table.h), retry a few times
 * when a writer got in the way, then give up to the locked path. Expired entries and entries due
 * an LRU move also go to the locked path, since both need writes.
 */
static PyObject *get_optimistic(TableObject *self, PyObject *key_obj, int want)
{
    const uint8_t *key;
    size_t klen;
    if (get_bytes(key_obj, "key", &key, &klen) < 0 || table_ready(self) < 0)
        return NULL;
    lru_table_t *t = &self->t;
    int64_t now = lru_now_ms();
    uint64_t hash = lru_hash(key, klen);
    size_t limit = (size_t)t->hdr->capacity * t->hdr->record_size;
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t seq = lru_read_begin(t);
        if (seq & 1)
            continue;
        lru_entry_t e;
        int found = lru_peek(t, key, klen, hash, now, &e);
        if (found == 0) {
            if (!lru_read_valid(t, seq))
                continue;
            lru_count(t, 0);
            Py_RETURN_NONE;
        }
        if (found == 2)
            return NOT_DONE;
        size_t vlen = e.head->vlen;
        int type = e.head->c.type;
        int64_t atime = e.head->atime;
        if (!lru_read_valid(t, seq) || vlen > limit)
            continue;
        if (want >= 0 && type != want)
            return wrong_type();
        if (now - atime >= (int64_t)t->hdr->touch_interval_ms)
            return NOT_DONE;  /* due an LRU move: the locked path does it */
        PyObject *v = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)vlen);
        if (!v)
            return NULL;
        if (!lru_copy_value_checked(t, &e, (uint8_t *)PyBytes_AS_STRING(v), vlen) ||
            !lru_read_valid(t, seq)) {
            Py_DECREF(v);
            continue;
        }
        lru_count(t, 1);
        return v;
    }
    return NOT_DONE;
}

PyObject *Table_get(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
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
    PyObject *fast = get_optimistic(self, key_obj, want);
    if (fast != NOT_DONE)
        return fast;
    lru_entry_t e;
    int64_t now;
    int found = find_typed(self, key_obj, want, &e, &now);
    if (found <= 0)
        return found < 0 ? NULL : Py_NewRef(Py_None);
    lru_touch(&self->t, e.index, now, 0);
    PyObject *v = value_bytes(self, &e);
    lru_unlock(&self->t);
    return v;
}

PyObject *Table_get_entry(TableObject *self, PyObject *key_obj)
{
    lru_entry_t e;
    int64_t now;
    int found = lookup(self, key_obj, &e, &now);
    if (found < 0)
        return NULL;
    if (!found) {
        lru_count(&self->t, 0);
        lru_unlock(&self->t);
        Py_RETURN_NONE;
    }
    lru_count(&self->t, 1);
    lru_touch(&self->t, e.index, now, 0);
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

PyObject *query(TableObject *self, PyObject *key_obj, int what)
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
        lru_touch(&self->t, e.index, now, 1);
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

PyObject *Table_exists(TableObject *s, PyObject *k) { return query(s, k, Q_EXISTS); }
PyObject *Table_touch(TableObject *s, PyObject *k) { return query(s, k, Q_TOUCH); }
PyObject *Table_type(TableObject *s, PyObject *k) { return query(s, k, Q_TYPE); }
PyObject *Table_version(TableObject *s, PyObject *k) { return query(s, k, Q_VERSION); }
PyObject *Table_info(TableObject *s, PyObject *k) { return query(s, k, Q_INFO); }
PyObject *Table_pttl(TableObject *s, PyObject *k) { return query(s, k, Q_PTTL); }
PyObject *Table_ttl(TableObject *s, PyObject *k) { return query(s, k, Q_TTL); }
PyObject *Table_expiretime(TableObject *s, PyObject *k) { return query(s, k, Q_EXPIRETIME); }

/* ---- writes ----------------------------------------------------------------------------- */

PyObject *too_big(TableObject *self, size_t klen, size_t vlen)
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

PyObject *Table_set(TableObject *self, PyObject *const *args, Py_ssize_t nargs,
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
    lru_prefetch_bucket(&self->t, hash);
    LOCK_OR_FAIL(self);
    lru_entry_t e;
    int exists = lru_find(&self->t, key, klen, hash, now, &e);
    if (want_old && exists && e.head->c.type != type) {
        lru_unlock(&self->t);
        return wrong_type();
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

PyObject *Table_pop(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2)
        return PyErr_Format(PyExc_TypeError, "pop(key, type=None)");
    int want;
    if (get_type_arg(nargs == 2 ? args[1] : NULL, &want) < 0)
        return NULL;
    lru_entry_t e;
    int64_t now;
    int found = find_typed(self, args[0], want, &e, &now);
    if (found <= 0)
        return found < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *v = value_bytes(self, &e);
    if (v) {
        lru_remove(&self->t, e.index, JOP_DEL);
        self->t.hdr->stats.deletes++;
    }
    lru_unlock(&self->t);
    return v;
}

PyObject *Table_delete(TableObject *self, PyObject *key_obj)
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
PyObject *set_deadline(TableObject *self, PyObject *key_obj, int64_t deadline, int relative,
                              int persist)
{
    lru_entry_t e;
    int64_t now;
    int found = lookup(self, key_obj, &e, &now);
    if (found < 0)
        return NULL;
    int changed = 0;
    int64_t new_deadline = 0;
    if (found) {
        if (persist) {
            changed = e.head->expire_at != 0;
        } else {
            if (relative)
                deadline = deadline > INT64_MAX - now ? INT64_MAX : now + deadline;
            if (deadline <= now) {
                lru_remove(&self->t, e.index, JOP_DEL);
                self->t.hdr->stats.deletes++;
                lru_unlock(&self->t);
                Py_RETURN_TRUE;
            }
            new_deadline = deadline;
            changed = 1;
        }
        if (changed)
            lru_set_deadline(&self->t, &e, new_deadline);
    }
    lru_unlock(&self->t);
    return PyBool_FromLong(changed);
}

PyObject *Table_expire(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t ms;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "expire(key, ttl_ms)");
    if (get_int64(args[1], "ttl_ms", &ms) < 0)
        return NULL;
    return set_deadline(self, args[0], ms, 1, 0);
}

PyObject *Table_expire_at(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t at;
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "expire_at(key, abs_ms)");
    if (get_int64(args[1], "abs_ms", &at) < 0)
        return NULL;
    return set_deadline(self, args[0], at, 0, 0);
}

PyObject *Table_persist(TableObject *self, PyObject *key_obj)
{
    return set_deadline(self, key_obj, 0, 0, 1);
}

/* Redis's string2ll: optional '-', no '+', no spaces, no leading zeros, fits int64. */
int parse_ll(const uint8_t *s, size_t n, long long *out)
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

PyObject *Table_incrby(TableObject *self, PyObject *const *args, Py_ssize_t nargs)
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
            return wrong_type();
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

/* Table.prefetch(key) and the capsule's prefetch: a hint, so it never raises and takes no
 * lock. A closed or retired table is left alone (its mapping may be about to go). */
static TableObject *hint_target(PyObject *table, PyObject *key, uint64_t *hash)
{
    if (!PyObject_TypeCheck(table, &TableType) || !PyBytes_Check(key))
        return NULL;
    TableObject *self = (TableObject *)table;
    if (!self->open || self->t.hdr->retired)
        return NULL;
    *hash = lru_hash((const uint8_t *)PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
    return self;
}

int table_prefetch(PyObject *table, PyObject *key)
{
    uint64_t hash;
    TableObject *self = hint_target(table, key, &hash);
    if (self)
        lru_prefetch_entry(&self->t, hash);
    return self != NULL;
}

int table_prefetch_bucket(PyObject *table, PyObject *key)
{
    uint64_t hash;
    TableObject *self = hint_target(table, key, &hash);
    if (self)
        lru_prefetch_bucket(&self->t, hash);
    return self != NULL;
}

PyObject *Table_prefetch(TableObject *self, PyObject *key_obj)
{
    table_prefetch((PyObject *)self, key_obj);
    Py_RETURN_NONE;
}
