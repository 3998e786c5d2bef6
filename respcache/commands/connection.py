"""Connection commands: PING ECHO QUIT RESET AUTH HELLO SELECT and CLIENT."""

from __future__ import annotations

import time

from .. import errors, resp
from ..config import REDIS_COMPAT_VERSION
from ..errors import CommandError
from .args import parse_int
from ..bus import across_workers, bus_op
from .registry import command, container, subcommand


@command("ping", -1, "fast pubsub-ok", group="connection")
def ping(conn, args):
    if len(args) > 2:
        raise CommandError(errors.wrong_arity("ping"))
    if (conn.channels or conn.patterns) and conn.proto == 2:
        # A subscribed RESP2 client gets PING as a pub/sub style array.
        return resp.array([resp.bulk(b"pong"), resp.bulk(args[1] if len(args) > 1 else b"")])
    return resp.bulk(args[1]) if len(args) > 1 else resp.PONG


@command("echo", 2, "fast", group="connection")
def echo(conn, args):
    return resp.bulk(args[1])


@command("quit", -1, "noauth fast pubsub-ok no-multi", group="connection")
def quit_(conn, args):
    conn.transport.write(resp.OK)
    conn.close()
    return b""


@command("select", 2, "fast", group="connection")
def select(conn, args):
    index = parse_int(args[1], errors.NOT_INTEGER)
    if index != 0:
        raise CommandError(errors.DB_OUT_OF_RANGE)
    return resp.OK


def authenticate(conn, command: bytes, username: bytes, password: bytes):
    """The ACL user for these credentials, or None: counted (INFO acl_access_denied_auth) and
    recorded in ACL LOG (reason auth, object the command name as sent), as Redis does."""
    name = username.decode("utf-8", "replace")
    user = conn.server.acl.authenticate(name, password)
    if user is None:
        conn.server.stats_auth_failures += 1
        conn.server.acl.log.add(conn, "auth", command, name)
        conn.server.log.verbose("WRONGPASS for user '%s' from %s", name, conn.addr)
    return user


@command("auth", -2, "noauth fast no-multi", group="connection")
def auth(conn, args):
    if len(args) > 3:
        raise CommandError(errors.SYNTAX)
    if len(args) == 2:
        if not conn.server.acl.default_needs_auth():
            raise CommandError(errors.AUTH_NOT_CONFIGURED)
        username, password = b"default", args[1]
    else:
        username, password = args[1], args[2]
    user = authenticate(conn, args[0], username, password)
    if user is None:
        raise CommandError(errors.WRONGPASS)
    conn.log_in(user)
    return resp.OK


@command("hello", -1, "noauth fast no-multi", group="connection")
def hello(conn, args):
    proto = conn.proto
    i = 1
    if len(args) > 1:
        try:
            proto = parse_int(args[1])
        except CommandError:
            raise CommandError("ERR Protocol version is not an integer or out of range") from None
        if proto not in (2, 3):
            raise CommandError(errors.NOPROTO)
        i = 2
    name = None
    authed = None
    while i < len(args):
        word = args[i].upper()
        if word == b"AUTH" and i + 2 < len(args):
            authed = (args[i + 1], args[i + 2])
            i += 3
        elif word == b"SETNAME" and i + 1 < len(args):
            name = args[i + 1]
            _check_name(name)
            i += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'")
    if authed is not None:
        user = authenticate(conn, args[0], *authed)
        if user is None:
            raise CommandError(errors.WRONGPASS)
        conn.log_in(user)
    if not conn.authenticated:
        raise CommandError("NOAUTH HELLO must be called with the client already authenticated, "
                           "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                           "authenticate the client and select the RESP protocol version at the "
                           "same time")
    if name is not None:
        conn.name = name
    conn.proto = proto
    fields = [(b"server", resp.bulk(b"redis")),
              (b"version", resp.bulk(REDIS_COMPAT_VERSION.encode())),
              (b"proto", resp.integer(proto)),
              (b"id", resp.integer(conn.id)),
              (b"mode", resp.bulk(b"standalone")),
              (b"role", resp.bulk(b"master")),
              (b"modules", resp.EMPTY_ARRAY)]
    return resp.map_of([(resp.bulk(k), v) for k, v in fields], proto)


