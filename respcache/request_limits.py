"""Redis's checks on request headers (processMultibulkBuffer), made on the raw bytes.

hiredis parses replies, not requests: it accepts nested arrays, `$-1`, `:1` and any declared
length, and it says nothing until a request is complete. Redis looks at each `*N` / `$N` line as
soon as it is in the buffer. A `Walk` does the same over the chunks a connection fed hiredis
since the last request boundary (`Connection._unparsed`), skipping bodies by their length.

It is resumable, and only runs where a request is incomplete (hiredis said False), on the
unauthenticated path, or to word a protocol error: never once per complete request. See
`check_incomplete` for how it finds where to start without walking what hiredis already ran.
"""

from __future__ import annotations

import bisect
import re

import hiredis

from . import errors

INT_MAX = 2 ** 31 - 1          # a multibulk count above this is invalid (Redis: ll > INT_MAX)
# Counts hiredis may see: it allocates an aggregate's list when it reads the header (Redis as
# arguments arrive), so a larger *N is refused before hiredis parses it (protocol.Connection.
# _feed). Redis 7 accepts up to INT_MAX; no client sends a command of over a million arguments.
MAX_AGGREGATE = 1024 * 1024
UNAUTH_MULTIBULK = 10          # while authentication is required
UNAUTH_BULK = 16384
INLINE_MAX = 64 * 1024         # PROTO_INLINE_MAX_SIZE: a count line longer than this is refused
_TRIM = 1024                   # hiredis drops what it consumed once it passed this many bytes
_NUMBER = re.compile(rb"-?[1-9][0-9]*|0")


def string2ll(raw: bytes):
    """Redis's string2ll: no sign but '-', no leading zero, no spaces; None when invalid."""
    if not raw or len(raw) >= 21 or _NUMBER.fullmatch(raw) is None:
        return None
    value = int(raw)
    return value if -2 ** 63 <= value < 2 ** 63 else None


def got_char(byte: int) -> str:
    """The %c of "expected '$', got '%c'" as Redis sends it: CR and LF become spaces, other bytes
    go out raw (surrogateescape, see Connection.protocol_error)."""
    if byte in (10, 13):
        return " "
    return chr(byte) if byte < 128 else chr(0xDC00 + byte)


