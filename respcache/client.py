"""respcache.Client / AsyncClient: what a local Python app uses to talk to its edge.

Reads are served straight from the edge's shared-memory table (no socket round trip); writes,
deletes and misses go to the edge over RESP (redis-py, over the edge's unix socket when it has
one), so the edge sees every change and can look misses up downstream. Because the edge writes the
table before it replies, a write that returned is visible to every reader in every process.

The names mirror redis-py's; anything not listed here is passed to the underlying redis-py client.

If the edge restarts, it retires the old segment before making a new one: the next read here sees
that, re-attaches, and never reads a stale table. If there is no segment, reads go over RESP and
the client says so once in its log.
"""

from __future__ import annotations

import logging
import time

import redis
import redis.asyncio
from redis.exceptions import ResponseError

from shm_lru import SegmentError, ShmLRU, WrongTypeError

from .keyspace import HASH, STRING, TYPE_NAMES, decode_hash

log = logging.getLogger("respcache.client")
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
REATTACH_EVERY = 1.0  # seconds between attempts while the segment is missing


def _key(name) -> bytes:
    if name.__class__ is bytes:
        return name
    if isinstance(name, str):
        return name.encode()
    if isinstance(name, (int, float)):
        return repr(name).encode() if isinstance(name, float) else str(name).encode()
    if isinstance(name, (bytearray, memoryview)):
        return bytes(name)
    raise redis.DataError(f"Invalid input of type: '{type(name).__name__}'.")


class _LocalTable:
    """The attached segment, re-attached when the edge retired it; None while there is none."""

    def __init__(self, name: str):
        self.name = name
        self.table = None
        self.next_try = 0.0
        self.warned = False
        self.attach()

    def attach(self):
        self.next_try = time.monotonic() + REATTACH_EVERY
        try:
            self.table = ShmLRU.attach(self.name)
            if self.warned:
                log.warning("respcache: attached shm segment '%s' again; local reads resume",
                            self.name)
                self.warned = False
        except (SegmentError, OSError) as exc:
            self.table = None
            if not self.warned:
                log.warning("respcache: shm segment '%s' is not available (%s); reading over "
                            "RESP instead", self.name, exc)
                self.warned = True

    def current(self):
        table = self.table
        if table is None:
            if time.monotonic() >= self.next_try:
                self.attach()
            return self.table
        if table.retired():
            table.close()
            self.table = None
            self.attach()
        return self.table


