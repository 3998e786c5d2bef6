/*
 * shm_lru: a hash table with LRU order and per-entry expiry in one POSIX shared-memory segment,
 * used by several processes at once. Knows nothing of Python, RESP or tiers.
 *
 * Segment layout (all offsets from the start of the mapping):
 *
 *   lru_header_t  | bucket array (uint32 x nbuckets) | records (record_size x capacity) | journal
 *
 * Memory is fixed-size records. An entry is a HEAD record (lru_head_t + the first bytes of key and
 * value) followed by CHAIN records (lru_chain_t + more bytes) when key+value do not fit in one.
 * Record links are stored as index + 1 so that 0 means "none" in every link field.
 *
 * LOCKING RULE: every function in lru_table.c, lru_journal.c and lru_recover.c that reads or
 * writes the header, buckets, records or journal is called with hdr->lock held, except
 * lru_lock()/lru_unlock() themselves, lru_init()/lru_validate() (which run before the segment is
 * shared or only read constants), the cache hints lru_prefetch_bucket()/lru_prefetch_entry()
 * (they only read, and a stale read only prefetches the wrong lines) and the optimistic readers
 * lru_peek()/lru_copy_value_checked().
 * Those run without the lock under a sequence counter (a seqlock): lru_lock() makes hdr->seq odd
 * and lru_unlock() even again, so a reader that saw the same even value before and after its
 * reads knows no writer touched anything in between; otherwise it retries or takes the lock.
 * Optimistic readers never write the segment except the sharded hit/miss counters (atomics).
 * The lock is a process-shared ROBUST mutex: if its owner died,
 * the next lru_lock() rebuilds the index, LRU list and free list from the records (lru_recover.c)
 * before it carries on, so a half-done operation is rolled back to a consistent table.
 */
#ifndef SHM_LRU_TABLE_H
#define SHM_LRU_TABLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define LRU_MAGIC 0x3155524c4d485352ULL /* "RSHMLRU1" */
#define LRU_LAYOUT_VERSION 5
#define LRU_COUNTER_SHARDS 16

enum { REC_FREE = 0, REC_HEAD = 1, REC_CHAIN = 2 };

enum {
    JOP_PAD = 0,      /* filler to the end of the journal ring */
    JOP_SET = 1,
    JOP_DEL = 2,
    JOP_EXPIRE = 3,   /* the deadline changed (EXPIRE, PERSIST) */
    JOP_EXPIRED = 4,
    JOP_EVICTED = 5,  /* carries the value and deadline: the object can move downstream */
    JOP_FLUSH = 6,
};

typedef struct {
    uint64_t sets, deletes, evictions, expirations;
    uint64_t journal_records, journal_overruns, lock_recoveries;
} lru_stats_t;

typedef struct {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_bytes;
    uint64_t segment_bytes;
    uint64_t generation;          /* unique per create(): clients notice a new segment */
    volatile uint32_t retired;    /* set before the owner unlinks or replaces the segment */
    uint32_t capacity;            /* records */
    uint32_t record_size;
    uint32_t nbuckets;
    uint64_t buckets_offset, records_offset, journal_offset, journal_bytes;

    pthread_mutex_t lock;
    uint64_t seq __attribute__((aligned(64)));  /* odd while the lock is held (seqlock) */
    /* hits/misses, one cache line per shard so readers in several processes do not contend */
    struct {
        uint64_t hits, misses;
        uint64_t pad[6];
    } shards[LRU_COUNTER_SHARDS] __attribute__((aligned(64)));

    uint64_t version_counter;     /* bumped by every write; an entry keeps the value it got */
    uint32_t lru_head, lru_tail;  /* most and least recently used HEAD records (+1) */
    uint32_t free_head;           /* singly linked through lru_chain_t.next */
    uint32_t free_records;        /* on the free list, plus the never used ones below */
    /* Records [fresh_next, capacity) were never used: free without being on the free list, and
     * never touched, so their pages of the segment are not resident until data needs them. */
    uint32_t fresh_next;
    uint32_t entries;
    uint32_t expiring;            /* entries with a deadline (INFO keyspace expires=) */
    uint32_t sweep_pos;
    uint32_t touch_interval_ms;   /* a read moves an entry to the LRU head at most this often */
    uint64_t journal_write;       /* bytes ever written: position = journal_write % journal_bytes */
    uint64_t journal_seq;         /* records ever written */
    lru_stats_t stats;
} lru_header_t;

/* Common to every record. */
typedef struct {
    uint32_t next;       /* next record of the chain (FREE: next free record), +1 */
    uint32_t owner;      /* HEAD record of this entry, +1 (a HEAD owns itself) */
    uint8_t state;       /* REC_* */
    uint8_t type;        /* the caller's type tag (HEAD only) */
    uint8_t committed;   /* HEAD: set last when an entry is written, cleared first on free */
    uint8_t pad;
    uint32_t nrec;       /* HEAD: records in the chain, itself included */
} lru_chain_t;

