/*
 * The change journal: a byte ring after the records. Writers append lru_jrec_t + key (+ value for
 * evictions) under the table lock; a record never wraps -- a PAD record fills the tail of the ring
 * instead. journal_write only grows, so a reader's position tells how far behind it is: a reader
 * more than one ring behind was lapped, jumps to the present and is told how many records it lost.
 * Callers hold the lock (lru_table.h).
 */
#include "lru_table.h"

#include <string.h>

static inline uint8_t *ring(lru_table_t *t)
{
    return t->base + t->hdr->journal_offset;
}

static inline uint32_t rounded(size_t n)
{
    return (uint32_t)((n + 7) & ~(size_t)7);
}

/* Reserves `bytes` contiguous bytes at the write position, padding the ring's tail if needed. */
static uint8_t *reserve(lru_table_t *t, uint32_t bytes)
{
    lru_header_t *h = t->hdr;
    uint64_t size = h->journal_bytes;
    uint64_t at = h->journal_write % size;
    if (at + bytes > size) {
        lru_jrec_t *pad = (lru_jrec_t *)(ring(t) + at);
        memset(pad, 0, sizeof(*pad));
        pad->bytes = (uint32_t)(size - at);
        pad->op = JOP_PAD;
        h->journal_write += size - at;
        at = 0;
    }
    return ring(t) + at;
}

static void append(lru_table_t *t, int op, uint8_t type, int64_t expire_at, const lru_entry_t *e,
                   int with_value)
{
    lru_header_t *h = t->hdr;
    if (h->journal_bytes < 4096)
        return;
    size_t klen = e ? e->head->klen : 0;
    size_t vlen = e ? e->head->vlen : 0;
    if (with_value && sizeof(lru_jrec_t) + klen + vlen > h->journal_bytes / 4)
        with_value = 0;  /* too big for the ring: the record says the value is missing */
    if (sizeof(lru_jrec_t) + klen > h->journal_bytes / 4)
        return;          /* a key this long cannot be journaled at all */
    uint32_t bytes = rounded(sizeof(lru_jrec_t) + klen + (with_value ? vlen : 0));
    uint8_t *dst = reserve(t, bytes);
    lru_jrec_t *rec = (lru_jrec_t *)dst;
    memset(rec, 0, sizeof(*rec));
    rec->bytes = bytes;
    rec->op = (uint8_t)op;
    rec->type = type;
    rec->has_value = (uint8_t)with_value;
    rec->klen = (uint32_t)klen;
    rec->vlen = with_value ? (uint32_t)vlen : 0;
    rec->expire_at = expire_at;
    rec->seq = h->journal_seq++;
    if (e) {
        lru_copy_key(t, e, dst + sizeof(lru_jrec_t));
        if (with_value)
            lru_copy_value(t, e, dst + sizeof(lru_jrec_t) + klen);
    }
    h->journal_write += bytes;
    h->stats.journal_records++;
}

void lru_journal_append(lru_table_t *t, int op, const lru_entry_t *e)
{
    append(t, op, e->head->c.type, e->head->expire_at, e, op == JOP_EVICTED);
}

void lru_journal_mark(lru_table_t *t, int op)
{
    append(t, op, 0, 0, NULL, 0);
}

/*
 * Copies whole records from *pos into dst (at most dst_bytes and max_records), skipping PADs, and
 * advances *pos and *seq. A lapped reader jumps to the present; *lost counts what it missed.
 * Returns the bytes copied.
 */
size_t lru_journal_copy(lru_table_t *t, uint64_t *pos, uint64_t *seq, uint64_t *lost,
                        uint8_t *dst, size_t dst_bytes, uint32_t max_records)
{
    lru_header_t *h = t->hdr;
    uint64_t size = h->journal_bytes;
    *lost = 0;
    if (size < 4096)
        return 0;
    if (h->journal_write - *pos > size || *pos > h->journal_write) {
        *lost = h->journal_seq - *seq;
        h->stats.journal_overruns++;
        *pos = h->journal_write;
        *seq = h->journal_seq;
        return 0;
    }
    size_t copied = 0;
    uint32_t records = 0;
    while (*pos < h->journal_write && records < max_records) {
        lru_jrec_t *rec = (lru_jrec_t *)(ring(t) + *pos % size);
        uint32_t bytes = rec->bytes;
        if (bytes < sizeof(lru_jrec_t) && rec->op != JOP_PAD)
            break;  /* cannot happen in a consistent ring; stop rather than loop */
        if (rec->op == JOP_PAD) {
            *pos += bytes ? bytes : size - *pos % size;
            continue;
        }
        if (copied + bytes > dst_bytes)
            break;
        memcpy(dst + copied, rec, bytes);
        copied += bytes;
        *pos += bytes;
        *seq = rec->seq + 1;
        records++;
    }
    return copied;
}
