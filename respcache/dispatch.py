"""Command dispatch for a connection: the checks Redis's processCommand makes, then the call.

`execute` is the general path: lookup, arity, authentication, ACL, MULTI queueing, the RESP2
subscribed-context rule, the downstream miss hook, and `call` (monitors, timing, stats).

`Connection._drain` (protocol.py) has a shorter path for a connection in the plain state (see
`plain()`) running a data command (`Command.plain`): none of those checks can refuse or divert
it there, so it goes from lookup and arity straight to the handler and does its own counting.
Anything else comes here, and the plain state is looked at again afterwards.
"""

from __future__ import annotations

import time

from . import _fastpath, errors, resp
from .commands.registry import COMMANDS
from .commands.transactions import discard_transaction

clock_ns = time.perf_counter_ns


class Dispatch:
    """Mixed into Connection: everything between a parsed argv and its encoded reply."""

    def plain(self) -> bool:
        """True when no check of `execute` can apply to a data command on this connection:
        authenticated, allowed every command and key (channel rules never concern the data
        commands the C loop runs), not in MULTI, not subscribed, nobody MONITORing."""
        server = self.server
        user = self.acl_user
        return (self.authenticated and (user is None or (user.all_commands and user.all_keys))
                and self.multi is None and not self.channels and not self.patterns
                and not server.monitors and (server.bus is None or not server.monitoring()))

    def execute(self, args):
        """Run one command; returns the encoded reply (bytes) or a Future of it."""
        name = args[0]
        if name.__class__ is not bytes:  # a nested array or a number where the name should be
            self.protocol_error(errors.PROTO_EXPECTED_DOLLAR.format(type_char(name)))
            return b""
        cmd = COMMANDS.get(name)
        if cmd is None:
            cmd = COMMANDS.get(name.lower())
            if cmd is None:
                if self.multi is not None:
                    self.multi_failed = True
                return resp.error(errors.unknown_command(name, args[1:]))
        if not cmd.min_args <= len(args) <= cmd.max_args:
            return self.refuse(cmd, resp.error(errors.wrong_arity(cmd.name)))
        if cmd.subcommands and len(args) > 1 and args[1].__class__ is bytes:
            # Redis looks the subcommand up with the command: an unknown one or a wrong count
            # is refused before anything runs (MONITOR and SLOWLOG never see it; MULTI aborts).
            sub = cmd.subcommands.get(args[1].lower())
            if sub is None:
                return self.refuse(cmd, resp.error(errors.unknown_subcommand(args[1], cmd.name)))
            if not sub.min_args <= len(args) <= sub.max_args:
                return self.refuse(cmd, resp.error(errors.wrong_arity(sub.fullname)))
        if not self.authenticated and not cmd.noauth:
            return self.refuse(cmd, resp.error(errors.NOAUTH))
        if self.acl_user is not None:
            denied = self.acl_denied(cmd, args)
            if denied is not None:
                return self.refuse(cmd, denied)
        if self.multi is not None and cmd.name not in RUN_IN_MULTI:
            if cmd.name in REFUSED_IN_MULTI:
                return self.refuse(cmd, resp.error(errors.NOT_IN_TRANSACTION))
            self.multi.append((cmd, args))
            return resp.QUEUED
        if (self.channels or self.patterns) and self.proto == 2 and not cmd.pubsub_ok:
            return self.refuse(cmd, resp.error(errors.PUBSUB_CONTEXT.format(cmd.name)))
        if cmd.first_key and self.server.miss_handler is not None:
            # A tier below may hold keys this table lacks: it fetches them first (a Future), or
            # returns None when there is nothing to fetch and the command runs now.
            deferred = self.server.miss_handler.before_command(self, cmd, args)
            if deferred is not None:
                return deferred
        return self.call(cmd, args)

    def refuse(self, cmd, error: bytes) -> bytes:
        """Redis's rejectCommand: the refusal flags an open transaction, and a refused EXEC
        discards it, answering EXECABORT with the reason (without its ERR code, as Redis
        formats it; NOAUTH and NOPERM keep theirs)."""
        if cmd.name != "exec":
            if self.multi is not None:
                self.multi_failed = True
            return error
        discard_transaction(self)
        reason = error[1:-2]
        if reason.startswith(b"ERR "):
            reason = reason[4:]
        return resp.error(errors.EXECABORT_BECAUSE.format(reason.decode("utf-8", "replace")))

    def call(self, cmd, args):
        """Invoke a resolved command: monitors, slowlog and stats wrap the handler.

        As Redis 7.0's call(), MONITOR sees the command after it ran (so EXEC follows the
        commands it ran, and AUTH's password is already redacted) and never sees an admin one;
        SLOWLOG skips skip-slowlog commands (EXEC: its commands are logged one by one)."""
        server = self.server
        self.last_command = cmd.name
        start = clock_ns()
        try:
            reply = cmd.handler(self, args)
        except Exception as exc:  # a bug must cost one reply, never the connection or the server
            reply = self.handler_failed(cmd, args, exc)
        usec = (clock_ns() - start) // 1000
        _fastpath.count(cmd.index, usec)
        if usec >= server.slowlog_threshold_usec >= 0 and "skip-slowlog" not in cmd.flags:
            server.slowlog_add(self, args, usec)
        if (server.monitors or server.bus is not None and server.monitoring()) \
                and not hidden_from_monitor(cmd, args):
            server.feed_monitors(self, args)
        return reply

    def handler_failed(self, cmd, args, exc) -> bytes:
        """The reply for a handler that raised: its error, or a protocol error for arguments
        that are not bulk strings (RESP3 clients may send :1 or nested arrays)."""
        if isinstance(exc, errors.CommandError):
            return resp.error(str(exc))
        for arg in args:
            if arg.__class__ is not bytes:
                self.protocol_error(errors.PROTO_EXPECTED_DOLLAR.format(type_char(arg)))
                return b""
        # exc_info explicitly: the C loop calls this after it took the exception in hand.
        self.server.log.error("internal error in %s", cmd.fullname, exc_info=exc)
        return resp.error(f"ERR internal error in '{cmd.fullname}': {exc}")

    def acl_refusal(self, cmd, args):
        """(reason, object) when this connection's restricted user may not run the command:
        commands, then keys, then channels, as Redis checks them; None when it may."""
        user = self.acl_user
        if not user.may_run(cmd, args):
            name = cmd.name if not cmd.subcommands or len(args) < 2 else \
                f"{cmd.name}|{args[1].decode('utf-8', 'replace').lower()}"
            return "command", name.encode()
        for key in cmd.keys(args):
            if not user.may_access(key):
                return "key", key
        if not user.all_channels:
            channel = user.denied_channel(cmd, args)
            if channel is not None:
                return "channel", channel
        return None

    def acl_denied(self, cmd, args):
        """The NOPERM reply for a restricted user, recorded in ACL LOG; None when it may run."""
        refusal = self.acl_refusal(cmd, args)
        if refusal is None:
            return None
        reason, obj = refusal
        self.acl_log_denial(cmd, reason, obj)
        if reason == "command":
            return resp.error(errors.NOPERM_COMMAND.format(obj.decode("utf-8", "replace")))
        return resp.error(errors.NOPERM_KEY if reason == "key" else errors.NOPERM_CHANNEL)

    def acl_log_denial(self, cmd, reason, obj, context=None):
        self.last_command = cmd.name  # Redis's client-info shows the refused command as cmd=
        self.server.acl.log.add(self, reason, obj, self.user, context)

    def log_in(self, user):
        self.authenticated = True
        self.user = user.name
        self.acl_user = None if user.unrestricted() else user


