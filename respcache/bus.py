"""The worker side of the internal bus that makes N worker processes look like one server.

Each worker holds one end of a socketpair to the supervisor (supervisor.py routes). Messages are
RESP arrays of bulk strings:
  broadcast  [B, event, args...]           -> every other worker gets [B, origin, event, args...]
  request    [Q, req_id, op, args...]      -> every other worker gets [Q, origin, req_id, op, ...]
             and the asker gets [N, req_id, peers] saying how many replies to expect
  reply      [R, asker, req_id, payload...] -> the asker gets [R, origin, req_id, payload...]

What crosses it: PUBLISH fan-out (per-publisher order holds: one worker's messages travel one
socket and one supervisor queue), subscription and monitor counts (each worker keeps what every
other worker has, so PUBLISH's receiver count and PUBSUB answer locally), monitor lines, CONFIG SET,
and gathers for CLIENT LIST/KILL, SLOWLOG and INFO. Replies to gathers are JSON: a cold path.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import hiredis

from .glob import glob_match

GATHER_TIMEOUT = 1.0
OPS = {}   # request op -> fn(server, origin, args) -> JSON-able reply; filled by @bus_op
# Requests that change a worker's state beyond its config file. The supervisor keeps them, in
# order, and replays them to a worker it starts again, so a restarted worker is not the file's
# server but the one the others are (a replay comes with origin -1, and its reply is dropped).
STATE_OPS = frozenset((b"config-set", b"acl-setuser", b"acl-deluser"))


def bus_op(name: bytes):
    """Register what a worker answers when another worker gathers `name` (CLIENT LIST, ...)."""
    def register(fn):
        OPS[name] = fn
        return fn
    return register


def across_workers(server, op: bytes, args, local, combine):
    """combine(local, [peer replies]) now when single, or a Future of it with workers.

    Command handlers return this directly: the connection waits on a Future (deferred reply).
    """
    if server.bus is None:
        return combine(local, [])
    gathered = server.bus.gather(op, *args)
    result = server.loop.create_future()

    def done(fut):
        if result.cancelled():
            return
        try:
            result.set_result(combine(local, [reply for _, reply in fut.result()]))
        except Exception as exc:  # the command gets an error reply, the worker lives on
            result.set_exception(exc)
    gathered.add_done_callback(done)
    return result


def encode_message(parts) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%b\r\n" % (len(part), part))
    return b"".join(out)


class Bus(asyncio.Protocol):
    def __init__(self, server, index: int, count: int):
        self.server = server
        self.index = index
        self.count = count
        self.transport = None
        self.reader = hiredis.Reader()
        self.req_ids = itertools.count(1)
        self.pending = {}           # req_id -> (future, expected or None, replies)
        self.events = {}            # broadcast event -> fn(origin, args)
        # What the other workers have: {origin: {channel: count}} and the like.
        self.remote_channels = {}
        self.remote_patterns = {}
        self.remote_monitors = {}
        self.events[b"gone"] = self._peer_gone
        self.events[b"hello"] = self._peer_hello
        self.events[b"sub"] = self._peer_sub
        self.events[b"psub"] = self._peer_psub
        self.events[b"mon"] = self._peer_monitors
        self.events[b"state"] = self._peer_state

    # ---- transport ----------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        # A (re)started worker announces itself; peers reset what they knew of this index and
        # send their own subscription state back to it.
        self.broadcast(b"hello")

    def connection_lost(self, exc):
        if not self.server.stopping:
            self.server.log.warning("Lost the bus to the supervisor; shutting this worker down")
            self.server.request_shutdown()

    def data_received(self, data):
        self.reader.feed(data)
        while True:
            message = self.reader.gets()
            if message is False:
                return
            try:
                self._dispatch(message)
            except Exception:  # one bad message must not take the worker down
                self.server.log.exception("bus message failed: %r", message[:3])

    def _dispatch(self, message):
        kind = message[0]
        if kind == b"B":
            handler = self.events.get(message[2])
            if handler is not None:
                handler(int(message[1]), message[3:])
        elif kind == b"Q":
            origin, req_id, op = int(message[1]), message[2], message[3]
            handler = OPS.get(op)
            result = handler(self.server, origin, message[4:]) if handler is not None else None
            self._send([b"R", message[1], req_id, json.dumps(result).encode()])
        elif kind == b"R":
            state = self.pending.get(int(message[2]))
            if state is not None:
                state[2].append((int(message[1]), json.loads(message[3])))
                self._maybe_done(int(message[2]))
        elif kind == b"N":
            state = self.pending.get(int(message[1]))
            if state is not None:
                self.pending[int(message[1])] = (state[0], int(message[2]), state[2])
                self._maybe_done(int(message[1]))

    def _send(self, parts):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_message(parts))

    # ---- API for the server -------------------------------------------------------------------
    def broadcast(self, event: bytes, *args: bytes):
        self._send([b"B", event, *args])

    def gather(self, op: bytes, *args: bytes) -> asyncio.Future:
        """Ask every other worker; the future gets [(origin, reply), ...] (partial on timeout)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        req_id = next(self.req_ids)
        self.pending[req_id] = (future, None, [])
        self._send([b"Q", b"%d" % req_id, op, *args])
        loop.call_later(GATHER_TIMEOUT, self._finish, req_id)
        return future

    def _maybe_done(self, req_id):
        future, expected, replies = self.pending[req_id]
        if expected is not None and len(replies) >= expected:
            self._finish(req_id)

    def _finish(self, req_id):
        state = self.pending.pop(req_id, None)
        if state is not None and not state[0].done():
            state[0].set_result(sorted(state[2]))

    # ---- replicated subscription and monitor counts -------------------------------------------
    def local_subscription_changed(self, kind: bytes, name: bytes, delta: int):
        self.broadcast(b"sub" if kind == b"channel" else b"psub", name, b"%d" % delta)

    def local_monitors_changed(self, count: int):
        self.broadcast(b"mon", b"%d" % count)

    def remote_receivers(self, channel: bytes) -> int:
        total = 0
        for channels in self.remote_channels.values():
            total += channels.get(channel, 0)
        for patterns in self.remote_patterns.values():
            for pattern, count in patterns.items():
                if count and glob_match(pattern, channel):
                    total += count
        return total

    def remote_monitor_count(self) -> int:
        return sum(self.remote_monitors.values())

    def _peer_gone(self, origin, args):
        # [B, supervisor-origin, gone] carries the dead worker's index as its origin
        self.remote_channels.pop(origin, None)
        self.remote_patterns.pop(origin, None)
        self.remote_monitors.pop(origin, None)

    def _peer_hello(self, origin, args):
        self._peer_gone(origin, args)
        # Tell the newcomer what we have. It goes to everyone (the bus has no unicast), addressed
        # to the newcomer's index; the others ignore it rather than count it twice.
        self.broadcast(b"state", json.dumps(self.local_state()).encode(), b"%d" % origin)

    def local_state(self):
        pubsub = self.server.pubsub
        return {"channels": {k.decode("latin-1"): len(v) for k, v in pubsub.channels.items()},
                "patterns": {k.decode("latin-1"): len(v) for k, v in pubsub.patterns.items()},
                "monitors": len(self.server.monitors)}

    def _peer_state(self, origin, args):
        if int(args[1]) != self.index:
            return  # a state reply meant for another newcomer
        state = json.loads(args[0])
        self.remote_channels[origin] = {k.encode("latin-1"): v
                                        for k, v in state["channels"].items()}
        self.remote_patterns[origin] = {k.encode("latin-1"): v
                                        for k, v in state["patterns"].items()}
        self.remote_monitors[origin] = state["monitors"]

    def _peer_sub(self, origin, args):
        _apply_delta(self.remote_channels.setdefault(origin, {}), args[0], int(args[1]))

    def _peer_psub(self, origin, args):
        _apply_delta(self.remote_patterns.setdefault(origin, {}), args[0], int(args[1]))

    def _peer_monitors(self, origin, args):
        self.remote_monitors[origin] = int(args[0])


def _apply_delta(counts, name, delta):
    value = counts.get(name, 0) + delta
    if value > 0:
        counts[name] = value
    else:
        counts.pop(name, None)
