"""Generic keyspace commands through redis-py (sync and asyncio) against a respcache-server process:
DEL/UNLINK/EXISTS/TOUCH/TYPE, expiry with NX/XX/GT/LT, TTLs, KEYS/SCAN/RANDOMKEY, RENAME, FLUSH*.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio

from conftest import ServerProcess


@pytest.fixture(scope="module")
def edge():
    srv = ServerProcess()
    yield srv
    srv.stop()


@pytest.fixture
def r(edge):
    client = edge.client()
    client.flushall()
    yield client
    client.close()


def error_of(call, *args):
    with pytest.raises(redis.ResponseError) as info:
        call(*args)
    return str(info.value)


# ---- existence and type ------------------------------------------------------------------------
def test_del_unlink_exists_touch_count_what_exists(r):
    r.mset({"a": "1", "b": "2", "c": "3"})
    assert r.exists("a", "a", "b", "missing") == 3  # a key named twice counts twice
    assert r.touch("a", "missing") == 1
    assert r.delete("a", "missing", "a") == 1
    assert r.unlink("b", "c", "missing") == 2
    assert r.exists("a", "b", "c") == 0
    assert r.dbsize() == 0


def test_type_names_each_kind(r):
    r.set("s", "v")
    r.hset("h", "f", "v")
    assert [r.type(k) for k in ("s", "h", "missing")] == [b"string", b"hash", b"none"]


def test_wrong_arity_is_worded_as_redis(r):
    assert error_of(r.execute_command, "DEL") == "wrong number of arguments for 'del' command"
    assert error_of(r.execute_command, "TYPE", "a", "b") == (
        "wrong number of arguments for 'type' command")


# ---- expiry ------------------------------------------------------------------------------------
def test_expire_ttl_pttl_expiretime_persist(r):
    r.set("k", "v")
    assert r.ttl("k") == -1 and r.pttl("k") == -1 and r.expiretime("k") == -1
    assert r.expire("k", 100) is True
    assert r.ttl("k") == 100
    assert 99_000 <= r.pttl("k") <= 100_000
    now = time.time()
    assert abs(r.expiretime("k") - (now + 100)) <= 1
    assert abs(r.execute_command("PEXPIRETIME", "k") - (now + 100) * 1000) <= 1000
    assert r.pexpire("k", 5_000_500) is True
    # (ms + 500) // 1000, as Redis rounds: 5001 until a millisecond has passed, then 5000
    assert r.ttl("k") in (5000, 5001)
    assert r.persist("k") is True
    assert r.persist("k") is False
    assert r.ttl("k") == -1
    assert r.ttl("missing") == -2 and r.pttl("missing") == -2
    assert r.expiretime("missing") == -2 and r.execute_command("PEXPIRETIME", "missing") == -2
    assert r.expire("missing", 10) is False
    assert r.persist("missing") is False


def test_expireat_and_pexpireat_set_the_exact_deadline(r):
    r.set("k", "v")
    deadline_s = int(time.time()) + 3600
    assert r.expireat("k", deadline_s) is True
    assert r.expiretime("k") == deadline_s
    assert r.execute_command("PEXPIRETIME", "k") == deadline_s * 1000
    assert r.pexpireat("k", deadline_s * 1000 + 123) is True
    assert r.execute_command("PEXPIRETIME", "k") == deadline_s * 1000 + 123
    assert r.expiretime("k") == deadline_s  # 123 ms rounds down


@pytest.mark.parametrize("command, value", [
    ("EXPIRE", "-1"), ("PEXPIRE", "0"), ("EXPIREAT", "1"), ("PEXPIREAT", "100")])
def test_a_deadline_in_the_past_deletes_the_key_and_counts_as_done(r, command, value):
    r.set("k", "v")
    r.hset("h", "f", "v")
    assert r.execute_command(command, "k", value) == 1
    assert r.execute_command(command, "h", value) == 1
    assert r.exists("k", "h") == 0
    assert r.execute_command(command, "k", value) == 0  # nothing left to expire


def test_expire_nx_xx_gt_lt(r):
    r.set("k", "v")
    assert r.expire("k", 100, xx=True) is False   # XX: no TTL yet
    assert r.expire("k", 100, gt=True) is False   # no TTL counts as infinite: GT never beats it
    assert r.ttl("k") == -1
    assert r.expire("k", 100, lt=True) is True    # ... and LT always does
    assert r.expire("k", 200, nx=True) is False   # NX: it has a TTL now
    assert r.expire("k", 50, gt=True) is False
    assert r.ttl("k") == 100
    assert r.expire("k", 200, gt=True) is True
    assert r.expire("k", 300, lt=True) is False
    assert r.expire("k", 150, lt=True) is True
    assert r.expire("k", 400, xx=True) is True
    assert r.ttl("k") == 400
    assert r.execute_command("EXPIRE", "k", "500", "xx", "gt") == 1
    assert r.ttl("k") == 500


@pytest.mark.parametrize("args, message", [
    (("10", "NX", "XX"), "NX and XX, GT or LT options at the same time are not compatible"),
    (("10", "nx", "gt"), "NX and XX, GT or LT options at the same time are not compatible"),
    (("10", "GT", "LT"), "GT and LT options at the same time are not compatible"),
    (("10", "FOO"), "Unsupported option FOO"),
    (("abc", "FOO"), "Unsupported option FOO"),          # options are checked before the value
    (("abc",), "value is not an integer or out of range"),
    (("9223372036854775807",), "invalid expire time in 'expire' command"),
    (("-9223372036854776",), "invalid expire time in 'expire' command"),
])
def test_expire_errors_are_redis_errors(r, args, message):
    r.set("k", "v")
    assert error_of(r.execute_command, "EXPIRE", "k", *args) == message
    assert r.ttl("k") == -1


def test_pexpire_overflow_names_the_command(r):
    r.set("k", "v")
    assert error_of(r.execute_command, "PEXPIRE", "k", "9223372036854775807") == (
        "invalid expire time in 'pexpire' command")
    assert error_of(r.execute_command, "EXPIREAT", "k", "9223372036854775807") == (
        "invalid expire time in 'expireat' command")


# ---- iteration ---------------------------------------------------------------------------------
def fill(r):
    r.mset({"user:1": "a", "user:2": "b", "user:10": "c", "session:1": "d"})
    r.hset("user:hash", mapping={"f": "v"})


def test_keys_uses_redis_glob(r):
    fill(r)
    assert sorted(r.keys("*")) == [b"session:1", b"user:1", b"user:10", b"user:2", b"user:hash"]
    assert sorted(r.keys("user:?")) == [b"user:1", b"user:2"]
    assert sorted(r.keys("user:[12]*")) == [b"user:1", b"user:10", b"user:2"]
    assert sorted(r.keys("user:[^1]")) == [b"user:2"]
    assert r.keys("nothing*") == []


def full_scan(r, **options):
    found, cursor, rounds = [], 0, 0
    while True:
        cursor, batch = r.scan(cursor, **options)
        found += batch
        rounds += 1
        if cursor == 0:
            return sorted(set(found)), rounds


def test_scan_visits_every_key_with_match_count_and_type(r):
    fill(r)
    assert full_scan(r)[0] == sorted(r.keys("*"))
    assert full_scan(r, match="user:1*", count=1)[0] == [b"user:1", b"user:10"]
    assert full_scan(r, _type="hash")[0] == [b"user:hash"]
    assert full_scan(r, _type="STRING", match="*1")[0] == [b"session:1", b"user:1"]
    assert full_scan(r, _type="list")[0] == []
    assert sorted(r.scan_iter(match="session:*")) == [b"session:1"]


def test_scan_count_makes_it_page(r):
    r.mset({f"k{i}": i for i in range(200)})
    keys, rounds = full_scan(r, count=10)
    assert len(keys) == 200
    assert rounds > 1


@pytest.mark.parametrize("args, message", [
    (("abc",), "invalid cursor"),
    ((" 1",), "invalid cursor"),
    (("-",), "invalid cursor"),
    (("99999999999999999999999",), "invalid cursor"),
    (("0", "COUNT", "0"), "syntax error"),
    (("0", "COUNT", "x"), "value is not an integer or out of range"),
    (("0", "MATCH"), "syntax error"),
    (("0", "BOGUS", "1"), "syntax error"),
    (("x", "BOGUS"), "invalid cursor"),  # the cursor is checked first
])
def test_scan_errors(r, args, message):
    assert error_of(r.execute_command, "SCAN", *args) == message


def test_scan_cursor_parses_as_strtoul(r):
    r.set("k", "v")
    # "" and "-0" are cursor 0 to Redis, as C's strtoul reads them.
    for cursor in ("", "+0", "-0", "00"):
        assert r.execute_command("SCAN", cursor, "COUNT", "1000") == (0, [b"k"])


def test_randomkey(r):
    assert r.randomkey() is None
    fill(r)
    for _ in range(20):
        assert r.randomkey() in set(r.keys("*"))


# ---- renaming ----------------------------------------------------------------------------------
def test_rename_keeps_value_type_and_deadline(r):
    r.set("s", "v", ex=500)
    r.hset("h", mapping={"a": "1", "b": "2"})
    assert r.rename("s", "s2") is True
    assert r.get("s2") == b"v" and r.ttl("s2") == 500 and r.exists("s") == 0
    assert r.rename("h", "s2") is True  # replaces the target, and its TTL
    assert r.type("s2") == b"hash" and r.hgetall("s2") == {b"a": b"1", b"b": b"2"}
    assert r.ttl("s2") == -1


def test_renamenx_and_errors(r):
    r.set("a", "1")
    r.set("b", "2")
    assert r.renamenx("a", "b") is False
    assert r.get("a") == b"1" and r.get("b") == b"2"
    assert r.renamenx("a", "c") is True
    assert r.get("c") == b"1" and r.exists("a") == 0
    assert error_of(r.rename, "missing", "x") == "no such key"
    assert error_of(r.renamenx, "missing", "missing") == "no such key"
    assert r.rename("c", "c") is True and r.get("c") == b"1"  # same name: nothing happens
    assert r.renamenx("c", "c") is False


# ---- whole keyspace ----------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["FLUSHDB", "FLUSHALL"])
@pytest.mark.parametrize("mode", [(), ("SYNC",), ("async",)])
def test_flush_modes(r, command, mode):
    fill(r)
    assert r.dbsize() == 5
    assert r.execute_command(command, *mode) is True  # redis-py turns +OK into True
    assert r.dbsize() == 0 and r.keys("*") == []


@pytest.mark.parametrize("args", [("BOGUS",), ("SYNC", "ASYNC")])
def test_flush_syntax_errors(r, args):
    r.set("k", "v")
    assert error_of(r.execute_command, "FLUSHALL", *args) == "syntax error"
    assert r.dbsize() == 1


# ---- asyncio client ----------------------------------------------------------------------------
def test_asyncio_client_sees_the_same_keyspace(edge, r):
    async def scenario():
        client = redis.asyncio.Redis(host="127.0.0.1", port=edge.port)
        try:
            await client.set("a", "1", ex=100)
            await client.hset("h", "f", "v")
            assert await client.exists("a", "h", "nope") == 2
            assert await client.type("h") == b"hash"
            assert await client.expire("a", 50, lt=True) is True
            assert await client.ttl("a") == 50
            assert await client.rename("a", "b") is True
            assert await client.ttl("b") == 50
            assert sorted([key async for key in client.scan_iter(count=1)]) == [b"b", b"h"]
            assert await client.delete("b", "h") == 2
            assert await client.dbsize() == 0
        finally:
            await client.aclose()
    asyncio.run(scenario())


def test_info_memory_is_the_table_filling_up_to_its_segment(r):
    """maxmemory is the segment; used_memory is its fixed overhead plus the records in use, so
    an empty edge is far below maxmemory and the dataset grows by whole records per key."""
    empty = r.info("memory")
    assert empty["used_memory_dataset"] == 0
    assert empty["used_memory"] == empty["used_memory_overhead"] < empty["maxmemory"]
    record_size = int(r.config_get("shm-record-size")["shm-record-size"])
    for i in range(100):
        r.set(f"session:{i}", "x" * 100)
    filled = r.info("memory")
    assert filled["used_memory_dataset"] == 100 * record_size
    assert filled["used_memory"] == filled["used_memory_overhead"] + 100 * record_size
    assert filled["used_memory_rss"] > 0
