"""The consistent-hash ring: balance, small moves on join/leave, R distinct owners, kinds."""

from tiers.ring import Ring

KEYS = [b"session:%d" % i for i in range(100_000)]
THREE = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]


def shares(ring):
    counts = dict.fromkeys(ring.members, 0)
    for key in KEYS:
        counts[ring.primary(key)] += 1
    return {m: c / len(KEYS) for m, c in counts.items()}


def test_three_members_each_hold_a_third():
    for seed in (0, 1, 42):
        share = shares(Ring(THREE, vnodes=160, seed=seed))
        assert all(abs(s - 1 / 3) <= 0.05 for s in share.values()), (seed, share)


def test_replica_placements_are_balanced_too():
    ring = Ring(THREE, vnodes=160, replicas=2)
    counts = dict.fromkeys(THREE, 0)
    for key in KEYS:
        owners = ring.owners(key)
        assert len(owners) == 2 and len(set(owners)) == 2
        for m in owners:
            counts[m] += 1
    total = 2 * len(KEYS)
    assert all(abs(c / total - 1 / 3) <= 0.05 for c in counts.values()), counts


def test_a_fourth_member_moves_at_most_30_percent():
    ring = Ring(THREE, replicas=2)
    before_primary = {k: ring.primary(k) for k in KEYS}
    before = {k: set(ring.owners(k)) for k in KEYS}
    bigger = ring.copy()
    bigger.add("127.0.0.1:7004")
    moved = sum(1 for k in KEYS if bigger.primary(k) != before_primary[k])
    assert moved / len(KEYS) <= 0.30, moved / len(KEYS)
    # Replica copies that must move to the newcomer (new placements / all placements).
    new_copies = sum(len(set(bigger.owners(k)) - before[k]) for k in KEYS)
    assert new_copies / (2 * len(KEYS)) <= 0.30, new_copies / (2 * len(KEYS))
    # Only the newcomer gains keys: nothing moves between the old members.
    assert all(bigger.primary(k) in (before_primary[k], "127.0.0.1:7004") for k in KEYS[:20000])


def test_leave_moves_only_the_leavers_keys():
    ring = Ring(THREE + ["127.0.0.1:7004"], replicas=2)
    before = {k: ring.primary(k) for k in KEYS[:20000]}
    ring.remove("127.0.0.1:7002")
    for key, owner in before.items():
        if owner != "127.0.0.1:7002":
            assert ring.primary(key) == owner
    assert "127.0.0.1:7002" not in ring


def test_owners_are_distinct_and_capped_by_membership():
    ring = Ring(["a:1", "b:2"], replicas=3)
    assert sorted(ring.owners(b"x")) == ["a:1", "b:2"]
    assert Ring([], replicas=2).owners(b"x") == []
    assert Ring(["a:1"], replicas=2).owners(b"x") == ["a:1"]


def test_same_parameters_same_ring_everywhere():
    one = Ring(THREE, vnodes=64, seed=7)
    two = Ring(list(reversed(THREE)), vnodes=64, seed=7)
    assert all(one.owners(k) == two.owners(k) for k in KEYS[:5000])
    other_seed = Ring(THREE, vnodes=64, seed=8)
    assert any(one.owners(k) != other_seed.owners(k) for k in KEYS[:5000])


def test_owners_of_one_kind():
    ring = Ring([("a:1", "expansion"), ("b:2", "aging"), ("c:3", "aging")], replicas=2)
    for key in KEYS[:2000]:
        aging = ring.owners(key, kind="aging")
        assert sorted(aging) == ["b:2", "c:3"]
        assert ring.owners(key, kind="expansion") == ["a:1"]
    assert Ring([("a:1", "expansion")]).owners(b"k", kind="aging") == []
