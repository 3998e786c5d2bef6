"""Inline commands ("PING\r\n", what telnet and nc send), split as Redis's sdssplitargs does."""

from . import errors

INLINE_MAX = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_HEX = b"0123456789abcdefABCDEF"


class InlineParser:
    def __init__(self, limit):
        self.buf = bytearray()
        self.limit = min(limit, INLINE_MAX)

    def empty(self) -> bool:
        return not self.buf

    def take_rest(self) -> bytes:
        rest, self.buf = bytes(self.buf), bytearray()
        return rest

    def feed(self, data):
        """Yield (argv, None) per complete line, or (None, rest) when RESP starts at a line start."""
        self.buf += data
        while self.buf:
            if self.buf[0] == 42:  # '*': the client speaks RESP from here on
                yield None, self.take_rest()
                return
            newline = self.buf.find(b"\n")
            if newline < 0:
                if len(self.buf) > self.limit:
                    raise errors.ProtocolError(errors.PROTO_INLINE_TOO_BIG)
                return
            line = bytes(self.buf[:newline])
            del self.buf[:newline + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            yield split_args(line), None


def split_args(line: bytes) -> list:
    """sdssplitargs: spaces separate; "double" quotes take escapes, 'single' quotes only \\'.

    Redis splits a C string: a NUL byte ends the line (inside quotes, it leaves them unbalanced).
    Without this cut a NUL outside quotes would end a token without being consumed.
    """
    nul = line.find(0)
    if nul >= 0:
        line = line[:nul]
    args = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in b" \t\n\r\v\f":
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            if in_double:
                if i >= n:
                    raise errors.ProtocolError(errors.PROTO_UNBALANCED)
                c = line[i]
                if (c == 92 and i + 3 < n and line[i + 1] == ord("x")
                        and line[i + 2] in _HEX and line[i + 3] in _HEX):
                    current.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(line[i], bytes([line[i]]))
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in b" \t\n\r\v\f":
                        raise errors.ProtocolError(errors.PROTO_UNBALANCED)
                    in_double = False
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_single:
                if i >= n:
                    raise errors.ProtocolError(errors.PROTO_UNBALANCED)
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    current.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in b" \t\n\r\v\f":
                        raise errors.ProtocolError(errors.PROTO_UNBALANCED)
                    in_single = False
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in b" \n\r\t\0":
                    break
                if c == 34:
                    in_double = True
                elif c == 39:
                    in_single = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))
