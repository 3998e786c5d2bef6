"""The two dispatch paths (the C loop for data commands on a plain connection, execute() for
everything else) must be one server to a client: the same counters, SLOWLOG, MONITOR, CLIENT
LIST and errors whichever path a command took."""

from __future__ import annotations

import pytest
import redis

from test_protocol import raw_session, read_until


def _commandstats(client) -> dict:
    stats = client.info("commandstats")
    return {name[len("cmdstat_"):]: fields for name, fields in stats.items()}


def _same_workload(client):
    """SET/GET (the C loop), PING (execute), and GET inside MULTI/EXEC (call() from EXEC)."""
    client.ping()                      # connect (and redis-py's handshake) before resetting
    client.config_resetstat()
    for i in range(3):
        client.set(f"k{i}", "v")
    client.get("k0")
    client.get("missing")
    client.ping()
    with client.pipeline(transaction=True) as pipe:
        pipe.get("k1")
        pipe.execute()


def test_commandstats_and_total_match_redis_on_both_paths(server, real_redis):
    ours, theirs = server.client(), redis.Redis(port=real_redis)
    _same_workload(ours)
    _same_workload(theirs)
    # INFO itself counts: read the totals first, once on each side.
    assert (ours.info("stats")["total_commands_processed"]
            == theirs.info("stats")["total_commands_processed"])
    for name in ("set", "get", "ping", "multi", "exec"):
        assert _commandstats(ours)[name]["calls"] == _commandstats(theirs)[name]["calls"], name
    assert _commandstats(ours)["get"]["calls"] == 3
    assert "usec" in _commandstats(ours)["get"]


def test_config_resetstat_zeroes_counters_of_both_paths(r):
    r.set("a", "1")
    r.get("a")
    r.ping()
    r.config_resetstat()
    assert r.info("stats")["total_commands_processed"] == 1  # the RESETSTAT itself
    stats = _commandstats(r)
    assert "get" not in stats and "set" not in stats and "ping" not in stats


def test_slowlog_records_commands_from_both_paths(r):
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    r.set("slow-key", "v")
    r.get("slow-key")
    r.echo("hello")
    commands = [entry["command"] for entry in r.slowlog_get(128)]
    assert b"SET slow-key v" in commands
    assert b"GET slow-key" in commands
    assert b"ECHO hello" in commands
    r.config_set("slowlog-log-slower-than", -1)
    r.slowlog_reset()
    r.get("slow-key")
    assert r.slowlog_get(128) == []


def test_client_list_shows_the_last_command_of_either_path(server):
    a, b = server.client(), server.client()
    a.client_setname("first")
    a.get("x")
    entry = next(c for c in b.client_list() if c["name"] == "first")
    assert entry["cmd"] == "get"
    a.echo("y")
    entry = next(c for c in b.client_list() if c["name"] == "first")
    assert entry["cmd"] == "echo"


def test_monitor_sees_data_commands_of_other_connections(server):
    with raw_session(server.port) as monitor:
        monitor.sendall(b"MONITOR\r\n")
        assert read_until(monitor, terminator=b"\r\n") == b"+OK\r\n"
        r = server.client()
        r.set("watched", "1")
        r.get("watched")
        seen = read_until(monitor, terminator=b'"GET" "watched"')
    assert b'"SET" "watched" "1"' in seen
    assert b'"GET" "watched"' in seen


@pytest.mark.parametrize("payload, expected", [
    # a nested array where the command name should be
    (b"*1\r\n*1\r\n$3\r\nGET\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n"),
    # RESP3 types as arguments of a command the C loop runs
    (b"*2\r\n$3\r\nGET\r\n:5\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n*0\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n"),
    # the replies to what came before the bad request are sent first
    (b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n:1\r\n",
     b"+PONG\r\n$-1\r\n-ERR Protocol error: expected '$', got ':'\r\n"),
    # the C loop parses one request ahead: an error there waits until the requests before ran
    (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*x\r\n",
     b"$-1\r\n+OK\r\n-ERR Protocol error: invalid multibulk length\r\n"),
    (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$-7\r\n",
     b"$-1\r\n-ERR Protocol error: invalid bulk length\r\n"),
])
def test_odd_arguments_are_protocol_errors_on_either_path(server, payload, expected):
    other = server.client()
    other.set("still", "here")
    with raw_session(server.port) as sock:
        sock.sendall(payload)
        got = read_until(sock, expected_len=len(expected))
        assert got == expected
        assert sock.recv(10) == b""  # closed
    assert other.get("still") == b"here"


def test_wrongtype_and_nil_from_the_c_handlers(server):
    r = server.client()
    r.hset("h", "f", "v")
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
        r.get("h")
    assert r.get("nothing") is None
    r3 = server.client(protocol=3)
    assert r3.get("nothing") is None
    assert r3.set("s", "v") and r3.get("s") == b"v"


def test_set_with_options_goes_through_python_and_agrees(r):
    assert r.set("opt", "1", nx=True)
    assert r.set("opt", "2", nx=True) is None
    assert r.set("opt", "3", xx=True, px=50_000)
    assert 0 < r.pttl("opt") <= 50_000
    assert r.set("opt", "4") and r.pttl("opt") == -1  # plain SET clears the TTL, as Redis


def test_one_request_over_many_reads_and_a_long_unbroken_stream(server):
    """A request bigger than many reads, then a pipeline whose reads never end on a boundary
    (the history kept for error recovery is compacted without losing the request)."""
    value = bytes(range(256)) * 2048  # 512 KiB
    payload = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%b\r\n" % (len(value), value)
    with raw_session(server.port) as sock:
        for i in range(0, len(payload), 1000):
            sock.sendall(payload[i:i + 1000])
        assert read_until(sock, expected_len=5) == b"+OK\r\n"
        stream = b"".join(b"*3\r\n$3\r\nSET\r\n$4\r\nk%03d\r\n$3\r\nabc\r\n" % i
                          for i in range(500)) + b"\r\n" + b"*2\r\n$3\r\nGET\r\n$4\r\nk499\r\n"
        for i in range(0, len(stream), 7):  # seven bytes at a time: never on a boundary
            sock.sendall(stream[i:i + 7])
        got = read_until(sock, expected_len=500 * 5 + 9, timeout=20)
    assert got == b"+OK\r\n" * 500 + b"$3\r\nabc\r\n"
    assert server.client().get("big") == value
