"""The downstream link: the one interface an edge (or relief node) uses to talk to the tier below.

    link = RespLink(name, targets, log, password=None, origin=b"...")
    link.start() / await link.stop()
    link.set_targets(["host:port", ...])      # live reconfiguration; queued work is kept by callers
    link.up                                    # a data connection is open
    await link.fetch(keys) -> {key: (value, type, expire_at_ms)}     # raises LinkDown
    await link.push(records)     # records: [(op, key, value, type, expire_at_ms)], ops in OPS
    link.subscribe({channel: handler(payload)})  # kept across reconnects

Everything a second implementation (a plain Redis/Valkey server with CLIENT TRACKING, say) would
have to provide is above; the edge uses nothing else. This implementation speaks `RESPCACHE ...`
commands to a respcache relay over one pipelined connection for data (order is kept: a write and a
later delete of one key cannot overtake each other) and one for pub/sub, reconnecting with
exponential backoff and saying so in the log.
"""

from __future__ import annotations

import asyncio
import time

import hiredis

from .wire import (LINK_ERRORS, LinkDown, ReplyError, RespConnection, cancel_and_wait, describe,
                   encode)

OP_WRITE = b"S"      # a write: overwrite downstream, other edges drop their copies
OP_DELETE = b"D"     # a delete: downstream deletes everywhere, other edges drop their copies
OP_DEMOTE = b"E"     # an eviction under pressure: store unless downstream has it or deleted it
OP_PLACE = b"P"      # a hand-off between relief nodes (join/leave/rebalance): like a demotion
OP_AGED = b"A"       # an expansion node lets an object go: it moves to the aging nodes
OPS = (OP_WRITE, OP_DELETE, OP_DEMOTE, OP_PLACE, OP_AGED)

INVALIDATE_CHANNEL = b"__respcache__:invalidate"
ANNOUNCE_CHANNEL = b"__respcache__:new"

BACKOFF_START = 0.05
BACKOFF_MAX = 2.0
CONNECT_TIMEOUT = 1.0


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{text}' is not host:port")
    return host.strip("[]"), int(port)


def encode_records(records) -> list:
    flat = []
    for op, key, value, type_code, expire_at in records:
        flat += (op, key, value if value is not None else b"", b"%d" % type_code,
                 b"%d" % expire_at)
    return flat


def decode_records(args, start):
    """[(op, key, value, type, expire_at_ms)] from flat PUSH arguments; ValueError when malformed."""
    if (len(args) - start) % 5:
        raise ValueError("records come in fives: op key value type expire-at-ms")
    out = []
    for i in range(start, len(args), 5):
        op = args[i].upper()
        if op not in OPS:
            raise ValueError(f"unknown record op '{op.decode(errors='replace')}'")
        out.append((op, args[i + 1], args[i + 2], int(args[i + 3]), int(args[i + 4])))
    return out


def encode_message(parts) -> bytes:
    """A coherence message body: a RESP array of bulk strings (keys are binary)."""
    return encode(parts)


def decode_message(payload: bytes) -> list:
    reader = hiredis.Reader()
    reader.feed(payload)
    frame = reader.gets()
    return frame if isinstance(frame, list) else []


class Link:
    """The interface; see the module docstring."""
    up = False

    def start(self):
        raise NotImplementedError

    async def stop(self):
        raise NotImplementedError

    def set_targets(self, targets):
        raise NotImplementedError

    async def fetch(self, keys) -> dict:
        raise NotImplementedError

    async def push(self, records):
        raise NotImplementedError

    def subscribe(self, handlers):
        raise NotImplementedError

    def info(self) -> list:
        return []