class Walk:
    """Where Redis's parser stands in the bytes since a request boundary.

    pos: the first point not yet complete: a request start (left == 0) or an element's header
    (left > 0, or None when the element count is unknown, see `at`). need: when the element at
    pos declared a length, the position its body (and CRLF) ends at. req: the current request's
    start (None when unknown).
    """

    __slots__ = ("chunks", "ends", "pos", "left", "need", "req", "stuck")

    def __init__(self, chunks):
        self.chunks = chunks
        self.ends = []
        self.pos = 0
        self.left = 0
        self.need = 0
        self.req = 0
        self.stuck = False

    # ---- the stream ---------------------------------------------------------------------------
    def size(self) -> int:
        """Bytes in the chunks; the offsets of new chunks are added (once each)."""
        ends, chunks = self.ends, self.chunks
        total = ends[-1] if ends else 0
        for i in range(len(ends), len(chunks)):
            total += len(chunks[i])
            ends.append(total)
        return total

    def rebase(self, chunks, consumed):
        """The connection compacted its chunks, dropping `consumed` leading bytes."""
        self.chunks = chunks
        self.ends = []
        self.pos -= consumed
        if self.need:
            self.need -= consumed
        if self.req is not None:
            self.req -= consumed

    def _index(self, p):
        return bisect.bisect_right(self.ends, p)

    def byte(self, p) -> int:
        i = self._index(p)
        chunk = self.chunks[i]
        return chunk[p - (self.ends[i] - len(chunk))]

    def slice(self, a, b) -> bytes:
        i = self._index(a)
        parts = []
        while a < b:
            chunk = self.chunks[i]
            start = self.ends[i] - len(chunk)
            part = chunk[a - start:b - start]
            parts.append(part)
            a += len(part)
            i += 1
        return b"".join(parts)

    def find_cr(self, p, total):
        """strchr(p, '\\r') on the query buffer: None when there is no CR (or a NUL comes first,
        where Redis's C string ends)."""
        i = self._index(p)
        while i < len(self.chunks):
            chunk = self.chunks[i]
            start = self.ends[i] - len(chunk)
            cr = chunk.find(b"\r", p - start)
            nul = chunk.find(b"\0", p - start, None if cr < 0 else cr)
            if nul >= 0:
                return None
            if cr >= 0:
                return start + cr
            p = self.ends[i]
            i += 1
        return None

    # ---- Redis's parser -----------------------------------------------------------------------
    def at(self, p, total):
        """Stand at `p`, a point hiredis stopped at (see check_incomplete): a request start when
        it holds '*', else an element of a request whose remaining count is unknown."""
        self.pos, self.need, self.stuck = p, 0, False
        if p < total and self.byte(p) != 42:
            self.left, self.req = None, None
        else:
            self.left, self.req = 0, p

    def advance(self, total, max_bulk, unauth):
        """Walk to the first incomplete point; the error text Redis would send there, or None."""
        while not self.stuck:
            p = self.pos
            if self.left == 0:                     # a request starts here
                if p >= total or self.byte(p) != 42:
                    return None                    # the end, or an inline command: not ours
                cr = self.find_cr(p, total)
                if cr is None:
                    return errors.PROTO_MBULK_TOO_BIG if total - p > INLINE_MAX else None
                if cr > total - 2:
                    return None
                self.req = p
                count = string2ll(self.slice(p + 1, cr))
                if count is None or count > INT_MAX:
                    return errors.PROTO_MULTIBULK
                if unauth and count > UNAUTH_MULTIBULK:
                    return errors.PROTO_UNAUTH_MULTIBULK
                self.pos = cr + 2                  # Redis skips two bytes, CRLF or not
                self.left = max(count, 0)          # *0 and negative counts are ignored
                continue
            if self.need:                          # a body already announced
                if total < self.need:
                    return None
                self.pos, self.need = self.need, 0
                if self.left is not None:
                    self.left -= 1
                continue
            cr = self.find_cr(p, total)
            if cr is None:
                return errors.PROTO_BULK_TOO_BIG if total - p > INLINE_MAX else None
            if cr > total - 2:
                return None
            first = self.byte(p)
            if first != 36:                        # not '$'
                if self.left is None:
                    if first == 42:                # the count was lost: a new request
                        self.left = 0
                        continue
                    self.stuck = True              # an inline command or a bad element
                    return None
                return errors.PROTO_EXPECTED_DOLLAR.format(got_char(first))
            length = string2ll(self.slice(p + 1, cr))
            if length is None or length < 0 or length > max_bulk:
                return errors.PROTO_BULK
            if unauth and length > UNAUTH_BULK:
                return errors.PROTO_UNAUTH_BULK
            self.need = cr + 2 + length + 2
        return None


def check_incomplete(conn):
    """hiredis holds part of a request: Redis's verdict on its headers so far, or None.

    Where to start without walking what hiredis already ran: hiredis's buffer is the stream's
    tail (reader.len() bytes); after each gets() it keeps fewer than 1024 consumed bytes, having
    dropped them at the end of a gets() call, so at a request boundary or, on the last call, at
    the element it stopped at. Its start Q lies within 1024 bytes before the incomplete point:
      - the walk so far stands at or after Q: go on from there (fewer than 1024 bytes);
      - the origin (a request boundary) is at or after Q: start there;
      - else start at Q (`Walk.at`).
    Either way the walk covers fewer than 1024 bytes before the incomplete point, plus headers.
    """
    walk = conn._walk
    if walk is None:
        walk = conn._walk = Walk(conn._unparsed)
        fresh = True
    else:
        fresh = False
    total = walk.size()
    if walk.need and total < walk.need:
        return None                                # still in a body: no new header yet
    start = total - conn.reader.len()
    if fresh:
        if start > 0:
            walk.at(start, total)
    elif start > walk.pos:
        walk.at(start, total)
    values = conn.server.config.values
    return walk.advance(total, values["proto-max-bulk-len"], not conn.authenticated)


