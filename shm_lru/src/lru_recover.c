/*
 * Recovery and checking. Records are self-describing (state, owner, committed, nrec), so after a
 * process died holding the lock, the index, the LRU list and the free list are rebuilt from the
 * records alone: committed heads whose chains are whole survive, everything else is freed, and of
 * two copies of one key (a set that died between writing the new entry and freeing the old) the
 * newer version stays. The LRU order is rebuilt from access times. Callers hold the lock.
 */
#include "lru_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline lru_chain_t *chain_at(lru_table_t *t, uint32_t index)
{
    return (lru_chain_t *)(t->base + t->hdr->records_offset + (uint64_t)index * t->hdr->record_size);
}

static inline uint32_t *buckets(lru_table_t *t)
{
    return (uint32_t *)(t->base + t->hdr->buckets_offset);
}

/* A head is whole when its chain has nrec records, each a CHAIN owned by it, and room enough. */
static int chain_whole(lru_table_t *t, uint32_t index)
{
    lru_header_t *h = t->hdr;
    lru_head_t *e = lru_head_at(t, index);
    if (e->c.state != REC_HEAD || !e->c.committed || e->c.owner != index + 1 || e->c.nrec == 0 ||
        e->c.nrec > h->capacity)
        return 0;
    if (lru_records_for(t, e->klen, e->vlen) != e->c.nrec)
        return 0;
    uint32_t next = e->c.next, count = 1;
    while (next) {
        if (next > h->capacity || count >= e->c.nrec)
            return 0;
        lru_chain_t *c = chain_at(t, next - 1);
        if (c->state != REC_CHAIN || c->owner != index + 1)
            return 0;
        count++;
        next = c->next;
    }
    return count == e->c.nrec;
}

static lru_table_t *sort_table;

static int by_atime_desc(const void *a, const void *b)
{
    int64_t ta = lru_head_at(sort_table, *(const uint32_t *)a)->atime;
    int64_t tb = lru_head_at(sort_table, *(const uint32_t *)b)->atime;
    return (ta < tb) - (ta > tb);
}

static int same_key(lru_table_t *t, uint32_t a, uint32_t b)
{
    lru_head_t *ea = lru_head_at(t, a), *eb = lru_head_at(t, b);
    if (ea->hash != eb->hash || ea->klen != eb->klen)
        return 0;
    uint8_t *ka = malloc(ea->klen + 1), *kb = malloc(eb->klen + 1);
    int same = 0;
    if (ka && kb) {
        lru_entry_t xa = {a, ea}, xb = {b, eb};
        lru_copy_key(t, &xa, ka);
        lru_copy_key(t, &xb, kb);
        same = memcmp(ka, kb, ea->klen) == 0;
    }
    free(ka);
    free(kb);
    return same;
}

