"""String commands: GET SET and the rest of Redis's string family."""

from __future__ import annotations

from shm_lru import WrongTypeError

from .. import _fastpath, errors, resp
from ..errors import CommandError
from ..keyspace import STRING, UNCHANGED
from .args import (add_long_double, format_long_double, long_double_is_finite, now_ms,
                   parse_expiry_options, parse_int, parse_long_double)
from .registry import command

WRONGTYPE = resp.error(errors.WRONGTYPE)
NIL = resp.NIL
MAX_STRING = 512 * 1024 * 1024


def _bulk(value, proto):
    if value is None:
        return NIL[proto]
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _get_string(conn, key):
    try:
        return conn.table.get(key, STRING)
    except WrongTypeError:
        raise CommandError(errors.WRONGTYPE) from None


# GET and the plain form of SET are written in C (respcache/src/fastpath.c): they are most of
# what a session cache serves. SET with options comes back to set_with_options.
command("get", 2, "readonly fast", keys=(1, 1, 1), group="string",
        summary="Get a key's value")(_fastpath.get_handler)
command("set", -3, "write denyoom", keys=(1, 1, 1), group="string",
        summary="Set a key's value, with expiry and conditions")(_fastpath.set_handler)


def set_with_options(conn, args):
    if len(args) == 3:
        try:
            conn.table.set(args[1], args[2])
        except ValueError as exc:
            raise CommandError("ERR " + str(exc)) from None
        return resp.OK
    deadline, keepttl, _, flags = parse_expiry_options(args, 3, "set", True, False)
    return _set(conn, args[1], args[2], deadline, keepttl, b"NX" in flags, b"XX" in flags,
                b"GET" in flags)


def _set(conn, key, value, deadline, keepttl, nx, xx, want_old):
    table = conn.table
    if deadline is not None and deadline <= now_ms():
        # A deadline already past: the write happens and the key is gone at once (as Redis).
        old = _get_string(conn, key) if want_old else None
        exists = table.exists(key)
        if (nx and exists) or (xx and not exists):
            return _bulk(old, conn.proto) if want_old else NIL[conn.proto]
        table.delete(key)
        return _bulk(old, conn.proto) if want_old else resp.OK
    options = {}
    if deadline is not None:
        options["expire_at_ms"] = deadline
    if keepttl:
        options["keepttl"] = True
    if nx:
        options["nx"] = True
    if xx:
        options["xx"] = True
    if want_old:
        try:
            old = conn.keyspace.store(key, value, STRING, get=True, **options)
        except WrongTypeError:
            return WRONGTYPE
        return _bulk(old, conn.proto)
    stored = conn.keyspace.store(key, value, STRING, **options)
    return resp.OK if stored else NIL[conn.proto]


@command("setnx", 3, "write denyoom fast", keys=(1, 1, 1), group="string")
def setnx(conn, args):
    return resp.ONE if conn.keyspace.store(args[1], args[2], nx=True) else resp.ZERO


