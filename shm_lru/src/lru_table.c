/*
 * The table proper: geometry, the robust lock, hashing, lookup, LRU order, record allocation,
 * store/remove, expiry. See lru_table.h for the layout and the locking rule (callers hold the lock
 * for everything here but lru_lock/lru_unlock, lru_init and lru_validate).
 */
#define _GNU_SOURCE
#include "lru_table.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint8_t *record_at(lru_table_t *t, uint32_t index)
{
    return t->base + t->hdr->records_offset + (uint64_t)index * t->hdr->record_size;
}

lru_head_t *lru_head_at(lru_table_t *t, uint32_t index)
{
    return (lru_head_t *)record_at(t, index);
}

static inline lru_chain_t *chain_at(lru_table_t *t, uint32_t index)
{
    return (lru_chain_t *)record_at(t, index);
}

static inline uint32_t *buckets(lru_table_t *t)
{
    return (uint32_t *)(t->base + t->hdr->buckets_offset);
}

uint32_t lru_bucket_first(lru_table_t *t, uint32_t bucket)
{
    return buckets(t)[bucket];
}

/* ---- geometry --------------------------------------------------------------------------- */

size_t lru_segment_bytes(uint32_t capacity, uint32_t record_size, uint64_t journal_bytes,
                         uint32_t *nbuckets_out)
{
    /* A power of two at least the capacity: short bucket chains, cheap masking. */
    uint32_t nbuckets = 1;
    while (nbuckets < capacity)
        nbuckets <<= 1;
    if (nbuckets_out)
        *nbuckets_out = nbuckets;
    size_t header = (sizeof(lru_header_t) + 63) & ~(size_t)63;
    size_t bucket_bytes = ((size_t)nbuckets * 4 + 63) & ~(size_t)63;
    return header + bucket_bytes + (size_t)capacity * record_size + journal_bytes;
}

void lru_init(lru_table_t *t, uint32_t capacity, uint32_t record_size, uint64_t journal_bytes,
              uint64_t generation, uint32_t touch_interval_ms)
{
    lru_header_t *h = t->hdr;
    uint32_t nbuckets;
    size_t total = lru_segment_bytes(capacity, record_size, journal_bytes, &nbuckets);

    memset(h, 0, sizeof(*h));
    h->magic = LRU_MAGIC;
    h->layout_version = LRU_LAYOUT_VERSION;
    h->header_bytes = sizeof(lru_header_t);
    h->segment_bytes = total;
    h->generation = generation;
    h->capacity = capacity;
    h->record_size = record_size;
    h->nbuckets = nbuckets;
    h->buckets_offset = (sizeof(lru_header_t) + 63) & ~(size_t)63;
    h->records_offset = h->buckets_offset + (((size_t)nbuckets * 4 + 63) & ~(size_t)63);
    h->journal_offset = h->records_offset + (uint64_t)capacity * record_size;
    h->journal_bytes = journal_bytes;
    h->touch_interval_ms = touch_interval_ms;

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&h->lock, &attr);
    pthread_mutexattr_destroy(&attr);

    /* No record is written here: take_free hands out never used records in order, so an
     * idle table costs only its header, buckets and journal in resident memory. */
    h->free_head = 0;
    h->free_records = capacity;
    h->fresh_next = 0;
}

/* Reads only constants; returns NULL when the header describes this mapping, else why not. */
const char *lru_validate(lru_table_t *t, size_t mapped_bytes)
{
    lru_header_t *h = t->hdr;
    if (mapped_bytes < sizeof(lru_header_t) || h->magic != LRU_MAGIC)
        return "not a shm_lru segment (bad magic)";
    if (h->layout_version != LRU_LAYOUT_VERSION)
        return "layout version";
    uint32_t nbuckets;
    size_t want = lru_segment_bytes(h->capacity, h->record_size, h->journal_bytes, &nbuckets);
    if (h->header_bytes != sizeof(lru_header_t) || h->segment_bytes != want ||
        h->nbuckets != nbuckets || want > mapped_bytes || h->record_size < LRU_HEAD_BYTES + 8)
        return "the header's geometry does not match the segment's size";
    return NULL;
}

/* ---- lock ------------------------------------------------------------------------------- */

