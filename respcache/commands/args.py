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
            # The same option may repeat (the last value wins, as in Redis); two kinds may not.
            if (deadline is not None and deadline[0] != word) or keepttl or persist:
                raise CommandError(errors.SYNTAX)
            unit = 1000 if word in (b"EX", b"EXAT") else 1
            deadline = (word, args[i + 1], unit, word in (b"EX", b"PX"))
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


# ---- long double arithmetic for INCRBYFLOAT / HINCRBYFLOAT ------------------------------------
# Redis adds in C `long double` (80-bit on x86-64) and prints with "%.17Lf": 0.1 + 0.2 is "0.3"
# there and 1e400 is a number. Python floats would answer 0.30000000000000004 and inf, so the sum
# is done by libc/libm through ctypes on values that never pass through a Python float.
import ctypes as _ctypes
import ctypes.util as _ctypes_util


class LongDouble(_ctypes.c_longdouble):
    """A subclass, so ctypes hands results back as-is instead of rounding them to a float."""


_libc = _ctypes.CDLL(_ctypes_util.find_library("c"), use_errno=True)
_libm = _ctypes.CDLL(_ctypes_util.find_library("m"))
_strtold = _libc.strtold
_strtold.restype = LongDouble
_strtold.argtypes = [_ctypes.c_char_p, _ctypes.POINTER(_ctypes.c_char_p)]
_fmal = _libm.fmal
_fmal.restype = LongDouble
_fmal.argtypes = [LongDouble, LongDouble, LongDouble]
_ERANGE = 34
_LONG_DOUBLE_MAX_CHARS = 5 * 1024  # Redis's MAX_LONG_DOUBLE_CHARS


def parse_long_double(raw: bytes, error=errors.NOT_FLOAT) -> LongDouble:
    """Redis string2ld: all of `raw` is one strtold number, no leading space, no NaN/overflow."""
    if not raw or len(raw) >= _LONG_DOUBLE_MAX_CHARS or raw[:1].isspace() or b"\0" in raw:
        raise CommandError(error)
    buf = _ctypes.create_string_buffer(raw)
    end = _ctypes.c_char_p()
    _ctypes.set_errno(0)
    value = _strtold(buf, _ctypes.byref(end))
    consumed = _ctypes.cast(end, _ctypes.c_void_p).value - _ctypes.addressof(buf)
    text = format_long_double(value)
    if consumed != len(raw) or text.endswith(b"nan"):
        raise CommandError(error)
    if _ctypes.get_errno() == _ERANGE and (text.endswith(b"inf") or _is_zero(value)):
        raise CommandError(error)  # overflow, or underflow all the way to zero
    return value


def _is_zero(value: LongDouble) -> bool:
    buf = _ctypes.create_string_buffer(64)
    _libc.snprintf(buf, 64, b"%Lg", value)
    return buf.value in (b"0", b"-0")


def add_long_double(a: LongDouble, b: LongDouble) -> LongDouble:
    return _fmal(LongDouble(1.0), a, b)  # 1*a + b, rounded once: exactly `a + b` in C


def format_long_double(value: LongDouble) -> bytes:
    """Redis ld2string(LD_STR_HUMAN): "%.17Lf" with trailing zeros cut; "inf"/"-inf"; no "-0"."""
    buf = _ctypes.create_string_buffer(_LONG_DOUBLE_MAX_CHARS)
    n = _libc.snprintf(buf, _LONG_DOUBLE_MAX_CHARS, b"%.17Lf", value)
    text = buf.raw[:n]
    if b"." in text:
        text = text.rstrip(b"0").rstrip(b".")
    return b"0" if text == b"-0" else text


def long_double_is_finite(text: bytes) -> bool:
    """On format_long_double's output: false for inf, -inf and nan."""
    return not (text.endswith(b"inf") or text.endswith(b"nan"))
