"""Generic keyspace commands: DEL EXISTS TYPE, expiry (EXPIRE* TTL* PERSIST), KEYS SCAN RANDOMKEY,
RENAME, DBSIZE and FLUSH*.

They work on any type through the shm table's type-agnostic calls. Expiry deadlines are absolute
milliseconds on the clock every process sharing the table uses, as Redis stores them.
"""

from __future__ import annotations

from .. import errors, resp
from ..errors import CommandError
from ..keyspace import TYPE_BY_NAME, TYPE_NAMES
from .args import LLONG_MAX, now_ms, parse_int
from .registry import command

ULONG_MAX = 2 ** 64 - 1
KEYS_BATCH = 1024         # table slots KEYS asks for per scan step
SCAN_COUNT_MAX = 1 << 30  # COUNT is a hint; a larger one only has to fit the table's C int
_NOT_A_TYPE = -1          # SCAN TYPE with a name no key can have


def _count(predicate, keys) -> bytes:
    return resp.integer(sum(1 for key in keys if predicate(key)))


# ---- existence and type ------------------------------------------------------------------------
@command("del", -2, "write", keys=(1, -1, 1), summary="Delete keys")
def del_(conn, args):
    return _count(conn.table.delete, args[1:])


@command("unlink", -2, "write fast", keys=(1, -1, 1), since="4.0.0",
         summary="Delete keys (Redis frees them in the background; here it is the same as DEL)")
def unlink(conn, args):
    return _count(conn.table.delete, args[1:])


@command("exists", -2, "readonly fast", keys=(1, -1, 1), summary="Count the keys that exist")
def exists(conn, args):
    # A key named twice counts twice, as in Redis.
    return _count(conn.table.exists, args[1:])


@command("touch", -2, "readonly fast", keys=(1, -1, 1), since="3.2.1",
         summary="Mark keys recently used; count the ones that exist")
def touch(conn, args):
    return _count(conn.table.touch, args[1:])


@command("type", 2, "readonly fast", keys=(1, 1, 1), summary="The type of a key's value")
def type_(conn, args):
    code = conn.table.type(args[1])
    if code is None:
        return b"+none\r\n"
    return b"+%b\r\n" % TYPE_NAMES.get(code, b"none")


# ---- expiry ------------------------------------------------------------------------------------
EXPIRE_NX, EXPIRE_XX, EXPIRE_GT, EXPIRE_LT = 1, 2, 4, 8
_EXPIRE_FLAGS = {b"NX": EXPIRE_NX, b"XX": EXPIRE_XX, b"GT": EXPIRE_GT, b"LT": EXPIRE_LT}


def _expire_flags(args) -> int:
    """Redis parseExtendedExpireArgumentsOrReply: options are checked before the time value."""
    flags = 0
    for word in args[3:]:
        flag = _EXPIRE_FLAGS.get(word.upper())
        if flag is None:
            raise CommandError(errors.unsupported_option(word))
        flags |= flag
    if flags & EXPIRE_NX and flags & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT):
        raise CommandError(errors.EXPIRE_OPTIONS_NX_XX_GT_LT)
    if flags & EXPIRE_GT and flags & EXPIRE_LT:
        raise CommandError(errors.EXPIRE_OPTIONS_GT_LT)
    return flags


def _expire(conn, args, unit_ms, absolute, name):
    flags = _expire_flags(args)
    when = parse_int(args[2])
    invalid = errors.INVALID_EXPIRE.format(name)
    if unit_ms == 1000:
        # C's LLONG_MIN / 1000 truncates toward zero; Python's // would floor.
        if when > LLONG_MAX // 1000 or when < -(LLONG_MAX // 1000):
            raise CommandError(invalid)
        when *= 1000
    base = 0 if absolute else now_ms()
    if when > LLONG_MAX - base:
        raise CommandError(invalid)
    when += base
    table, key = conn.table, args[1]
    current = table.expiretime_ms(key)  # -2 missing, -1 no expiry
    if current == -2:
        return resp.ZERO
    if flags:
        if flags & EXPIRE_NX and current != -1:
            return resp.ZERO
        if flags & EXPIRE_XX and current == -1:
            return resp.ZERO
        # No expiry counts as an infinite TTL: GT never beats it, LT always does.
        if flags & EXPIRE_GT and (current == -1 or when <= current):
            return resp.ZERO
        if flags & EXPIRE_LT and current != -1 and when >= current:
            return resp.ZERO
    if when <= now_ms():
        table.delete(key)  # a deadline already past deletes the key, and that counts as done
        return resp.ONE
    return resp.ONE if table.expire_at(key, when) else resp.ZERO