void lru_rebuild(lru_table_t *t)
{
    lru_header_t *h = t->hdr;
    uint32_t cap = h->capacity;
    /* Records at and past fresh_next were never handed out: nothing to rebuild there (and not
     * reading them keeps their pages out of memory). */
    if (h->fresh_next > cap)
        h->fresh_next = cap;
    uint32_t scan = h->fresh_next;
    uint8_t *keep = calloc(cap ? cap : 1, 1);
    uint32_t *heads = malloc(sizeof(uint32_t) * (cap ? cap : 1));
    if (!keep || !heads) {
        /* No memory to be clever with: empty the table, which is always consistent. */
        free(keep);
        free(heads);
        memset(buckets(t), 0, (size_t)h->nbuckets * 4);
        for (uint32_t i = 0; i < scan; i++)
            memset(chain_at(t, i), 0, sizeof(lru_chain_t));
        goto relink_free;
    }

    memset(buckets(t), 0, (size_t)h->nbuckets * 4);
    uint32_t nheads = 0;
    for (uint32_t i = 0; i < scan; i++) {
        if (!chain_whole(t, i))
            continue;
        lru_head_t *e = lru_head_at(t, i);
        /* Same key twice? Keep the newer one. */
        uint32_t *slot = &buckets(t)[e->hash & (h->nbuckets - 1)];
        int dropped_self = 0;
        for (uint32_t link = *slot, *prev = slot; link;) {
            lru_head_t *other = lru_head_at(t, link - 1);
            if (same_key(t, i, link - 1)) {
                if (other->version >= e->version) {
                    dropped_self = 1;
                } else {
                    *prev = other->hnext;
                    keep[link - 1] = 0;
                }
                break;
            }
            prev = &other->hnext;
            link = other->hnext;
        }
        if (dropped_self)
            continue;
        e->hnext = *slot;
        *slot = i + 1;
        keep[i] = 1;
    }
    for (uint32_t i = 0; i < scan; i++) {
        if (keep[i] == 1) {  /* 2 marks chain records, set as we go */
            heads[nheads++] = i;
            lru_head_t *e = lru_head_at(t, i);
            for (uint32_t next = e->c.next; next; next = chain_at(t, next - 1)->next)
                keep[next - 1] = 2;
        }
    }
    for (uint32_t i = 0; i < scan; i++) {
        if (!keep[i]) {
            lru_chain_t *c = chain_at(t, i);
            c->state = REC_FREE;
            c->committed = 0;
            c->owner = 0;
            c->nrec = 0;
        }
    }

    sort_table = t;
    qsort(heads, nheads, sizeof(uint32_t), by_atime_desc);
    h->lru_head = h->lru_tail = 0;
    for (uint32_t n = 0; n < nheads; n++) {
        lru_head_t *e = lru_head_at(t, heads[n]);
        e->lru_prev = n ? heads[n - 1] + 1 : 0;
        e->lru_next = n + 1 < nheads ? heads[n + 1] + 1 : 0;
    }
    if (nheads) {
        h->lru_head = heads[0] + 1;
        h->lru_tail = heads[nheads - 1] + 1;
    }
    h->entries = nheads;
    h->expiring = 0;
    for (uint32_t n = 0; n < nheads; n++)
        if (lru_head_at(t, heads[n])->expire_at)
            h->expiring++;
    free(keep);
    free(heads);

relink_free:
    h->free_head = 0;
    h->free_records = cap - scan;  /* the never used ones */
    for (uint32_t i = scan; i-- > 0;) {
        lru_chain_t *c = chain_at(t, i);
        if (c->state == REC_FREE) {
            c->next = h->free_head;
            h->free_head = i + 1;
            h->free_records++;
        }
    }
    if (!h->lru_head)
        h->entries = h->expiring = 0;
}

#define PROBLEM(...)                                                                         \
    do {                                                                                     \
        problems++;                                                                          \
        if (used < report_bytes)                                                             \
            used += (size_t)snprintf(report + used, report_bytes - used, __VA_ARGS__);       \
    } while (0)

