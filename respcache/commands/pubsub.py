"""Pub/sub commands: SUBSCRIBE and friends, PUBLISH, PUBSUB introspection.

Confirmations are arrays in RESP2 and push messages in RESP3, exactly as Redis sends them. With
`workers N`, PUBLISH reaches every worker's subscribers (server.publish) and PUBSUB answers from
this worker's subscriptions plus what the other workers reported over the bus.
"""

from __future__ import annotations

from .. import errors, resp
from ..errors import CommandError
from ..glob import glob_match
from .registry import command, container, subcommand

_KINDS = {name: resp.bulk(name) for name in
          (b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe")}


def _confirm(conn, kind: bytes, name, count: int) -> bytes:
    head = b">3\r\n" if conn.proto == 3 else b"*3\r\n"
    subject = resp.NIL[conn.proto] if name is None else resp.bulk(name)
    return head + _KINDS[kind] + subject + resp.integer(count)


def _subscribe(conn, names, kind: bytes, add) -> bytes:
    out = []
    for name in names:
        add(conn, name)
        out.append(_confirm(conn, kind, name, conn.subscriptions()))
    return b"".join(out)


def _unsubscribe(conn, names, current, kind: bytes, remove) -> bytes:
    if not names:
        names = list(current)
        if not names:
            return _confirm(conn, kind, None, conn.subscriptions())
    out = []
    for name in names:
        remove(conn, name)
        out.append(_confirm(conn, kind, name, conn.subscriptions()))
    return b"".join(out)


@command("subscribe", -2, "pubsub noscript loading stale pubsub-ok", group="pubsub")
def subscribe(conn, args):
    return _subscribe(conn, args[1:], b"subscribe", conn.server.pubsub.subscribe)


@command("unsubscribe", -1, "pubsub noscript loading stale pubsub-ok", group="pubsub")
def unsubscribe(conn, args):
    return _unsubscribe(conn, args[1:], conn.channels, b"unsubscribe",
                        conn.server.pubsub.unsubscribe)


@command("psubscribe", -2, "pubsub noscript loading stale pubsub-ok", group="pubsub")
def psubscribe(conn, args):
    return _subscribe(conn, args[1:], b"psubscribe", conn.server.pubsub.psubscribe)


@command("punsubscribe", -1, "pubsub noscript loading stale pubsub-ok", group="pubsub")
def punsubscribe(conn, args):
    return _unsubscribe(conn, args[1:], conn.patterns, b"punsubscribe",
                        conn.server.pubsub.punsubscribe)


@command("publish", 3, "pubsub loading stale fast", group="pubsub")
def publish(conn, args):
    return resp.integer(conn.server.publish(args[1], args[2]))


PUBSUB = container("pubsub", -2, "", group="pubsub")


def _all_channel_counts(server) -> dict:
    counts = {channel: len(conns) for channel, conns in server.pubsub.channels.items()}
    if server.bus is not None:
        for channels in server.bus.remote_channels.values():
            for channel, count in channels.items():
                counts[channel] = counts.get(channel, 0) + count
    return counts


@subcommand(PUBSUB, "channels", -2)
def pubsub_channels(conn, args):
    if len(args) > 3:  # Redis takes at most one pattern and answers with its generic text
        raise CommandError(errors.SUBCOMMAND_SYNTAX.format(args[1].decode("utf-8", "replace"),
                                                           "PUBSUB"))
    pattern = args[2] if len(args) > 2 else None
    names = [c for c, n in _all_channel_counts(conn.server).items()
             if n and (pattern is None or glob_match(pattern, c))]
    return resp.bulk_array(names)


@subcommand(PUBSUB, "numsub", -2)
def pubsub_numsub(conn, args):
    counts = _all_channel_counts(conn.server)
    parts = []
    for channel in args[2:]:
        parts.append(resp.bulk(channel))
        parts.append(resp.integer(counts.get(channel, 0)))
    return resp.array(parts)  # an array in RESP3 too, as Redis 7.0 answers


@subcommand(PUBSUB, "numpat", 2)
def pubsub_numpat(conn, args):
    patterns = set(conn.server.pubsub.patterns)
    if conn.server.bus is not None:
        for remote in conn.server.bus.remote_patterns.values():
            patterns.update(p for p, n in remote.items() if n)
    return resp.integer(len(patterns))


@subcommand(PUBSUB, "help", 2)
def pubsub_help(conn, args):
    lines = ["PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             "CHANNELS [<pattern>]",
             "    Return the currently active channels matching a <pattern> (default: '*').",
             "NUMPAT", "    Return number of subscriptions to patterns.",
             "NUMSUB [<channel> ...]",
             "    Return the number of subscribers for the specified channels, excluding",
             "    pattern subscriptions(default: no channels).",
             "HELP", "    Print this help."]
    return resp.array([resp.simple(line) for line in lines])