@command("reset", 1, "noauth fast pubsub-ok no-multi", group="connection")
def reset(conn, args):
    conn.multi = None
    conn.multi_failed = False
    conn.watched = None
    conn.server.pubsub.drop(conn)
    conn.server.monitors.discard(conn)
    conn.monitor = False
    conn.proto = 2
    conn.name = b""
    conn.no_evict = False
    default = conn.server.acl.users["default"]
    conn.authenticated = False
    conn.user = "default"
    if not conn.server.acl.default_needs_auth():
        conn.log_in(default)
    return b"+RESET\r\n"


# ---- CLIENT ----------------------------------------------------------------------------------
CLIENT = container("client", -2, "", group="connection")


def _check_name(name: bytes):
    if any(b <= 32 or b > 126 for b in name):
        raise CommandError(errors.CLIENT_NAME_SPACES)


def client_info_line(conn, now=None) -> str:
    now = time.monotonic() if now is None else now
    flags = "N"
    if conn.channels or conn.patterns:
        flags = "P"
    if conn.multi is not None:
        flags = "x"
    if conn.monitor:
        flags = "O"
    age = int(time.time() - conn.created)
    idle = int(now - conn.last_interaction)
    multi = len(conn.multi) if conn.multi is not None else -1
    wbuf = conn.transport.get_write_buffer_size() if conn.transport else 0
    return (f"id={conn.id} addr={conn.addr} laddr={conn.laddr} fd={_fd(conn)} "
            f"name={conn.name.decode('utf-8', 'replace')} age={age} idle={idle} flags={flags} "
            f"db=0 sub={len(conn.channels)} psub={len(conn.patterns)} ssub=0 multi={multi} "
            f"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 "
            f"omem={wbuf} tot-mem={wbuf} events=r cmd={conn.last_command} user={conn.user} "
            f"redir=-1 resp={conn.proto} lib-name={conn.lib_name.decode('utf-8', 'replace')} "
            f"lib-ver={conn.lib_ver.decode('utf-8', 'replace')}")


def _fd(conn):
    sock = conn.transport.get_extra_info("socket") if conn.transport else None
    try:
        return sock.fileno() if sock is not None else -1
    except Exception:
        return -1


@subcommand(CLIENT, "id", 2)
def client_id(conn, args):
    return resp.integer(conn.id)


@subcommand(CLIENT, "setname", 3)
def client_setname(conn, args):
    _check_name(args[2])
    conn.name = args[2]
    return resp.OK


@subcommand(CLIENT, "getname", 2)
def client_getname(conn, args):
    return resp.bulk(conn.name) if conn.name else resp.NIL[conn.proto]


@subcommand(CLIENT, "setinfo", 4)
def client_setinfo(conn, args):
    attr = args[2].lower()
    if attr not in (b"lib-name", b"lib-ver"):
        raise CommandError(f"ERR Unrecognized option '{args[2].decode('utf-8', 'replace')}'")
    value = args[3]
    if any(b < 33 or b > 126 for b in value):
        raise CommandError("ERR lib-name cannot contain spaces, newlines or special characters.")
    if attr == b"lib-name":
        conn.lib_name = value
    else:
        conn.lib_ver = value
    return resp.OK


@subcommand(CLIENT, "info", 2)
def client_info(conn, args):
    conn.last_command = "client|info"  # Redis names the subcommand in cmd=
    return resp.verbatim((client_info_line(conn) + "\n").encode(), conn.proto)


def _list_filter(args):
    """CLIENT LIST's [TYPE t] [ID id ...] as a predicate (also run by the other workers)."""
    if len(args) <= 2:
        return lambda c: True
    word = args[2].upper()
    if word == b"ID" and len(args) > 3:
        wanted = {parse_int(a, errors.INVALID_CLIENT_ID) for a in args[3:]}
        return lambda c: c.id in wanted
    if word == b"TYPE" and len(args) == 4:
        return _type_filter(args[3])
    raise CommandError(errors.SYNTAX)


def _type_filter(raw):
    kind = raw.lower()
    if kind not in (b"normal", b"pubsub", b"master", b"replica", b"slave"):
        raise CommandError(f"ERR Unknown client type '{raw.decode('utf-8', 'replace')}'")
    return lambda c: kind in (b"normal", b"pubsub") and bool(c.channels or c.patterns) == (
        kind == b"pubsub")


def _listed(server, args):
    keep = _list_filter(args)
    now = time.monotonic()
    return [(c.id, client_info_line(c, now)) for c in server.clients.values() if keep(c)]


@bus_op(b"client-list")
def _peer_client_list(server, origin, args):
    return _listed(server, args)