class Client:
    def __init__(self, host="127.0.0.1", port=7878, *, unix_socket_path=None, shm_name=None,
                 password=None, username=None, decode_responses=False, **redis_kwargs):
        if unix_socket_path:
            self.redis = redis.Redis(unix_socket_path=unix_socket_path, password=password,
                                     username=username, decode_responses=decode_responses,
                                     **redis_kwargs)
        else:
            self.redis = redis.Redis(host=host, port=port, password=password, username=username,
                                     decode_responses=decode_responses, **redis_kwargs)
        self.decode = decode_responses
        if shm_name is None:
            shm_name = _segment_name_of(self.redis.config_get("shm-name"), port)
        self.local = _LocalTable(shm_name)

    def __getattr__(self, name):
        return getattr(self.redis, name)

    def close(self):
        self.redis.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _out(self, value):
        return value.decode() if self.decode and value is not None else value

    # ---- reads served from shared memory ------------------------------------------------------
    def get(self, name):
        table = self.local.current()
        if table is not None:
            key = _key(name)
            try:
                value = table.get(key, STRING)
            except WrongTypeError:
                raise ResponseError(WRONGTYPE) from None
            if value is not None:
                return value.decode() if self.decode else value
        return self.redis.get(name)

    def mget(self, keys, *args):
        names = list(keys) if isinstance(keys, (list, tuple)) else [keys]
        names += args
        table = self.local.current()
        if table is None:
            return self.redis.mget(names)
        values = []
        for name in names:
            try:
                values.append(table.get(_key(name), STRING))
            except WrongTypeError:
                values.append(None)
        missing = [n for n, v in zip(names, values) if v is None]
        if missing:
            fetched = iter(self.redis.mget(missing))
            return [next(fetched) if v is None else self._out(v) for v in values]
        return [self._out(v) for v in values]

    def exists(self, *names):
        table = self.local.current()
        if table is None:
            return self.redis.exists(*names)
        return sum(1 if table.exists(_key(n)) else self.redis.exists(n) for n in names)

    def type(self, name):
        table = self.local.current()
        code = table.type(_key(name)) if table is not None else None
        if code is None:
            return self.redis.type(name)
        return self._out(TYPE_NAMES[code])

    def pttl(self, name):
        table = self.local.current()
        if table is not None:
            ms = table.pttl(_key(name))
            if ms != -2:
                return ms
        return self.redis.pttl(name)

    def ttl(self, name):
        table = self.local.current()
        if table is not None:
            seconds = table.ttl(_key(name))
            if seconds != -2:
                return seconds
        return self.redis.ttl(name)

    def strlen(self, name):
        value = self.get(name)
        return 0 if value is None else len(value)

    def _hash(self, name):
        table = self.local.current()
        if table is None:
            return None
        entry = table.get_entry(_key(name))
        if entry is None:
            return None
        if entry[1] != HASH:
            raise ResponseError(WRONGTYPE)
        return decode_hash(entry[0])

    def hget(self, name, key):
        fields = self._hash(name)
        if fields is None:
            return self.redis.hget(name, key)
        return self._out(fields.get(_key(key)))

    def hgetall(self, name):
        fields = self._hash(name)
        if fields is None:
            return self.redis.hgetall(name)
        if self.decode:
            return {k.decode(): v.decode() for k, v in fields.items()}
        return fields

    def hmget(self, name, keys, *args):
        fields = self._hash(name)
        wanted = (list(keys) if isinstance(keys, (list, tuple)) else [keys]) + list(args)
        if fields is None:
            return self.redis.hmget(name, wanted)
        return [self._out(fields.get(_key(k))) for k in wanted]

    def hexists(self, name, key):
        fields = self._hash(name)
        if fields is None:
            return self.redis.hexists(name, key)
        return _key(key) in fields

    def hlen(self, name):
        fields = self._hash(name)
        if fields is None:
            return self.redis.hlen(name)
        return len(fields)


class AsyncClient:
    """The asyncio twin: local reads return at once; everything else awaits redis.asyncio."""

    def __init__(self, host="127.0.0.1", port=7878, *, unix_socket_path=None, shm_name=None,
                 password=None, username=None, decode_responses=False, **redis_kwargs):
        if unix_socket_path:
            self.redis = redis.asyncio.Redis(unix_socket_path=unix_socket_path, password=password,
                                             username=username,
                                             decode_responses=decode_responses, **redis_kwargs)
        else:
            self.redis = redis.asyncio.Redis(host=host, port=port, password=password,
                                             username=username,
                                             decode_responses=decode_responses, **redis_kwargs)
        self.decode = decode_responses
        self.port = port
        self.shm_name = shm_name
        self.local = None

    def __getattr__(self, name):
        return getattr(self.redis, name)

    async def connect(self):
        """Find and attach the segment (called by the first read if not called before)."""
        if self.local is None:
            name = self.shm_name or _segment_name_of(await self.redis.config_get("shm-name"),
                                                     self.port)
            self.local = _LocalTable(name)
        return self

    async def aclose(self):
        await self.redis.aclose()

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.aclose()

    async def get(self, name):
        if self.local is None:
            await self.connect()
        table = self.local.current()
        if table is not None:
            try:
                value = table.get(_key(name), STRING)
            except WrongTypeError:
                raise ResponseError(WRONGTYPE) from None
            if value is not None:
                return value.decode() if self.decode else value
        return await self.redis.get(name)

    async def hgetall(self, name):
        if self.local is None:
            await self.connect()
        table = self.local.current()
        entry = table.get_entry(_key(name)) if table is not None else None
        if entry is None:
            return await self.redis.hgetall(name)
        if entry[1] != HASH:
            raise ResponseError(WRONGTYPE)
        fields = decode_hash(entry[0])
        if self.decode:
            return {k.decode(): v.decode() for k, v in fields.items()}
        return fields


def _segment_name_of(config_reply, port) -> str:
    value = config_reply.get("shm-name") or config_reply.get(b"shm-name")
    if isinstance(value, bytes):
        value = value.decode()
    return value or f"respcache-{port}"
