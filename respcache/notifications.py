"""Keyspace notifications (`notify-keyspace-events`), driven by the shm table's change journal.

Every process that writes the table (any worker, any local app process) leaves a journal record;
each worker reads the whole journal with its own cursor and publishes to its own local subscribers,
so every subscriber hears every event exactly once whichever process made the change -- including
`expired` and `evicted` for keys that ran out or were pushed out in another process.

Event names come from what the journal records (Redis's per-command names are finer):
set of a string -> `set` ($), set of a hash -> `hset` (h), delete -> `del` (g),
expiry change -> `expire` (g), expiry -> `expired` (x), eviction -> `evicted` (e).
"""

from __future__ import annotations

from shm_lru import OP_DEL, OP_EVICTED, OP_EXPIRE, OP_EXPIRED, OP_SET

from .keyspace import HASH

POLL_SECONDS = 0.005
ALL_CLASSES = "g$lshzxetd"   # what 'A' stands for in Redis


def parse_flags(text: str) -> tuple[bool, bool, set]:
    """(keyspace K, keyevent E, classes) from a notify-keyspace-events value."""
    classes = set()
    for ch in text:
        if ch == "A":
            classes.update(ALL_CLASSES)
        elif ch not in "KE":
            classes.add(ch)
    return "K" in text, "E" in text, classes


class KeyspaceEvents:
    def __init__(self, server):
        self.server = server
        self.reader = None
        self.keyspace = self.keyevent = False
        self.classes = set()
        self.handle = None
        self.lost = 0
        self.configure(server.config.values["notify-keyspace-events"])

    def configure(self, text: str):
        self.keyspace, self.keyevent, self.classes = parse_flags(text)
        enabled = (self.keyspace or self.keyevent) and bool(self.classes)
        if enabled and self.reader is None:
            # Start from now: changes made while notifications were off are not replayed.
            self.reader = self.server.table.journal()
        elif not enabled:
            self.reader = None

    def start(self, loop):
        self.loop = loop
        self.handle = loop.call_later(POLL_SECONDS, self._tick)

    def stop(self):
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _tick(self):
        try:
            self.poll()
        except Exception:  # keep polling whatever one batch ran into
            self.server.log.exception("keyspace notification poll failed")
        self.handle = self.loop.call_later(POLL_SECONDS, self._tick)

    def poll(self) -> int:
        reader = self.reader
        if reader is None:
            return 0
        published = 0
        while True:
            lost, records = reader.read(1024)
            if lost:
                self.lost += lost
                self.server.log.warning("Keyspace notifications: the journal overran this "
                                        "reader; %d events were lost", lost)
            for op, key, _value, type_code, _deadline in records:
                event = _event_of(op, type_code)
                if event is not None:
                    published += self.emit(event[0], event[1], key)
            if len(records) < 1024:
                return published

    def emit(self, event: bytes, event_class: str, key: bytes) -> int:
        if event_class not in self.classes:
            return 0
        publish = self.server.pubsub.publish   # local only: each worker reads the journal itself
        sent = 0
        if self.keyspace:
            sent += publish(b"__keyspace@0__:" + key, event)
        if self.keyevent:
            sent += publish(b"__keyevent@0__:" + event, key)
        return sent


def _event_of(op, type_code):
    if op == OP_SET:
        return (b"hset", "h") if type_code == HASH else (b"set", "$")
    if op == OP_DEL:
        return b"del", "g"
    if op == OP_EXPIRE:
        return b"expire", "g"
    if op == OP_EXPIRED:
        return b"expired", "x"
    if op == OP_EVICTED:
        return b"evicted", "e"
    return None
