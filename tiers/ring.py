"""The consistent-hash ring that places every object on R relief nodes.

Each member (a relief node, named "host:port") gets `vnodes` points on a 64-bit circle at
mmh3.hash64("<member>#<i>", seed); a key hashes with the same function and seed, and its owners are
the first R distinct members met walking clockwise from the key's point. Adding a member takes over
only the arcs its points land on (about 1/N of the keys), removing one hands its arcs to the next
points on the circle, which is what keeps moves small on join and leave.
"""

from __future__ import annotations

import bisect

import mmh3


def key_point(key: bytes, seed: int) -> int:
    return mmh3.hash64(key, seed, signed=False)[0]


class Ring:
    def __init__(self, members=(), vnodes=160, seed=0, replicas=2):
        self.vnodes = vnodes
        self.seed = seed
        self.replicas = replicas
        self.members = {}          # name -> kind (aging | expansion | "")
        self._points = []          # sorted hash points
        self._owners = []          # member at each point
        for member in members:
            if isinstance(member, tuple):
                self.members[member[0]] = member[1]
            else:
                self.members[member] = ""
        self._build()

    def copy(self) -> "Ring":
        other = Ring(vnodes=self.vnodes, seed=self.seed, replicas=self.replicas)
        other.members = dict(self.members)
        other._points = self._points
        other._owners = self._owners
        return other

    def _build(self):
        pairs = []
        for member in self.members:
            name = member.encode() if isinstance(member, str) else member
            for i in range(self.vnodes):
                pairs.append((key_point(b"%s#%d" % (name, i), self.seed), member))
        pairs.sort()
        self._points = [p for p, _ in pairs]
        self._owners = [m for _, m in pairs]

    def add(self, member, kind=""):
        if member in self.members:
            self.members[member] = kind
            return False
        self.members[member] = kind
        self._build()
        return True

    def remove(self, member) -> bool:
        if member not in self.members:
            return False
        del self.members[member]
        self._build()
        return True

    def owners(self, key: bytes, count=None, kind=None) -> list:
        """The first `count` (default R) distinct members clockwise from the key's point.

        With `kind`, only members of that kind count (an expansion node hands aged objects to the
        aging members this way).
        """
        want = self.replicas if count is None else count
        points = self._points
        if not points or want <= 0:
            return []
        if kind is None:
            want = min(want, len(self.members))
        else:
            want = min(want, sum(1 for k in self.members.values() if k == kind))
            if want == 0:
                return []
        owners = self._owners
        n = len(points)
        i = bisect.bisect_left(points, key_point(key, self.seed))
        found = []
        for step in range(n):
            member = owners[(i + step) % n]
            if member not in found and (kind is None or self.members[member] == kind):
                found.append(member)
                if len(found) == want:
                    break
        return found

    def primary(self, key: bytes):
        owners = self.owners(key, 1)
        return owners[0] if owners else None

    def __len__(self):
        return len(self.members)

    def __contains__(self, member):
        return member in self.members
