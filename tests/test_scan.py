"""SCAN on the fixed-size table: a call visits enough buckets to expect about COUNT keys."""

from __future__ import annotations


def _full_scan(client, **kwargs):
    keys, calls, cursor = [], 0, 0
    while True:
        cursor, batch = client.scan(cursor, **kwargs)
        keys += batch
        calls += 1
        if cursor == 0:
            return keys, calls


def test_two_keys_one_call_returns_both(r, real_redis):
    import redis
    real = redis.Redis(port=real_redis)
    real.flushall()
    for client in (r, real):
        client.set("a", 1)
        client.set("b", 2)
    ours = r.scan(0)
    theirs = real.scan(0)
    assert ours[0] == theirs[0] == 0
    assert sorted(ours[1]) == sorted(theirs[1]) == [b"a", b"b"]
    real.flushall()


def test_empty_table_one_call(r):
    assert r.scan(0) == (0, [])


def test_thousand_keys_full_iteration(start_server):
    # The default table size (131,072 buckets): 100 buckets a call would take ~1,300 calls.
    r = start_server("--shm-capacity", "131072").client()
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(f"k{i}", i)
    pipe.execute()
    keys, calls = _full_scan(r)
    assert len(keys) == len(set(keys))
    assert set(keys) == {f"k{i}".encode() for i in range(1000)}
    # About COUNT (10) keys per call: ~100 calls, not one per 100 buckets.
    assert 50 <= calls <= 250, calls
    keys, calls = _full_scan(r, count=100)
    assert set(keys) == {f"k{i}".encode() for i in range(1000)}
    assert calls <= 30, calls


def test_sparse_match_and_type_still_terminate(r):
    for i in range(20):
        r.set(f"s{i}", i)
    r.hset("h", "f", "v")
    keys, calls = _full_scan(r, match="s1*")
    assert sorted(keys) == sorted({b"s1"} | {f"s1{i}".encode() for i in range(10)})
    keys, calls = _full_scan(r, _type="hash")
    assert keys == [b"h"]
    assert calls <= 5


def test_keys_added_during_iteration_keep_present_ones(r):
    for i in range(300):
        r.set(f"p{i}", i)
    seen, cursor, extra = set(), 0, 0
    while True:
        cursor, batch = r.scan(cursor)
        seen.update(batch)
        r.set(f"new{extra}", extra)
        extra += 1
        if cursor == 0:
            break
    assert {f"p{i}".encode() for i in range(300)} <= seen
