"""What MONITOR and SLOWLOG show of a command: Redis's redaction and quoting, and the set of
monitors whose size the other workers follow."""

from __future__ import annotations

import time

REDACTED = b"(redacted)"
# CONFIG SET parameters Redis 7.0 flags SENSITIVE_CONFIG (its tls-*-pass ones are not).
SENSITIVE_CONFIGS = frozenset((b"requirepass", b"masterauth", b"masteruser"))


def redact_args(args: list) -> list:
    """args as MONITOR and SLOWLOG show them: the arguments Redis 7.0's commands pass to
    redactClientCommandArgument replaced by "(redacted)" -- AUTH's, HELLO's AUTH pairs, the
    values of sensitive CONFIG SET parameters and everything after ACL SETUSER. Each command
    redacts as it runs, so a form it refuses first (AUTH with 4 arguments, HELLO 4 ...,
    CONFIG SET with an odd count) keeps its plaintext, as in Redis."""
    if len(args) < 2:
        return args
    name = args[0].lower()
    if name == b"auth":
        if len(args) > 3:
            return args
        return [args[0]] + [REDACTED] * (len(args) - 1)
    if name == b"hello":
        if args[1] not in (b"2", b"3"):  # no protocol version: HELLO stops there
            return args
        shown = list(args)
        j, last = 2, len(args) - 1
        while j <= last:
            opt = args[j].lower()
            if opt == b"auth" and last - j >= 2:
                shown[j + 1] = shown[j + 2] = REDACTED
                j += 3
            elif opt == b"setname" and last - j >= 1:
                j += 2
            else:  # a syntax error: HELLO reads no further
                break
        return shown
    if name == b"config":
        if args[1].lower() != b"set" or len(args) < 4 or len(args) % 2:
            return args
        shown = list(args)
        for i in range(2, len(args), 2):
            if args[i].lower() in SENSITIVE_CONFIGS:
                shown[i + 1] = REDACTED
        return shown
    if name == b"acl":
        if args[1].lower() != b"setuser" or len(args) < 3:
            return args
        return [args[0], args[1]] + [REDACTED] * (len(args) - 2)
    return args


def _monitor_repr(arg: bytes) -> str:
    out = ['"']
    for b in arg:
        ch = chr(b)
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append("\\x%02x" % b)
    out.append('"')
    return "".join(out)


def monitor_line(conn, args) -> bytes | None:
    """The MONITOR line for a command that ran (None when it ran nothing: a protocol error)."""
    if not all(a.__class__ is bytes for a in args):
        return None
    line = "+%.6f [0 %s] %s\r\n" % (
        time.time(), conn.addr if conn.kind == "tcp" else "unix:" + conn.laddr[:-2],
        " ".join(_monitor_repr(a) for a in redact_args(args)))
    return line.encode()


def slowlog_args(args) -> list | None:
    """The arguments a SLOWLOG entry keeps: redacted, 32 at most, each cut at 128 bytes."""
    if not all(a.__class__ is bytes for a in args):  # a protocol error ran nothing
        return None
    args = redact_args(args)
    shown = [a[:128] + (b"... (%d more bytes)" % (len(a) - 128) if len(a) > 128 else b"")
             for a in args[:31]]
    if len(args) > 32:
        shown.append(b"... (%d more arguments)" % (len(args) - 31))
    elif len(args) == 32:
        shown.append(args[31][:128])
    return shown


class CallbackSet(set):
    """A set that reports additions and removals (the monitor count crosses workers)."""

    def __init__(self, on_change):
        super().__init__()
        self.on_change = on_change

    def add(self, item):
        if item not in self:
            super().add(item)
            self.on_change()

    def discard(self, item):
        if item in self:
            super().discard(item)
            self.on_change()
