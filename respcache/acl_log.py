"""ACL LOG: the denials Redis 7.0 records (failed AUTH, NOPERM for a command, key or channel).

An entry is grouped with an earlier one of the last 10 when reason, context, object and username
match and it is at most 60 s old, as Redis's ACLLogMatchEntry does: the count grows, the time and
the client's description are the newest. The list keeps the newest acllog-max-len entries (default
128). Each process keeps its own; with `workers N`, ACL LOG gathers every worker's.
"""

from __future__ import annotations

import time

MAX_LEN = 128
GROUPING_MS = 60_000
SCANNED = 10


class AclLogEntry:
    __slots__ = ("count", "reason", "context", "object", "username", "created_ms", "ctime_ms",
                 "client_info")

    def __init__(self, reason, context, obj, username, now_ms, client_info):
        self.count = 1
        self.reason = reason
        self.context = context
        self.object = obj
        self.username = username
        self.created_ms = now_ms     # orders entries gathered from several workers
        self.ctime_ms = now_ms
        self.client_info = client_info

    def to_json(self) -> list:
        return [self.count, self.reason, self.context, self.object.decode("latin-1"),
                self.username, self.created_ms, self.ctime_ms, self.client_info]

    @classmethod
    def from_json(cls, row) -> "AclLogEntry":
        entry = cls(row[1], row[2], row[3].encode("latin-1"), row[4], row[5], row[7])
        entry.count, entry.ctime_ms = row[0], row[6]
        return entry


class AclLog:
    def __init__(self):
        self.entries = []   # newest first

    def add(self, conn, reason: str, obj: bytes, username: str, context=None):
        """Record a denial for `conn`; reason is auth, command, key or channel. The context is
        multi inside MULTI (and for EXEC's own checks: the caller says so), else toplevel."""
        from .commands.connection import client_info_line
        if context is None:
            context = "multi" if conn.multi is not None else "toplevel"
        now_ms = int(time.time() * 1000)
        info = client_info_line(conn)
        for entry in self.entries[:SCANNED]:
            if (entry.reason == reason and entry.context == context and entry.object == obj
                    and entry.username == username and now_ms - entry.ctime_ms <= GROUPING_MS):
                entry.count += 1
                entry.ctime_ms = now_ms
                entry.client_info = info
                return
        self.entries.insert(0, AclLogEntry(reason, context, obj, username, now_ms, info))
        # acllog-max-len as in force now: lowering it trims at the next entry, as in Redis.
        del self.entries[conn.server.config.values.get("acllog-max-len", MAX_LEN):]

    def newest(self, count: int) -> list:
        return self.entries[:max(0, count)]

    def reset(self):
        self.entries.clear()