typedef struct {
    lru_chain_t c;
    uint32_t hnext;      /* next HEAD in the same bucket, +1 */
    uint32_t lru_prev, lru_next;
    uint32_t klen, vlen;
    uint32_t pad;
    uint64_t hash;
    int64_t expire_at;   /* ms since the epoch (CLOCK_REALTIME); 0 = no expiry */
    int64_t atime;       /* last access, ms */
    uint64_t version;
} lru_head_t;

#define LRU_HEAD_BYTES sizeof(lru_head_t)
#define LRU_CHAIN_BYTES sizeof(lru_chain_t)

typedef struct {
    lru_header_t *hdr;
    uint8_t *base;
    size_t size;
} lru_table_t;

/* What a read gives back: pointers are valid only while the lock is held. */
typedef struct {
    uint32_t index;      /* HEAD record index (not +1) */
    lru_head_t *head;
} lru_entry_t;

/* One journal record as it lies in the ring (8-byte aligned), followed by key, then value. */
typedef struct {
    uint32_t bytes;      /* whole record, header included, rounded up to 8 */
    uint8_t op;          /* JOP_* */
    uint8_t type;
    uint8_t has_value;   /* evictions carry the value when it fits a quarter of the ring */
    uint8_t pad;
    uint32_t klen, vlen;
    uint32_t pad2;
    int64_t expire_at;
    uint64_t seq;
} lru_jrec_t;

/* lru_table.c */
size_t lru_segment_bytes(uint32_t capacity, uint32_t record_size, uint64_t journal_bytes,
                         uint32_t *nbuckets_out);
void lru_init(lru_table_t *t, uint32_t capacity, uint32_t record_size, uint64_t journal_bytes,
              uint64_t generation, uint32_t touch_interval_ms);
const char *lru_validate(lru_table_t *t, size_t mapped_bytes);
int lru_lock(lru_table_t *t);
void lru_unlock(lru_table_t *t);
int64_t lru_now_ms(void);
uint64_t lru_hash(const uint8_t *key, size_t len);
uint32_t lru_records_for(const lru_table_t *t, size_t klen, size_t vlen);
int lru_find(lru_table_t *t, const uint8_t *key, size_t klen, uint64_t hash, int64_t now,
             lru_entry_t *out);
int lru_peek(lru_table_t *t, const uint8_t *key, size_t klen, uint64_t hash, int64_t now,
             lru_entry_t *out);
int lru_copy_value_checked(lru_table_t *t, const lru_entry_t *e, uint8_t *dst, size_t vlen);
uint64_t lru_read_begin(lru_table_t *t);
int lru_read_valid(lru_table_t *t, uint64_t seq);
void lru_count(lru_table_t *t, int hit);
void lru_touch(lru_table_t *t, uint32_t index, int64_t now, int force);
void lru_prefetch_bucket(lru_table_t *t, uint64_t hash);
void lru_prefetch_entry(lru_table_t *t, uint64_t hash);
void lru_copy_value(lru_table_t *t, const lru_entry_t *e, uint8_t *dst);
void lru_copy_key(lru_table_t *t, const lru_entry_t *e, uint8_t *dst);
int lru_store(lru_table_t *t, const uint8_t *key, size_t klen, uint64_t hash, const uint8_t *val,
              size_t vlen, uint8_t type, int64_t expire_at, int64_t now);
int lru_overwrite(lru_table_t *t, const lru_entry_t *e, const uint8_t *val, size_t vlen,
                  uint8_t type, int64_t expire_at, int64_t now);
void lru_remove(lru_table_t *t, uint32_t index, int journal_op);
int lru_expire_now(lru_table_t *t, uint32_t index, int64_t now);
void lru_set_deadline(lru_table_t *t, const lru_entry_t *e, int64_t expire_at);
uint32_t lru_sweep(lru_table_t *t, uint32_t max_checks, int64_t now);
uint32_t lru_flush(lru_table_t *t);
lru_head_t *lru_head_at(lru_table_t *t, uint32_t index);
uint32_t lru_bucket_first(lru_table_t *t, uint32_t bucket);

/* lru_journal.c */
void lru_journal_append(lru_table_t *t, int op, const lru_entry_t *e);
void lru_journal_mark(lru_table_t *t, int op);
size_t lru_journal_copy(lru_table_t *t, uint64_t *pos, uint64_t *seq, uint64_t *lost,
                        uint8_t *dst, size_t dst_bytes, uint32_t max_records);

/* lru_recover.c */
void lru_rebuild(lru_table_t *t);
int lru_check(lru_table_t *t, char *report, size_t report_bytes);

/* glob matching as Redis's stringmatchlen */
int lru_glob_match(const uint8_t *pat, size_t plen, const uint8_t *str, size_t slen, int depth);

#endif
