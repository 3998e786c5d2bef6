"""The wire: pipelining, inline commands, RESP3, protocol errors, deferred replies, isolation."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis
import redis.asyncio

from conftest import redis_cli


def raw_session(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def read_until(sock, expected_len=None, terminator=None, timeout=5.0):
    """Read until `terminator` appears or `expected_len` bytes came, or the peer closes."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if expected_len is not None and len(data) >= expected_len:
            break
        if terminator is not None and terminator in data:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def exchange(port, payload: bytes, expected: bytes):
    with raw_session(port) as sock:
        sock.sendall(payload)
        got = read_until(sock, expected_len=len(expected))
    assert got == expected
    return got


def test_pipelined_replies_arrive_in_order_and_in_one_write(server):
    payload = b"".join(b"*3\r\n$3\r\nSET\r\n$2\r\nk%d\r\n$2\r\nv%d\r\n" % (i % 10, i % 10)
                       for i in range(10))
    payload += b"".join(b"*2\r\n$3\r\nGET\r\n$2\r\nk%d\r\n" % i for i in range(10))
    expected = b"+OK\r\n" * 10 + b"".join(b"$2\r\nv%d\r\n" % i for i in range(10))
    exchange(server.port, payload, expected)


def test_request_split_across_many_writes(server):
    payload = b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$1000\r\n" + b"x" * 1000 + b"\r\n"
    with raw_session(server.port) as sock:
        for i in range(0, len(payload), 7):
            sock.sendall(payload[i:i + 7])
            time.sleep(0.0005)
        assert read_until(sock, expected_len=5) == b"+OK\r\n"
    assert server.client().get("split") == b"x" * 1000


def test_inline_commands_as_telnet_sends_them(server):
    exchange(server.port, b'PING\r\nSET greeting "hello world"\r\nGET greeting\r\nECHO \'a b\'\n',
             b"+PONG\r\n+OK\r\n$11\r\nhello world\r\n$3\r\na b\r\n")


def test_inline_and_resp_mixed_on_one_connection(server):
    # Inline to RESP and RESP to inline within one write, an empty line between (redis-cli
    # --pipe sends one before its closing ECHO), split across writes too.
    exchange(server.port, b"SET a 1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n\r\nGET a\r\n"
                          b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n",
             b"+OK\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n1\r\n")
    with raw_session(server.port) as sock:
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$5\r\nsp")
        time.sleep(0.05)
        sock.sendall(b"lit\r\n\r\nGET b\r\n")
        assert read_until(sock, expected_len=16) == b"+OK\r\n$5\r\nsplit\r\n"


def test_a_stream_switching_parsers_at_every_line(server):
    # Each switch between the inline parser and hiredis is a turn of a loop, not a nested call:
    # thousands of switches in one write must neither exhaust the stack nor lose a command.
    payload = b"PING\r\n*1\r\n$4\r\nPING\r\n" * 3000
    exchange(server.port, payload, b"+PONG\r\n" * 6000)
    assert server.client().ping()


def test_a_nul_byte_ends_an_inline_line_as_in_redis(server):
    # sdssplitargs reads a C string. A NUL outside quotes once made the splitter loop forever
    # (the whole server hung); inside quotes it leaves them unbalanced.
    exchange(server.port, b"SET nulkey ab\x00cd\r\nGET nulkey\r\n", b"+OK\r\n$2\r\nab\r\n")
    exchange(server.port, b'SET other "ab\x00cd"\r\n',
             b"-ERR Protocol error: unbalanced quotes in request\r\n")
    assert server.client().get("other") is None


def test_long_pipelines_keep_parsing_after_many_commands(server):
    # More than the 256 commands after which the parser's history is compacted, in odd chunks.
    payload = b"".join(b"*3\r\n$3\r\nSET\r\n$4\r\nk%03d\r\n$3\r\n%03d\r\n" % (i, i)
                       for i in range(600)) + b"\r\nGET k599\r\n"
    with raw_session(server.port) as sock:
        for i in range(0, len(payload), 1000):
            sock.sendall(payload[i:i + 1000])
        got = read_until(sock, expected_len=600 * 5 + 9)
    assert got == b"+OK\r\n" * 600 + b"$3\r\n599\r\n"