/* Walks index, LRU list and free list; writes one line per problem. Returns the problem count. */
int lru_check(lru_table_t *t, char *report, size_t report_bytes)
{
    lru_header_t *h = t->hdr;
    uint32_t cap = h->capacity;
    int problems = 0;
    size_t used = 0;
    report[0] = 0;
    uint8_t *seen = calloc(cap ? cap : 1, 1);  /* 1 = in index, 2 = in LRU, 4 = free, 8 = chain */
    if (!seen) {
        snprintf(report, report_bytes, "check: out of memory\n");
        return 1;
    }
    uint32_t indexed = 0;
    for (uint32_t b = 0; b < h->nbuckets; b++) {
        uint32_t guard = cap + 1;
        for (uint32_t link = buckets(t)[b]; link; link = lru_head_at(t, link - 1)->hnext) {
            if (link > cap || !guard--) {
                PROBLEM("bucket %u: bad link %u or a loop\n", b, link);
                break;
            }
            uint32_t i = link - 1;
            lru_head_t *e = lru_head_at(t, i);
            if (seen[i] & 1)
                PROBLEM("record %u: in the index twice\n", i);
            seen[i] |= 1;
            indexed++;
            if ((e->hash & (h->nbuckets - 1)) != b)
                PROBLEM("record %u: in bucket %u but hashes to %llu\n", i, b,
                        (unsigned long long)(e->hash & (h->nbuckets - 1)));
            if (!chain_whole(t, i)) {
                PROBLEM("record %u: indexed but not a whole committed entry\n", i);
                continue;
            }
            for (uint32_t next = e->c.next; next; next = chain_at(t, next - 1)->next) {
                if (seen[next - 1] & 8)
                    PROBLEM("record %u: in two chains\n", next - 1);
                seen[next - 1] |= 8;
            }
        }
    }
    uint32_t listed = 0, prev = 0;
    uint32_t guard = cap + 1;
    for (uint32_t link = h->lru_head; link; link = lru_head_at(t, link - 1)->lru_next) {
        if (link > cap || !guard--) {
            PROBLEM("LRU list: bad link %u or a loop\n", link);
            break;
        }
        lru_head_t *e = lru_head_at(t, link - 1);
        if (e->lru_prev != prev)
            PROBLEM("record %u: LRU prev is %u, expected %u\n", link - 1, e->lru_prev, prev);
        if (!(seen[link - 1] & 1))
            PROBLEM("record %u: in the LRU list but not in the index\n", link - 1);
        seen[link - 1] |= 2;
        listed++;
        prev = link;
    }
    if (h->lru_tail != prev)
        PROBLEM("LRU tail is %u, the list ends at %u\n", h->lru_tail, prev);
    uint32_t freed = 0;
    guard = cap + 1;
    for (uint32_t link = h->free_head; link; link = chain_at(t, link - 1)->next) {
        if (link > cap || !guard--) {
            PROBLEM("free list: bad link %u or a loop\n", link);
            break;
        }
        lru_chain_t *c = chain_at(t, link - 1);
        if (c->state != REC_FREE)
            PROBLEM("record %u: on the free list but state %u\n", link - 1, c->state);
        if (seen[link - 1] & (1 | 8))
            PROBLEM("record %u: free and in use\n", link - 1);
        seen[link - 1] |= 4;
        freed++;
    }
    if (indexed != listed || indexed != h->entries)
        PROBLEM("counts differ: %u indexed, %u in the LRU list, header says %u entries\n",
                indexed, listed, h->entries);
    uint32_t fresh = h->fresh_next <= cap ? cap - h->fresh_next : 0;
    if (h->fresh_next > cap)
        PROBLEM("fresh_next %u is past the capacity %u\n", h->fresh_next, cap);
    if (freed + fresh != h->free_records)
        PROBLEM("free list has %u records and %u were never used, header says %u free\n",
                freed, fresh, h->free_records);
    uint32_t accounted = 0;
    for (uint32_t i = 0; i < cap; i++) {
        if (i >= h->fresh_next) {
            if (seen[i])
                PROBLEM("record %u: in use or listed but never handed out\n", i);
            accounted++;
        } else if (seen[i]) {
            accounted++;
        }
    }
    if (accounted != cap)
        PROBLEM("%u records are neither free nor part of an entry (leaked)\n", cap - accounted);
    free(seen);
    return problems;
}

/* Redis's glob: * ? [abc] [^a] [a-z] and \x escapes. */
int lru_glob_match(const uint8_t *pat, size_t plen, const uint8_t *str, size_t slen, int depth)
{
    if (depth > 64)
        return 0;  /* pathological patterns end here instead of recursing without bound */
    while (plen && slen) {
        switch (pat[0]) {
        case '*':
            while (plen > 1 && pat[1] == '*') {
                pat++;
                plen--;
            }
            if (plen == 1)
                return 1;
            for (size_t i = 0; i <= slen; i++)
                if (lru_glob_match(pat + 1, plen - 1, str + i, slen - i, depth + 1))
                    return 1;
            return 0;
        case '?':
            break;
        case '[': {
            pat++;
            plen--;
            int negate = plen && pat[0] == '^';
            if (negate) {
                pat++;
                plen--;
            }
            int match = 0;
            while (plen && pat[0] != ']') {
                if (pat[0] == '\\' && plen >= 2) {
                    pat++;
                    plen--;
                    if (pat[0] == str[0])
                        match = 1;
                } else if (plen >= 3 && pat[1] == '-') {
                    uint8_t lo = pat[0], hi = pat[2];
                    if (lo > hi) {
                        uint8_t tmp = lo;
                        lo = hi;
                        hi = tmp;
                    }
                    if (str[0] >= lo && str[0] <= hi)
                        match = 1;
                    pat += 2;
                    plen -= 2;
                } else if (pat[0] == str[0]) {
                    match = 1;
                }
                pat++;
                plen--;
            }
            if (negate)
                match = !match;
            if (!match)
                return 0;
            if (!plen)
                return 0;  /* an unclosed '[' matches nothing further, as in Redis */
            break;
        }
        case '\\':
            if (plen >= 2) {
                pat++;
                plen--;
            }
            /* fall through */
        default:
            if (pat[0] != str[0])
                return 0;
            break;
        }
        pat++;
        plen--;
        str++;
        slen--;
    }
    while (plen && pat[0] == '*') {
        pat++;
        plen--;
    }
    return plen == 0 && slen == 0;
}