@command("expire", -3, "write fast", keys=(1, 1, 1), summary="Set a key's time to live in seconds")
def expire(conn, args):
    return _expire(conn, args, 1000, False, "expire")


@command("pexpire", -3, "write fast", keys=(1, 1, 1), since="2.6.0",
         summary="Set a key's time to live in milliseconds")
def pexpire(conn, args):
    return _expire(conn, args, 1, False, "pexpire")


@command("expireat", -3, "write fast", keys=(1, 1, 1), since="1.2.0",
         summary="Set a key's expiry as a UNIX time in seconds")
def expireat(conn, args):
    return _expire(conn, args, 1000, True, "expireat")


@command("pexpireat", -3, "write fast", keys=(1, 1, 1), since="2.6.0",
         summary="Set a key's expiry as a UNIX time in milliseconds")
def pexpireat(conn, args):
    return _expire(conn, args, 1, True, "pexpireat")


@command("ttl", 2, "readonly fast", keys=(1, 1, 1), summary="A key's time to live in seconds")
def ttl(conn, args):
    return resp.integer(conn.table.ttl(args[1]))


@command("pttl", 2, "readonly fast", keys=(1, 1, 1), since="2.6.0",
         summary="A key's time to live in milliseconds")
def pttl(conn, args):
    return resp.integer(conn.table.pttl(args[1]))


@command("expiretime", 2, "readonly fast", keys=(1, 1, 1), since="7.0.0",
         summary="A key's expiry as a UNIX time in seconds")