@pytest.mark.parametrize("payload, error", [
    (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    (b"*1\r\n:5\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
    (b'SET "unbalanced\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
])
def test_protocol_error_closes_only_that_connection(server, payload, error):
    other = server.client()
    other.set("survivor", "yes")
    with raw_session(server.port) as sock:
        sock.sendall(payload)
        got = read_until(sock, terminator=b"\r\n")
        assert got == error
        assert sock.recv(10) == b""  # the server closed it
    assert other.get("survivor") == b"yes"
    assert other.ping()


def test_too_big_inline_request(server):
    with raw_session(server.port) as sock:
        sock.sendall(b"A" * (70 * 1024))
        got = read_until(sock, terminator=b"\r\n")
    assert got == b"-ERR Protocol error: too big inline request\r\n"


def test_empty_and_null_multibulk_are_ignored(server):
    exchange(server.port, b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n")


def test_unknown_command_and_arity_errors_are_worded_as_redis(server):
    exchange(server.port, b"*3\r\n$7\r\nNOTACMD\r\n$1\r\na\r\n$1\r\nb\r\n",
             b"-ERR unknown command 'NOTACMD', with args beginning with: 'a' 'b' \r\n")
    exchange(server.port, b"*1\r\n$3\r\nGET\r\n",
             b"-ERR wrong number of arguments for 'get' command\r\n")


def test_resp3_hello_switches_protocol(server):
    with raw_session(server.port) as sock:
        sock.sendall(b"HELLO 3\r\n")
        hello = read_until(sock, terminator=b"modules\r\n*0\r\n")
        assert hello.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
        assert b"$5\r\nproto\r\n:3\r\n" in hello
        sock.sendall(b"GET missing\r\n")
        assert read_until(sock, terminator=b"\r\n") == b"_\r\n"
    client = server.client(protocol=3)
    client.set("k", "v")
    assert client.get("k") == b"v"
    assert client.get("nope") is None


def test_hello_rejects_unknown_protocol(server):
    exchange(server.port, b"HELLO 4\r\n", b"-NOPROTO unsupported protocol version\r\n")


def test_large_value_round_trip(r):
    value = bytes(range(256)) * 4096  # 1 MiB, every byte value
    assert r.set("big", value)
    assert r.get("big") == value
    assert r.strlen("big") == len(value)


def test_binary_keys_and_values(r):
    key = b"\x00\xff\r\n key"
    assert r.set(key, b"\r\n\x00")
    assert r.get(key) == b"\r\n\x00"


def test_redis_py_async_with_hiredis_pipelines(server):
    async def go():
        client = redis.asyncio.Redis(port=server.port)
        async with client.pipeline(transaction=False) as pipe:
            for i in range(500):
                pipe.set(f"async:{i}", i)
            for i in range(500):
                pipe.get(f"async:{i}")
            replies = await pipe.execute()
        await client.aclose()
        return replies
    replies = asyncio.run(go())
    assert replies[:500] == [True] * 500
    assert replies[500:] == [str(i).encode() for i in range(500)]


def test_many_concurrent_clients(server):
    async def one(i):
        client = redis.asyncio.Redis(port=server.port)
        await client.set(f"c{i}", i)
        value = await client.get(f"c{i}")
        await client.aclose()
        return value
    async def go():
        return await asyncio.gather(*(one(i) for i in range(200)))
    assert asyncio.run(go()) == [str(i).encode() for i in range(200)]


def test_redis_cli_round_trip(server):
    assert redis_cli(server.port, "SET", "from-cli", "v 1").stdout == b"OK\n"
    assert redis_cli(server.port, "GET", "from-cli").stdout == b"v 1\n"
    err = redis_cli(server.port, "INCR", "from-cli")
    assert b"ERR value is not an integer or out of range" in err.stdout


def test_client_that_never_reads_does_not_grow_the_server_without_bound(server):
    """A client pipelining GETs of a large value without reading is throttled, not buffered."""
    r = server.client()
    r.set("bulky", b"z" * 65536)
    with raw_session(server.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        request = b"*2\r\n$3\r\nGET\r\n$5\r\nbulky\r\n" * 100
        sent = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                sent += sock.send(request)
            except BlockingIOError:
                time.sleep(0.01)
        # The server stopped reading us long before 3 s of requests were buffered on its side.
        assert sent < 200 * 1024 * 1024
        assert r.ping()