int lru_lock(lru_table_t *t)
{
    lru_header_t *h = t->hdr;
    int rc = pthread_mutex_lock(&h->lock);
    if (rc == EOWNERDEAD) {
        /* The owner died mid-operation: rebuild everything from the records, then go on.
         * Its seq may be odd or even; make it odd for our own critical section either way. */
        if (!(h->seq & 1))
            __atomic_store_n(&h->seq, h->seq + 1, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        lru_rebuild(t);
        h->stats.lock_recoveries++;
        pthread_mutex_consistent(&h->lock);
        return 0;
    }
    if (rc != 0)
        return rc;
    __atomic_store_n(&h->seq, h->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  /* readers see seq odd before any write below */
    return 0;
}

void lru_unlock(lru_table_t *t)
{
    lru_header_t *h = t->hdr;
    __atomic_store_n(&h->seq, h->seq + 1, __ATOMIC_RELEASE);  /* all writes before seq even */
    pthread_mutex_unlock(&h->lock);
}

/* ---- optimistic reads (no lock; see the seqlock rule in lru_table.h) -------------------- */

uint64_t lru_read_begin(lru_table_t *t)
{
    return __atomic_load_n(&t->hdr->seq, __ATOMIC_ACQUIRE);
}

int lru_read_valid(lru_table_t *t, uint64_t seq)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return !(seq & 1) && __atomic_load_n(&t->hdr->seq, __ATOMIC_RELAXED) == seq;
}

void lru_count(lru_table_t *t, int hit)
{
    static __thread unsigned shard = LRU_COUNTER_SHARDS;
    if (shard == LRU_COUNTER_SHARDS)
        shard = (unsigned)getpid() % LRU_COUNTER_SHARDS;
    __atomic_fetch_add(hit ? &t->hdr->shards[shard].hits : &t->hdr->shards[shard].misses, 1,
                       __ATOMIC_RELAXED);
}

int64_t lru_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 64-bit FNV-1a: keys are short, and the bucket index uses the low bits. */
uint64_t lru_hash(const uint8_t *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

uint32_t lru_records_for(const lru_table_t *t, size_t klen, size_t vlen)
{
    size_t rs = t->hdr->record_size;
    size_t first = rs - LRU_HEAD_BYTES, more = rs - LRU_CHAIN_BYTES;
    size_t need = klen + vlen;
    if (need <= first)
        return 1;
    return 1 + (uint32_t)((need - first + more - 1) / more);
}

/* ---- LRU list --------------------------------------------------------------------------- */

static void lru_unlink_list(lru_table_t *t, uint32_t index)
{
    lru_header_t *h = t->hdr;
    lru_head_t *e = lru_head_at(t, index);
    if (e->lru_prev)
        lru_head_at(t, e->lru_prev - 1)->lru_next = e->lru_next;
    else
        h->lru_head = e->lru_next;
    if (e->lru_next)
        lru_head_at(t, e->lru_next - 1)->lru_prev = e->lru_prev;
    else
        h->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = 0;
}

static void lru_push_front(lru_table_t *t, uint32_t index)
{
    lru_header_t *h = t->hdr;
    lru_head_t *e = lru_head_at(t, index);
    e->lru_prev = 0;
    e->lru_next = h->lru_head;
    if (h->lru_head)
        lru_head_at(t, h->lru_head - 1)->lru_prev = index + 1;
    h->lru_head = index + 1;
    if (!h->lru_tail)
        h->lru_tail = index + 1;
}

/*
 * A read moves the entry to the head, but at most once per touch_interval_ms (memcached does the
 * same): moving touches three other records' cache lines, which costs more than the lookup, and
 * an entry read twice within the interval is recent enough either way. 0 = exact LRU.
 * `force` (touch(), TOUCH) always moves: a caller that touches means "keep this one now".
 */
void lru_touch(lru_table_t *t, uint32_t index, int64_t now, int force)
{
    lru_head_t *e = lru_head_at(t, index);
    if (!force && now - e->atime < (int64_t)t->hdr->touch_interval_ms)
        return;
    e->atime = now;
    if (t->hdr->lru_head != index + 1) {
        lru_unlink_list(t, index);
        lru_push_front(t, index);
    }
}

/* ---- lookup ----------------------------------------------------------------------------- */

static int key_equals(lru_table_t *t, uint32_t index, const uint8_t *key, size_t klen)
{
    lru_head_t *e = lru_head_at(t, index);
    if (e->klen != klen)
        return 0;
    size_t rs = t->hdr->record_size;
    size_t room = rs - LRU_HEAD_BYTES;
    const uint8_t *data = (const uint8_t *)e + LRU_HEAD_BYTES;
    size_t n = klen < room ? klen : room;
    if (memcmp(data, key, n) != 0)
        return 0;
    size_t done = n;
    uint32_t next = e->c.next;
    while (done < klen && next) {
        lru_chain_t *c = chain_at(t, next - 1);
        room = rs - LRU_CHAIN_BYTES;
        n = (klen - done) < room ? (klen - done) : room;
        if (memcmp((uint8_t *)c + LRU_CHAIN_BYTES, key + done, n) != 0)
            return 0;
        done += n;
        next = c->next;
    }
    return done == klen;
}

/* Asks for the key's bucket before the lock is taken: the cache miss overlaps the wait.
 * Reads one word of the header; a hint only, so no lock is needed. */
void lru_prefetch_bucket(lru_table_t *t, uint64_t hash)
{
    __builtin_prefetch(&buckets(t)[hash & (t->hdr->nbuckets - 1)]);
}

/* A hint for an operation on this key coming soon (a pipelined request parsed ahead): read
 * its bucket without the lock, then ask for the head record's lines. Nothing in the record is
 * read (that would wait for it); lru_find asks for a chain record once it has the head. A
 * writer may change the bucket meanwhile: a stale link only prefetches the wrong lines. */
void lru_prefetch_entry(lru_table_t *t, uint64_t hash)
{
    lru_header_t *h = t->hdr;
    uint32_t link = __atomic_load_n(&buckets(t)[hash & (h->nbuckets - 1)], __ATOMIC_RELAXED);
    if (!link || link > h->capacity)
        return;
    const uint8_t *record = record_at(t, link - 1);
    for (uint32_t line = 0; line < h->record_size; line += 64)
        __builtin_prefetch(record + line, 1);
}

/* Finds a live entry; an expired one met on the way is reclaimed (journal: expired). */
int lru_find(lru_table_t *t, const uint8_t *key, size_t klen, uint64_t hash, int64_t now,
             lru_entry_t *out)
{
    lru_header_t *h = t->hdr;
    uint32_t link = buckets(t)[hash & (h->nbuckets - 1)];
    uint32_t guard = h->capacity;
    while (link && guard--) {
        uint32_t index = link - 1;
        lru_head_t *e = lru_head_at(t, index);
        link = e->hnext;
        if (e->hash != hash || !key_equals(t, index, key, klen))
            continue;
        if (e->expire_at && e->expire_at <= now) {
            lru_expire_now(t, index, now);
            return 0;
        }
        /* A write goes on to the value's chain record: ask for it while the caller decides. */
        if (e->c.next)
            __builtin_prefetch(chain_at(t, e->c.next - 1), 1);
        out->index = index;
        out->head = e;
        return 1;
    }
    return 0;
}

/*
 * lru_find without the lock and without writing: every link is bounds-checked and every loop
 * bounded, because a writer may be changing what we read; the caller validates the seqlock
 * afterwards and throws the answer away if it changed. Returns 1 live, 0 absent, 2 expired.
 */
int lru_peek(lru_table_t *t, const uint8_t *key, size_t klen, uint64_t hash, int64_t now,
             lru_entry_t *out)
{
    lru_header_t *h = t->hdr;
    uint32_t cap = h->capacity, rs = h->record_size;
    uint32_t link = __atomic_load_n(&buckets(t)[hash & (h->nbuckets - 1)], __ATOMIC_RELAXED);
    for (uint32_t guard = 0; link && guard < 64; guard++) {
        if (link > cap)
            return 0;
        uint32_t index = link - 1;
        lru_head_t *e = lru_head_at(t, index);
        /* Ask for the whole record at once: its cache lines then arrive in parallel instead of
         * one after another as the key compare and the value copy walk through them. */
        for (uint32_t line = 0; line < rs; line += 64)
            __builtin_prefetch((const uint8_t *)e + line);
        link = e->hnext;
        if (e->hash != hash || e->klen != klen)
            continue;
        /* compare the key record by record, checking each link */
        size_t room = rs - LRU_HEAD_BYTES, done = 0;
        const uint8_t *data = (const uint8_t *)e + LRU_HEAD_BYTES;
        uint32_t next = e->c.next;
        int same = 1;
        while (done < klen) {
            size_t n = klen - done < room ? klen - done : room;
            if (memcmp(data, key + done, n) != 0) {
                same = 0;
                break;
            }
            done += n;
            if (done >= klen)
                break;
            if (!next || next > cap) {
                same = 0;
                break;
            }
            lru_chain_t *c = chain_at(t, next - 1);
            data = (const uint8_t *)c + LRU_CHAIN_BYTES;
            room = rs - LRU_CHAIN_BYTES;
            next = c->next;
        }
        if (!same)
            continue;
        out->index = index;
        out->head = e;
        return (e->expire_at && e->expire_at <= now) ? 2 : 1;
    }
    return 0;
}

/* copy_range for optimistic readers: stops (returns 0) at a link that cannot be right. */
int lru_copy_value_checked(lru_table_t *t, const lru_entry_t *e, uint8_t *dst, size_t vlen)
{
    uint32_t cap = t->hdr->capacity;
    size_t rs = t->hdr->record_size;
    size_t from = e->head->klen, offset = 0, room = rs - LRU_HEAD_BYTES;
    const uint8_t *data = (const uint8_t *)e->head + LRU_HEAD_BYTES;
    uint32_t next = e->head->c.next;
    size_t len = vlen;
    for (uint32_t hops = 0; len; hops++) {
        if (from < offset + room) {
            size_t start = from - offset;
            size_t n = room - start < len ? room - start : len;
            memcpy(dst, data + start, n);
            dst += n;
            from += n;
            len -= n;
        }
        if (!len)
            break;
        if (!next || next > cap || hops > cap)
            return 0;
        offset += room;
        lru_chain_t *c = chain_at(t, next - 1);
        data = (const uint8_t *)c + LRU_CHAIN_BYTES;
        room = rs - LRU_CHAIN_BYTES;
        next = c->next;
    }
    return 1;
}

/* Walks key+value bytes of an entry, copying the range [from, from+len) to dst. */
static void copy_range(lru_table_t *t, const lru_entry_t *e, size_t from, size_t len, uint8_t *dst)
{
    size_t rs = t->hdr->record_size;
    size_t offset = 0;            /* data offset where the current record starts */
    uint8_t *data = (uint8_t *)e->head + LRU_HEAD_BYTES;
    size_t room = rs - LRU_HEAD_BYTES;
    uint32_t next = e->head->c.next;
    while (len) {
        if (from < offset + room) {
            size_t start = from - offset;
            size_t n = room - start < len ? room - start : len;
            memcpy(dst, data + start, n);
            dst += n;
            from += n;
            len -= n;
        }
        if (!len || !next)
            break;
        offset += room;
        lru_chain_t *c = chain_at(t, next - 1);
        data = (uint8_t *)c + LRU_CHAIN_BYTES;
        room = rs - LRU_CHAIN_BYTES;
        next = c->next;
    }
}

void lru_copy_value(lru_table_t *t, const lru_entry_t *e, uint8_t *dst)
{
    copy_range(t, e, e->head->klen, e->head->vlen, dst);
}

void lru_copy_key(lru_table_t *t, const lru_entry_t *e, uint8_t *dst)
{
    copy_range(t, e, 0, e->head->klen, dst);
}

/* ---- allocation and removal ------------------------------------------------------------- */

static void bucket_unlink(lru_table_t *t, uint32_t index)
{
    lru_head_t *e = lru_head_at(t, index);
    uint32_t *slot = &buckets(t)[e->hash & (t->hdr->nbuckets - 1)];
    uint32_t guard = t->hdr->capacity;
    while (*slot && guard--) {
        if (*slot == index + 1) {
            *slot = e->hnext;
            e->hnext = 0;
            return;
        }
        slot = &lru_head_at(t, *slot - 1)->hnext;
    }
}

/* Frees an entry's records. The order matters for recovery: uncommit first, free the chain
 * records, the head last, so a crash in between leaves nothing that looks like a live entry. */
static void free_entry(lru_table_t *t, uint32_t index)
{
    lru_header_t *h = t->hdr;
    lru_head_t *e = lru_head_at(t, index);
    e->c.committed = 0;
    uint32_t next = e->c.next;
    uint32_t guard = e->c.nrec;
    while (next && guard--) {
        lru_chain_t *c = chain_at(t, next - 1);
        uint32_t after = c->next;
        c->state = REC_FREE;
        c->owner = 0;
        c->next = h->free_head;
        h->free_head = next;
        h->free_records++;
        next = after;
    }
    e->c.state = REC_FREE;
    e->c.owner = 0;
    e->c.nrec = 0;
    e->c.next = h->free_head;
    h->free_head = index + 1;
    h->free_records++;
}

void lru_remove(lru_table_t *t, uint32_t index, int journal_op)
{
    lru_entry_t e = {index, lru_head_at(t, index)};
    if (e.head->expire_at)
        t->hdr->expiring--;
    if (journal_op)
        lru_journal_append(t, journal_op, &e);
    bucket_unlink(t, index);
    lru_unlink_list(t, index);
    free_entry(t, index);
    t->hdr->entries--;
}

int lru_expire_now(lru_table_t *t, uint32_t index, int64_t now)
{
    (void)now;
    lru_remove(t, index, JOP_EXPIRED);
    t->hdr->stats.expirations++;
    return 1;
}

/* A new deadline (0 = none) for a live entry: a new version and a journal record. */
void lru_set_deadline(lru_table_t *t, const lru_entry_t *e, int64_t expire_at)
{
    t->hdr->expiring += (expire_at != 0) - (e->head->expire_at != 0);
    e->head->expire_at = expire_at;
    e->head->version = ++t->hdr->version_counter;
    lru_journal_append(t, JOP_EXPIRE, e);
}

/* Evicts from the LRU tail until `need` records are free. Expired entries go as expirations. */
static int make_room(lru_table_t *t, uint32_t need, int64_t now)
{
    lru_header_t *h = t->hdr;
    while (h->free_records < need && h->lru_tail) {
        uint32_t victim = h->lru_tail - 1;
        lru_head_t *e = lru_head_at(t, victim);
        if (e->expire_at && e->expire_at <= now) {
            lru_expire_now(t, victim, now);
        } else {
            lru_remove(t, victim, JOP_EVICTED);
            h->stats.evictions++;
        }
    }
    return h->free_records >= need;
}

/* The free list first (its records are warm), then the next never used record. The caller
 * (make_room) made sure free_records covers what it takes. */
static uint32_t take_free(lru_table_t *t)
{
    lru_header_t *h = t->hdr;
    uint32_t link = h->free_head;
    lru_chain_t *c;
    if (link) {
        c = chain_at(t, link - 1);
        h->free_head = c->next;
    } else {
        link = ++h->fresh_next;
        c = chain_at(t, link - 1);
    }
    h->free_records--;
    c->next = 0;
    return link;
}

/* Writes a new entry (the caller removed any old one). Returns 0, or -1 if it can never fit. */
int lru_store(lru_table_t *t, const uint8_t *key, size_t klen, uint64_t hash, const uint8_t *val,
              size_t vlen, uint8_t type, int64_t expire_at, int64_t now)
{
    lru_header_t *h = t->hdr;
    uint32_t need = lru_records_for(t, klen, vlen);
    if (need > h->capacity || !make_room(t, need, now))
        return -1;

    uint32_t head_link = take_free(t);
    uint32_t index = head_link - 1;
    lru_head_t *e = lru_head_at(t, index);
    e->c.committed = 0;
    e->c.state = REC_HEAD;
    e->c.owner = head_link;
    e->c.type = type;
    e->c.nrec = need;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    e->hash = hash;
    e->expire_at = expire_at;
    e->atime = now;
    e->version = ++h->version_counter;
    e->hnext = 0;
    if (expire_at)
        h->expiring++;
    e->lru_prev = e->lru_next = 0;

    /* Key then value, spilling over chain records. */
    size_t rs = h->record_size;
    uint8_t *data = (uint8_t *)e + LRU_HEAD_BYTES;
    size_t room = rs - LRU_HEAD_BYTES;
    size_t total = klen + vlen, done = 0;
    uint32_t *link_slot = &e->c.next;
    *link_slot = 0;
    for (;;) {
        size_t n = total - done < room ? total - done : room;
        size_t from_key = 0;
        if (done < klen) {
            from_key = klen - done < n ? klen - done : n;
            memcpy(data, key + done, from_key);
        }
        if (n > from_key)
            memcpy(data + from_key, val + (done + from_key - klen), n - from_key);
        done += n;
        if (done >= total)
            break;
        uint32_t link = take_free(t);
        lru_chain_t *c = chain_at(t, link - 1);
        c->state = REC_CHAIN;
        c->owner = head_link;
        c->committed = 0;
        c->nrec = 0;
        *link_slot = link;
        link_slot = &c->next;
        data = (uint8_t *)c + LRU_CHAIN_BYTES;
        room = rs - LRU_CHAIN_BYTES;
    }

    uint32_t *bucket = &buckets(t)[hash & (h->nbuckets - 1)];
    e->hnext = *bucket;
    *bucket = head_link;
    lru_push_front(t, index);
    h->entries++;
    h->stats.sets++;
    e->c.committed = 1;   /* last: from here on recovery keeps this entry */
    lru_entry_t written = {index, e};
    lru_journal_append(t, JOP_SET, &written);
    return 0;
}

/* Rewrites a live entry whose new value needs as many records as the old: no freeing, no
 * allocation, no index change. Uncommitted while the bytes change, so a crash drops it whole. */
int lru_overwrite(lru_table_t *t, const lru_entry_t *e, const uint8_t *val, size_t vlen,
                  uint8_t type, int64_t expire_at, int64_t now)
{
    lru_head_t *head = e->head;
    size_t rs = t->hdr->record_size;
    size_t klen = head->klen;
    head->c.committed = 0;
    head->vlen = (uint32_t)vlen;
    head->c.type = type;
    t->hdr->expiring += (expire_at != 0) - (head->expire_at != 0);
    head->expire_at = expire_at;
    head->version = ++t->hdr->version_counter;
    /* value bytes start right after the key, wherever in the chain that is */
    size_t offset = 0, room = rs - LRU_HEAD_BYTES, done = 0;
    uint8_t *data = (uint8_t *)head + LRU_HEAD_BYTES;
    uint32_t next = head->c.next;
    size_t from = klen;
    while (done < vlen) {
        if (from < offset + room) {
            size_t start = from - offset;
            size_t n = room - start < vlen - done ? room - start : vlen - done;
            memcpy(data + start, val + done, n);
            done += n;
            from += n;
        }
        if (done >= vlen || !next)
            break;
        offset += room;
        lru_chain_t *c = chain_at(t, next - 1);
        data = (uint8_t *)c + LRU_CHAIN_BYTES;
        room = rs - LRU_CHAIN_BYTES;
        next = c->next;
    }
    /* Lazy like a read (see lru_touch): a key rewritten within touch_interval_ms of its last
     * move is near the head already, and moving it touches three other records. */
    lru_touch(t, e->index, now, 0);
    t->hdr->stats.sets++;
    head->c.committed = 1;
    lru_journal_append(t, JOP_SET, e);
    return 0;
}

/* Visits up to max_checks records from where the last sweep stopped; reclaims expired entries. */
uint32_t lru_sweep(lru_table_t *t, uint32_t max_checks, int64_t now)
{
    lru_header_t *h = t->hdr;
    uint32_t expired = 0;
    /* Only records ever used can hold an entry; the rest stay untouched (not resident). */
    uint32_t used = h->fresh_next;
    if (!used)
        return 0;
    if (max_checks > used)
        max_checks = used;
    if (h->sweep_pos >= used)
        h->sweep_pos = 0;
    for (uint32_t n = 0; n < max_checks; n++) {
        uint32_t index = h->sweep_pos;
        h->sweep_pos = (index + 1) % used;
        lru_head_t *e = lru_head_at(t, index);
        if (e->c.state == REC_HEAD && e->c.committed && e->expire_at && e->expire_at <= now)
            expired += lru_expire_now(t, index, now);
    }
    return expired;
}

uint32_t lru_flush(lru_table_t *t)
{
    lru_header_t *h = t->hdr;
    uint32_t removed = h->entries;
    memset(buckets(t), 0, (size_t)h->nbuckets * 4);
    /* Every used record becomes FREE (recovery must not find an entry in one), and all of
     * them are handed out again from the start as if never used. */
    for (uint32_t i = 0; i < h->fresh_next; i++) {
        lru_chain_t *c = chain_at(t, i);
        c->state = REC_FREE;
        c->committed = 0;
        c->owner = 0;
        c->nrec = 0;
        c->next = 0;
    }
    h->free_head = 0;
    h->fresh_next = 0;
    h->free_records = h->capacity;
    h->lru_head = h->lru_tail = 0;
    h->entries = 0;
    h->expiring = 0;
    h->version_counter++;
    lru_journal_mark(t, JOP_FLUSH);
    return removed;
}
