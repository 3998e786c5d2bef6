"""Request-header limits and malformed requests, byte for byte against redis-server 7.0.15.

Each case sends the same raw bytes to both servers and compares what comes back and whether
the connection was closed (see test_protocol.py for the raw socket helpers).
"""

import socket
import time

import pytest

from conftest import redis_server_process
from test_protocol import raw_session, read_until


def _talk(port, parts, wait=0.4):
    """Send each part (a pause between them); the bytes that came back and whether it closed."""
    with raw_session(port) as sock:
        for part in parts:
            sock.sendall(part)
            time.sleep(0.05)
        sock.settimeout(wait)
        got, closed = b"", False
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                got += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
    return got, closed


@pytest.fixture(scope="module")
def redis_auth():
    """A redis-server with requirepass pw."""
    yield from redis_server_process("--requirepass", "pw")


MALFORMED = [
    # 1. declared lengths, checked as soon as the header is in
    [b"*1\r\n$536870913\r\n"],
    [b"*1\r\n$536870912\r\n"],                       # at the limit: waits for the body
    # (*2147483647, INT_MAX, waits in Redis: respcache refuses counts over 1,048,576 on
    # purpose, see test_huge_aggregate_counts_are_refused_before_hiredis_allocates_them)
    [b"*1048576\r\n"],                                 # at respcache's limit: waits
    [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n", b"$536870913\r\n"],
    # 3. what hiredis accepts (or refuses) differently from Redis
    [b"*1\r\n$-1\r\n"],
    [b"*2\r\n$3\r\nget\r\n", b"$-1\r\n"],
    [b"*1\r\n*1\r\n"],
    [b"*2\r\n$4\r\nECHO\r\n*1\r\n"],
    [b"*-5\r\n*1\r\n$4\r\nPING\r\n"],
    [b"*-5\r\n", b"*1\r\n$4\r\nPING\r\n"],
    [b"*1\r\r\n$4\r\nPING\r\n"],
    [b"*1\r\n:1\r\n"],
    [b"*1\r\n_\r\n"],
    [b"*1\r\n\xff\r\n"],
    [b"*1\r\n\n\r\n"],
    [b"*abc\r\n"],
    [b"*01\r\n$4\r\nPING\r\n"],
    [b"*1\r\n$04\r\nPING\r\n"],
    [b"*1\r\n$+4\r\nPING\r\n"],
    [b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$-1\r\n"],
    [b"*1\r\n$4\r\nPING\r\n*2\r\n$-1\r\n*1\r\n$4\r\nPING\r\n"],
]


@pytest.mark.parametrize("parts", MALFORMED, ids=lambda parts: repr(b"".join(parts))[2:40])
def test_malformed_requests_as_redis(server, real_redis, parts):
    assert _talk(server.port, parts) == _talk(real_redis, parts)


def test_invalid_multibulk_count_refused_at_once(server, real_redis):
    # hiredis would wait for 2**31 elements (and allocate their list); Redis refuses the count.
    parts = [b"*2147483648\r\n"]
    expected = (b"-ERR Protocol error: invalid multibulk length\r\n", True)
    assert _talk(real_redis, parts) == expected
    assert _talk(server.port, parts, wait=15) == expected


UNAUTHENTICATED = [
    [b"*11\r\n"],
    [b"*10\r\n"],
    [b"*2\r\n$3\r\nget\r\n$20000\r\n"],
    [b"*2\r\n$3\r\nget\r\n$16384\r\n"],
    [b"*2\r\n$3\r\nget\r\n", b"$20000\r\n"],
    [b"*1\r\n$4\r\nPING\r\n*11\r\n"],
    [b"*1\r\n$4\r\nPING\r\n", b"*11\r\n"],
    # a complete request is refused too, after the replies to those before it
    [b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$16385\r\n" + b"x" * 16385 + b"\r\n"],
    # AUTH in the same read lifts the limits for what follows it
    [b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*11\r\n"],
    [b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$4\r\nECHO\r\n$20000\r\n"],
    [b"*2\r\n$4\r\nAUTH\r\n$2\r\nxx\r\n*11\r\n"],
]


@pytest.mark.parametrize("parts", UNAUTHENTICATED, ids=lambda parts: repr(b"".join(parts))[2:40])
def test_unauthenticated_limits_as_redis(start_server, redis_auth, parts):
    srv = start_server("--requirepass", "pw")
    assert _talk(srv.port, parts) == _talk(redis_auth, parts)


def test_lowered_proto_max_bulk_len_refuses_a_larger_value(server, real_redis):
    value = b"v" * 1048600
    payload = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%b\r\n" % (len(value), value)
    replies = []
    for port in (server.port, real_redis):
        with raw_session(port) as sock:
            sock.sendall(b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$18\r\nproto-max-bulk-len\r\n"
                         b"$7\r\n1048576\r\n")
            assert sock.recv(100) == b"+OK\r\n"
        try:
            replies.append(_talk(port, [payload]))
        finally:
            with raw_session(port) as sock:
                sock.sendall(b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$18\r\nproto-max-bulk-len\r\n"
                             b"$9\r\n536870912\r\n*2\r\n$6\r\nEXISTS\r\n$3\r\nbig\r\n")
                time.sleep(0.2)
                replies.append(sock.recv(100))
    assert replies[0] == replies[2] == (b"-ERR Protocol error: invalid bulk length\r\n", True)
    assert replies[1] == replies[3] == b"+OK\r\n:0\r\n"


def test_long_pipeline_split_mid_request_still_runs(server):
    # The checks where hiredis waits must not refuse a valid stream cut anywhere.
    payload = b"".join(b"*3\r\n$3\r\nSET\r\n$4\r\nk%03d\r\n$%d\r\n%b\r\n" % (i, 50 + i, b"x" * (50 + i))
                       for i in range(300))
    with raw_session(server.port) as sock:
        for i in range(0, len(payload), 997):
            sock.sendall(payload[i:i + 997])
            time.sleep(0.001)
        got = b""
        sock.settimeout(5)
        while len(got) < 5 * 300:
            chunk = sock.recv(65536)
            assert chunk
            got += chunk
    assert got == b"+OK\r\n" * 300


@pytest.mark.parametrize("payload, error", [
    (b"*2147483647\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1048577\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*1\r\n>1000000000\r\n", b"-ERR Protocol error: expected '$', got '>'\r\n"),
    (b"*1\r\n~1000000000\r\n", b"-ERR Protocol error: expected '$', got '~'\r\n"),
    (b"*1\r\n$4\r\nPING\r\n*2000000000\r\n",
     b"+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"),
])
def test_huge_aggregate_counts_are_refused_before_hiredis_allocates_them(server, payload, error):
    """hiredis allocates an aggregate's list when it reads the header; freeing 2^31 slots
    stalled every client for seconds (`>N` for half a minute). Such a header is refused first.
    Redis accepts a top-level count up to INT_MAX (it allocates as arguments arrive): respcache
    draws the line at 1,048,576 arguments."""
    other = server.client(socket_timeout=2)  # a liveness check: the stall was 4 to 30 s
    other.ping()
    with raw_session(server.port) as sock:
        sock.sendall(payload)
        assert read_until(sock, expected_len=len(error)) == error
        assert sock.recv(10) == b""
    assert other.ping()


def test_a_huge_count_split_over_two_reads_is_refused_too(server):
    with raw_session(server.port) as sock:
        sock.sendall(b"*21474")
        time.sleep(0.1)
        sock.sendall(b"83647\r\n")
        assert read_until(sock, terminator=b"\r\n") == (
            b"-ERR Protocol error: invalid multibulk length\r\n")


def test_a_count_at_the_limit_still_waits_for_its_arguments(server):
    with raw_session(server.port) as sock:
        sock.sendall(b"*1048576\r\n")
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(10)
