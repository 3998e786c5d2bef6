"""The relay: the middle tier between edges and relief nodes.

- Its own table (the server's shm LRU) caches what edges wrote, demoted or asked for.
- Every object is placed on R relief nodes (`replicas`) chosen by the consistent-hash ring; relief
  nodes join with `RESPCACHE JOIN kind host port` on a connection they keep open, and leave by
  `RESPCACHE LEAVE` (graceful, followed by their hand-off) or by disconnecting (crash). The relay
  connects back with `downstream-auth` and the TLS settings as they are at that moment; the JOIN
  is answered with the topology, or with an error naming why the relay cannot link back to the
  node (also logged here with the node's address).
- `RESPCACHE PUSH origin op key value type expire-at ...` applies a batch in order:
    S write    -> table, ring owners (overwrite); other holders (aging/previous owners) delete
    D delete   -> table and every possible holder delete; tombstoned for TOMBSTONE_SECONDS so no
                  demotion or hand-off already on its way brings it back
    E demotion -> table and ring owners, only where absent (a newer write is never overwritten)
    P hand-off -> ring owners, only where absent (relief join/leave/rebalance)
    A aged     -> the aging owners, only where absent (an expansion node lets an object go)
  and answers once the relief owners have acknowledged (a write is on R nodes when the edge's batch
  is acknowledged), then publishes [origin, key...] on __respcache__:invalidate so that every other
  edge drops its copy.
- `RESPCACHE FETCH key ...` answers from the table, else asks the ring owners, then the aging
  owners, then the owners under the previous ring(s) (a join or leave in progress), each stage with
  `downstream-timeout`; what it finds is cached in the table.
- On every membership or `replicas` change the relay pushes the new topology to every relief node on
  its JOIN connection; relief nodes re-offer what changed owners (see relief.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict

from respcache import resp

from .link import (ANNOUNCE_CHANNEL, INVALIDATE_CHANNEL, OP_DELETE, OP_DEMOTE, OP_PLACE,
                   OP_WRITE, encode_message, encode_records)
from .readthrough import ReadThrough, table_fields
from .ring import Ring
from .wire import (LINK_ERRORS, LinkDown, ReplyError, RespConnection, describe, encode,
                   link_options)

TOMBSTONE_SECONDS = 60.0
PREVIOUS_RING_SECONDS = 30.0
ACK_TIMEOUT = 2.0
HEARTBEAT_SECONDS = 0.5
EJECT_AFTER_TIMEOUTS = 3


class Member:
    def __init__(self, name, kind, conn, join_conn):
        self.name = name
        self.kind = kind
        self.conn = conn              # our data connection to the relief node
        self.join_conn = join_conn    # its JOIN connection to us (kept open while it is a member)
        self.leaving = False
        self.joined = time.time()
        self.errors = 0
        self.ack_timeouts = 0


class RelayReadThrough(ReadThrough):
    """`redis-cli -p <relay> GET k` reads through to the relief nodes too."""

    def __init__(self, relay):
        super().__init__(relay.server, relay.values["downstream-timeout"])
        self.relay = relay

    def skip(self, key):
        return key in self.relay.tombstones

    async def fetch(self, keys):
        return await self.relay.lookup(keys, use_table=False, cache=False)


class Relay:
    role = "relay"

    def __init__(self, config):
        self.config = config
        self.values = config.values
        self.id = b"relay-%d-%s" % (os.getpid(), os.urandom(4).hex().encode())
        self.members = {}             # name -> Member (members of the ring, and leaving ones)
        self.previous = []            # [(Ring, dropped_at_monotonic)]
        self.tombstones = {}          # key -> monotonic time of its delete
        self.epoch = 0
        self.stats = defaultdict(int)
        self.server = None

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self, server):
        self.server = server
        self.table = server.table
        self.loop = server.loop
        v = self.values
        self.ring = Ring(vnodes=v["hash-vnodes"], seed=v["hash-seed"], replicas=v["replicas"])
        self.readthrough = RelayReadThrough(self)
        server.miss_handler = self.readthrough
        self.last_heartbeat = time.monotonic()

    async def stop(self, server):
        await self.readthrough.stop()
        for member in list(self.members.values()):
            member.conn.close()

    def config_changed(self, server, names):
        if "replicas" in names and self.values["replicas"] != self.ring.replicas:
            self._change_ring(lambda ring: setattr(ring, "replicas", self.values["replicas"]),
                              f"replicas set to {self.values['replicas']}")
        if "downstream-timeout" in names:
            self.readthrough.timeout = self.values["downstream-timeout"] / 1000.0

    def cron(self, server):
        now = time.monotonic()
        if self.tombstones:
            cutoff = now - TOMBSTONE_SECONDS
            if len(self.tombstones) > 1000 or now - self.stats["_pruned"] > 1:
                self.stats["_pruned"] = now
                for key in [k for k, t in self.tombstones.items() if t < cutoff]:
                    del self.tombstones[key]
        if self.previous:
            self.previous = [(r, t) for r, t in self.previous
                             if now - t < PREVIOUS_RING_SECONDS]
        if now - self.last_heartbeat >= HEARTBEAT_SECONDS:
            # A write to a peer that vanished fails and closes the JOIN connection, which drops
            # the member even on a box where the FIN never arrived.
            self.last_heartbeat = now
            frame = encode([b"ping"])
            for member in list(self.members.values()):
                member.join_conn.send(frame)

    # ---- ring membership -------------------------------------------------------------------------
    def _change_ring(self, change, why):
        before = self.ring.copy()
        change(self.ring)
        self.previous.append((before, time.monotonic()))
        self.epoch += 1
        self.server.log.info("tiers: ring epoch %d (%s): %d members, replicas %d", self.epoch, why,
                             len(self.ring), self.ring.replicas)
        self._announce_topology()

    def _topology_frame(self):
        parts = [b"topology", b"%d" % self.epoch, b"%d" % self.ring.replicas,
                 b"%d" % self.ring.vnodes, b"%d" % self.ring.seed]
        for name, kind in self.ring.members.items():
            parts += (name.encode(), kind.encode())
        return encode(parts)

    def _announce_topology(self):
        frame = self._topology_frame()
        for member in self.members.values():
            member.join_conn.send(frame)

    def join(self, conn, kind, host, port):
        name = f"{host}:{port}"
        result = self.loop.create_future()

        def refuse(why):
            why = " ".join(why.split())      # one line: it goes into an error reply
            self.stats["join_refusals"] += 1
            self.server.log.warning("tiers: relief node %s (%s) asked to join, refused: %s",
                                    name, kind, why)
            if not result.done():
                result.set_result(resp.error(f"ERR relay refused the join of {name}: {why}"))

        async def connect():
            try:
                data = await RespConnection.open(host, port, 1.0, **link_options(self.values))
            except ReplyError as exc:
                # The relief node said no to our credentials (WRONGPASS, NOAUTH).
                refuse(f"it refused the relay's downstream-auth ({describe(exc)})")
                return
            except ValueError as exc:        # TLSConfigError: our own TLS files
                refuse(f"the relay's TLS configuration for links does not load ({exc})")
                return
            except LINK_ERRORS as exc:
                refuse(f"the relay cannot connect back to it ({describe(exc)})")
                return
            except Exception as exc:         # never an unanswered JOIN
                self.server.log.exception("tiers: JOIN of %s failed", name)
                refuse(f"internal error ({describe(exc)})")
                return
            if result.done():          # the relief node went away meanwhile
                data.close()
                return
            old = self.members.get(name)
            if old is not None:
                old.conn.close()
                old.join_conn.close()
            member = Member(name, kind, data, conn)
            self.members[name] = member
            self.stats["joins"] += 1
            self.server.log.info("tiers: relief node %s (%s) joined", name, kind)
            # Let the connection see EOF while it waits: a crashed node is noticed at once.
            if conn.transport is not None and not conn.closing:
                conn.transport.resume_reading()
            self._change_ring(lambda ring: ring.add(name, kind), f"{name} joined")

        def gone(_):
            member = self.members.get(name)
            if member is not None and member.join_conn is conn:
                del self.members[name]
                member.conn.close()
                self.stats["leaves"] += 1
                self.server.log.warning("tiers: relief node %s disconnected%s", name,
                                        " after leaving" if member.leaving else
                                        "; routing around it")
                if name in self.ring:
                    self._change_ring(lambda ring: ring.remove(name), f"{name} disconnected")

        result.add_done_callback(gone)
        task = self.loop.create_task(connect())
        task.add_done_callback(lambda t: None)
        return result

    def leave(self, name):
        member = self.members.get(name)
        if member is None:
            return False
        member.leaving = True
        if name in self.ring:
            self._change_ring(lambda ring: ring.remove(name), f"{name} is leaving")
        return True

    # ---- placement -------------------------------------------------------------------------------
    def _holders(self, key):
        """Every member that may hold key: owners, aging owners, owners under previous rings."""
        ring = self.ring
        found = ring.owners(key)
        for extra in ring.owners(key, kind="aging"):
            if extra not in found:
                found.append(extra)
        for prev, _ in reversed(self.previous):
            for extra in prev.owners(key):
                if extra not in found:
                    found.append(extra)
        return [m for m in found if m in self.members]

    def push(self, origin, records):
        """Apply one batch; a Future of the reply (after relief acknowledgements)."""
        table = self.table
        now = table.now_ms()
        ring = self.ring
        members = self.members
        out = defaultdict(list)
        changed = []
        stats = self.stats
        tombstones = self.tombstones
        for record in records:
            op, key, value, type_code, expire_at = record
            if op == OP_WRITE and expire_at and expire_at <= now:
                op = OP_DELETE
            if op == OP_WRITE:
                stats["writes"] += 1
                tombstones.pop(key, None)
                try:
                    table.set(key, value, expire_at_ms=expire_at or None, type=type_code)
                except (ValueError, TypeError):
                    table.delete(key)
                owners = ring.owners(key)
                for name in owners:
                    out[name].append(record if record[0] == op else
                                     (OP_WRITE, key, value, type_code, expire_at))
                for name in self._holders(key):
                    if name not in owners:
                        out[name].append((OP_DELETE, key, b"", 0, 0))
                changed.append(key)
            elif op == OP_DELETE:
                stats["deletes"] += 1
                table.delete(key)
                tombstones[key] = time.monotonic()
                for name in self._holders(key):
                    out[name].append((OP_DELETE, key, b"", 0, 0))
                changed.append(key)
            else:
                if key in tombstones or (expire_at and expire_at <= now):
                    stats["stale_dropped"] += 1
                    continue
                if op == OP_DEMOTE:
                    stats["demotions"] += 1
                    try:
                        table.set(key, value, expire_at_ms=expire_at or None, type=type_code,
                                  nx=True)
                    except (ValueError, TypeError):
                        pass
                    owners = ring.owners(key)
                elif op == OP_PLACE:
                    stats["handoffs"] += 1
                    owners = ring.owners(key)
                else:
                    stats["aged"] += 1
                    owners = ring.owners(key, kind="aging") or ring.owners(key)
                placed = (OP_PLACE, key, value, type_code, expire_at)
                for name in owners:
                    if name != origin:
                        out[name].append(placed)
        acks = []
        for name, batch in out.items():
            member = members.get(name)
            if member is None:
                continue
            try:
                acks.append((member, member.conn.send(b"RESPCACHE", b"PUSH", self.id,
                                                      *encode_records(batch))))
            except LinkDown:
                member.errors += 1
                stats["downstream_errors"] += 1
        stats["placements"] += sum(len(b) for b in out.values())
        if not acks:
            self._publish(origin, changed)
            return resp.OK
        result = self.loop.create_future()
        self.loop.create_task(self._await_acks(acks, origin, changed, result))
        return result

    async def _await_acks(self, acks, origin, changed, result):
        done, pending = await asyncio.wait([f for _, f in acks], timeout=ACK_TIMEOUT)
        for member, fut in acks:
            if fut in pending or fut.exception() is not None:
                member.errors += 1
                self.stats["downstream_errors"] += 1
                if fut in pending:
                    fut.cancel()
                    member.ack_timeouts += 1
                    if member.ack_timeouts == EJECT_AFTER_TIMEOUTS:
                        # Alive but not answering (stopped, swapping): out of the ring, so that
                        # writes stop waiting on it; it rejoins by itself when it wakes up.
                        self.server.log.warning("tiers: relief node %s did not acknowledge %d "
                                                "batches in a row; dropping it from the ring",
                                                member.name, EJECT_AFTER_TIMEOUTS)
                        member.join_conn.close()
            else:
                member.ack_timeouts = 0
        self._publish(origin, changed)
        if not result.done():
            result.set_result(resp.OK)

    def _publish(self, origin, keys):
        if not keys:
            return
        server = self.server
        message = encode_message([origin] + keys)
        self.stats["coherence_published"] += 1
        server.publish(INVALIDATE_CHANNEL, message)
        if ANNOUNCE_CHANNEL in server.pubsub.channels or server.bus is not None:
            server.publish(ANNOUNCE_CHANNEL, message)

    # ---- lookups ---------------------------------------------------------------------------------
    async def lookup(self, keys, use_table=True, cache=True) -> dict:
        table = self.table
        found = {}
        missing = []
        if use_table:
            for key in keys:
                entry = table.get_entry(key)
                if entry is not None:
                    found[key] = entry[:3]
                else:
                    missing.append(key)
        else:
            missing = list(keys)
        missing = [k for k in missing if k not in self.tombstones]
        if not missing or not self.members:
            self.stats["fetch_table_hits"] += len(found)
            return found
        self.stats["fetch_table_hits"] += len(found)
        started = time.monotonic()
        deadline = self.loop.time() + self.values["downstream-timeout"] / 1000.0
        remote = {}
        ring = self.ring
        # Stage 0 asks every current owner at once (one slow or dead owner costs nothing while
        # another answers); stage 1 asks the other possible holders (aging owners, owners under
        # a previous ring while a join or leave settles). Both within downstream-timeout.
        stages = [{}, {}]
        for key in missing:
            owners = ring.owners(key)
            for name in self._holders(key):
                stages[0 if name in owners else 1].setdefault(name, []).append(key)
        for groups in stages:
            groups = {name: [k for k in keys if k not in remote] for name, keys in groups.items()}
            groups = {name: keys for name, keys in groups.items() if keys}
            if not groups:
                continue
            await self._ask(groups, remote, deadline)
        missing = [k for k in missing if k not in remote]
        self.stats["relief_misses"] += len(missing)
        now = table.now_ms()
        for key, record in remote.items():
            deleted = self.tombstones.get(key)
            if deleted is not None and deleted >= started:
                continue            # deleted while we looked: the old value must not come back
            entry = table.get_entry(key)
            if entry is not None:   # written while we looked: the table has the newer value
                found[key] = entry[:3]
                continue
            if record[2] and record[2] <= now:
                continue
            found[key] = record
            if cache:
                try:
                    table.set(key, record[0], expire_at_ms=record[2] or None, type=record[1],
                              nx=True)
                except (ValueError, TypeError):
                    pass
        return found

    async def _ask(self, groups, remote, deadline):
        """FETCH each group from its member; fills `remote`; returns when every asked key has an
        answer, every call is over, or the deadline passed."""
        calls = {}
        wanted = set()
        for name, group in groups.items():
            member = self.members.get(name)
            if member is None:
                continue
            try:
                fut = member.conn.send(b"RESPCACHE", b"FETCH", *group)
            except LinkDown:
                member.errors += 1
                continue
            calls[fut] = (member, group)
            wanted.update(group)
        pending = set(calls)
        while pending and not wanted.issubset(remote):
            left = deadline - self.loop.time()
            if left <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=left,
                                               return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                member, group = calls[fut]
                if fut.cancelled() or fut.exception() is not None:
                    member.errors += 1
                    self.stats["downstream_errors"] += 1
                    continue
                for key, item in zip(group, fut.result()):
                    if item and key not in remote:
                        remote[key] = (item[0], int(item[1]), int(item[2]))
                        self.stats["relief_hits"] += 1
        for fut in pending:
            member, _ = calls[fut]
            if not wanted.issubset(remote):
                member.errors += 1
                self.stats["downstream_timeouts"] += 1
            fut.cancel()

    def fetch(self, keys):
        """RESPCACHE FETCH: bytes now when the table has everything, else a Future."""
        table = self.table
        entries = [table.get_entry(k) for k in keys]
        self.stats["fetch_keys"] += len(keys)
        if all(e is not None for e in entries) or not self.members:
            self.stats["fetch_table_hits"] += sum(1 for e in entries if e is not None)
            return encode_found(keys, {k: e[:3] for k, e in zip(keys, entries) if e is not None})
        result = self.loop.create_future()

        async def run():
            try:
                found = await self.lookup(keys)
            except Exception as exc:  # a failed lookup is an error reply, not a dead relay
                if not result.done():
                    result.set_exception(exc)
                return
            if not result.done():
                result.set_result(encode_found(keys, found))
        self.loop.create_task(run())
        return result

    # ---- introspection ---------------------------------------------------------------------------
    def topology(self):
        rows = []
        for name, kind in self.ring.members.items():
            member = self.members.get(name)
            rows.append([name.encode(), kind.encode(),
                         b"up" if member is not None else b"down"])
        for name, member in self.members.items():
            if name not in self.ring:
                rows.append([name.encode(), member.kind.encode(), b"leaving"])
        return [b"relay", b"%d" % self.epoch, b"%d" % self.ring.replicas, rows]

    def info(self, server):
        fields = [("role", "relay"), ("relay_id", self.id.decode()),
                  *table_fields(self.table),
                  ("ring_epoch", self.epoch), ("ring_replicas", self.ring.replicas),
                  ("ring_vnodes", self.ring.vnodes), ("ring_members", len(self.ring)),
                  ("previous_rings", len(self.previous)),
                  ("tombstones", len(self.tombstones))]
        for i, (name, member) in enumerate(sorted(self.members.items())):
            fields.append((f"member{i}", f"addr={name},kind={member.kind},"
                           f"state={'leaving' if member.leaving else 'up'},"
                           f"in_flight={member.conn.in_flight()},errors={member.errors}"))
        fields += [(k, v) for k, v in sorted(self.stats.items()) if not k.startswith("_")]
        fields += [("readthrough_" + k, v) for k, v in self.readthrough.info()]
        return {"tiers": fields}


def encode_found(keys, found) -> bytes:
    parts = [b"*%d\r\n" % len(keys)]
    for key in keys:
        record = found.get(key)
        if record is None:
            parts.append(b"*-1\r\n")
        else:
            value, type_code, expire_at = record
            parts.append(b"*3\r\n$%d\r\n%b\r\n:%d\r\n:%d\r\n" % (len(value), value, type_code,
                                                                expire_at))
    return b"".join(parts)
