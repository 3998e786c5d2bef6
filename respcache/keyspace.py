"""The keyspace: Redis data types over the shm_lru table.

Every value is one table entry; its `type` field says what the bytes mean. Strings are stored as
they are. A hash is encoded as a flat run of length-prefixed field/value pairs, in insertion order
(what Redis's small-hash listpack gives clients), and rewritten whole on change. Read-modify-write
commands use the entry's version as compare-and-set, so a write by another process that shares the
table between our read and our write is never overwritten: we retry on the fresh value.
"""

from __future__ import annotations

import struct

from shm_lru import ShmLRU, WrongTypeError  # noqa: F401  (WrongTypeError re-exported)

from . import errors
from .errors import CommandError

STRING, HASH = 0, 1
TYPE_NAMES = {STRING: b"string", HASH: b"hash"}
TYPE_BY_NAME = {name: code for code, name in TYPE_NAMES.items()}
ENCODING_NAMES = {STRING: b"raw", HASH: b"listpack"}
_LEN = struct.Struct("<I")
CAS_RETRIES = 1000
UNCHANGED = object()  # what an update's change() returns to leave the key unwritten


def encode_hash(fields: dict) -> bytes:
    parts = []
    pack = _LEN.pack
    for name, value in fields.items():
        parts += (pack(len(name)), name, pack(len(value)), value)
    return b"".join(parts)


def decode_hash(blob: bytes) -> dict:
    fields = {}
    view = memoryview(blob)
    pos, end = 0, len(blob)
    unpack = _LEN.unpack_from
    while pos < end:
        (n,) = unpack(view, pos)
        name = bytes(view[pos + 4:pos + 4 + n])
        pos += 4 + n
        (m,) = unpack(view, pos)
        fields[name] = bytes(view[pos + 4:pos + 4 + m])
        pos += 4 + m
    return fields


class Keyspace:
    def __init__(self, table: ShmLRU):
        self.table = table

    def read(self, key, type_code):
        """(value, version) of key if it holds type_code; (None, 0) if missing; WRONGTYPE otherwise."""
        entry = self.table.get_entry(key)
        if entry is None:
            return None, 0
        if entry[1] != type_code:
            raise CommandError(errors.WRONGTYPE)
        return entry[0], entry[3]

    def read_hash(self, key) -> dict | None:
        blob, _ = self.read(key, HASH)
        return None if blob is None else decode_hash(blob)

    def update(self, key, type_code, change):
        """Run change(old_value_or_None) -> (new_value_or_None, reply) as compare-and-set.

        new_value None deletes the key; UNCHANGED leaves it alone (no write: its version, what
        WATCH sees, stays put); anything else is written even when equal to the old value, as
        Redis signals a modified key for APPEND k "" or HINCRBY k f 0. The reply is returned
        once the write stuck.
        """
        table = self.table
        for _ in range(CAS_RETRIES):
            old, version = self.read(key, type_code)
            new, reply = change(old)
            if new is None:
                if old is not None:
                    if table.version(key) != version:
                        continue
                    table.delete(key)
                return reply
            if new is UNCHANGED:
                return reply
            if self.store(key, new, type_code, keepttl=True, if_version=version):
                return reply
        raise CommandError("ERR too much contention on key, try again")

    def update_hash(self, key, change, skip_unchanged=False):
        """Run change(fields) -> reply on the hash at key (fields {} if missing) and write the
        fields back: the key goes when none are left. The hash is rewritten even if nothing
        changed (HSET of the same value, HINCRBY by 0 signal the key in Redis), unless
        skip_unchanged, for the commands Redis leaves alone when they change nothing (HDEL of
        missing fields, HSETNX of an existing one)."""
        def on_blob(blob):
            fields = {} if blob is None else decode_hash(blob)
            reply = change(fields)
            if not fields:
                return None, reply
            new = encode_hash(fields)
            return (UNCHANGED if skip_unchanged and new == blob else new), reply
        return self.update(key, HASH, on_blob)

    def store(self, key, value, type_code=STRING, **options):
        try:
            return self.table.set(key, value, type=type_code, **options)
        except ValueError as exc:
            raise CommandError("ERR " + str(exc)) from None
