"""Relief nodes: leaf storage that joins a relay by connecting to it, and leaves by disconnecting.

A relief node is a RESP server over its own table. For every relay in its `relay` directive it
keeps two connections: a JOIN connection (`RESPCACHE JOIN kind host port`, held open: the relay
drops the node when it closes, and pushes topology frames on it) and a data connection for
hand-offs. Nothing changes in the relay's config. The relay answers the JOIN once it has
connected back to the node: with the topology (the node is in the ring; only then does it log
"joined") or with an error naming the cause (its downstream-auth refused here, say): the node logs
the refusal and joins again with backoff.

Kinds (`relief-kind`):
- aging: keeps what aged out of the front tiers until it expires. `relief-decay-ms N` (0 = off)
  lets idle objects go early: each object lives at most N ms past its last arrival or read, never
  past its own expiry, and a read renews the window (the "TTL rings" of the seed design: interest
  keeps an object, disinterest lets it decay). Answers always carry the object's own expiry.
- expansion: takes objects while the front tiers are under pressure and lets them go quickly:
  `relief-hold-ms N` after arrival an object is handed to the aging nodes (op A through the relay)
  and dropped here. With no aging node in the ring it stays until it expires.

On a new topology the node re-offers (op P, through the relay, which only fills gaps) every object
whose owner set changed, and drops the objects it no longer owns once the relay has acknowledged
them. SIGTERM / SHUTDOWN: LEAVE at every relay, then hand everything over, then exit.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, defaultdict

from .link import OP_AGED, OP_DELETE, OP_PLACE, OP_WRITE
from .readthrough import table_fields
from .relay import encode_found
from .uplink import Uplink

OFFER_BATCH = 256
STOP_SECONDS = 10.0


class Relief:
    role = "relief"

    def __init__(self, config):
        self.config = config
        self.values = config.values
        self.kind = self.values["relief-kind"]
        self.server = None
        self.uplinks = []
        self.ring = None
        self.prev_ring = None
        self.rebalance_task = None
        self.rebalance_again = False
        self.arrived = OrderedDict()       # expansion: key -> arrival (monotonic), oldest first
        self.own_expiry = {}               # aging with decay: key -> the object's own expiry
        self.stats = defaultdict(int)
        self.aging_task = None

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self, server):
        self.server = server
        self.table = server.table
        self.loop = server.loop
        announce = self.values["relief-announce-ip"]
        if not announce:
            binds = [b.lstrip("-") for b in self.values["bind"]]
            announce = next((b for b in binds if b not in ("0.0.0.0", "::", "*")), "127.0.0.1")
        self.host = announce
        # The relay connects back to the port we announce: the TLS one when links are on TLS.
        self.port = self.values["tls-port"] if self.values["tls-downstream"] else server.tcp_port
        self.name = f"{self.host}:{self.port}"
        self._set_uplinks(self.values["relay"])

    def _set_uplinks(self, addresses):
        current = {u.address: u for u in self.uplinks}
        keep = []
        for address in addresses:
            uplink = current.pop(address, None)
            if uplink is None:
                uplink = Uplink(self, address)
                uplink.start(self.loop)
            keep.append(uplink)
        for uplink in current.values():       # relays no longer named: leave them
            self.loop.create_task(self._leave(uplink, hand_off=False))
        self.uplinks = keep

    async def _leave(self, uplink, hand_off):
        try:
            await asyncio.wait_for(uplink.call(b"RESPCACHE", b"LEAVE", self.name.encode()), 1.0)
        except Exception:
            pass
        await uplink.stop()

    def config_changed(self, server, names):
        if "relay" in names:
            self.server.log.info("tiers: relay set to %s", " ".join(self.values["relay"]))
            self._set_uplinks(self.values["relay"])

    async def stop(self, server):
        log = server.log
        deadline = time.monotonic() + STOP_SECONDS
        live = [u for u in self.uplinks if u.up]
        for uplink in live:
            try:
                await asyncio.wait_for(uplink.call(b"RESPCACHE", b"LEAVE", self.name.encode()),
                                       1.0)
            except Exception as exc:
                log.warning("tiers: LEAVE at %s failed: %s", uplink.address, exc)
        if self.rebalance_task is not None:
            self.rebalance_task.cancel()
        sent = 0
        if live:
            uplink = live[0]
            table = self.table
            cursor = 0
            while time.monotonic() < deadline:
                cursor, keys = table.scan(cursor, count=OFFER_BATCH)
                batch = self._records(keys, OP_PLACE)
                if batch:
                    try:
                        await asyncio.wait_for(uplink.push(batch), 5.0)
                    except Exception as exc:
                        log.warning("tiers: hand-off to %s stopped after %d objects: %s",
                                    uplink.address, sent, exc)
                        break
                    sent += len(batch)
                if cursor == 0:
                    break
        log.info("tiers: handed %d objects to the ring before leaving", sent)
        for uplink in self.uplinks:
            await uplink.stop()

    def _records(self, keys, op):
        out = []
        table = self.table
        own = self.own_expiry
        for key in keys:
            entry = table.get_entry(key)
            if entry is not None:
                out.append((op, key, entry[0], entry[1], own.get(key, entry[2])))
        return out

    # ---- commands the relay sends --------------------------------------------------------------
    def fetch(self, keys):
        table = self.table
        found = {}
        decay = self.values["relief-decay-ms"] if self.kind == "aging" else 0
        now = table.now_ms() if decay else 0
        for key in keys:
            entry = table.get_entry(key)
            if entry is None:
                continue
            expire_at = self.own_expiry.get(key, entry[2])
            if decay:
                window = now + decay
                table.expire_at(key, window if not expire_at or window < expire_at else expire_at)
            found[key] = (entry[0], entry[1], expire_at)
        self.stats["fetch_keys"] += len(keys)
        self.stats["fetch_hits"] += len(found)
        return encode_found(keys, found)

    def push(self, origin, records):
        table = self.table
        now = table.now_ms()
        decay = self.values["relief-decay-ms"] if self.kind == "aging" else 0
        expansion = self.kind == "expansion"
        stats = self.stats
        for op, key, value, type_code, expire_at in records:
            if op == OP_DELETE:
                table.delete(key)
                self.own_expiry.pop(key, None)
                self.arrived.pop(key, None)
                stats["deletes"] += 1
                continue
            if expire_at and expire_at <= now:
                continue
            local = expire_at
            if decay and (not expire_at or now + decay < expire_at):
                local = now + decay
            try:
                if op == OP_WRITE:
                    stored = table.set(key, value, expire_at_ms=local or None, type=type_code)
                    stats["writes"] += 1
                else:
                    stored = table.set(key, value, expire_at_ms=local or None, type=type_code,
                                       nx=True)
                    stats["placed" if stored else "placed_present"] += 1
            except (ValueError, TypeError):
                stats["refused"] += 1
                continue
            if stored:
                if local != expire_at:
                    self.own_expiry[key] = expire_at
                else:
                    self.own_expiry.pop(key, None)
                if expansion:
                    self.arrived.pop(key, None)
                    self.arrived[key] = time.monotonic()
        return b"+OK\r\n"

    # ---- topology and rebalancing ----------------------------------------------------------------
    def topology_changed(self, uplink, ring):
        if uplink is not self._primary():
            return
        if self.ring is not None and ring.members == self.ring.members and \
                ring.replicas == self.ring.replicas:
            return
        self.prev_ring, self.ring = self.ring, ring
        self.stats["topology_changes"] += 1
        if self.rebalance_task is None or self.rebalance_task.done():
            self.rebalance_task = self.loop.create_task(self._rebalance())
        else:
            self.rebalance_again = True

    def _primary(self):
        for uplink in self.uplinks:
            if uplink.up and uplink.ring is not None:
                return uplink
        return None

    def _keeps(self, ring, key):
        owners = ring.owners(key)
        if self.name in owners:
            return True, owners
        if self.kind == "aging" and self.name in ring.owners(key, kind="aging"):
            return True, owners
        return False, owners

    async def _rebalance(self):
        log = self.server.log
        passes = 0
        while True:
            self.rebalance_again = False
            ring, prev = self.ring, self.prev_ring
            uplink = self._primary()
            if uplink is None or ring is None:
                return
            table = self.table
            offered = dropped = 0
            cursor = 0
            started = time.monotonic()
            try:
                while True:
                    cursor, keys = table.scan(cursor, count=OFFER_BATCH)
                    offers, drop = [], []
                    for key in keys:
                        keep, owners = self._keeps(ring, key)
                        before = prev.owners(key) if prev is not None else []
                        if not keep or set(owners) != set(before):
                            offers.append(key)
                            if not keep:
                                drop.append(key)
                    batch = self._records(offers, OP_PLACE)
                    if batch:
                        await asyncio.wait_for(uplink.push(batch), 5.0)
                        offered += len(batch)
                        for key in drop:
                            if table.delete(key):
                                dropped += 1
                            self.own_expiry.pop(key, None)
                            self.arrived.pop(key, None)
                    if cursor == 0 or self.rebalance_again:
                        break
                    await asyncio.sleep(0)
            except Exception as exc:
                log.warning("tiers: rebalancing stopped (%s); it resumes on the next topology",
                            exc)
                self.stats["rebalance_errors"] += 1
                return
            self.stats["offered"] += offered
            self.stats["dropped_not_owned"] += dropped
            if offered or dropped:
                log.info("tiers: rebalanced in %.2f s: offered %d, dropped %d", time.monotonic()
                         - started, offered, dropped)
            if self.rebalance_again:
                continue
            if dropped and passes < 3:
                # Deleting while scanning may hide keys from the scan: look again for objects
                # this node should not hold (only those; owner sets are settled now).
                passes += 1
                self.prev_ring = ring
                continue
            return

    # ---- expansion: let objects go ----------------------------------------------------------------
    def cron(self, server):
        if self.kind != "expansion" or not self.arrived:
            return
        if self.aging_task is not None and not self.aging_task.done():
            return
        hold = self.values["relief-hold-ms"] / 1000.0
        ring = self.ring
        if not hold or ring is None or not any(k == "aging" for k in ring.members.values()):
            return
        cutoff = time.monotonic() - hold
        due = []
        for key, arrived in self.arrived.items():
            if arrived > cutoff or len(due) >= 4 * OFFER_BATCH:
                break
            due.append(key)
        if due:
            self.aging_task = self.loop.create_task(self._age_out(due))

    async def _age_out(self, keys):
        uplink = self._primary()
        if uplink is None:
            return
        batch = self._records(keys, OP_AGED)
        versions = {key: self.table.version(key) for key in keys}
        try:
            for i in range(0, len(batch), OFFER_BATCH):
                await asyncio.wait_for(uplink.push(batch[i:i + OFFER_BATCH]), 5.0)
        except Exception as exc:
            self.server.log.warning("tiers: could not hand aged objects on: %s", exc)
            return
        for key in keys:
            self.arrived.pop(key, None)
            # Dropped only if nothing rewrote it meanwhile (compare-and-delete by version).
            if versions[key] and self.table.version(key) == versions[key]:
                self.table.delete(key)
                self.stats["aged_out"] += 1

    # ---- introspection ---------------------------------------------------------------------------
    def topology(self):
        ring = self.ring
        rows = []
        if ring is not None:
            rows = [[n.encode(), k.encode(), b"up"] for n, k in ring.members.items()]
        return [b"relief", b"%d" % max((u.epoch for u in self.uplinks), default=-1),
                b"%d" % (ring.replicas if ring else 0), rows]

    def info(self, server):
        fields = [("role", "relief"), ("relief_kind", self.kind), ("relief_name", self.name)]
        for i, uplink in enumerate(self.uplinks):
            fields.append((f"link{i}", f"relay={uplink.address},status="
                           f"{'up' if uplink.up else 'down'},epoch={uplink.epoch},"
                           f"connects={uplink.connects},errors={uplink.errors},"
                           f"refusals={uplink.refusals}"))
            if uplink.last_error:
                fields.append((f"link{i}_last_error", uplink.last_error))
        fields += [("ring_members", len(self.ring) if self.ring else 0),
                   *table_fields(self.table),
                   ("expansion_held", len(self.arrived)),
                   ("decaying", len(self.own_expiry))]
        fields += [(k, v) for k, v in sorted(self.stats.items())]
        return {"tiers": fields}

