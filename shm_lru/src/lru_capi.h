/*
 * The C API shm_lru offers other extensions, as a capsule: `shm_lru._shm_lru._C_API`.
 * A user (respcache's request loop) imports it once with PyCapsule_Import and calls through the
 * struct, without a Python call per use. Additive only: new members go at the end.
 */
#ifndef SHM_LRU_CAPI_H
#define SHM_LRU_CAPI_H

#include <Python.h>

#define SHM_LRU_CAPI_NAME "shm_lru._shm_lru._C_API"

typedef struct {
    /* A cache hint for an operation on `key` coming soon: the key's bucket is read and its
     * head record asked for. Takes no lock, changes nothing, never fails: returns 0
     * when table is not an open ShmLRU or key not bytes (nothing done), 1 otherwise. */
    int (*prefetch)(PyObject *table, PyObject *key);
    /* The first half of that, for a key needed a little later: only the bucket's cache line
     * is asked for, so the caller never waits for memory here. prefetch() on the same key
     * afterwards then finds the bucket in cache and asks for the records without stalling. */
    int (*prefetch_bucket)(PyObject *table, PyObject *key);
} shm_lru_capi;

#endif