# Inside MULTI, Redis 7.0 runs these at once (processCommand names them), refuses its no_multi
# commands and queues everything else: AUTH, HELLO, MONITOR and UNWATCH too.
RUN_IN_MULTI = frozenset(("exec", "discard", "multi", "watch", "quit", "reset"))
REFUSED_IN_MULTI = frozenset(("save", "shutdown"))

# Redis 7.0 flags these admin where respcache's table does not (DEBUG is one admin command there).
_ADMIN_AS_IN_REDIS = frozenset(("client|list", "client|no-evict"))


def hidden_from_monitor(cmd, args) -> bool:
    """True for a command Redis does not feed to MONITOR: admin or skip-monitor flagged (a
    container's subcommand by its own flags)."""
    if cmd.subcommands and len(args) > 1 and args[1].__class__ is bytes:
        cmd = cmd.subcommands.get(args[1].lower(), cmd)
    return ("admin" in cmd.flags or "skip-monitor" in cmd.flags or cmd.name == "debug"
            or (cmd.parent is not None and (cmd.parent.name == "debug"
                                            or cmd.fullname in _ADMIN_AS_IN_REDIS)))


def type_char(value) -> str:
    """The RESP type byte a non-bulk argument came as, for "expected '$', got 'x'"."""
    if isinstance(value, int):
        return ":"
    if isinstance(value, list):
        return "*"
    if value is None:
        return "$"
    if isinstance(value, Exception):
        return "-"
    return "+"