class RespLink(Link):
    def __init__(self, name, targets, log, password=None, origin=b"", ssl=None, options=None):
        """`options`, when given, is called at every connect for {"password", "ssl"} (see
        wire.link_options): CONFIG SET of downstream-auth or tls-* then applies to the next
        connection. Without it, `password` and `ssl` are used for every connection."""
        self.name = name
        self.log = log
        self.password = password or None
        self.ssl = ssl
        self.options = options
        self.retry = asyncio.Event()   # credentials changed: a link that is down retries now
        self.origin = origin
        self.targets = [parse_address(t) for t in targets]
        self.conn = None
        self.sub = None
        self.current = None
        self.handlers = {}
        self.up = False
        self.task = None
        self.changed = asyncio.Event()
        self.connected_event = asyncio.Event()
        self.stopping = False
        self.connects = 0
        self.disconnects = 0
        self.errors = 0
        self.last_error = ""
        self.down_since = time.monotonic()
        self.on_reconnect = None      # called after a connection that follows a lost one

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self):
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self):
        self.stopping = True
        if self.task is not None:
            await cancel_and_wait(self.task)
            self.task = None
        self._close()

    def set_targets(self, targets):
        new = [parse_address(t) for t in targets]
        if new == self.targets:
            return
        self.targets = new
        self.log.info("%s: downstream set to %s", self.name,
                        " ".join(f"{h}:{p}" for h, p in new) or "(none)")
        self._close()          # the supervisor reconnects to the new target list
        self.changed.set()

    def _close(self):
        self.up = False
        self.connected_event.clear()
        for conn in (self.conn, self.sub):
            if conn is not None:
                conn.on_lost = None
                conn.close()
        self.conn = self.sub = None

    async def _supervise(self):
        backoff = BACKOFF_START
        while not self.stopping:
            if not self.targets:
                self.changed.clear()
                await self.changed.wait()
                continue
            lost = asyncio.Event()
            try:
                await self._connect(lost)
            except LINK_ERRORS as exc:
                self._note_error(exc)
                self.up = False
                if isinstance(exc, ReplyError):
                    what = "refused the link"      # WRONGPASS, NOAUTH: say it is credentials
                elif isinstance(exc, ValueError):
                    what = "cannot be reached with this TLS configuration"
                else:
                    what = "cannot be reached"
                self.log.warning("%s: downstream %s %s (%s); retrying in %.2f s",
                                 self.name, self._target_names(), what, self.last_error, backoff)
                self.changed.clear()
                self.retry.clear()
                changed = asyncio.ensure_future(self.changed.wait())
                retry = asyncio.ensure_future(self.retry.wait())
                done, _ = await asyncio.wait([changed, retry], timeout=backoff,
                                             return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                retry.cancel()
                if done:
                    backoff = BACKOFF_START   # new targets or credentials: try them at once
                else:
                    backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            self.changed.clear()
            waiter = asyncio.ensure_future(lost.wait())
            changed = asyncio.ensure_future(self.changed.wait())
            await asyncio.wait([waiter, changed], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            changed.cancel()
            if lost.is_set() and not self.stopping:
                self.disconnects += 1
                self.down_since = time.monotonic()
                self.log.warning("%s: lost downstream %s:%d; reconnecting with backoff",
                                 self.name, *self.current)
            self._close()

    def _target_names(self):
        return " ".join(f"{h}:{p}" for h, p in self.targets)

    def credentials_changed(self):
        """downstream-auth or the TLS files changed: the next connection uses them (a link that
        is up keeps its connections; one that is down retries at once)."""
        self.retry.set()

    def _link_options(self) -> dict:
        if self.options is not None:
            return self.options()      # may raise TLSConfigError
        return {"password": self.password, "ssl": self.ssl}

    async def _connect(self, lost):
        last = None
        options = self._link_options()
        for host, port in list(self.targets):
            conn = sub = None
            try:
                conn = await RespConnection.open(host, port, CONNECT_TIMEOUT,
                                                 on_lost=lambda exc: lost.set(), **options)
                sub = await RespConnection.open(host, port, CONNECT_TIMEOUT,
                                                on_push=self._on_push,
                                                on_lost=lambda exc: lost.set(), **options)
                await asyncio.wait_for(conn.call(b"PING"), CONNECT_TIMEOUT)
            except LINK_ERRORS as exc:
                for opened in (conn, sub):
                    if opened is not None:
                        opened.on_lost = None
                        opened.close()
                lost.clear()
                last = exc
                continue
            self.conn, self.sub, self.current = conn, sub, (host, port)
            if self.handlers:
                sub.send_noreply(b"SUBSCRIBE", *self.handlers)
            self.up = True
            self.connected_event.set()
            self.connects += 1
            self.log.info("%s: connected to downstream %s:%d%s", self.name, host, port,
                            "" if self.connects == 1 else " (reconnected after %.2f s)"
                            % (time.monotonic() - self.down_since))
            if self.connects > 1 and self.on_reconnect is not None:
                try:
                    self.on_reconnect()
                except Exception:
                    self.log.exception("%s: reconnect handler failed", self.name)
            return
        raise last if last is not None else LinkDown("no target")

    def _note_error(self, exc):
        self.errors += 1
        self.last_error = describe(exc)

    # ---- data ----------------------------------------------------------------------------------
    def _data(self):
        conn = self.conn
        if conn is None or conn.closed:
            raise LinkDown(f"{self.name}: downstream is not connected")
        return conn

    async def fetch(self, keys) -> dict:
        return await self.fetch_nowait(keys)

    def fetch_nowait(self, keys) -> asyncio.Future:
        """fetch() without a coroutine: a Future of the same dict (the hot miss path)."""
        loop = asyncio.get_running_loop()
        result = loop.create_future()
        try:
            sent = self._data().send(b"RESPCACHE", b"FETCH", *keys)
        except LinkDown as exc:
            self._note_error(exc)
            result.set_exception(exc)
            return result

        def done(f):
            if result.done():
                return
            if f.cancelled():
                result.cancel()
                return
            exc = f.exception()
            if exc is not None:
                self._note_error(exc)
                result.set_exception(LinkDown(str(exc)))
                return
            found = {}
            for key, item in zip(keys, f.result()):
                if item:
                    found[key] = (item[0], int(item[1]), int(item[2]))
            result.set_result(found)
        sent.add_done_callback(done)
        return result

    def push_nowait(self, records) -> asyncio.Future:
        """Send one batch now (pipelined behind earlier ones); the Future is its acknowledgement."""
        conn = self._data()
        return conn.send(b"RESPCACHE", b"PUSH", self.origin, *encode_records(records))

    async def push(self, records):
        try:
            return await self.push_nowait(records)
        except (LinkDown, ReplyError) as exc:
            self._note_error(exc)
            raise

    async def call(self, *args):
        conn = self._data()
        return await conn.send(*args)

    def subscribe(self, handlers):
        new = [ch for ch in handlers if ch not in self.handlers]
        self.handlers.update(handlers)
        if new and self.sub is not None and not self.sub.closed:
            self.sub.send_noreply(b"SUBSCRIBE", *new)

    def _on_push(self, frame):
        if isinstance(frame, ReplyError):
            # SUBSCRIBE refused (say NOPERM: a tier user with no &channel rule, the default
            # for new users in Redis 7): coherence messages will not come, which must be loud.
            self._note_error(frame)
            self.log.warning("%s: downstream %s refused the coherence subscription (%s): "
                             "edges will not hear of changes elsewhere", self.name,
                             "%s:%d" % self.current if self.current else "?", frame)
            return
        if isinstance(frame, list) and len(frame) == 3 and frame[0] == b"message":
            handler = self.handlers.get(frame[1])
            if handler is not None:
                try:
                    handler(frame[2])
                except Exception:
                    self.log.exception("%s: coherence handler failed", self.name)

    def info(self) -> list:
        return [
            ("link_targets", self._target_names()),
            ("link_status", "up" if self.up else "down"),
            ("link_current", "%s:%d" % self.current if self.up and self.current else ""),
            ("link_connects", self.connects),
            ("link_disconnects", self.disconnects),
            ("link_errors", self.errors),
            ("link_last_error", self.last_error),
        ]
