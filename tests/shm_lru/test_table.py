"""shm_lru unit tests: one operation at a time, on real segments in /dev/shm."""

from __future__ import annotations

import os
import time
import uuid

import pytest

import shm_lru
from shm_lru import (OP_DEL, OP_EVICTED, OP_EXPIRE, OP_EXPIRED, OP_FLUSH, OP_SET, SegmentError,
                     ShmLRU, WrongTypeError)


def unique_name():
    return f"shmtest-{os.getpid()}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_table():
    made = []

    def make(**options):
        options.setdefault("touch_interval_ms", 0)
        table = ShmLRU.create(unique_name(), **options)
        made.append(table)
        return table
    yield make
    for table in made:
        try:
            table.unlink()
        finally:
            table.close()


@pytest.fixture
def table(make_table):
    return make_table(capacity=256, record_size=128)


def test_set_get_delete_exists(table):
    assert table.get(b"k") is None
    assert table.set(b"k", b"v") is True
    assert table.get(b"k") == b"v"
    assert table.exists(b"k") and len(table) == 1
    assert table.delete(b"k") is True
    assert table.delete(b"k") is False
    assert table.get(b"k") is None and len(table) == 0
    assert table.check() == []


def test_values_larger_than_a_record_span_a_chain(table):
    value = bytes(range(256)) * 20  # 5120 bytes over 128-byte records
    assert table.set(b"big", value)
    assert table.get(b"big") == value
    records = table.info(b"big")[1]
    assert records == 1 + -(-(len(value) + 3 - (128 - shm_lru.HEAD_OVERHEAD))
                            // (128 - shm_lru.CHAIN_OVERHEAD))
    assert table.stats()["used_records"] == records
    # shrink and grow in place or not, the value is always whole
    for size in (10, 5000, 117, 118, 119, 300, 0):
        payload = os.urandom(size)
        table.set(b"big", payload)
        assert table.get(b"big") == payload
    assert table.check() == []


def test_long_keys_span_a_chain_too(table):
    key = b"k" * 1000
    assert table.set(key, b"value")
    assert table.get(key) == b"value"
    assert table.get(b"k" * 999) is None
    assert table.scan(0, count=1000)[1] == [key]


def test_value_that_can_never_fit_raises_with_the_sizes(table):
    with pytest.raises(ValueError, match=r"value 100000 bytes.*256 records"):
        table.set(b"huge", b"x" * 100000)
    assert table.check() == [] and len(table) == 0


def test_wrong_argument_types(table):
    with pytest.raises(TypeError, match="key must be bytes"):
        table.set("str-key", b"v")
    with pytest.raises(TypeError, match="value must be bytes"):
        table.set(b"k", "str-value")
    with pytest.raises(TypeError):
        table.get(123)
    with pytest.raises(ValueError, match="ttl_ms must be positive"):
        table.set(b"k", b"v", ttl_ms=-5)
    with pytest.raises(ValueError, match="ttl_ms must be positive"):
        table.set(b"k", b"v", ttl_ms=0)
    with pytest.raises(ValueError, match="out of range"):
        table.set(b"k", b"v", ttl_ms=2 ** 70)
    with pytest.raises(ValueError, match="overflows"):
        table.set(b"k", b"v", ttl_ms=2 ** 63 - 1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        table.set(b"k", b"v", bogus=1)
    assert table.check() == [] and len(table) == 0


def test_nx_xx_get_keepttl_if_version(table):
    assert table.set(b"k", b"1", nx=True) is True
    assert table.set(b"k", b"2", nx=True) is False
    assert table.set(b"missing", b"x", xx=True) is False
    assert table.set(b"k", b"3", xx=True) is True
    assert table.set(b"k", b"4", get=True) == b"3"
    assert table.set(b"new", b"n", get=True) is None
    table.set(b"k", b"5", ttl_ms=10000)
    table.set(b"k", b"6", keepttl=True)
    assert 9000 < table.pttl(b"k") <= 10000
    table.set(b"k", b"7")
    assert table.pttl(b"k") == -1
    version = table.version(b"k")
    assert table.set(b"k", b"8", if_version=version + 1) is False
    assert table.set(b"k", b"8", if_version=version) is True
    assert table.version(b"k") > version
    assert table.set(b"absent", b"a", if_version=0) is True
    assert table.set(b"absent", b"b", if_version=0) is False


def test_types_and_wrongtype(table):
    table.set(b"h", b"hashbytes", type=1)
    assert table.type(b"h") == 1 and table.type(b"none") is None
    with pytest.raises(WrongTypeError):
        table.get(b"h", 0)
    assert table.get(b"h", 1) == b"hashbytes" and table.get(b"h") == b"hashbytes"
    with pytest.raises(WrongTypeError):
        table.set(b"h", b"s", get=True, type=0)
    assert table.get(b"h", 1) == b"hashbytes"  # unchanged by the refused SET GET
    with pytest.raises(WrongTypeError):
        table.pop(b"h", 0)
    with pytest.raises(WrongTypeError):
        table.incrby(b"h", 1)
    assert table.pop(b"h", 1) == b"hashbytes" and not table.exists(b"h")
    assert issubclass(WrongTypeError, shm_lru.ShmLRUError)
    assert not issubclass(WrongTypeError, ValueError)


def test_ttl_expire_persist_and_lazy_expiry(table):
    table.set(b"k", b"v", ttl_ms=50)
    assert 0 < table.pttl(b"k") <= 50 and table.ttl(b"k") == 0
    assert table.expiretime_ms(b"k") > table.now_ms()
    time.sleep(0.08)
    assert table.get(b"k") is None  # never returned after the deadline
    assert table.pttl(b"k") == -2 and table.expiretime_ms(b"k") == -2
    assert table.stats()["expirations"] == 1
    table.set(b"p", b"v")
    assert table.pttl(b"p") == -1 and table.ttl(b"p") == -1
    assert table.expire(b"p", 100000) is True
    assert 99 <= table.ttl(b"p") <= 100
    assert table.persist(b"p") is True and table.persist(b"p") is False
    assert table.expire_at(b"p", table.now_ms() + 5000) is True
    assert table.expire_at(b"p", table.now_ms() - 1) is True  # a past deadline deletes
    assert not table.exists(b"p")
    assert table.expire(b"missing", 1000) is False
    table.set(b"abs", b"v", expire_at_ms=table.now_ms() + 3000)
    assert 2900 < table.pttl(b"abs") <= 3000


def test_sweep_reclaims_expired_entries_nobody_reads(table):
    for i in range(50):
        table.set(b"e%d" % i, b"v", ttl_ms=20)
    table.set(b"stay", b"v")
    time.sleep(0.05)
    assert len(table) == 51  # nothing touched them yet
    expired = 0
    for _ in range(4):
        expired += table.sweep(max_checks=100)
    assert expired == 50 and len(table) == 1 and table.check() == []


def test_incrby_follows_redis(table):
    assert table.incrby(b"n", 5) == 5
    assert table.incrby(b"n", -7) == -2
    assert table.get(b"n") == b"-2"
    table.set(b"n", b"10", ttl_ms=10000)
    assert table.incrby(b"n", 1) == 11 and table.pttl(b"n") > 9000  # keeps its TTL
    for bad in (b"", b" 1", b"1 ", b"+1", b"01", b"1.5", b"abc", b"99999999999999999999"):
        table.set(b"bad", bad)
        with pytest.raises(ValueError, match="not an integer"):
            table.incrby(b"bad", 1)
    table.set(b"max", b"9223372036854775807")
    with pytest.raises(OverflowError, match="would overflow"):
        table.incrby(b"max", 1)
    table.set(b"min", b"-9223372036854775808")
    with pytest.raises(OverflowError):
        table.incrby(b"min", -1)
    assert table.incrby(b"min", 0) == -(2 ** 63)


def test_lru_evicts_the_least_recently_used_whole_chains(make_table):
    table = make_table(capacity=16, record_size=128)
    for i in range(16):
        table.set(b"k%02d" % i, b"v")
    table.get(b"k00")          # now the most recent
    table.set(b"big", b"x" * 250)  # 253 bytes = 3 records (56 + 112 + 112): evicts 3
    assert table.exists(b"k00")
    assert [table.exists(b"k%02d" % i) for i in (1, 2, 3)] == [False, False, False]
    assert table.exists(b"k04")
    assert table.stats()["evictions"] == 3
    assert table.check() == []


def test_scan_returns_every_key_once_and_matches_globs(make_table):
    table = make_table(capacity=2048, record_size=128)
    keys = {b"user:%d" % i for i in range(500)} | {b"session:%d" % i for i in range(500)}
    for key in keys:
        table.set(key, b"v")
    table.set(b"typed", b"h", type=1)
    seen = []
    cursor = 0
    while True:
        cursor, batch = table.scan(cursor, count=37)
        seen += batch
        if cursor == 0:
            break
    assert sorted(seen) == sorted(keys | {b"typed"})
    matched = []
    cursor = 0
    while True:
        cursor, batch = table.scan(cursor, match=b"user:1[0-4]?", count=100)
        matched += batch
        if cursor == 0:
            break
    assert sorted(matched) == sorted(b"user:1%d%d" % (a, b) for a in range(5) for b in range(10))
    _, typed = table.scan(0, count=100000, type=1)
    assert typed == [b"typed"]


def test_scan_keys_present_throughout_are_returned_despite_changes(make_table):
    table = make_table(capacity=4096, record_size=128)
    stable = {b"stable:%d" % i for i in range(300)}
    for key in stable:
        table.set(key, b"v")
    seen = set()
    cursor, n = 0, 0
    while True:
        cursor, batch = table.scan(cursor, count=20)
        seen.update(batch)
        for i in range(30):  # churn between calls
            table.set(b"churn:%d:%d" % (n, i), b"v")
            table.delete(b"churn:%d:%d" % (n - 1, i))
        n += 1
        if cursor == 0:
            break
    assert stable <= seen


def test_random_key_and_flush(table):
    assert table.random_key() is None
    for i in range(10):
        table.set(b"r%d" % i, b"v")
    assert table.random_key() in {b"r%d" % i for i in range(10)}
    assert table.flush() == 10
    assert len(table) == 0 and table.random_key() is None and table.check() == []
    assert table.stats()["free_records"] == 256


def test_journal_records_every_change_with_evicted_values(make_table):
    table = make_table(capacity=8, record_size=128)
    reader = table.journal()
    table.set(b"a", b"1", ttl_ms=100000)
    table.expire(b"a", 200000)
    table.delete(b"a")
    table.set(b"short", b"x", ttl_ms=10)
    time.sleep(0.03)
    table.get(b"short")
    for i in range(9):
        table.set(b"fill%d" % i, b"value%d" % i, ttl_ms=60000)
    table.flush()
    lost, records = reader.read(1000)
    assert lost == 0
    ops = [(op, key) for op, key, *_ in records]
    assert ops[:5] == [(OP_SET, b"a"), (OP_EXPIRE, b"a"), (OP_DEL, b"a"), (OP_SET, b"short"),
                       (OP_EXPIRED, b"short")]
    evicted = [r for r in records if r[0] == OP_EVICTED]
    assert [(r[1], r[2]) for r in evicted] == [(b"fill0", b"value0")]
    assert evicted[0][4] > table.now_ms()  # the deadline travels with the evicted value
    assert ops[-1][0] == OP_FLUSH


def test_journal_reader_lapped_is_told_how_much_it_lost(make_table):
    table = make_table(capacity=64, record_size=128, journal_bytes=4096)
    reader = table.journal()
    for i in range(500):
        table.set(b"k%d" % (i % 10), b"v")
    lost, records = reader.read(1000)
    assert lost > 0 and records == []
    assert table.stats()["journal_overruns"] == 1
    table.set(b"after", b"v")
    lost, records = reader.read(10)
    assert lost == 0 and [r[1] for r in records] == [b"after"]


def test_attach_from_another_handle_sees_the_same_table(make_table):
    table = make_table(capacity=100, record_size=256)
    other = ShmLRU.attach(table.name)
    try:
        assert (other.capacity, other.record_size, other.generation) == (
            100, 256, table.generation)
        table.set(b"x", b"y")
        assert other.get(b"x") == b"y"
    finally:
        other.close()


def test_attach_errors_name_the_segment():
    with pytest.raises(SegmentError, match="'shmtest-nope' does not exist"):
        ShmLRU.attach("shmtest-nope")
    name = unique_name()
    with open(f"/dev/shm/{name}", "wb") as handle:
        handle.write(b"\0" * 100000)
    try:
        with pytest.raises(SegmentError, match=f"'{name}'.*bad magic"):
            ShmLRU.attach(name)
    finally:
        os.unlink(f"/dev/shm/{name}")


def test_attach_to_another_layout_version_names_both(make_table):
    table = make_table(capacity=16, record_size=128)
    with open(f"/dev/shm/{table.name}", "r+b") as handle:
        handle.seek(8)
        handle.write((99).to_bytes(4, "little"))
    with pytest.raises(SegmentError, match=rf"layout version 99; this build of shm_lru reads "
                                           rf"layout version {shm_lru.LAYOUT_VERSION}"):
        ShmLRU.attach(table.name)


def test_create_refuses_an_existing_name_unless_replace(make_table):
    table = make_table(capacity=16, record_size=128)
    with pytest.raises(SegmentError, match="already exists"):
        ShmLRU.create(table.name, capacity=16, record_size=128)
    replacement = ShmLRU.create(table.name, capacity=32, record_size=128, replace=True)
    try:
        assert table.retired() and not replacement.retired()
        with pytest.raises(SegmentError, match="retired"):
            table.get(b"k")
        assert replacement.capacity == 32
    finally:
        replacement.unlink()
        replacement.close()


def test_bad_geometry_arguments():
    with pytest.raises(ValueError, match="capacity"):
        ShmLRU.create(unique_name(), capacity=0)
    with pytest.raises(ValueError, match="record_size"):
        ShmLRU.create(unique_name(), record_size=8)
    with pytest.raises(ValueError, match="segment name"):
        ShmLRU.create("a/b")


def test_stats_report_memory_per_record(table):
    stats = table.stats()
    assert stats["capacity"] == 256 and stats["record_size"] == 128
    assert 128 < stats["bytes_per_record"] < 140
    assert stats["head_overhead_bytes"] == shm_lru.HEAD_OVERHEAD
    assert stats["segment_bytes"] == os.path.getsize(f"/dev/shm/{table.name}")


def test_reads_move_lazily_but_touch_always_moves(make_table):
    table = make_table(capacity=8, record_size=128, touch_interval_ms=60000)
    for i in range(8):
        table.set(b"k%d" % i, b"v")
    table.get(b"k0")      # read within the interval of its write: stays at the tail
    table.set(b"new1", b"v")
    assert not table.exists(b"k0")
    table.touch(b"k1")    # an explicit touch moves it to the head whatever the interval
    table.set(b"new2", b"v")
    assert table.exists(b"k1") and not table.exists(b"k2")


def test_rewrites_move_lazily_too(make_table):
    """An overwrite in place is a use like a read: within touch_interval_ms of the entry's last
    move it stays where it is (moving costs three other records' cache lines)."""
    table = make_table(capacity=8, record_size=128, touch_interval_ms=60000)
    for i in range(8):
        table.set(b"k%d" % i, b"v")
    table.set(b"k0", b"w")  # rewritten within the interval: still the LRU tail
    table.set(b"new", b"v")
    assert not table.exists(b"k0") and table.exists(b"k1")


def test_rewrites_move_at_once_with_exact_lru(make_table):
    table = make_table(capacity=8, record_size=128, touch_interval_ms=0)
    for i in range(8):
        table.set(b"k%d" % i, b"v")
    table.set(b"k0", b"w")
    table.set(b"new", b"v")
    assert table.get(b"k0") == b"w" and not table.exists(b"k1")


def _resident_bytes(table) -> int:
    """Pages the tmpfs holds for the segment: written pages only, holes cost nothing."""
    return os.stat(f"/dev/shm/{table.name}").st_blocks * 512


def test_records_cost_memory_only_once_used(make_table):
    """An empty table does not write its records (no free list walked through them at create),
    and neither the active sweep nor a flush touches records that were never used."""
    table = make_table(capacity=65536, record_size=512)  # 32 MiB of records
    records_bytes = 65536 * 512
    assert _resident_bytes(table) < records_bytes // 16
    for i in range(1000):
        table.set(b"session:%d" % i, b"x" * 400, ttl_ms=60_000 if i % 2 else None)
    used = _resident_bytes(table)
    assert used < records_bytes // 8
    for _ in range(200):
        table.sweep(1000)
    assert _resident_bytes(table) == used
    assert table.flush() == 1000
    assert _resident_bytes(table) <= used + 8192  # the journal's FLUSH record may start a page
    assert table.check() == []
    for i in range(2000):  # reuses the flushed records first, then takes new ones
        table.set(b"again:%d" % i, b"y" * 400)
    assert len(table) == 2000 and table.get(b"again:1999") == b"y" * 400
    assert table.stats()["free_records"] == 65536 - 2000
    assert table.check() == []


def test_a_full_table_uses_every_record_then_evicts(make_table):
    table = make_table(capacity=64, record_size=128)
    for i in range(64):
        table.set(b"k%02d" % i, b"v")
    assert table.stats()["free_records"] == 0
    table.set(b"one-more", b"v")
    assert len(table) == 64 and not table.exists(b"k00")
    table.delete(b"k01")
    table.set(b"reuses-a-freed-record", b"v")
    assert len(table) == 64 and table.check() == []


def test_prefetch_is_a_hint_that_changes_nothing(make_table):
    table = make_table(capacity=16, record_size=128, touch_interval_ms=0)
    for i in range(16):
        table.set(b"k%02d" % i, b"v%d" % i)
    before = table.stats()
    for key in (b"k00", b"missing", b"", b"x" * 1000):
        assert table.prefetch(key) is None
    assert table.prefetch("not bytes") is None   # a hint never raises
    table.set(b"new", b"v")                      # k00 is still the LRU tail: not touched
    assert not table.exists(b"k00")
    after = table.stats()
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])
    table.close()
    assert table.prefetch(b"k01") is None        # closed: nothing is read