def _setex(conn, args, unit, name):
    seconds = parse_int(args[2])
    if seconds <= 0 or (unit == 1000 and seconds > (2 ** 63 - 1) // 1000):
        raise CommandError(errors.INVALID_EXPIRE.format(name))
    ms = seconds * unit
    if ms > 2 ** 63 - 1 - now_ms():
        raise CommandError(errors.INVALID_EXPIRE.format(name))
    conn.keyspace.store(args[1], args[3], ttl_ms=ms)
    return resp.OK


@command("setex", 4, "write denyoom", keys=(1, 1, 1), group="string")
def setex(conn, args):
    return _setex(conn, args, 1000, "setex")


@command("psetex", 4, "write denyoom", keys=(1, 1, 1), group="string")
def psetex(conn, args):
    return _setex(conn, args, 1, "psetex")


@command("getset", 3, "write denyoom fast", keys=(1, 1, 1), group="string")
def getset(conn, args):
    return _set(conn, args[1], args[2], None, False, False, False, True)


@command("mget", -2, "readonly fast", keys=(1, -1, 1), group="string")
def mget(conn, args):
    table = conn.table
    parts = [b"*%d\r\n" % (len(args) - 1)]
    nil = NIL[conn.proto]
    for key in args[1:]:
        try:
            value = table.get(key, STRING)
        except WrongTypeError:
            value = None
        parts.append(nil if value is None else b"$%d\r\n%b\r\n" % (len(value), value))
    return b"".join(parts)


@command("mset", -3, "write denyoom", keys=(1, -1, 2), group="string")
def mset(conn, args):
    if len(args) % 2 == 0:
        raise CommandError(errors.wrong_arity("mset"))
    store = conn.keyspace.store
    for i in range(1, len(args), 2):
        store(args[i], args[i + 1])
    return resp.OK


@command("msetnx", -3, "write denyoom", keys=(1, -1, 2), group="string")
def msetnx(conn, args):
    if len(args) % 2 == 0:
        raise CommandError(errors.wrong_arity("msetnx"))
    table = conn.table
    if any(table.exists(args[i]) for i in range(1, len(args), 2)):
        return resp.ZERO
    for i in range(1, len(args), 2):
        conn.keyspace.store(args[i], args[i + 1])
    return resp.ONE


@command("getdel", 2, "write fast", keys=(1, 1, 1), group="string")
def getdel(conn, args):
    try:
        return _bulk(conn.table.pop(args[1], STRING), conn.proto)
    except WrongTypeError:
        return WRONGTYPE


@command("getex", -2, "write fast", keys=(1, 1, 1), group="string")
def getex(conn, args):
    # Redis checks the syntax, then the key (nil if missing, WRONGTYPE), then the expire value.
    bad_value = None
    try:
        deadline, _, persist, _ = parse_expiry_options(args, 2, "getex", False, True)
    except CommandError as exc:
        if str(exc) == errors.SYNTAX:
            raise
        bad_value = exc
    table = conn.table
    value = _get_string(conn, args[1])
    if value is None:
        return NIL[conn.proto]
    if bad_value is not None:
        raise bad_value
    if deadline is not None:
        table.expire_at(args[1], deadline)  # a past deadline deletes the key, as Redis does
    elif persist:
        table.persist(args[1])
    return _bulk(value, conn.proto)


@command("append", 3, "write denyoom fast", keys=(1, 1, 1), group="string")
def append(conn, args):
    suffix = args[2]

    def change(old):
        new = suffix if old is None else old + suffix
        if len(new) > MAX_STRING:
            raise CommandError(errors.STRING_TOO_LONG)
        return new, resp.integer(len(new))
    return conn.keyspace.update(args[1], STRING, change)


@command("strlen", 2, "readonly fast", keys=(1, 1, 1), group="string")
def strlen(conn, args):
    value = _get_string(conn, args[1])
    return resp.integer(0 if value is None else len(value))


@command("getrange", 4, "readonly", keys=(1, 1, 1), group="string")
def getrange(conn, args):
    start, end = parse_int(args[2]), parse_int(args[3])
    value = _get_string(conn, args[1]) or b""
    n = len(value)
    if start < 0 and end < 0 and start > end:
        return b"$0\r\n\r\n"
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = max(n + end, 0)
    end = min(end, n - 1)
    if start > end or n == 0:
        return b"$0\r\n\r\n"
    return resp.bulk(value[start:end + 1])


@command("substr", 4, "readonly", keys=(1, 1, 1), group="string")
def substr(conn, args):
    return getrange(conn, args)


@command("setrange", 4, "write denyoom", keys=(1, 1, 1), group="string")
def setrange(conn, args):
    offset = parse_int(args[2])
    if offset < 0:
        raise CommandError(errors.OFFSET_OUT_OF_RANGE)
    patch = args[3]

    def change(old):
        current = old or b""
        if not patch:
            return UNCHANGED, resp.integer(len(current))
        if offset + len(patch) > MAX_STRING:
            raise CommandError(errors.STRING_TOO_LONG)
        if len(current) < offset:
            current += b"\0" * (offset - len(current))
        new = current[:offset] + patch + current[offset + len(patch):]
        return new, resp.integer(len(new))
    if not patch:
        value = _get_string(conn, args[1])
        return resp.integer(0 if value is None else len(value))
    # The size limit is checked in change(), after the key's type, as Redis orders the errors.
    return conn.keyspace.update(args[1], STRING, change)


def _incrby(conn, key, delta):
    try:
        return resp.integer(conn.table.incrby(key, delta))
    except WrongTypeError:
        return WRONGTYPE
    except OverflowError:
        return resp.error(errors.OVERFLOW)
    except ValueError:
        return resp.error(errors.NOT_INTEGER)


@command("incr", 2, "write denyoom fast", keys=(1, 1, 1), group="string")
def incr(conn, args):
    return _incrby(conn, args[1], 1)


@command("decr", 2, "write denyoom fast", keys=(1, 1, 1), group="string")
def decr(conn, args):
    return _incrby(conn, args[1], -1)


@command("incrby", 3, "write denyoom fast", keys=(1, 1, 1), group="string")
def incrby(conn, args):
    return _incrby(conn, args[1], parse_int(args[2]))


@command("decrby", 3, "write denyoom fast", keys=(1, 1, 1), group="string")
def decrby(conn, args):
    delta = parse_int(args[2])
    if delta == -(2 ** 63):
        raise CommandError("ERR decrement would overflow")
    return _incrby(conn, args[1], -delta)


@command("incrbyfloat", 3, "write denyoom fast", keys=(1, 1, 1), group="string")
def incrbyfloat(conn, args):
    # In C long double, as Redis adds (0.1 + 0.2 is "0.3", 1e400 is a number); the key's type is
    # checked before the increment is parsed, as Redis does.
    def change(old):
        base = parse_long_double(b"0" if old is None else old)
        delta = parse_long_double(args[2])
        text = format_long_double(add_long_double(base, delta))
        if not long_double_is_finite(text):
            raise CommandError(errors.INCR_FLOAT_NAN)
        return text, resp.bulk(text)
    return conn.keyspace.update(args[1], STRING, change)


_fastpath.configure(STRING, WrongTypeError, WRONGTYPE, NIL, resp.OK, set_with_options)
