"""Hash commands: HSET HGET and the rest of Redis's hash family.

A hash is one table entry of type HASH (see keyspace.py for the encoding). Reads decode it; writes
go through Keyspace.update_hash, a compare-and-set that re-runs the change if another process wrote
the key in between, so a change function must only compute from the fields it is given. Fields keep
insertion order, which is what Redis's small (listpack) hashes show clients.
"""

from __future__ import annotations

import random

from .. import errors, resp
from ..errors import CommandError
from .args import (LLONG_MAX, LLONG_MIN, add_long_double, format_long_double,
                   long_double_is_finite, parse_int, parse_long_double)
from .registry import command

EMPTY_MAP = {2: b"*0\r\n", 3: b"%0\r\n"}


def _fields(conn, key) -> dict:
    """The hash at key ({} if missing); WRONGTYPE if key holds another type."""
    fields = conn.keyspace.read_hash(key)
    return {} if fields is None else fields


# ---- writes ------------------------------------------------------------------------------------
def _set_pairs(conn, args, name):
    if len(args) % 2:
        raise CommandError(errors.wrong_arity(name))
    pairs = args[2:]

    def change(fields):
        added = 0
        for i in range(0, len(pairs), 2):
            if pairs[i] not in fields:
                added += 1
            fields[pairs[i]] = pairs[i + 1]  # an existing field keeps its place, as in a listpack
        return added
    return conn.keyspace.update_hash(args[1], change)


@command("hset", -4, "write denyoom fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Set hash fields; reply with how many were new")
def hset(conn, args):
    return resp.integer(_set_pairs(conn, args, "hset"))


@command("hmset", -4, "write denyoom fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Set hash fields (deprecated form of HSET)")
def hmset(conn, args):
    _set_pairs(conn, args, "hmset")
    return resp.OK


@command("hsetnx", 4, "write denyoom fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Set a hash field only if it does not exist")
def hsetnx(conn, args):
    field, value = args[2], args[3]

    def change(fields):
        if field in fields:
            return resp.ZERO
        fields[field] = value
        return resp.ONE
    return conn.keyspace.update_hash(args[1], change, skip_unchanged=True)


@command("hdel", -3, "write fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Delete hash fields; the key goes when its last field does")
def hdel(conn, args):
    names = args[2:]

    def change(fields):
        return resp.integer(sum(1 for name in names if fields.pop(name, None) is not None))
    return conn.keyspace.update_hash(args[1], change, skip_unchanged=True)


@command("hincrby", 4, "write denyoom fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Add an integer to a hash field")
def hincrby(conn, args):
    field = args[2]
    increment = parse_int(args[3])  # checked before the key's type, as Redis does

    def change(fields):
        old = fields.get(field)
        value = 0 if old is None else parse_int(old, errors.HASH_NOT_INTEGER)
        total = value + increment
        if not LLONG_MIN <= total <= LLONG_MAX:
            raise CommandError(errors.OVERFLOW)
        fields[field] = b"%d" % total
        return resp.integer(total)
    return conn.keyspace.update_hash(args[1], change)


@command("hincrbyfloat", 4, "write denyoom fast", keys=(1, 1, 1), group="hash", since="2.6.0",
         summary="Add a floating point number to a hash field")
def hincrbyfloat(conn, args):
    field = args[2]
    increment = parse_long_double(args[3])
    if not long_double_is_finite(format_long_double(increment)):
        raise CommandError(errors.VALUE_NAN_OR_INF)

    def change(fields):
        old = fields.get(field)
        base = parse_long_double(b"0" if old is None else old, errors.HASH_NOT_FLOAT)
        text = format_long_double(add_long_double(base, increment))
        if not long_double_is_finite(text):
            raise CommandError(errors.INCR_FLOAT_NAN)
        fields[field] = text
        return resp.bulk(text)
    return conn.keyspace.update_hash(args[1], change)


