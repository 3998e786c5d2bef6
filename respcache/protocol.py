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

from . import errors, resp
from .commands.registry import COMMANDS
from .inline import InlineParser

_STAR = 42  # b"*"
_clock_ns = time.perf_counter_ns
_EMPTY = ()


class Connection(asyncio.Protocol):
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
        # What hiredis was fed, and the commands it gave back, since it last stood at a command
        # boundary: enough to find where a stray empty line sits (see _recover).
        self._hist_chunks = []
        self._hist_cmds = []

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
        self.last_interaction = self.server.clock
        if self._inline is not None or (self._idle and data[0] != _STAR):
            self._feed_inline(data)
            return
        self.reader.feed(data)
        self._idle = False
        self._hist_chunks.append(data)
        self._drain()

    # ---- parsing -----------------------------------------------------------------------------
    def _drain(self):
        reader = self.reader
        out = []
        while not self.closing:
            try:
                args = reader.gets()
            except hiredis.ProtocolError as exc:
                self._flush(out)
                if not self._recover(str(exc)):
                    self.protocol_error(_map_hiredis_error(str(exc)))
                return
            if args is False:
                pending = reader.len()
                if pending > 65536:
                    self._check_query_limits(pending, out)
                break
            if args.__class__ is not list or not args:
                if args is None or args == []:
                    # *-1 and *0 are ignored, as Redis does.
                    if not reader.has_data():
                        self._idle = True
                        break
                    continue
                self._flush(out)
                self.protocol_error(errors.PROTO_EXPECTED_DOLLAR.format(_type_char(args)))
                return
            self._hist_cmds.append(args)
            reply = self.execute(args)
            if reply.__class__ is bytes:
                out.append(reply)
            else:
                self._flush(out)
                self._wait_for(reply)
                return
            if not reader.has_data():
                self._idle = True
                self._hist_chunks.clear()
                self._hist_cmds.clear()
                break
            if len(self._hist_cmds) > 256:
                self._compact_history()
        self._flush(out)

    def _compact_history(self):
        """Keep only the bytes after the last complete command (bounded memory on long streams)."""
        consumed = sum(map(_encoded_size, self._hist_cmds))
        self._hist_chunks = [b"".join(self._hist_chunks)[consumed:]]
        self._hist_cmds.clear()

    def _recover(self, error: str) -> bool:
        """hiredis met a byte that cannot start a RESP reply where a command should begin.

        Redis reads such a line as an inline command (an empty line is ignored): redis-cli --pipe
        sends a CRLF before its closing ECHO, often in the same read as the last commands. Find
        where the last complete command ended, then hand the rest to the inline parser, which
        gives RESP back to a fresh hiredis reader at the next '*'.
        """
        if "reply type byte" not in error:
            return False
        consumed = sum(map(_encoded_size, self._hist_cmds))
        rest = b"".join(self._hist_chunks)[consumed:]
        self.reader = hiredis.Reader()
        self._hist_chunks, self._hist_cmds = [], []
        self._idle = True
        if rest:
            self._feed_inline(rest)
        return True

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
        if self._inline is None:
            self._inline = InlineParser(self.server.config.values["client-query-buffer-limit"])
        out = []
        try:
            for args, rest in self._inline.feed(data):
                if rest is not None:
                    # The client switched to RESP (a line starting with '*'): hiredis takes over.
                    self._inline = None
                    self._flush(out)
                    self.reader.feed(rest)
                    self._hist_chunks.append(rest)
                    self._idle = False
                    self._drain()
                    return
                if args:
                    reply = self.execute(args)
                    if reply.__class__ is bytes:
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
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

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
        self.transport.write(reply)
        if self._inline is not None:
            pending, self._inline = self._inline, None
            rest = pending.take_rest()
            if rest:
                self._feed_inline(rest)
        else:
            self._drain()
        if self.blocked is None and not self.closing and not self.paused_for_writes:
            self.transport.resume_reading()

    # ---- dispatch ----------------------------------------------------------------------------
    def execute(self, args):
        """Run one command; returns the encoded reply (bytes) or a Future of it."""
        name = args[0]
        cmd = COMMANDS.get(name)
        if cmd is None:
            if name.__class__ is not bytes:
                self.protocol_error(errors.PROTO_EXPECTED_DOLLAR.format(_type_char(name)))
                return b""
            cmd = COMMANDS.get(name.lower())
            if cmd is None:
                if self.multi is not None:
                    self.multi_failed = True
                return resp.error(errors.unknown_command(name, args[1:]))
        arity = cmd.arity
        if (len(args) != arity) if arity > 0 else (len(args) < -arity):
            if self.multi is not None:
                self.multi_failed = True
            return resp.error(errors.wrong_arity(cmd.name))
        if not self.authenticated and not cmd.noauth:
            if self.multi is not None:
                self.multi_failed = True
            return resp.error(errors.NOAUTH)
        if self.acl_user is not None:
            denied = self.acl_denied(cmd, args)
            if denied is not None:
                if self.multi is not None:
                    self.multi_failed = True
                return denied
        if self.multi is not None and not cmd.runs_in_multi:
            self.multi.append((cmd, args))
            return resp.QUEUED
        if (self.channels or self.patterns) and self.proto == 2 and not cmd.pubsub_ok:
            return resp.error(errors.PUBSUB_CONTEXT.format(cmd.name))
        if cmd.first_key and self.server.miss_handler is not None:
            # A tier below may hold keys this table lacks: it fetches them first (a Future), or
            # returns None when there is nothing to fetch and the command runs now.
            deferred = self.server.miss_handler.before_command(self, cmd, args)
            if deferred is not None:
                return deferred
        return self.call(cmd, args)

    def call(self, cmd, args):
        """Invoke a resolved command: monitors, slowlog and stats wrap the handler."""
        server = self.server
        if server.monitors or server.bus is not None and server.monitoring():
            server.feed_monitors(self, args)
        self.last_command = cmd.name
        start = _clock_ns()
        try:
            reply = cmd.handler(self, args)
        except errors.CommandError as exc:
            reply = resp.error(str(exc))
        except (TypeError, AttributeError) as exc:
            if any(a.__class__ is not bytes for a in args):
                self.protocol_error(errors.PROTO_EXPECTED_DOLLAR.format(
                    next(_type_char(a) for a in args if a.__class__ is not bytes)))
                return b""
            server.log.exception("internal error in %s", cmd.fullname)
            reply = resp.error(f"ERR internal error in '{cmd.fullname}': {exc}")
        except Exception as exc:  # a bug must cost one reply, never the connection or the server
            server.log.exception("internal error in %s", cmd.fullname)
            reply = resp.error(f"ERR internal error in '{cmd.fullname}': {exc}")
        usec = (_clock_ns() - start) // 1000
        cmd.calls += 1
        cmd.usec += usec
        server.stats_commands += 1
        if usec >= server.slowlog_threshold_usec >= 0:
            server.slowlog_add(self, args, usec)
        return reply

    def acl_denied(self, cmd, args):
        user = self.acl_user
        if not user.may_run(cmd, args):
            name = cmd.name if not cmd.subcommands or len(args) < 2 else \
                f"{cmd.name}|{args[1].decode('utf-8', 'replace').lower()}"
            return resp.error(errors.NOPERM_COMMAND.format(name))
        for key in cmd.keys(args):
            if not user.may_access(key):
                return resp.error(errors.NOPERM_KEY)
        return None

    def log_in(self, user):
        self.authenticated = True
        self.user = user.name
        self.acl_user = None if user.unrestricted() else user

    # ---- output used by pub/sub, MONITOR and the server ---------------------------------------
    def send(self, data: bytes):
        """Out-of-band output (messages, monitor lines); enforces the output buffer limit."""
        if self.closing:
            return
        self.transport.write(data)
        limit = self.server.pubsub_output_limit
        if limit and self.transport.get_write_buffer_size() > limit:
            self.server.log.warning(
                "Client id=%d addr=%s scheduled to be closed ASAP for overcoming of output buffer "
                "limits.", self.id, self.addr)
            self.abort()

    def protocol_error(self, message: str):
        self.server.log.verbose("Protocol error (%s) from client: id=%d addr=%s",
                                message, self.id, self.addr)
        if not self.closing:
            self.transport.write(resp.error("ERR " + message))
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


