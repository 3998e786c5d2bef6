"""Server commands: INFO CONFIG TIME LASTSAVE SHUTDOWN SLOWLOG MEMORY OBJECT WAIT DEBUG SAVE.

With `workers N` what a client sees covers every worker: INFO adds the other workers' client and
command counters, SLOWLOG gathers every worker's entries, CONFIG SET is applied everywhere.
"""

from __future__ import annotations

import math
import re
import time

from .. import errors, resp
from ..bus import across_workers, bus_op
from ..errors import CommandError
from ..keyspace import ENCODING_NAMES, HASH, STRING, decode_hash
from .args import parse_int
from .info import render_info, sampler
from .registry import command, container, reset_stats, subcommand


@command("info", -1, "loading stale", group="server")
def info(conn, args):
    sections = [a.decode("utf-8", "replace").lower() for a in args[1:]]
    server = conn.server
    return across_workers(server, b"info-counters", (), counters(server),
                          lambda local, peers: resp.verbatim(
                              render_info(server, sections, [local] + peers).encode(),
                              conn.proto))


def counters(server) -> dict:
    """What INFO sums over workers."""
    return {"clients": len(server.clients),
            "pubsub_clients": sum(1 for c in server.clients.values() if c.channels or c.patterns),
            "commands": server.stats_commands, "connections": server.stats_connections,
            "rejected": server.stats_rejected, "auth_failures": server.stats_auth_failures,
            "tls_failures": server.stats_tls_handshake_failures,
            "net_input": server.stats_net_input_bytes, "net_output": server.stats_net_output_bytes,
            "error_replies": sum(server.error_replies.values()),
            "errorstats": dict(server.error_replies),   # merged by info.sections_for
            # sampled every 100 ms from the first INFO on (info.py's _Sampler)
            "ops_per_sec": sampler(server).ops_per_sec(), "memory_peak": sampler(server).peak}


@bus_op(b"info-counters")
def _peer_counters(server, origin, args):
    return counters(server)


# ---- CONFIG ----------------------------------------------------------------------------------
CONFIG = container("config", -2, "", group="server")


@subcommand(CONFIG, "get", -3, "admin noscript loading stale")
def config_get(conn, args):
    found = {}
    for pattern in args[2:]:
        for name, value in conn.server.config.get(pattern.decode("utf-8", "replace")):
            found[name] = value
    if "maxmemory" in found:  # the segment is the budget, as INFO's maxmemory says
        found["maxmemory"] = str(conn.server.table.stats()["segment_bytes"])
    pairs = [(resp.bulk(k.encode()), resp.bulk(v.encode())) for k, v in found.items()]
    return resp.map_of(pairs, conn.proto)


def apply_config(server, pairs):
    """Validate and apply CONFIG SET pairs; raises CommandError worded as Redis.

    All or nothing, as Redis: a value the server cannot act on (a TLS file that does not load)
    puts every directive of the call back as it was, so CONFIG GET and CONFIG REWRITE never
    show a setting that is not in force.
    """
    config = server.config
    before = {}
    for name, _ in pairs:
        name = name.lower()
        if name in config.values:
            before[name] = (config.values[name], name in config.explicit)
    try:
        names = config.set_many(pairs)
    except KeyError as exc:
        raise CommandError(errors.CONFIG_UNKNOWN_PARAM.format(exc.args[0])) from None
    except ValueError as exc:
        name, reason = exc.args
        raise CommandError(errors.CONFIG_SET_FAILED.format(name, reason)) from None
    try:
        server.config_changed(names)
        # New users (and `reset`) take the default channel rule, as Redis's acl-pubsub-default.
        server.acl.pubsub_default_all = config.values["acl-pubsub-default"] == "allchannels"
    except Exception as exc:  # say so, put the old values back, keep serving
        for name, (value, explicit) in before.items():
            config.values[name] = value
            if not explicit:
                config.explicit.discard(name)
        server.config_changed(names)
        raise CommandError(errors.CONFIG_SET_FAILED.format(names[0], exc)) from None
    return names


