"""`RESPCACHE <sub> ...`: the internal commands every tier speaks, in one namespace.

They show up in COMMAND and can be tried by hand:
    redis-cli -p 7879 RESPCACHE TOPOLOGY
    redis-cli -p 7879 RESPCACHE FETCH session:1 session:2
    redis-cli -p 7879 RESPCACHE PUSH me S k v 0 0          (op key value type expire-at-ms)
"""

from __future__ import annotations

from respcache import resp
from respcache.commands.registry import container, subcommand
from respcache.errors import CommandError

from .link import decode_records

RESPCACHE = container("respcache", -2, "", group="server",
                      summary="respcache tier fabric: FETCH PUSH JOIN LEAVE TOPOLOGY INFO")

HELP = [
    "RESPCACHE <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "FETCH <key> [<key> ...]",
    "    Each key as [value, type, expire-at-ms] or nil; relays ask their relief nodes.",
    "PUSH <origin> [<op> <key> <value> <type> <expire-at-ms> ...]",
    "    Apply records in order. op: S write, D delete, E demotion, P hand-off, A aged.",
    "JOIN <kind> <host> <port>",
    "    (relay) Join the ring as a relief node; the connection stays open, topology pushed on it.",
    "LEAVE <host:port>",
    "    (relay) Take a relief node out of the ring before it hands its objects over.",
    "TOPOLOGY",
    "    [role, ring epoch, replicas, [[member, kind, state], ...]].",
    "INFO",
    "    The 'tiers' INFO section.",
    "HELP",
    "    Print this help.",
]


def tier_of(conn):
    for ext in conn.server.extensions:
        if getattr(ext, "role", None) in ("edge", "relay", "relief"):
            return ext
    raise CommandError("ERR this server runs no tier")


def _need(conn, role, name):
    tier = tier_of(conn)
    roles = role if isinstance(role, tuple) else (role,)
    if tier.role not in roles:
        raise CommandError(f"ERR RESPCACHE {name} is served by {' and '.join(roles)} nodes; "
                           f"this node is a {tier.role}")
    return tier


def encode_nested(value) -> bytes:
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(encode_nested(v) for v in value)
    if isinstance(value, int):
        return resp.integer(value)
    if isinstance(value, str):
        value = value.encode()
    return resp.bulk(value)


@subcommand(RESPCACHE, "fetch", -3, "readonly", summary="Look keys up in this tier and below")
def fetch(conn, args):
    tier = _need(conn, ("relay", "relief"), "FETCH")
    return tier.fetch(args[2:])


@subcommand(RESPCACHE, "push", -3, "write", summary="Apply a batch of change records")
def push(conn, args):
    tier = _need(conn, ("relay", "relief"), "PUSH")
    try:
        records = decode_records(args, 3)
    except ValueError as exc:
        raise CommandError(f"ERR {exc}") from None
    return tier.push(args[2], records)


@subcommand(RESPCACHE, "join", 5, "admin", summary="Join the relay's ring as a relief node")
def join(conn, args):
    tier = _need(conn, "relay", "JOIN")
    kind = args[2].lower().decode()
    if kind not in ("aging", "expansion"):
        raise CommandError("ERR relief kind must be 'aging' or 'expansion'")
    try:
        port = int(args[4])
    except ValueError:
        raise CommandError("ERR port must be a number") from None
    return tier.join(conn, kind, args[3].decode(), port)


@subcommand(RESPCACHE, "leave", 3, "admin", summary="Take a relief node out of the ring")
def leave(conn, args):
    tier = _need(conn, "relay", "LEAVE")
    return resp.ONE if tier.leave(args[2].decode()) else resp.ZERO


@subcommand(RESPCACHE, "topology", 2, "", summary="Ring members as this node sees them")
def topology(conn, args):
    tier = tier_of(conn)
    if tier.role == "edge":
        return encode_nested([b"edge", 0, 0, []])
    return encode_nested(tier.topology())


@subcommand(RESPCACHE, "info", 2, "", summary="The tiers INFO section")
def info(conn, args):
    tier = tier_of(conn)
    lines = ["# Tiers"]
    for name, value in tier.info(conn.server)["tiers"]:
        lines.append(f"{name}:{value}")
    return resp.verbatim(("\r\n".join(lines) + "\r\n").encode(), conn.proto)


@subcommand(RESPCACHE, "help", 2, "", summary="Show helpful text about the subcommands")
def help_(conn, args):
    return encode_nested([line.encode() for line in HELP])
