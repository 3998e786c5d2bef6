"""A relief node's link to one relay: the JOIN connection the relay keeps it in the ring by
(topology frames arrive on it), the data connection for hand-offs, and the retry with backoff
when the relay is away or refuses the join. Used by relief.Relief, one Uplink per relay.
"""

from __future__ import annotations

import asyncio
import time

from .link import encode_records, parse_address
from .ring import Ring
from .wire import LINK_ERRORS, LinkDown, RespConnection, cancel_and_wait, describe, link_options

BACKOFF_START = 0.05
BACKOFF_MAX = 2.0
# How long a JOIN may go unanswered: the relay connects back (1 s, plus AUTH) before it answers
# with the topology (joined) or an error (refused).
JOIN_TIMEOUT = 5.0


class JoinRefused(Exception):
    """The relay answered the JOIN with an error (it cannot link back to us, say)."""


class Uplink:
    """One relay as seen by a relief node: JOIN connection + data connection, reconnecting."""

    def __init__(self, relief, address):
        self.relief = relief
        self.address = address
        self.host, self.port = parse_address(address)
        self.join = None
        self.data = None
        self.up = False
        self.task = None
        self.stopping = False
        self.ring = None
        self.epoch = -1
        self.connects = 0
        self.errors = 0
        self.refusals = 0
        self.last_error = ""
        self.joining = None           # the Future of the JOIN's answer while it is awaited

    def start(self, loop):
        self.task = loop.create_task(self._supervise())

    async def stop(self):
        self.stopping = True
        if self.task is not None:
            await cancel_and_wait(self.task)
        self.close()

    def close(self):
        self.up = False
        if self.joining is not None and not self.joining.done():
            self.joining.cancel()
        self.joining = None
        for conn in (self.join, self.data):
            if conn is not None:
                conn.on_lost = None
                conn.close()
        self.join = self.data = None

    async def _supervise(self):
        relief = self.relief
        log = relief.server.log
        backoff = BACKOFF_START
        down_since = time.monotonic()
        while not self.stopping:
            lost = asyncio.Event()
            try:
                options = link_options(relief.values)
                self.data = await RespConnection.open(
                    self.host, self.port, 1.0, on_lost=lambda exc: lost.set(), **options)
                self.join = await RespConnection.open(
                    self.host, self.port, 1.0, on_push=self._on_frame,
                    on_lost=lambda exc: lost.set(), **options)
            except LINK_ERRORS as exc:
                self.close()
                self.errors += 1
                self.last_error = describe(exc)
                log.warning("tiers: cannot reach relay %s (%s); retrying in %.2f s",
                            self.address, self.last_error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            try:
                await self._join(lost)
            except (JoinRefused, LinkDown, asyncio.TimeoutError) as exc:
                self.close()
                self.errors += 1
                self.last_error = describe(exc)
                if isinstance(exc, JoinRefused):
                    self.refusals += 1
                    log.warning("tiers: relay %s refused the join of %s:%d (%s): %s; retrying "
                                "in %.2f s", self.address, relief.host, relief.port, relief.kind,
                                exc, backoff)
                else:
                    log.warning("tiers: relay %s did not answer the join of %s:%d (%s); "
                                "retrying in %.2f s", self.address, relief.host, relief.port,
                                self.last_error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            self.connects += 1
            log.info("tiers: joined relay %s as %s:%d (%s)%s", self.address, relief.host,
                     relief.port, relief.kind, "" if self.connects == 1 else
                     " again after %.2f s" % (time.monotonic() - down_since))
            backoff = BACKOFF_START
            await lost.wait()
            self.close()
            down_since = time.monotonic()
            if not self.stopping:
                log.warning("tiers: lost relay %s; rejoining with backoff", self.address)
                await asyncio.sleep(backoff)

    async def _join(self, lost):
        """Send JOIN on the join connection and wait for its answer: the first topology frame
        (we are in the ring: self.up) or an error (JoinRefused)."""
        relief = self.relief
        self.joining = relief.loop.create_future()
        self.join.send_noreply(b"RESPCACHE", b"JOIN", relief.kind.encode(),
                               relief.host.encode(), b"%d" % relief.port)
        closed = asyncio.ensure_future(lost.wait())
        try:
            done, _ = await asyncio.wait([self.joining, closed], timeout=JOIN_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if self.joining is not None and self.joining.done() and not self.joining.cancelled():
            self.joining.result()           # raises JoinRefused
            self.joining = None
            return
        if not done:
            raise asyncio.TimeoutError(f"no answer to JOIN in {JOIN_TIMEOUT:.0f} s")
        raise LinkDown("the relay closed the connection before answering the JOIN")

    def _on_frame(self, frame):
        joining = self.joining
        if joining is not None and not joining.done():
            # The JOIN's answer: an error, or the first topology (this node is in the ring).
            if isinstance(frame, Exception) or not isinstance(frame, list):
                joining.set_exception(JoinRefused(str(frame)))
                return
            if frame and frame[0] == b"topology":
                self.up = True
                joining.set_result(None)
        if isinstance(frame, Exception) or not isinstance(frame, list):
            self.relief.server.log.warning("tiers: relay %s refused the join: %s", self.address,
                                           frame)
            self.errors += 1
            self.last_error = str(frame)
            if self.join is not None:
                self.join.close()
            return
        if frame and frame[0] == b"topology":
            epoch, replicas, vnodes, seed = (int(x) for x in frame[1:5])
            members = [(frame[i].decode(), frame[i + 1].decode())
                       for i in range(5, len(frame) - 1, 2)]
            ring = Ring(members, vnodes=vnodes, seed=seed, replicas=replicas)
            self.epoch = epoch
            self.ring = ring
            self.relief.topology_changed(self, ring)

    async def push(self, records):
        conn = self.data
        if conn is None or conn.closed:
            raise LinkDown(f"relay {self.address} is not connected")
        return await conn.send(b"RESPCACHE", b"PUSH", self.relief.name.encode(),
                               *encode_records(records))

    async def call(self, *args):
        conn = self.data
        if conn is None or conn.closed:
            raise LinkDown(f"relay {self.address} is not connected")
        return await conn.send(*args)
