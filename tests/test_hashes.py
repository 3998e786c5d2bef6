"""Hash commands through redis-py (sync, asyncio, RESP2 and RESP3) against a respcache-server."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis
import redis.asyncio

from conftest import ServerProcess

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


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


@pytest.fixture
def raw(edge, r):
    """A client that returns replies as the server sent them (no per-command conversions)."""
    client = edge.client()
    client.response_callbacks.clear()
    yield client.execute_command
    client.close()


def error_of(call, *args):
    with pytest.raises(redis.ResponseError) as info:
        call(*args)
    return str(info.value)


def test_hset_counts_new_fields_and_keeps_insertion_order(r):
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.execute_command("HSET", "h", "b", "3", "c", "4", "c", "5") == 1
    assert r.hgetall("h") == {b"a": b"1", b"b": b"3", b"c": b"5"}
    assert r.hkeys("h") == [b"a", b"b", b"c"]  # an updated field keeps its place
    assert r.hvals("h") == [b"1", b"3", b"5"]
    assert r.hlen("h") == 3
    assert r.type("h") == b"hash"


def test_hget_hmget_hexists_hstrlen(r):
    r.hset("h", mapping={"a": "hello", "e": ""})
    assert r.hget("h", "a") == b"hello" and r.hget("h", "zz") is None
    assert r.hget("missing", "a") is None
    assert r.hmget("h", "a", "zz", "e") == [b"hello", None, b""]
    assert r.hmget("missing", "a", "b") == [None, None]
    assert r.hexists("h", "e") is True and r.hexists("h", "zz") is False
    assert r.hstrlen("h", "a") == 5 and r.hstrlen("h", "zz") == 0 and r.hstrlen("no", "a") == 0


def test_reads_of_a_missing_hash_are_empty(r):
    assert r.hgetall("missing") == {}
    assert r.hkeys("missing") == [] and r.hvals("missing") == []
    assert r.hlen("missing") == 0


def test_hdel_removes_fields_and_the_key_with_the_last(r):
    r.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    assert r.hdel("h", "a", "zz", "a") == 1
    assert r.hkeys("h") == [b"b", b"c"]
    assert r.hdel("h", "b", "c") == 2
    assert r.exists("h") == 0
    assert r.hdel("h", "b") == 0


def test_hsetnx_and_hmset(r, raw):
    assert r.hsetnx("h", "a", "1") == 1
    assert r.hsetnx("h", "a", "2") == 0
    assert r.hget("h", "a") == b"1"
    assert raw("HMSET", "h", "a", "3", "b", "4") == b"OK"
    assert r.hgetall("h") == {b"a": b"3", b"b": b"4"}


def test_hincrby(r):
    assert r.hincrby("h", "n", 5) == 5
    assert r.hincrby("h", "n", -7) == -2
    r.hset("h", mapping={"big": "9223372036854775806", "text": "abc", "spaced": " 1"})
    assert r.hincrby("h", "big", 1) == 9223372036854775807
    assert error_of(r.hincrby, "h", "big", 1) == "increment or decrement would overflow"
    assert error_of(r.hincrby, "h", "text", 1) == "hash value is not an integer"
    assert error_of(r.hincrby, "h", "spaced", 1) == "hash value is not an integer"
    assert error_of(r.hincrby, "h", "n", "1.5") == "value is not an integer or out of range"
    assert r.hget("h", "n") == b"-2"


def test_hincrbyfloat_adds_in_long_double_as_redis(r, raw):
    assert r.hincrbyfloat("h", "f", 0.1) == 0.1
    assert raw("HINCRBYFLOAT", "h", "f", "0.2") == b"0.3"  # not 0.30000000000000004
    assert raw("HINCRBYFLOAT", "h", "f", "-0.3") == b"0"
    assert raw("HINCRBYFLOAT", "h", "f", "5.0e3") == b"5000"
    assert raw("HINCRBYFLOAT", "h", "f", "0x10") == b"5016"
    big = raw("HINCRBYFLOAT", "h", "g", "1e400")  # fits in a long double
    assert big.startswith(b"1000000000000000000028") and len(big) == 401
    r.hset("h", "text", "abc")
    assert error_of(r.hincrbyfloat, "h", "text", 1) == "hash value is not a float"
    assert error_of(r.execute_command, "HINCRBYFLOAT", "h", "f", "inf") == (
        "value is NaN or Infinity")
    assert error_of(r.execute_command, "HINCRBYFLOAT", "h", "f", "1e5000") == (
        "value is not a valid float")
    assert error_of(r.execute_command, "HINCRBYFLOAT", "h", "f", "abc") == (
        "value is not a valid float")
    r.hset("h", "huge", "1e4932")
    assert error_of(r.execute_command, "HINCRBYFLOAT", "h", "huge", "1e4932") == (
        "increment would produce NaN or Infinity")


def test_hrandfield(r):
    assert r.hrandfield("missing") is None
    assert r.hrandfield("missing", 3) == []
    fields = {b"a": b"1", b"b": b"2", b"c": b"3"}
    r.hset("h", mapping=fields)
    for _ in range(10):
        assert r.hrandfield("h") in fields
    assert r.hrandfield("h", 0) == []
    assert r.hrandfield("h", 10) == [b"a", b"b", b"c"]  # all of them, in the hash's order
    two = r.hrandfield("h", 2)
    assert len(set(two)) == 2 and set(two) <= set(fields)
    many = r.hrandfield("h", -10)  # negative: repeats allowed
    assert len(many) == 10 and set(many) <= set(fields)
    flat = r.hrandfield("h", 2, withvalues=True)
    assert len(flat) == 4 and all(fields[k] == v for k, v in zip(flat[0::2], flat[1::2]))
    assert error_of(r.execute_command, "HRANDFIELD", "h", "1", "BOGUS") == "syntax error"
    assert error_of(r.execute_command, "HRANDFIELD", "h", "-9223372036854775808") == (
        "value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    assert error_of(r.execute_command, "HRANDFIELD", "h", "9223372036854775807",
                    "WITHVALUES") == "value is out of range"


def test_wrong_type_both_ways(r):
    r.set("s", "v")
    r.hset("h", "f", "v")
    for call, args in [(r.hset, ("s", "f", "v")), (r.hget, ("s", "f")), (r.hgetall, ("s",)),
                       (r.hmget, ("s", ["f"])), (r.hdel, ("s", "f")), (r.hlen, ("s",)),
                       (r.hincrby, ("s", "f", 1)), (r.hincrbyfloat, ("s", "f", 1.0)),
                       (r.hrandfield, ("s",)), (r.hkeys, ("s",)), (r.hexists, ("s", "f")),
                       (r.get, ("h",)), (r.append, ("h", "x")), (r.incr, ("h",))]:
        assert error_of(call, *args) == WRONGTYPE
    assert r.get("s") == b"v" and r.hgetall("h") == {b"f": b"v"}


def test_odd_field_value_lists_are_arity_errors(r):
    assert error_of(r.execute_command, "HSET", "h", "a", "1", "b") == (
        "wrong number of arguments for 'hset' command")
    assert error_of(r.execute_command, "HMSET", "h", "a") == (
        "wrong number of arguments for 'hmset' command")
    assert error_of(r.execute_command, "HGET", "h") == (
        "wrong number of arguments for 'hget' command")
    assert r.exists("h") == 0


def test_resp3_hgetall_is_a_map_and_hrandfield_pairs(edge, r):
    r.hset("h", mapping={"a": "1", "b": "2"})
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(b"HELLO 3\r\n")
        time.sleep(0.05)
        sock.recv(65536)
        sock.sendall(b"HGETALL h\r\nHGETALL missing\r\n")
        expected = b"%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n%0\r\n"
        got = b""
        while len(got) < len(expected):
            got += sock.recv(65536)
        assert got == expected
    client = edge.client(protocol=3)
    try:
        assert client.hgetall("h") == {b"a": b"1", b"b": b"2"}
        assert client.hrandfield("h", 5, withvalues=True) == [[b"a", b"1"], [b"b", b"2"]]
        assert client.hmget("h", "a", "zz") == [b"1", None]
    finally:
        client.close()


def test_asyncio_client(edge, r):
    async def scenario():
        client = redis.asyncio.Redis(host="127.0.0.1", port=edge.port)
        try:
            assert await client.hset("h", mapping={"x": "1", "y": "2"}) == 2
            assert await client.hincrby("h", "x", 41) == 42
            assert await client.hgetall("h") == {b"x": b"42", b"y": b"2"}
            results = await asyncio.gather(*(client.hincrby("h", "n", 1) for _ in range(50)))
            assert sorted(results) == list(range(1, 51))
            assert await client.hdel("h", "x", "y", "n") == 3
            assert await client.exists("h") == 0
        finally:
            await client.aclose()
    asyncio.run(scenario())
