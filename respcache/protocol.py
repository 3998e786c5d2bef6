"""One client connection: RESP parsing (hiredis), dispatch, pipelined replies.

The hot path is data_received -> _drain -> execute -> handler: the replies for everything one read
delivered are joined and written once. A handler returns the encoded reply as bytes, or an
asyncio.Future when the reply comes later (a downstream fetch, DEBUG SLEEP); the connection then
stops taking commands from its parser until the future is done, so replies keep request order.
"""

from __future__ import annotations

import asyncio
import time

import hiredis

from . import errors, request_limits, resp
from .commands.registry import PLAIN_COMMANDS
from ._fastpath import run as run_plain, scan_headers
from .dispatch import Dispatch, type_char
from .inline import InlineParser

_STAR = 42  # b"*"
_NOTHING = {}
_COMPACT_AT = 64  # chunks of an unbroken request stream kept before compacting them


class Connection(Dispatch, asyncio.Protocol):
    """State of one client, as Redis keeps it in its `client` struct."""

    def __init__(self, server):
        self.server = server
        self.table = server.keyspace.table
        self.keyspace = server.keyspace
        self.id = server.next_client_id()
        self.reader = hiredis.Reader()
        self.transport = None
        self.proto = 2
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.authenticated = not server.acl.default_needs_auth()
        self.user = "default"
        # The ACL user when it is restricted; None (unrestricted) keeps the hot path to one test.
        self.acl_user = None if server.acl.users["default"].unrestricted() else \
            server.acl.users["default"]
        self.db = 0
        self.multi = None          # list of queued argv while in MULTI
        self.multi_failed = False  # a queued command was rejected: EXEC aborts
        self.watched = None        # {key: version} while WATCHing
        # dicts as ordered sets: UNSUBSCRIBE with no argument answers in subscription order
        self.channels = {}
        self.patterns = {}
        self.monitor = False
        self.no_evict = False
        self.closing = False
        self.blocked = None        # the Future a deferred reply waits on
        self.paused_for_writes = False
        self.created = time.time()
        self.last_interaction = time.monotonic()
        self.last_command = b"NULL"
        self.addr = "?"
        self.laddr = "?"
        self.kind = "tcp"
        self._idle = True          # the parser holds no partial request
        self._inline = None        # InlineParser while a client types inline commands
        # What hiredis was fed since it last stood at a command boundary: enough to find where
        # a stray empty line sits (see _recover).
        self._unparsed = []
        self._compact_at = _COMPACT_AT
        self._walk = None          # request_limits.Walk over _unparsed, once a check needed one
        self._scan_state = -2      # fastpath.scan_headers' state between reads
        self._out = []             # replies of the batch being run (protocol_error sends them)

    # ---- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.addr, self.laddr, self.kind = _addresses(transport)
        refusal = self.server.admit(self)
        if refusal is not None:
            transport.write(refusal)
            self.closing = True
            transport.close()
            return
        self.server.clients[self.id] = self

    def connection_lost(self, exc):
        self.closing = True
        self.server.forget(self)
        if self.blocked is not None:
            self.blocked.cancel()

    def pause_writing(self):
        # The peer does not read its replies: stop reading its requests until it catches up.
        self.paused_for_writes = True
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()

    def resume_writing(self):
        self.paused_for_writes = False
        if self.blocked is None and not self.closing:
            self.transport.resume_reading()

    def data_received(self, data):
        # The cron's coarse clock: idle timeouts are in seconds, a syscall per read is not needed.
        server = self.server
        self.last_interaction = server.clock
        server.stats_net_input_bytes += len(data)  # per read, not per request
        if self._inline is None and not (self._idle and data[0] != _STAR):
            if not self.authenticated:
                data = request_limits.feed_unauthenticated(self, data)
            else:
                data = self._feed(data)
            if data is None:
                return
        self._hand_over(data, inline=True)

    def _hand_over(self, data, inline):
        """Pass bytes between the two parsers until one of them keeps the rest.

        A loop, not the parsers calling each other: a stream that switches between inline and
        RESP at every line must not grow the stack. Each turn consumes at least one line.
        """
        while data is not None and not self.closing:
            if inline:
                data = self._feed_inline(data)
            elif not self.authenticated:
                data = request_limits.feed_unauthenticated(self, data)
            else:
                data = self._feed(data)
            inline = not inline

    def _feed(self, data):
        """hiredis takes what came; returns what _drain returns.

        First, a look for aggregate headers (`*N`, and `%~>|` which no request may hold) whose
        count hiredis would allocate up front: freeing a list of 2^31 slots stalled the server
        for seconds. The C scan costs a few memchr passes per read, not per request.
        """
        bad, kind, self._scan_state = scan_headers(data, -2 if self._idle else self._scan_state,
                                                   request_limits.MAX_AGGREGATE)
        if bad >= 0:
            # What came before the header runs first, as Redis runs it; then the error.
            if bad:
                self.reader.feed(data[:bad])
                self._idle = False
                self._unparsed.append(data[:bad])
                self._drain()
            if not self.closing:
                self.protocol_error(errors.PROTO_MULTIBULK if kind == _STAR
                                    else errors.PROTO_EXPECTED_DOLLAR.format(chr(kind)))
            return None
        self.reader.feed(data)
        self._idle = False
        self._unparsed.append(data)
        return self._drain()

    # ---- parsing -----------------------------------------------------------------------------
    def _drain(self):
        """Run every complete command the parser holds; write their replies in one go.
        Returns the bytes the inline parser must take over (see _recover), or None.

        On a plain connection (Dispatch.plain) data commands run in respcache._fastpath.run, a
        C loop: lookup, arity, the downstream hook, the handler, one clock read per command
        (the interval since the previous one, parsing included), the counters. It hands back
        whatever it does not take; that runs here through execute(), after which the plain
        state is looked at again.
        """
        reader = self.reader
        server = self.server
        self._out = out = []
        while True:
            try:
                got = run_plain(self, reader, out, PLAIN_COMMANDS if self.plain() else _NOTHING,
                                server.miss_handler, server.slowlog_threshold_usec, server)
            except hiredis.ProtocolError as exc:
                self._flush(out)
                rest = self._recover(str(exc))
                if rest is None:
                    self.protocol_error(request_limits.redis_error(self) or
                                        request_limits.hiredis_error_text(str(exc)))
                return rest
            if got is True:
                self._at_boundary()
                break
            if got is False:  # the rest is part of a request: wait for more
                if len(self._unparsed) > self._compact_at:
                    self._compact_history()
                refused = request_limits.check_incomplete(self)
                if refused is not None:
                    self.protocol_error(refused)
                    return
                if reader.len() > 65536:
                    self._check_query_limits(reader.len(), out)
                break
            if got is None:  # closed by a protocol error
                return
            if got.__class__ is not tuple:
                self._defer(got, out)
                return
            reply = self._general(got[0])
            if self.closing:
                return
            if reply.__class__ is not bytes:
                self._defer(reply, out)
                return
            if reply[:1] == b"-":
                server.count_error_reply(reply)
            out.append(reply)
            # Asked after each request, as run() does (see there).
            if not reader.has_data():
                self._at_boundary()
                break
        self._flush(out)

    def _defer(self, future, out):
        """A reply that comes later: send what is ready, stop reading until it is done."""
        self._flush(out)
        if not self.reader.has_data():
            self._at_boundary()
        self._wait_for(future)

    def _general(self, args):
        """A request the short path does not take: ignored, refused or run by execute()."""
        if args is None or args == []:
            return b""  # *-1 and *0 are ignored, as Redis does
        if args.__class__ is not list:
            self.protocol_error(errors.PROTO_EXPECTED_DOLLAR.format(type_char(args)))
            return b""
        return self.execute(args)

    def _at_boundary(self):
        """The parser holds no partial request: what _recover would need can go."""
        self._idle = True
        self._unparsed.clear()
        self._compact_at = _COMPACT_AT
        self._walk = None

    def _consumed(self) -> int:
        """Bytes of the complete requests in `_unparsed` (parsed again to count them: only a
        stream error or a long unbroken stream pays for this; the hot path keeps nothing)."""
        return request_limits.complete_bytes(self._unparsed)

    def _compact_history(self):
        """Keep only the bytes after the last complete command (bounded memory on long streams).

        A single request bigger than many reads (a large SET) compacts to nothing: the next
        try waits for twice as many chunks, so the copying stays linear in the request size.
        """
        consumed = self._consumed()
        self._unparsed = [b"".join(self._unparsed)[consumed:]]
        self._compact_at = _COMPACT_AT if consumed else self._compact_at * 2
        if self._walk is not None:
            self._walk.rebase(self._unparsed, consumed)

    def _recover(self, error: str) -> bytes | None:
        """hiredis met a byte that cannot start a RESP request where a command should begin.

        Redis reads such a line as an inline command (an empty line is ignored): redis-cli --pipe
        sends a CRLF before its closing ECHO, often in the same read as the last commands. Find
        where the last complete command ended and return the rest for the inline parser, which
        gives RESP back to a fresh hiredis reader at the next '*'.
        None when the bad byte is inside a request (the rest starts with '*'): that is a
        protocol error. A negative count (`*-5`) hiredis refuses; Redis ignores it: the rest
        after its line goes on the same way.
        """
        if "reply type byte" in error:
            rest = b"".join(self._unparsed)[self._consumed():]
            if not rest or rest[0] == _STAR:
                return None
        elif "Multi-bulk length out of range" in error:
            rest = b"".join(self._unparsed)[self._consumed():]
            cr = rest.find(b"\r")
            count = request_limits.string2ll(rest[1:cr]) if rest[:2] == b"*-" and cr > 0 else None
            if count is None or count >= 0 or len(rest) < cr + 2:
                return None
            rest = rest[cr + 2:]
        else:
            return None
        self.reader = hiredis.Reader()
        self._unparsed = []
        self._compact_at = _COMPACT_AT
        self._walk = None
        self._idle = True
        return rest

    def _check_query_limits(self, pending, out):
        """A request still incomplete after this many bytes: enforce Redis's two limits."""
        values = self.server.config.values
        if pending > values["proto-max-bulk-len"] + 1024:
            self._flush(out)
            self.protocol_error(errors.PROTO_BULK)
        elif pending > values["client-query-buffer-limit"]:
            self._flush(out)
            self.server.log.warning(
                "Closing client that reached max query buffer length: id=%d addr=%s",
                self.id, self.addr)
            self.close()

    def _feed_inline(self, data):
        """Run inline commands; returns the bytes hiredis must take over (from a line starting
        with '*'), or None."""
        if self._inline is None:
            self._inline = InlineParser(self.server.config.values["client-query-buffer-limit"])
        self._out = out = []
        try:
            for args, rest in self._inline.feed(data):
                if rest is not None:
                    # The client switched to RESP (a line starting with '*'): hiredis takes over.
                    self._inline = None
                    self._flush(out)
                    return rest
                if args:
                    reply = self.execute(args)
                    if reply.__class__ is bytes:
                        if reply[:1] == b"-":
                            self.server.count_error_reply(reply)
                        out.append(reply)
                    else:
                        self._flush(out)
                        self._wait_for(reply)
                        return
                if self.closing:
                    break
        except errors.ProtocolError as exc:
            self._flush(out)
            self.protocol_error(str(exc))
            return
        if self._inline is not None and self._inline.empty():
            self._inline = None
            self._idle = True
        self._flush(out)

    def _flush(self, out):
        if out and not self.closing:
            self._write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def _write(self, data):
        self.server.stats_net_output_bytes += len(data)
        self.transport.write(data)

    def _wait_for(self, future):
        self.blocked = future
        self.transport.pause_reading()
        future.add_done_callback(self._deferred_done)

    def _deferred_done(self, future):
        self.blocked = None
        if self.closing:
            return
        if future.cancelled():
            reply = resp.error("ERR command cancelled")
        elif future.exception() is not None:
            exc = future.exception()
            reply = resp.error(str(exc) if isinstance(exc, errors.CommandError)
                               else "ERR " + str(exc))
        else:
            reply = future.result()
        if reply[:1] == b"-":
            self.server.count_error_reply(reply)
        self._write(reply)
        if self._inline is not None:
            pending, self._inline = self._inline, None
            rest = pending.take_rest()
            if rest:
                self._hand_over(rest, inline=True)
        else:
            self._hand_over(self._drain(), inline=True)
        if self.blocked is None and not self.closing and not self.paused_for_writes:
            self.transport.resume_reading()

    # ---- output used by pub/sub, MONITOR and the server ---------------------------------------
    def send(self, data: bytes):
        """Out-of-band output (messages, monitor lines); enforces the output buffer limit."""
        if self.closing:
            return
        self._write(data)
        limit = self.server.pubsub_output_limit
        if limit and self.transport.get_write_buffer_size() > limit:
            self.server.log.warning(
                "Client id=%d addr=%s scheduled to be closed ASAP for overcoming of output buffer "
                "limits.", self.id, self.addr)
            self.abort()

    def protocol_error(self, message: str):
        if message.startswith("Protocol error: expected '$'"):
            # Guessed from a parsed argument (None stands for $-1, *-1 and _): the raw bytes
            # tell what Redis meets first.
            message = request_limits.redis_error(self) or message
        self.server.log.verbose("Protocol error (%s) from client: id=%d addr=%s",
                                message, self.id, self.addr)
        if not self.closing:
            # Replies to the requests before the bad one go first, as Redis sends them.
            self._flush(self._out)
            # surrogateescape: the byte in "got '%c'" goes out raw, as Redis sends it
            self._write(b"-ERR " + message.encode("utf-8", "surrogateescape") + b"\r\n")
        self.close()

    def close(self):
        """Close after what is buffered was written (QUIT, CLIENT KILL, protocol errors)."""
        if not self.closing:
            self.closing = True
            self.transport.close()

    def abort(self):
        """Drop at once, unsent output included: a peer that does not read must not hold memory
        (or its subscriptions) until it does."""
        self.closing = True
        self.server.forget(self)
        self.transport.abort()

    def subscriptions(self) -> int:
        return len(self.channels) + len(self.patterns)


def _addresses(transport):
    peer = transport.get_extra_info("peername")
    sock = transport.get_extra_info("sockname")
    if isinstance(peer, tuple):
        host = peer[0]
        fmt = "[{}]:{}" if ":" in host else "{}:{}"
        return fmt.format(host, peer[1]), fmt.format(sock[0], sock[1]), "tcp"
    return f"{sock or ''}:0", f"{sock or ''}:0", "unix"
