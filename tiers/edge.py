"""The edge's side of the fabric: read-through, write-behind, pressure relief, coherence.

- Misses: ReadThrough over the link (see readthrough.py), skipping keys with a local delete that
  has not reached the relay yet (so a deleted key never comes back from downstream).
- Writes and evictions: the shm table's change journal is the one source of truth for what changed,
  whoever changed it (this server's workers or local app processes writing straight into shm). One
  reader (worker 0) turns records into a bounded outbound queue:
    OP_SET / OP_EXPIRE -> the current value and expiry, as a write
    OP_DEL             -> a delete (the key is tombstoned locally until the relay has it)
    OP_EVICTED         -> a demotion with the record's value, if still alive (pressure relief);
                          a write if the key changed since its last push (else the change is lost)
    OP_EXPIRED         -> nothing: downstream has the same absolute expiry
  Promotions and coherence drops also write the journal; they are recognised and not echoed.
- The queue goes downstream in batches (`downstream-batch` records per RESPCACHE PUSH), several
  batches in flight on one ordered connection. While the relay is away the queue holds up to
  `downstream-queue-size` records; beyond that records are dropped and counted.
- Coherence: the relay publishes [origin, key...] on __respcache__:invalidate; other edges' copies
  are dropped. A fetch that raced an invalidation of its key is fetched again.
- SIGTERM / SHUTDOWN: the queue is flushed, then every live object is pushed downstream.
- `workers N`: every worker reads through; worker 0 alone reads the journal, ships, subscribes.
  Other workers tell it over the bus which writes were promotions, and it tells them about
  invalidations. The bus and the journal are not ordered with each other: if worker 0 reads a
  promotion's record before the bus message, the promotion goes downstream as a write (the
  same value; it can only overwrite a newer write made meanwhile at another edge).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque

from respcache.tls import TLS_FILE_DIRECTIVES
from shm_lru import OP_DEL, OP_EVICTED, OP_EXPIRE, OP_EXPIRED, OP_SET  # noqa: F401

from .link import (ANNOUNCE_CHANNEL, INVALIDATE_CHANNEL, OP_DELETE, OP_DEMOTE, OP_WRITE, RespLink,
                   decode_message)
from .readthrough import ReadThrough, table_fields
from .wire import link_options

# The journal is read as soon as a command of ours wrote (see EdgeReadThrough.before_command) and
# otherwise polled: every POLL_MIN while records keep coming, backing off to POLL_MAX when idle
# (writes that local app processes make straight into shm, evictions, expiries).
POLL_MIN = 0.002
POLL_MAX = 0.020
MAX_IN_FLIGHT = 4
STOP_FLUSH_SECONDS = 5.0


class EdgeReadThrough(ReadThrough):
    def __init__(self, edge):
        super().__init__(edge.server, edge.values["downstream-timeout"])
        self.edge = edge

    def enabled(self):
        return self.edge.link is not None and bool(self.edge.values["relay"])

    def before_command(self, conn, cmd, args):
        if cmd.is_write and self.edge.reader is not None:
            self.edge.wake_journal()
        return super().before_command(conn, cmd, args)

    def before_fetch(self, keys):
        # A DEL made a moment ago (by anyone on this box) must be known before we fetch.
        self.edge.poll_journal()

    def skip(self, key):
        return key in self.edge.tombstones

    def start_fetch(self, keys):
        edge = self.edge
        for key in keys:
            edge.fetch_epoch[key] = edge.epochs.get(key, 0)
        return edge.link.fetch_nowait(keys)

    def admit(self, key, record):
        edge = self.edge
        edge.poll_journal()
        started = edge.fetch_epoch.pop(key, 0)
        if key in edge.tombstones:
            return False
        if edge.epochs.get(key, 0) != started:
            return None      # invalidated while in flight: the answer may be the old value
        return True

    def promoted(self, key):
        edge = self.edge
        version = self.table.version(key)
        if edge.shipper:
            edge.promoted[key] = version
            edge.borrowed.add(key)
        elif edge.server.bus is not None:
            # Worker 0 reads the journal: tell it this write was a promotion, not a change.
            # (It may read the record first; see the note in the module docstring.)
            edge.server.bus.broadcast(b"tiers-promoted", key, b"%d" % version)

    def after(self, cmd, keys):
        if cmd.name in ("del", "unlink"):
            # Whatever the fetch found or not (the relay may be away): the delete goes downstream.
            # A key that was promoted and deleted here also leaves an OP_DEL; twice is harmless.
            edge = self.edge
            for key in keys:
                if self.table.info(key) is None:
                    edge.tombstones[key] = edge.tombstones.get(key, 0) + 1
                    edge._enqueue((OP_DELETE, key, b"", 0, 0))


class Edge:
    role = "edge"

    def __init__(self, config):
        self.config = config
        self.values = config.values
        self.server = None
        self.link = None
        self.reader = None
        self.id = b"edge-%d-%s" % (os.getpid(), os.urandom(4).hex().encode())
        self.queue = deque()
        self.queue_event = None
        self.tombstones = {}          # key -> pending local deletes not yet acknowledged
        self.promoted = {}            # key -> version written by a promotion (not echoed)
        self.dropped = set()          # keys deleted by coherence (their OP_DEL is not echoed)
        self.dirty = set()            # written locally, evicted before we read the value
        self.borrowed = set()         # promoted from downstream and not changed here since
        self.epochs = {}              # key -> invalidations seen (pruned when idle)
        self.fetch_epoch = {}
        self.tasks = []
        self.stats = dict(pushed=0, deleted=0, demoted=0, batches=0, overflow=0, journal_lost=0,
                          invalidations=0, dropped_copies=0, prefetched=0, handed_off=0,
                          dropped_after_outage=0,
                          downstream_errors=0, coherence_messages=0)
        self.readthrough = None
        self.stopping = False
        self.poll_wakeup = None
        self.wake_scheduled = False

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self, server):
        self.server = server
        self.table = server.table
        self.queue_event = asyncio.Event()
        # Credentials and TLS context are read at every connect: CONFIG SET of downstream-auth
        # or tls-client-cert-file applies to the next connection (a relay that kills the link
        # after rotating the tier password gets the new one).
        link_options(self.values)          # a TLS file that does not load fails the start
        self.link = RespLink("edge link", self.values["relay"], server.log, origin=self.id,
                             options=lambda: link_options(self.values))
        self.readthrough = EdgeReadThrough(self)
        # One journal reader per box: with `workers N` only worker 0 ships and subscribes.
        self.shipper = server.worker_index == 0
        if server.bus is not None:
            server.bus.events[b"tiers-promoted"] = self._peer_promoted
            server.bus.events[b"tiers-invalidated"] = self._peer_invalidated
        if self.values["relay"]:
            self._activate()

    def _activate(self):
        """Become a tiered edge (at start, or when CONFIG SET relay names a relay)."""
        server = self.server
        server.miss_handler = self.readthrough
        self.link.on_reconnect = self._after_outage
        if self.shipper and self.reader is None:
            self.reader = self.table.journal()
            channels = {INVALIDATE_CHANNEL: self._on_invalidate}
            if self.values["edge-prefetch"]:
                channels[ANNOUNCE_CHANNEL] = self._on_announce
            self.link.subscribe(channels)
            self.tasks.append(server.loop.create_task(self._journal_loop()))
            self.tasks.append(server.loop.create_task(self._send_loop()))
        self.link.start()

    async def stop(self, server):
        self.stopping = True
        if self.shipper and self.reader is not None and self.values["relay"]:
            await self._hand_off()
        for task in self.tasks:
            task.cancel()
        await self.readthrough.stop()
        await self.link.stop()

    def config_changed(self, server, names):
        if "relay" in names:
            self.link.set_targets(self.values["relay"])
            if self.values["relay"]:
                self._activate()
            else:
                # No relay: a standalone edge again. Queued records wait for the next relay.
                server.miss_handler = None
        if "downstream-timeout" in names:
            self.readthrough.timeout = self.values["downstream-timeout"] / 1000.0
        if "downstream-auth" in names or any(n in TLS_FILE_DIRECTIVES for n in names):
            server.log.info("tiers: downstream credentials changed; the link to the relay uses "
                            "them from its next connection")
            self.link.credentials_changed()
            link_options(self.values)      # TLS files that do not load: CONFIG SET says so
        if "edge-prefetch" in names and self.shipper and self.values["edge-prefetch"]:
            self.link.subscribe({ANNOUNCE_CHANNEL: self._on_announce})

    def cron(self, server):
        if self.fetch_epoch and not self.readthrough.inflight:
            self.fetch_epoch.clear()
        if len(self.epochs) > 100000:
            self.epochs.clear()   # only fetches in flight need them, and they re-check
        if len(self.promoted) > 4 * self.table.capacity:
            self.promoted.clear()
        if len(self.borrowed) > 2 * self.table.capacity:   # records lost to a journal overrun
            info = self.table.info
            self.borrowed = {k for k in self.borrowed if info(k) is not None}

    # ---- journal -> queue --------------------------------------------------------------------------
    async def _journal_loop(self):
        delay = POLL_MIN
        while True:
            try:
                found = self.poll_journal()
            except Exception:
                self.server.log.exception("tiers: journal poll failed")
                found = 0
            delay = POLL_MIN if found else min(POLL_MAX, delay * 2)
            self.poll_wakeup = self.server.loop.create_future()
            try:
                await asyncio.wait_for(self.poll_wakeup, delay)
            except asyncio.TimeoutError:
                pass
            self.poll_wakeup = None

    def wake_journal(self):
        """A command of this process wrote: read the journal right after it ran."""
        if not self.wake_scheduled:
            self.wake_scheduled = True
            self.server.loop.call_soon(self._wake)

    def _wake(self):
        self.wake_scheduled = False
        wakeup = self.poll_wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def poll_journal(self) -> int:
        """Turn new journal records into queued records; returns how many records were read."""
        reader = self.reader
        if reader is None:
            return 0
        total = 0
        table = self.table
        enqueue = self._enqueue
        while True:
            lost, records = reader.read(1024)
            if lost:
                self.stats["journal_lost"] += lost
                self.server.log.warning("tiers: the journal overran the edge's reader; %d changes "
                                        "did not go downstream", lost)
            now = None
            for op, key, value, type_code, expire_at in records:
                if op == OP_EXPIRED:
                    self.borrowed.discard(key)
                    continue
                if op == OP_SET or op == OP_EXPIRE:
                    entry = table.get_entry(key)
                    if entry is None:
                        # Gone already; its OP_DEL / OP_EVICTED follows. Remember that the
                        # eviction then carries a write (unless this was our own promotion).
                        if op == OP_SET and self.promoted.pop(key, None) is None:
                            self.dirty.add(key)
                        continue
                    version = self.promoted.pop(key, None)
                    if version is not None and version == entry[3]:
                        continue          # our own promotion
                    self.borrowed.discard(key)
                    self.dirty.discard(key)
                    enqueue((OP_WRITE, key, entry[0], entry[1], entry[2]))
                elif op == OP_DEL:
                    self.promoted.pop(key, None)
                    self.borrowed.discard(key)
                    if key in self.dropped:
                        self.dropped.discard(key)
                        continue
                    self.dirty.discard(key)
                    self.tombstones[key] = self.tombstones.get(key, 0) + 1
                    enqueue((OP_DELETE, key, b"", 0, 0))
                elif op == OP_EVICTED:
                    self.promoted.pop(key, None)
                    self.borrowed.discard(key)
                    if now is None:
                        now = table.now_ms()
                    if expire_at and expire_at <= now:
                        self.dirty.discard(key)
                        continue
                    if key in self.dirty:
                        self.dirty.discard(key)
                        enqueue((OP_WRITE, key, value, type_code, expire_at))
                    else:
                        enqueue((OP_DEMOTE, key, value, type_code, expire_at))
            total += len(records)
            if len(records) < 1024:
                return total

    def _enqueue(self, record):
        if len(self.queue) >= self.values["downstream-queue-size"]:
            self.stats["overflow"] += 1
            if record[0] == OP_DELETE:
                self._untombstone(record[1])
            if self.stats["overflow"] in (1, 10, 100, 1000) or self.stats["overflow"] % 10000 == 0:
                self.server.log.warning("tiers: downstream queue full (%d records); %d records "
                                        "dropped so far", len(self.queue), self.stats["overflow"])
            return
        self.queue.append(record)
        self.queue_event.set()

    def _untombstone(self, key):
        left = self.tombstones.get(key, 0) - 1
        if left > 0:
            self.tombstones[key] = left
        else:
            self.tombstones.pop(key, None)

    # ---- queue -> relay --------------------------------------------------------------------------
    async def _send_loop(self):
        in_flight = deque()      # (batch, future) in send order
        link = self.link
        while True:
            try:
                if not self.queue and not in_flight:
                    self.queue_event.clear()
                    await self.queue_event.wait()
                    continue
                if not link.up:
                    await self._requeue(in_flight)
                    await link.connected_event.wait()
                    continue
                while self.queue and len(in_flight) < MAX_IN_FLIGHT:
                    batch = self._take_batch()
                    try:
                        in_flight.append((batch, link.push_nowait(batch)))
                    except ConnectionError:
                        self.queue.extendleft(reversed(batch))
                        break
                if not in_flight:
                    await asyncio.sleep(0.01)
                    continue
                batch, fut = in_flight[0]
                try:
                    await fut
                except Exception as exc:
                    self.stats["downstream_errors"] += 1
                    if not link.up or isinstance(exc, ConnectionError):
                        await self._requeue(in_flight)
                        await asyncio.sleep(0.01)
                        continue
                    # The relay refused the batch (a malformed record?): drop it, say so.
                    self.server.log.warning("tiers: relay refused a batch of %d records: %s",
                                            len(batch), exc)
                    in_flight.popleft()
                    self._acked(batch)
                    continue
                in_flight.popleft()
                self._acked(batch)
            except asyncio.CancelledError:
                await self._requeue(in_flight)
                raise

    async def _requeue(self, in_flight):
        while in_flight:
            batch, fut = in_flight.pop()
            fut.cancel()
            self.queue.extendleft(reversed(batch))

    def _take_batch(self):
        size = self.values["downstream-batch"]
        queue = self.queue
        n = min(size, len(queue))
        return [queue.popleft() for _ in range(n)]

    def _acked(self, batch):
        stats = self.stats
        stats["batches"] += 1
        for record in batch:
            op = record[0]
            if op == OP_WRITE:
                stats["pushed"] += 1
            elif op == OP_DELETE:
                stats["deleted"] += 1
                self._untombstone(record[1])
            else:
                stats["demoted"] += 1

    async def flush(self, timeout):
        """Wait until the queue is empty and acknowledged (or timeout); True if it emptied."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_journal()
            if not self.queue and not self.tombstones and self.link.up:
                return True
            await asyncio.sleep(0.01)
        return False

    # ---- coherence -------------------------------------------------------------------------------
    def _on_invalidate(self, payload):
        parts = decode_message(payload)
        if not parts:
            return
        self.stats["coherence_messages"] += 1
        if parts[0] == self.id:
            return
        table = self.table
        epochs = self.epochs
        if self.server.bus is not None and len(parts) > 1:
            self.server.bus.broadcast(b"tiers-invalidated", *parts[1:])
        for key in parts[1:]:
            self.stats["invalidations"] += 1
            epochs[key] = epochs.get(key, 0) + 1
            self.borrowed.discard(key)
            if table.info(key) is not None:
                self.dropped.add(key)
                if table.delete(key):
                    self.stats["dropped_copies"] += 1
                else:
                    self.dropped.discard(key)

    def _peer_promoted(self, origin, args):
        if self.shipper:
            self.promoted[args[0]] = int(args[1])

    def _peer_invalidated(self, origin, args):
        # Worker 0 applied an invalidation: fetches in flight here must not promote old values.
        epochs = self.epochs
        for key in args:
            epochs[key] = epochs.get(key, 0) + 1

    def _after_outage(self):
        """Invalidations sent while the link was down never reached us: drop every copy that
        came from downstream and was not changed here since (a later read fetches it again)."""
        if not self.shipper:
            return
        table = self.table
        dropped = 0
        for key in list(self.borrowed):
            if table.info(key) is not None:
                self.dropped.add(key)
                if table.delete(key):
                    dropped += 1
                else:
                    self.dropped.discard(key)
        self.borrowed.clear()
        self.stats["dropped_after_outage"] += dropped
        if dropped:
            self.server.log.info("tiers: dropped %d copies from downstream that may have changed "
                                 "while the link was down", dropped)

    def _on_announce(self, payload):
        parts = decode_message(payload)
        if not parts or parts[0] == self.id:
            return
        keys = [k for k in parts[1:] if self.table.info(k) is None and k not in self.tombstones
                and k not in self.readthrough.inflight]
        if keys:
            task = self.server.loop.create_task(self._prefetch(keys))
            self.readthrough.tasks.add(task)
            task.add_done_callback(self.readthrough.tasks.discard)

    async def _prefetch(self, keys):
        before = self.readthrough.promotions
        await self.readthrough.fetch_and_promote(keys)
        self.stats["prefetched"] += self.readthrough.promotions - before

    # ---- graceful shutdown -------------------------------------------------------------------------
    async def _hand_off(self):
        log = self.server.log
        deadline = time.monotonic() + STOP_FLUSH_SECONDS
        if not await self.flush(STOP_FLUSH_SECONDS):
            log.warning("tiers: shutting down with %d records not acknowledged downstream",
                        len(self.queue))
            return
        table = self.table
        cursor, sent = 0, 0
        batch = []
        size = self.values["downstream-batch"]
        while time.monotonic() < deadline:
            cursor, keys = table.scan(cursor, count=size)
            for key in keys:
                entry = table.info(key)
                if entry is None:
                    continue
                value = table.get_entry(key)
                if value is None:
                    continue
                batch.append((OP_DEMOTE, key, value[0], value[1], value[2]))
            if batch:
                try:
                    await asyncio.wait_for(self.link.push(batch), 2.0)
                except Exception as exc:
                    log.warning("tiers: hand-off stopped after %d objects: %s", sent, exc)
                    return
                sent += len(batch)
                batch = []
            if cursor == 0:
                break
        self.stats["handed_off"] = sent
        log.info("tiers: pushed %d live objects downstream before exiting", sent)

    # ---- INFO ----------------------------------------------------------------------------------------
    def info(self, server):
        fields = [("role", "edge"), ("edge_id", self.id.decode()),
                  ("journal_shipper", "yes" if self.shipper else "no")]
        fields += table_fields(self.table)
        fields += self.link.info()
        fields += [("queue_depth", len(self.queue)),
                   ("queue_limit", self.values["downstream-queue-size"]),
                   ("pending_deletes", len(self.tombstones))]
        fields += self.readthrough.info()
        fields += [(name, value) for name, value in self.stats.items()]
        return {"tiers": fields}
