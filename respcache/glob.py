"""Redis glob patterns (stringmatchlen) for PSUBSCRIBE, PUBSUB CHANNELS, CONFIG GET and friends.

Compiled to a regular expression once per pattern: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\\x`.
"""

import re
from functools import lru_cache


@lru_cache(maxsize=4096)
def compile_glob(pattern: bytes):
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i:i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i:i + 1]))
        elif c == b"[":
            j = i + 1
            negate = j < n and pattern[j:j + 1] == b"^"
            if negate:
                j += 1
            items = []
            while j < n and pattern[j:j + 1] != b"]":
                if pattern[j:j + 1] == b"\\" and j + 1 < n:
                    j += 1
                    items.append(re.escape(pattern[j:j + 1]))
                elif j + 2 < n and pattern[j + 1:j + 2] == b"-" and pattern[j + 2:j + 3] != b"]":
                    lo, hi = sorted((pattern[j:j + 1], pattern[j + 2:j + 3]))
                    items.append(re.escape(lo) + b"-" + re.escape(hi))
                    j += 2
                else:
                    items.append(re.escape(pattern[j:j + 1]))
                j += 1
            body = b"".join(items)
            if not body:
                # Redis: "[]" matches nothing, "[^]" matches any one character.
                out.append(b"." if negate else b"(?!)")
            else:
                out.append(b"[" + (b"^" if negate else b"") + body + b"]")
            i = j  # at the closing bracket (or the end, where Redis stops too)
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out) + b"\\Z", re.DOTALL)


def glob_match(pattern: bytes, text: bytes) -> bool:
    return compile_glob(pattern).match(text) is not None