def _encoded_size(args) -> int:
    """Bytes of a command as RESP: *N CRLF, then $len CRLF data CRLF per argument."""
    size = len(str(len(args))) + 3
    for arg in args:
        n = len(arg)
        size += n + len(str(n)) + 5
    return size


def _addresses(transport):
    peer = transport.get_extra_info("peername")
    sock = transport.get_extra_info("sockname")
    if isinstance(peer, tuple):
        host = peer[0]
        fmt = "[{}]:{}" if ":" in host else "{}:{}"
        return fmt.format(host, peer[1]), fmt.format(sock[0], sock[1]), "tcp"
    return f"{sock or ''}:0", f"{sock or ''}:0", "unix"


def _type_char(value) -> str:
    if isinstance(value, int):
        return ":"
    if isinstance(value, list):
        return "*"
    if value is None:
        return "$"
    if isinstance(value, Exception):
        return "-"
    return "+"


def _map_hiredis_error(text: str) -> str:
    if "multi-bulk" in text:
        return errors.PROTO_MULTIBULK
    if "Bulk string length" in text or "bulk" in text.lower():
        return errors.PROTO_BULK
    if "reply type byte" in text:
        got = text.split('"')[1] if '"' in text else "?"
        return errors.PROTO_EXPECTED_DOLLAR.format(got)
    return "Protocol error: " + text
