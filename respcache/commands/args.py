"""Argument parsing shared by command families, strict in the ways Redis is strict."""

from __future__ import annotations

import math
import time

from .. import errors
from ..errors import CommandError

LLONG_MAX = 2 ** 63 - 1
LLONG_MIN = -(2 ** 63)


def parse_int(raw: bytes, error=errors.NOT_INTEGER) -> int:
    """Redis string2ll: optional '-', digits, no '+', no spaces, no leading zeros, int64 range."""
    n = len(raw)
    if n == 0 or n > 20:
        raise CommandError(error)
    if raw == b"0":
        return 0
    start = 1 if raw[0] == 45 else 0
    if start == n or not (49 <= raw[start] <= 57) or not raw[start:].isdigit():
        raise CommandError(error)
    value = int(raw)
    if not LLONG_MIN <= value <= LLONG_MAX:
        raise CommandError(error)
    return value


def parse_float(raw: bytes, error=errors.NOT_FLOAT) -> float:
    """Redis string2ld: a full strtold parse, no surrounding spaces, NaN refused."""
    if not raw or raw[:1].isspace() or raw[-1:].isspace():
        raise CommandError(error)
    try:
        value = float(raw)
    except ValueError:
        raise CommandError(error) from None
    if math.isnan(value) or b"_" in raw:
        raise CommandError(error)
    return value


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def deadline_ms(raw: bytes, unit_ms: int, relative: bool, command: str) -> int:
    """EX/PX/EXAT/PXAT value -> absolute deadline in ms, with Redis's checks and errors."""
    value = parse_int(raw)
    if value <= 0 or (unit_ms == 1000 and value > LLONG_MAX // 1000):
        raise CommandError(errors.INVALID_EXPIRE.format(command))
    value *= unit_ms
    if relative:
        base = now_ms()
        if value > LLONG_MAX - base:
            raise CommandError(errors.INVALID_EXPIRE.format(command))
        value += base
    return value


def parse_expiry_options(args, start, command, allow_keepttl, allow_persist):
    """Parse EX/PX/EXAT/PXAT (+KEEPTTL or PERSIST) and the flags in `flags_allowed`.

    Returns (deadline_ms or None, keepttl, persist, flags) where flags is a set of the other
    upper-cased words seen (NX, XX, GET); unknown words or conflicts raise a syntax error.
    """
    deadline = None
    keepttl = persist = False
    flags = set()
    i, n = start, len(args)
    while i < n:
        word = args[i].upper()
        if word in (b"EX", b"PX", b"EXAT", b"PXAT") and i + 1 < n:
            if deadline is not None or keepttl or persist:
                raise CommandError(errors.SYNTAX)
            unit = 1000 if word in (b"EX", b"EXAT") else 1
            deadline = ("pending", args[i + 1], unit, word in (b"EX", b"PX"))
            i += 2
            continue
        if word == b"KEEPTTL" and allow_keepttl:
            if deadline is not None:
                raise CommandError(errors.SYNTAX)
            keepttl = True
        elif word == b"PERSIST" and allow_persist:
            if deadline is not None:
                raise CommandError(errors.SYNTAX)
            persist = True
        elif word in (b"NX", b"XX", b"GET") and not allow_persist:
            if (word == b"NX" and b"XX" in flags) or (word == b"XX" and b"NX" in flags):
                raise CommandError(errors.SYNTAX)
            flags.add(word)
        else:
            raise CommandError(errors.SYNTAX)
        i += 1
    if deadline is not None:
        # Values are checked after the whole line parsed, as Redis reports syntax errors first.
        _, raw, unit, relative = deadline
        deadline = deadline_ms(raw, unit, relative, command)
    return deadline, keepttl, persist, flags