def first_error(chunks, max_bulk, unauth):
    """Redis's verdict walking the whole stream from its origin: (error text or None, Walk)."""
    walk = Walk(chunks)
    return walk.advance(walk.size(), max_bulk, unauth), walk


def redis_error(conn):
    """The error Redis's parser meets first in the bytes since the last boundary, or None
    (to word a protocol error as Redis does; not on the hot path)."""
    if not conn._unparsed:
        return None
    return first_error(
        conn._unparsed, conn.server.config.values["proto-max-bulk-len"],
        not conn.authenticated)[0]


def feed_unauthenticated(conn, data):
    """hiredis takes `data` from a client that must still authenticate: Redis's smaller
    limits apply to every request header (only this path walks complete requests).

    The requests before a refused one run first, as Redis runs them: if one of them was
    a successful AUTH, the rest is an authenticated client's. Returns what _drain does.
    """
    conn._unparsed.append(data)
    walk = conn._walk
    if walk is None:
        walk = conn._walk = Walk(conn._unparsed)
    total = walk.size()
    refused = walk.advance(total, conn.server.config.values["proto-max-bulk-len"], True)
    if refused is None:
        conn.reader.feed(data)
        conn._idle = False
        return conn._drain()
    cut = (walk.req if walk.req is not None else walk.pos) - (total - len(data))
    if cut > 0:
        conn._unparsed[-1] = head = data[:cut]
        walk.ends.pop()
        conn.reader.feed(head)
        conn._idle = False
        rest = conn._drain()
        if conn.closing:
            return None
        if conn.authenticated or conn.blocked is not None or rest is not None:
            tail = data[cut:]
            if rest is not None:
                return rest + tail
            if conn.blocked is not None:  # not for the commands allowed before AUTH
                conn.reader.feed(tail)
                conn._unparsed.append(tail)
                return None
            return _feed_resp(conn, tail)
    conn.protocol_error(refused)
    return None


def _feed_resp(conn, data):
    if not conn.authenticated:
        return feed_unauthenticated(conn, data)
    return conn._feed(data)  # authenticated from here on: the aggregate scan applies


def complete_bytes(chunks) -> int:
    """Bytes of the complete requests at the start of `chunks` (what hiredis was fed since a
    boundary): parsed again with a fresh reader, each request sized as RESP."""
    probe = hiredis.Reader()
    for chunk in chunks:
        probe.feed(chunk)
    consumed = 0
    while True:
        try:
            args = probe.gets()
        except hiredis.ProtocolError:
            return consumed
        if args is False:
            return consumed
        consumed += _encoded_size(args)


def _encoded_size(value) -> int:
    """Bytes of a parsed request as RESP: *N CRLF then each element ($len CRLF data CRLF for
    a bulk string). Odd elements (:n, $-1, nested arrays) are sized too: they may precede an
    error that must be located."""
    if value is None:
        return 5                                   # $-1 CRLF (or *-1 CRLF)
    if value.__class__ is list:
        return len(str(len(value))) + 3 + sum(map(_encoded_size, value))
    if value.__class__ is int:
        return len(str(value)) + 3                 # :n CRLF
    n = len(value)
    return n + len(str(n)) + 5


def hiredis_error_text(text: str) -> str:
    """A hiredis ProtocolError in Redis's words, where request bytes did not say more."""
    if "multi-bulk" in text:
        return errors.PROTO_MULTIBULK
    if "Bulk string length" in text or "bulk" in text.lower():
        return errors.PROTO_BULK
    if "reply type byte" in text:
        got = text.split('"')[1] if '"' in text else "?"
        return errors.PROTO_EXPECTED_DOLLAR.format(got)
    return "Protocol error: " + text
