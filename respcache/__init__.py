"""respcache: a RESP server over the shared-memory LRU (shm_lru). Knows nothing of tiers."""

from .config import VERSION as __version__  # noqa: F401