# ---- reads -------------------------------------------------------------------------------------
@command("hget", 3, "readonly fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="The value of a hash field")
def hget(conn, args):
    return resp.bulk_or_nil(_fields(conn, args[1]).get(args[2]), conn.proto)


@command("hmget", -3, "readonly fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="The values of hash fields")
def hmget(conn, args):
    fields = _fields(conn, args[1])
    return resp.bulk_array_nil([fields.get(name) for name in args[2:]], conn.proto)


@command("hgetall", 2, "readonly", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Every field and value of a hash")
def hgetall(conn, args):
    fields = _fields(conn, args[1])
    if not fields:
        return EMPTY_MAP[conn.proto]
    return resp.map_of([(resp.bulk(name), resp.bulk(value)) for name, value in fields.items()],
                       conn.proto)


@command("hkeys", 2, "readonly", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Every field name of a hash")
def hkeys(conn, args):
    return resp.bulk_array(list(_fields(conn, args[1])))


@command("hvals", 2, "readonly", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Every value of a hash")
def hvals(conn, args):
    return resp.bulk_array(list(_fields(conn, args[1]).values()))


@command("hlen", 2, "readonly fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="The number of fields in a hash")
def hlen(conn, args):
    return resp.integer(len(_fields(conn, args[1])))


@command("hexists", 3, "readonly fast", keys=(1, 1, 1), group="hash", since="2.0.0",
         summary="Whether a hash field exists")
def hexists(conn, args):
    return resp.ONE if args[2] in _fields(conn, args[1]) else resp.ZERO


@command("hstrlen", 3, "readonly fast", keys=(1, 1, 1), group="hash", since="3.2.0",
         summary="The length of a hash field's value")
def hstrlen(conn, args):
    return resp.integer(len(_fields(conn, args[1]).get(args[2], b"")))


# ---- HRANDFIELD --------------------------------------------------------------------------------
LONG_MAX = LLONG_MAX


@command("hrandfield", -2, "readonly", keys=(1, 1, 1), group="hash", since="6.2.0",
         summary="Random fields: HRANDFIELD key [count [WITHVALUES]]")
def hrandfield(conn, args):
    if len(args) == 2:
        fields = conn.keyspace.read_hash(args[1])
        if fields is None:
            return resp.NIL[conn.proto]
        return resp.bulk(random.choice(list(fields)))
    # Checked in Redis's order: the count's range, the syntax, WITHVALUES's range, then the key.
    count = parse_int(args[2])
    if count < -LONG_MAX:
        raise CommandError(errors.VALUE_OUT_OF_RANGE_BETWEEN.format(-LONG_MAX, LONG_MAX))
    if len(args) > 4 or (len(args) == 4 and args[3].upper() != b"WITHVALUES"):
        raise CommandError(errors.SYNTAX)
    with_values = len(args) == 4
    if with_values and not -(LONG_MAX // 2) <= count <= LONG_MAX // 2:
        raise CommandError(errors.VALUE_OUT_OF_RANGE)
    fields = conn.keyspace.read_hash(args[1])
    if fields is None or count == 0:
        return resp.EMPTY_ARRAY
    pairs = list(fields.items())
    if count < 0:
        # Repeats allowed, random order.
        picked = [random.choice(pairs) for _ in range(-count)]
    elif count >= len(pairs):
        picked = pairs
    else:
        # Distinct fields in the hash's own order, as Redis samples a listpack.
        picked = [pairs[i] for i in sorted(random.sample(range(len(pairs)), count))]
    return _field_list(picked, with_values, conn.proto)


def _field_list(pairs, with_values, proto) -> bytes:
    if not with_values:
        return resp.bulk_array([name for name, _ in pairs])
    if proto == 3:
        # RESP3: one [field, value] array per pick.
        return resp.array([resp.bulk_array(pair) for pair in pairs])
    return resp.bulk_array([item for pair in pairs for item in pair])