@bus_op(b"config-set")
def _peer_config_set(server, origin, args):
    pairs = [(args[i].decode(), args[i + 1].decode()) for i in range(0, len(args), 2)]
    try:
        apply_config(server, pairs)
    except CommandError as exc:
        return str(exc)
    return None


@subcommand(CONFIG, "set", -4, "admin noscript loading stale")
def config_set(conn, args):
    if len(args) % 2:
        raise CommandError(errors.wrong_arity("config|set"))
    pairs = [(args[i].decode("utf-8", "replace"), args[i + 1].decode("utf-8", "replace"))
             for i in range(2, len(args), 2)]
    names = [n.lower() for n, _ in pairs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise CommandError(errors.CONFIG_SET_FAILED.format(dup, "duplicate parameter"))
    apply_config(conn.server, pairs)

    def combine(local, peers):
        failed = [p for p in peers if p]
        return resp.error(failed[0]) if failed else resp.OK
    return across_workers(conn.server, b"config-set", args[2:], None, combine)


@subcommand(CONFIG, "resetstat", 2, "admin noscript loading stale")
def config_resetstat(conn, args):
    server = conn.server
    server.stats_connections = server.stats_rejected = 0
    server.stats_auth_failures = server.stats_tls_handshake_failures = 0
    server.stats_net_input_bytes = server.stats_net_output_bytes = 0
    server.error_replies.clear()
    reset_stats()
    return resp.OK


@subcommand(CONFIG, "rewrite", 2, "admin noscript loading stale")
def config_rewrite(conn, args):
    try:
        conn.server.config.rewrite()
    except FileNotFoundError:
        raise CommandError(errors.CONFIG_REWRITE_NO_FILE) from None
    except OSError as exc:
        raise CommandError(f"ERR Rewriting config file: {exc.strerror}") from None
    return resp.OK


@subcommand(CONFIG, "help", 2)
def config_help(conn, args):
    return _help("CONFIG", ["GET <pattern>", "    Return parameters matching the glob-like "
                            "<pattern> and their values.", "SET <directive> <value>",
                            "    Set the configuration <directive> to <value>.", "RESETSTAT",
                            "    Reset statistics reported by the INFO command.", "REWRITE",
                            "    Rewrite the configuration file."])


def _help(name, lines):
    head = f"{name} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    return resp.array([resp.simple(line) for line in [head] + lines + ["HELP",
                                                                       "    Print this help."]])