def expiretime(conn, args):
    deadline = conn.table.expiretime_ms(args[1])
    # Rounded to the nearest second, as Redis's ttlGenericCommand does.
    return resp.integer(deadline if deadline < 0 else (deadline + 500) // 1000)


@command("pexpiretime", 2, "readonly fast", keys=(1, 1, 1), since="7.0.0",
         summary="A key's expiry as a UNIX time in milliseconds")
def pexpiretime(conn, args):
    return resp.integer(conn.table.expiretime_ms(args[1]))


@command("persist", 2, "write fast", keys=(1, 1, 1), since="2.2.0",
         summary="Remove a key's expiry")
def persist(conn, args):
    return resp.ONE if conn.table.persist(args[1]) else resp.ZERO


# ---- iteration ---------------------------------------------------------------------------------
def _all_keys(table, match):
    """Every live key matching `match` once, even if a concurrent write makes scan repeat one."""
    seen = {}
    cursor = 0
    while True:
        cursor, batch = table.scan(cursor, match=match, count=KEYS_BATCH)
        for key in batch:
            seen[key] = None
        if cursor == 0:
            return list(seen)


@command("keys", 2, "readonly", keys=(0, 0, 0), summary="Every key matching a glob pattern")
def keys(conn, args):
    pattern = args[1]
    return resp.bulk_array(_all_keys(conn.table, None if pattern == b"*" else pattern))


def parse_cursor(raw: bytes) -> int:
    """Redis parseScanCursorOrReply: C strtoul, so '-1' wraps to ULONG_MAX and '' is 0."""
    text = raw.split(b"\0", 1)[0]   # the C string ends at the first NUL
    if text[:1].isspace():
        raise CommandError(errors.INVALID_CURSOR)
    negative = text[:1] == b"-"
    digits = text[1:] if text[:1] in (b"-", b"+") else text
    if not digits:
        if text:  # a bare sign: strtoul consumed nothing, so the string is not all number
            raise CommandError(errors.INVALID_CURSOR)
        return 0
    if not digits.isdigit():
        raise CommandError(errors.INVALID_CURSOR)
    value = int(digits)
    if value > ULONG_MAX:
        raise CommandError(errors.INVALID_CURSOR)
    return (ULONG_MAX + 1 - value) % (ULONG_MAX + 1) if negative else value


@command("scan", -2, "readonly", keys=(0, 0, 0), since="2.8.0",
         summary="Iterate the keyspace: SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]")
def scan(conn, args):
    cursor = parse_cursor(args[1])
    match, count, type_code = None, 10, None
    i, n = 2, len(args)
    while i < n:
        word = args[i].upper()
        if word == b"COUNT" and i + 1 < n:
            count = parse_int(args[i + 1])
            if count < 1:
                raise CommandError(errors.SYNTAX)
            count = min(count, SCAN_COUNT_MAX)
        elif word == b"MATCH" and i + 1 < n:
            match = None if args[i + 1] == b"*" else args[i + 1]
        elif word == b"TYPE" and i + 1 < n:
            # Redis 7.0 accepts any name (case-insensitive); one no key has simply matches nothing.
            type_code = TYPE_BY_NAME.get(args[i + 1].lower(), _NOT_A_TYPE)
        else:
            raise CommandError(errors.SYNTAX)
        i += 2
    try:
        next_cursor, found = conn.table.scan(
            cursor, match=match, count=count,
            type=None if type_code == _NOT_A_TYPE else type_code)
    except (OverflowError, ValueError):
        next_cursor, found = 0, []  # a cursor past the table's end: the iteration is over
    if type_code == _NOT_A_TYPE:
        found = []
    return b"*2\r\n" + resp.bulk(b"%d" % next_cursor) + resp.bulk_array(found)


@command("randomkey", 1, "readonly", summary="A random key")
def randomkey(conn, args):
    return resp.bulk_or_nil(conn.table.random_key(), conn.proto)


# ---- renaming ----------------------------------------------------------------------------------
def _rename(conn, source, target, only_if_new):
    """Move source's value, type and deadline to target; None if there is no source."""
    table = conn.table
    entry = table.get_entry(source)
    if entry is None:
        raise CommandError(errors.NO_SUCH_KEY)
    if source == target:
        return False if only_if_new else True
    value, type_code, deadline, version = entry
    options = {}
    if deadline:
        options["expire_at_ms"] = deadline
    if only_if_new:
        options["nx"] = True
    if not conn.keyspace.store(target, value, type_code, **options):
        return False
    # A write to the source by another process after our read came later than the rename: keep it.
    if table.version(source) == version:
        table.delete(source)
    return True


@command("rename", 3, "write", keys=(1, 2, 1), summary="Rename a key, replacing the target")
def rename(conn, args):
    _rename(conn, args[1], args[2], False)
    return resp.OK


@command("renamenx", 3, "write fast", keys=(1, 2, 1),
         summary="Rename a key only if the new name is free")
def renamenx(conn, args):
    return resp.ONE if _rename(conn, args[1], args[2], True) else resp.ZERO


# ---- whole keyspace ----------------------------------------------------------------------------
@command("dbsize", 1, "readonly fast", summary="The number of keys")
def dbsize(conn, args):
    return resp.integer(len(conn.table))


def _flush(conn, args):
    # SYNC and ASYNC both empty the table at once: there is no background freeing to wait for.
    if len(args) > 2 or (len(args) == 2 and args[1].upper() not in (b"SYNC", b"ASYNC")):
        raise CommandError(errors.SYNTAX)
    conn.table.flush()
    return resp.OK


@command("flushdb", -1, "write", summary="Remove every key (there is one database)")
def flushdb(conn, args):
    return _flush(conn, args)


@command("flushall", -1, "write", summary="Remove every key")
def flushall(conn, args):
    return _flush(conn, args)
