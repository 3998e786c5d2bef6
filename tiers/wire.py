"""A small pipelined RESP client on one connection (asyncio + hiredis), used by every tier link.

Why not redis.asyncio here: a link must keep the order of what it sends (a SET and a later DEL of
the same key must not overtake each other on two pooled connections), and a deferred reply on the
edge's hot miss path should cost one write and one parse. One connection, requests written as they
come, replies matched to a FIFO of futures, gives both. Unsolicited frames (pub/sub messages,
topology pushes on a JOIN connection) go to `on_push` when the connection is in push mode.
"""

from __future__ import annotations

import asyncio

import hiredis


class LinkDown(ConnectionError):
    pass


class ReplyError(Exception):
    pass


def _link_errors():
    from respcache.tls import TLSConfigError
    return (OSError, asyncio.TimeoutError, LinkDown, ReplyError, TLSConfigError)


# Whatever opening a tier link can fail with: unreachable, timed out, closed, refused by the
# peer (WRONGPASS, NOAUTH), or our own TLS files not loading.
LINK_ERRORS = _link_errors()


def describe(exc) -> str:
    """An exception as a log line's cause: 'ReplyError: WRONGPASS ...'."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if arg.__class__ is not bytes:
            arg = str(arg).encode() if not isinstance(arg, (bytearray, memoryview)) else bytes(arg)
        out.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(out)


class RespConnection(asyncio.Protocol):
    def __init__(self, on_push=None, on_lost=None):
        self.transport = None
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.pending = []          # futures, oldest first (a deque would do; lists are fine here)
        self._head = 0
        self.on_push = on_push     # push mode: every frame goes to on_push(frame)
        self.on_lost = on_lost
        self.closed = False
        self.paused = False
        self._drain_waiters = []

    @classmethod
    async def open(cls, host, port, timeout=1.0, on_push=None, on_lost=None, password=None,
                   ssl=None):
        """Connect (over TLS when `ssl` is a context) and authenticate with `downstream-auth`:
        "password" for the default user, or "user password" for a named one."""
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: cls(on_push, on_lost), host, port, ssl=ssl,
                                   server_hostname=host if ssl is not None else None), timeout)
        if password:
            try:
                await asyncio.wait_for(proto.call(b"AUTH", *password.split(None, 1)), timeout)
            except BaseException:
                # Refused (WRONGPASS) or no answer: do not leave a connection open behind us.
                proto.on_lost = None
                proto.close()
                raise
        return proto

    # asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        reader = self.reader
        reader.feed(data)
        while True:
            frame = reader.gets()
            if frame is False:
                return
            if self._head < len(self.pending):
                fut = self.pending[self._head]
                self.pending[self._head] = None
                self._head += 1
                if self._head > 1024 and self._head * 2 > len(self.pending):
                    del self.pending[:self._head]
                    self._head = 0
                if not fut.done():
                    if isinstance(frame, ReplyError):
                        fut.set_exception(frame)
                    else:
                        fut.set_result(frame)
            elif self.on_push is not None:
                self.on_push(frame)

    def connection_lost(self, exc):
        self.closed = True
        err = LinkDown(str(exc) if exc else "connection closed")
        for fut in self.pending[self._head:]:
            if fut is not None and not fut.done():
                fut.set_exception(err)
        self.pending = []
        self._head = 0
        for fut in self._drain_waiters:
            if not fut.done():
                fut.set_exception(err)
        if self.on_lost is not None:
            self.on_lost(exc)

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # requests
    def send(self, *args) -> asyncio.Future:
        """Write one command now; the Future gets its reply (or LinkDown / ReplyError)."""
        if self.closed:
            raise LinkDown("connection closed")
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        self.transport.write(encode(args))
        return fut

    def send_raw(self, data: bytes, count: int) -> list:
        """Write pre-encoded commands; futures for their `count` replies."""
        if self.closed:
            raise LinkDown("connection closed")
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in range(count)]
        self.pending.extend(futs)
        self.transport.write(data)
        return futs

    def send_noreply(self, *args):
        """A command whose replies arrive as pushes (SUBSCRIBE in push mode)."""
        if self.closed:
            raise LinkDown("connection closed")
        self.transport.write(encode(args))

    async def call(self, *args):
        return await self.send(*args)

    async def drain(self):
        if self.paused and not self.closed:
            fut = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(fut)
            await fut

    def in_flight(self) -> int:
        return len(self.pending) - self._head

    def close(self):
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


async def cancel_and_wait(task):
    """Cancel a supervising task and let it finish; whatever it raised on the way out is moot
    (the link is being stopped)."""
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass


def link_options(values) -> dict:
    """What every link a node opens to another tier needs from its config: the credentials
    (`downstream-auth`) and, with `tls-downstream yes`, a TLS context that checks the peer
    against tls-ca-cert-file and presents tls-client-cert-file (or tls-cert-file).

    Call it at each connect, so that CONFIG SET of these takes effect on the next connection.
    Raises respcache.tls.TLSConfigError (see LINK_ERRORS) when the TLS files do not load."""
    from respcache.tls import client_context
    return {"password": values["downstream-auth"] or None,
            "ssl": client_context(values) if values["tls-downstream"] else None}