# ---- small server commands -------------------------------------------------------------------
@command("time", 1, "loading stale fast", group="server")
def time_(conn, args):
    now = time.time_ns() // 1000
    return resp.bulk_array([b"%d" % (now // 1_000_000), b"%d" % (now % 1_000_000)])


@command("lastsave", 1, "loading stale fast", group="server")
def lastsave(conn, args):
    return resp.integer(int(conn.server.started))


@command("save", 1, "admin noscript", group="server")
def save(conn, args):
    raise CommandError(errors.NO_PERSISTENCE)


@command("bgsave", -1, "admin noscript", group="server")
def bgsave(conn, args):
    raise CommandError(errors.NO_PERSISTENCE)


@command("wait", 3, "noscript", group="server")
def wait(conn, args):
    parse_int(args[1])
    if parse_int(args[2], errors.NOT_A_NUMBER_TIMEOUT) < 0:
        raise CommandError("ERR timeout is negative")
    return resp.ZERO  # no replicas: nothing to wait for


@command("shutdown", -1, "admin noscript loading stale no-multi", group="server")
def shutdown(conn, args):
    words = {word.upper() for word in args[1:]}
    if not words <= {b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"}:
        raise CommandError(errors.SYNTAX)
    # As Redis: ABORT goes alone, and NOSAVE contradicts SAVE.
    if b"ABORT" in words and len(words) > 1 or {b"NOSAVE", b"SAVE"} <= words:
        raise CommandError(errors.SYNTAX)
    if b"ABORT" in words:
        raise CommandError("ERR No shutdown in progress.")
    conn.server.log.warning("User requested shutdown (SHUTDOWN from %s)", conn.addr)
    conn.server.request_shutdown()
    return b""  # no reply: the connection closes as the server stops, as in Redis


# ---- SLOWLOG ---------------------------------------------------------------------------------
SLOWLOG = container("slowlog", -2, "", group="server")


def _slowlog_rows(server, count):
    rows = []
    for entry_id, stamp, usec, argv, addr, name in list(server.slowlog)[:count]:
        rows.append([entry_id, stamp, usec, [a.decode("latin-1") for a in argv],
                     addr.decode("latin-1"), name.decode("latin-1")])
    return rows


@bus_op(b"slowlog-get")
def _peer_slowlog_get(server, origin, args):
    return _slowlog_rows(server, int(args[0]))


@bus_op(b"slowlog-len")
def _peer_slowlog_len(server, origin, args):
    return len(server.slowlog)


@bus_op(b"slowlog-reset")
def _peer_slowlog_reset(server, origin, args):
    server.slowlog.clear()
    return 0


@subcommand(SLOWLOG, "get", -2, "admin loading stale")
def slowlog_get(conn, args):
    count = 10
    if len(args) > 2:
        count = parse_int(args[2], errors.SLOWLOG_COUNT)
        if count < -1:
            raise CommandError(errors.SLOWLOG_COUNT)
        if count == -1:
            count = 1 << 31

    def combine(local, peers):
        rows = sorted(local + [row for peer in peers for row in peer],
                      key=lambda row: (-row[1], -row[0]))[:count]
        out = []
        for entry_id, stamp, usec, argv, addr, name in rows:
            out.append(resp.array([resp.integer(entry_id), resp.integer(stamp),
                                   resp.integer(usec),
                                   resp.bulk_array([a.encode("latin-1") for a in argv]),
                                   resp.bulk(addr.encode("latin-1")),
                                   resp.bulk(name.encode("latin-1"))]))
        return resp.array(out)
    return across_workers(conn.server, b"slowlog-get", (b"%d" % count,),
                          _slowlog_rows(conn.server, count), combine)


@subcommand(SLOWLOG, "len", 2, "admin loading stale")
def slowlog_len(conn, args):
    return across_workers(conn.server, b"slowlog-len", (), len(conn.server.slowlog),
                          lambda local, peers: resp.integer(local + sum(peers)))


@subcommand(SLOWLOG, "reset", 2, "admin loading stale")
def slowlog_reset(conn, args):
    conn.server.slowlog.clear()
    return across_workers(conn.server, b"slowlog-reset", (), 0, lambda local, peers: resp.OK)


@subcommand(SLOWLOG, "help", 2)
def slowlog_help(conn, args):
    return _help("SLOWLOG", ["GET [<count>]", "    Return top <count> entries from the slowlog "
                             "(default: 10, -1 mean all).", "LEN",
                             "    Return the length of the slowlog.", "RESET",
                             "    Reset the slowlog."])


# ---- MEMORY, OBJECT ---------------------------------------------------------------------------
MEMORY = container("memory", -2, "", group="server")


@subcommand(MEMORY, "usage", -3, "readonly", keys=(2, 2, 1))
def memory_usage(conn, args):
    if len(args) not in (3, 5) or (len(args) == 5 and args[3].upper() != b"SAMPLES"):
        raise CommandError(errors.SYNTAX)
    if len(args) == 5:
        parse_int(args[4])
    found = conn.table.info(args[2])
    if found is None:
        return resp.NIL[conn.proto]
    return resp.integer(found[1] * conn.table.record_size)  # whole records: what the key holds


@subcommand(MEMORY, "stats", 2)
def memory_stats(conn, args):
    stats = conn.table.stats()
    pairs = [(b"shm.segment.bytes", stats["segment_bytes"]),
             (b"shm.records.used", stats["used_records"]),
             (b"shm.records.free", stats["free_records"]),
             (b"shm.bytes.per.record", int(stats["bytes_per_record"])),
             (b"keys.count", stats["entries"])]
    return resp.map_of([(resp.bulk(k), resp.integer(v)) for k, v in pairs], conn.proto)


@subcommand(MEMORY, "help", 2)
def memory_help(conn, args):
    return _help("MEMORY", ["STATS", "    Return information about the memory usage of the server.",
                            "USAGE <key> [SAMPLES <count>]",
                            "    Return memory in bytes used by <key> and its value."])


OBJECT = container("object", -2, "", group="generic")


@subcommand(OBJECT, "encoding", 3, "readonly", keys=(2, 2, 1))
def object_encoding(conn, args):
    found = conn.table.info(args[2])
    if found is None:
        return resp.NIL[conn.proto]
    value = conn.table.get_entry(args[2])
    if found[0] == STRING and value is not None:
        raw = value[0]
        # int only in Redis's long long range: 12345678901234567890 is an embstr there.
        # (An APPENDed value is raw in Redis whatever its length; the table keeps no trace of
        # how a value was written, so it is judged by its bytes as if SET.)
        if (len(raw) <= 20 and raw.lstrip(b"-").isdigit() and raw == str(int(raw)).encode()
                and -(2 ** 63) <= int(raw) < 2 ** 63):
            return resp.bulk(b"int")
        return resp.bulk(b"embstr" if len(raw) <= 44 else b"raw")
    if found[0] == HASH and value is not None:
        fields = decode_hash(value[0])
        # hash-max-listpack-entries 512 / hash-max-listpack-value 64: redis-server's built-in
        # defaults (the sample redis.conf says 128 entries)
        if len(fields) > 512 or any(len(k) > 64 or len(v) > 64 for k, v in fields.items()):
            return resp.bulk(b"hashtable")
    return resp.bulk(ENCODING_NAMES.get(found[0], b"raw"))


@subcommand(OBJECT, "idletime", 3, "readonly", keys=(2, 2, 1))
def object_idletime(conn, args):
    found = conn.table.info(args[2])
    if found is None:
        return resp.NIL[conn.proto]
    return resp.integer(max(0, found[2]) // 1000)


@subcommand(OBJECT, "freq", 3, "readonly", keys=(2, 2, 1))
def object_freq(conn, args):
    if conn.table.info(args[2]) is None:
        return resp.NIL[conn.proto]
    raise CommandError("ERR An LFU maxmemory policy is not selected, access frequency not "
                       "tracked. Please note that when switching between policies at runtime "
                       "LRU and LFU data will take some time to adjust.")


@subcommand(OBJECT, "refcount", 3, "readonly", keys=(2, 2, 1))
def object_refcount(conn, args):
    if conn.table.info(args[2]) is None:
        return resp.NIL[conn.proto]
    return resp.ONE


@subcommand(OBJECT, "help", 2)
def object_help(conn, args):
    return _help("OBJECT", ["ENCODING <key>", "    Return the kind of internal representation "
                            "used in order to store the value associated with a <key>.",
                            "FREQ <key>", "    Return the access frequency index of the <key>.",
                            "IDLETIME <key>", "    Return the idle time of the <key>.",
                            "REFCOUNT <key>", "    Return the reference count of the object "
                            "stored at <key>."])


# ---- DEBUG -----------------------------------------------------------------------------------
DEBUG = container("debug", -2, "", group="server")


_STRTOD_PREFIX = re.compile(
    rb"\s*([+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?))")


def _atof(raw: bytes) -> float:
    """C atof, as Redis's DEBUG SLEEP reads its argument: the longest number at the start, else 0.

    float() would read '1_0' as 10 where Redis sleeps 1 second; 'abc' is 0, no error, as Redis.
    inf/nan (which Redis's usleep cannot use either) are 0 too."""
    match = _STRTOD_PREFIX.match(raw)
    if not match:
        return 0.0
    text = match.group(1).decode()
    try:
        value = float.fromhex(text) if "x" in text.lower() else float(text)
    except (ValueError, OverflowError):
        return 0.0
    return value if math.isfinite(value) else 0.0


@subcommand(DEBUG, "sleep", 3, "admin noscript loading stale")
def debug_sleep(conn, args):
    seconds = _atof(args[2])
    # A deferred reply: this client waits, every other client keeps being served.
    future = conn.server.loop.create_future()
    conn.server.loop.call_later(max(0.0, seconds), lambda: future.done() or
                                future.set_result(resp.OK))
    return future


@subcommand(DEBUG, "help", 2)
def debug_help(conn, args):
    return _help("DEBUG", ["SLEEP <seconds>", "    Stop the server for <seconds>. Decimals "
                           "allowed (here: only this client waits)."])
