"""RESP2/RESP3 reply encoding.

Handlers build replies with these functions and return bytes, so the hot path never walks a Python
object tree to encode it. Functions that differ between RESP2 and RESP3 take the protocol version.
"""

from decimal import Decimal

OK = b"+OK\r\n"
QUEUED = b"+QUEUED\r\n"
PONG = b"+PONG\r\n"
ZERO = b":0\r\n"
ONE = b":1\r\n"
EMPTY_ARRAY = b"*0\r\n"
NIL = {2: b"$-1\r\n", 3: b"_\r\n"}
NIL_ARRAY = {2: b"*-1\r\n", 3: b"_\r\n"}
_SMALL_INTS = [b":%d\r\n" % i for i in range(-1, 1024)]


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def bulk_or_nil(value, proto: int) -> bytes:
    if value is None:
        return NIL[proto]
    return b"$%d\r\n%b\r\n" % (len(value), value)


def integer(n: int) -> bytes:
    if -1 <= n < 1023:
        return _SMALL_INTS[n + 1]
    return b":%d\r\n" % n


def simple(text: str) -> bytes:
    return b"+" + text.encode() + b"\r\n"


def error(text: str) -> bytes:
    return b"-" + text.encode("utf-8", "replace") + b"\r\n"


def verbatim(text: bytes, proto: int) -> bytes:
    """INFO-style text: a bulk string in RESP2, a verbatim string ('txt') in RESP3."""
    if proto == 3:
        return b"=%d\r\ntxt:%b\r\n" % (len(text) + 4, text)
    return bulk(text)


def array_header(n: int) -> bytes:
    return b"*%d\r\n" % n


def bulk_array(items) -> bytes:
    """An array of bulk strings (None items become nil in the RESP2 way, as Redis sends them)."""
    parts = [b"*%d\r\n" % len(items)]
    for item in items:
        parts.append(b"$-1\r\n" if item is None else b"$%d\r\n%b\r\n" % (len(item), item))
    return b"".join(parts)


def bulk_array_nil(items, proto: int) -> bytes:
    """Like bulk_array, but missing items use the protocol's null."""
    nil = NIL[proto]
    parts = [b"*%d\r\n" % len(items)]
    for item in items:
        parts.append(nil if item is None else b"$%d\r\n%b\r\n" % (len(item), item))
    return b"".join(parts)


def array(encoded_items) -> bytes:
    """An array whose elements are already encoded replies."""
    return b"*%d\r\n" % len(encoded_items) + b"".join(encoded_items)


def set_of(encoded_items, proto: int) -> bytes:
    head = b"~%d\r\n" if proto == 3 else b"*%d\r\n"
    return head % len(encoded_items) + b"".join(encoded_items)


def map_of(pairs, proto: int) -> bytes:
    """pairs: a list of (encoded key, encoded value); a flat array in RESP2, a map in RESP3."""
    if proto == 3:
        head = b"%%%d\r\n" % len(pairs)
    else:
        head = b"*%d\r\n" % (2 * len(pairs))
    return head + b"".join(k + v for k, v in pairs)


def double(value: float, proto: int) -> bytes:
    text = format_double(value)
    if proto == 3:
        return b",%b\r\n" % text
    return bulk(text)


def boolean(flag: bool, proto: int) -> bytes:
    if proto == 3:
        return b"#t\r\n" if flag else b"#f\r\n"
    return ONE if flag else ZERO


def push(encoded_items, proto: int) -> bytes:
    """Pub/sub messages: a push type in RESP3, a plain array in RESP2."""
    head = b">%d\r\n" if proto == 3 else b"*%d\r\n"
    return head % len(encoded_items) + b"".join(encoded_items)


def format_double(value: float) -> bytes:
    """Format as Redis's INCRBYFLOAT does: fixed notation, no exponent, no trailing zeros.

    Redis prints a long double with %.17Lf and trims; the shortest repr of the double gives the
    same digits for the values a double can carry, without long double's extra noise.
    """
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.encode()