@subcommand(CLIENT, "list", -2)
def client_list(conn, args):
    conn.last_command = "client|list"  # Redis names the subcommand in cmd=
    def combine(local, peers):
        rows = sorted(local + [tuple(row) for rows in peers for row in rows])
        return resp.verbatim("".join(line + "\n" for _, line in rows).encode(), conn.proto)
    return across_workers(conn.server, b"client-list", args, _listed(conn.server, args), combine)


def _kill_filter(args, server):
    """CLIENT KILL's filters as (predicate, skipme); the old `CLIENT KILL addr` form included."""
    if len(args) == 3:
        target = args[2].decode("utf-8", "replace")
        return (lambda c: c.addr == target), False
    filters = []
    skipme = True
    i = 2
    while i < len(args):
        if i + 1 >= len(args):
            raise CommandError(errors.SYNTAX)
        word, value = args[i].upper(), args[i + 1]
        text = value.decode("utf-8", "replace")
        if word == b"ID":
            wanted = parse_int(value, errors.CLIENT_ID_NOT_POSITIVE)
            if wanted <= 0:
                raise CommandError(errors.CLIENT_ID_NOT_POSITIVE)
            filters.append(lambda c, w=wanted: c.id == w)
        elif word == b"ADDR":
            filters.append(lambda c, t=text: c.addr == t)
        elif word == b"LADDR":
            filters.append(lambda c, t=text: c.laddr == t)
        elif word == b"USER":
            if text not in server.acl.users:
                raise CommandError(errors.NO_SUCH_USER_TO_KILL.format(text))
            filters.append(lambda c, t=text: c.user == t)
        elif word == b"TYPE":
            filters.append(_type_filter(value))
        elif word == b"SKIPME":
            low = value.lower()
            if low not in (b"yes", b"no"):
                raise CommandError(errors.SYNTAX)
            skipme = low == b"yes"
        else:
            raise CommandError(errors.SYNTAX)
        i += 2
    return (lambda c: all(f(c) for f in filters)), skipme


def _kill_matching(server, args, caller=None) -> int:
    keep, skipme = _kill_filter(args, server)
    victims = [c for c in server.clients.values()
               if keep(c) and not (skipme and c is caller)]
    for victim in victims:
        if victim is caller:
            # Reply first, then close: Redis closes the caller after the reply is written.
            server.loop.call_soon(victim.close)
        else:
            victim.close()
    return len(victims)


@bus_op(b"client-kill")
def _peer_client_kill(server, origin, args):
    return _kill_matching(server, args)


@subcommand(CLIENT, "kill", -3, "admin")
def client_kill(conn, args):
    _kill_filter(args, conn.server)  # syntax errors before anything is killed anywhere
    old_form = len(args) == 3

    def combine(local, peers):
        total = local + sum(peers)
        if old_form:
            if not total:
                return resp.error(errors.NO_SUCH_CLIENT)
            return resp.OK
        return resp.integer(total)
    return across_workers(conn.server, b"client-kill", args,
                          _kill_matching(conn.server, args, conn), combine)


@subcommand(CLIENT, "no-evict", 3)
def client_no_evict(conn, args):
    word = args[2].lower()
    if word not in (b"on", b"off"):
        raise CommandError(errors.SYNTAX)
    conn.no_evict = word == b"on"
    return resp.OK


@subcommand(CLIENT, "help", 2)
def client_help(conn, args):
    lines = [b"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             b"ID", b"    Return the ID of the current connection.",
             b"INFO", b"    Return information about the current client connection.",
             b"GETNAME", b"    Return the name of the current connection.",
             b"KILL <ip:port>", b"    Kill connection made from <ip:port>.",
             b"KILL <option> <value> [<option> <value> [...]]",
             b"    Kill connections. Options are: ID, ADDR, LADDR, USER, TYPE, SKIPME.",
             b"LIST [TYPE (NORMAL|PUBSUB)] [ID <id> ...]", b"    Return information about client connections.",
             b"NO-EVICT (ON|OFF)", b"    Protect current client connection from eviction.",
             b"SETNAME <name>", b"    Assign the name <name> to the current connection.",
             b"SETINFO <LIB-NAME|LIB-VER> <value>", b"    Set client library name or version.",
             b"HELP", b"    Print this help."]
    return resp.array([resp.simple(line.decode()) for line in lines])


@command("monitor", 1, "admin noscript loading stale no-multi", group="server")
def monitor(conn, args):
    """Every command any client runs, on any worker, as Redis's MONITOR lines."""
    conn.monitor = True
    conn.server.monitors.add(conn)
    return resp.OK
