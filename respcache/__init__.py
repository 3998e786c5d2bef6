"""respcache: a RESP server over the shared-memory LRU (shm_lru). Knows nothing of tiers.

`respcache.Client` / `respcache.AsyncClient` are what local Python apps use (client.py).
"""

from .config import VERSION as __version__  # noqa: F401


def __getattr__(name):
    # The server never needs the client library: import it only when an app asks for it.
    if name in ("Client", "AsyncClient"):
        from . import client
        return getattr(client, name)
    raise AttributeError(f"module 'respcache' has no attribute '{name}'")
