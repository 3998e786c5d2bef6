"""shm_lru: a shared-memory LRU table that many processes use at once (C core, see API.md).

Knows nothing of RESP or tiers. Bytes in, bytes out.
"""

from ._shm_lru import (  # noqa: F401
    CHAIN_OVERHEAD,
    HEAD_OVERHEAD,
    LAYOUT_VERSION,
    OP_DEL,
    OP_EVICTED,
    OP_EXPIRE,
    OP_EXPIRED,
    OP_FLUSH,
    OP_SET,
    SegmentError,
    ShmLRU,
    ShmLRUError,
    WrongTypeError,
)
