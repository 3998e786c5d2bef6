"""Server and connection commands against redis-server 7.0.15: INFO fields, error wording."""

from __future__ import annotations

import time

import pytest
import redis

from conftest import redis_cli


def _error(client, *args):
    with pytest.raises(redis.ResponseError) as caught:
        client.execute_command(*args)
    return str(caught.value)


# ---- INFO ----------------------------------------------------------------------------------
def test_info_cpu_header_is_spelled_as_redis(server, real_redis):
    for port in (server.port, real_redis):
        text = redis_cli(port, "info", "cpu").stdout.decode()
        assert text.startswith("# CPU\r\n"), text
    assert "# Cpu" not in redis_cli(server.port, "info").stdout.decode()


def test_info_replication_is_a_master_without_replicas_as_redis(r, real_redis):
    ours = r.info("replication")
    theirs = redis.Redis(port=real_redis).info("replication")
    assert set(ours) <= set(theirs)
    for field in ("role", "connected_slaves", "master_replid2", "master_repl_offset",
                  "second_repl_offset", "repl_backlog_active", "repl_backlog_first_byte_offset",
                  "repl_backlog_histlen"):
        assert ours[field] == theirs[field], field
    assert len(ours["master_replid"]) == 40 and int(ours["master_replid"], 16) > 0
    assert r.info("replication")["master_replid"] == ours["master_replid"]


def test_instantaneous_ops_per_sec_measures_recent_commands(r):
    assert r.info("stats")["instantaneous_ops_per_sec"] == 0   # starts the 100 ms sampler
    deadline = time.monotonic() + 0.6
    pipe = r.pipeline(transaction=False)
    while time.monotonic() < deadline:
        for _ in range(200):
            pipe.ping()
        pipe.execute()
    assert r.info("stats")["instantaneous_ops_per_sec"] > 100
    time.sleep(2)  # past the 16 samples (1.6 s) of the average
    assert r.info("stats")["instantaneous_ops_per_sec"] < 10


def test_used_memory_peak_and_fragmentation(r):
    empty = r.info("memory")
    assert empty["used_memory_peak"] >= empty["used_memory"]
    assert empty["used_memory_peak_human"]
    pipe = r.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(f"k{i}", "x" * 100)
    pipe.execute()
    filled = r.info("memory")
    assert filled["used_memory"] > empty["used_memory"]
    assert filled["used_memory_peak"] >= filled["used_memory"]
    r.flushall()
    after = r.info("memory")
    assert after["used_memory"] < filled["used_memory"]
    assert after["used_memory_peak"] >= filled["used_memory"]
    assert after["mem_fragmentation_ratio"] == pytest.approx(
        after["used_memory_rss"] / after["used_memory"], rel=0.2)


# ---- error wording, side by side with redis-server ------------------------------------------
@pytest.mark.parametrize("args", [
    ("CLIENT", "KILL", "ID", "abc"),
    ("CLIENT", "KILL", "ID", "0"),
    ("CLIENT", "KILL", "ID", "-5"),
    ("CLIENT", "KILL", "USER", "nobody"),
    ("CLIENT", "LIST", "ID", "abc"),
    ("CLIENT", "LIST", "ID", "1_0"),
    ("SLOWLOG", "GET", "x"),
    ("SLOWLOG", "GET", "-2"),
    ("PUBSUB", "CHANNELS", "a", "b"),
    ("SHUTDOWN", "NOSAVE", "ABORT"),
    ("SHUTDOWN", "ABORT", "NOW"),
    ("SHUTDOWN", "SAVE", "NOSAVE"),
    ("SHUTDOWN", "ABORT"),
    ("CONFIG", "SET", "daemonize", "yes"),
])
def test_error_text_as_redis(r, real_redis, args):
    assert _error(r, *args) == _error(redis.Redis(port=real_redis), *args)


def test_client_list_id_zero_and_kill_user_that_exists(r, real_redis):
    for client in (r, redis.Redis(port=real_redis)):
        assert client.execute_command("CLIENT", "LIST", "ID", "0") in ("", b"")
    # (not on the shared redis-server: other tests' connections there are user default too)
    assert r.execute_command("CLIENT", "KILL", "USER", "default") == 0


@pytest.mark.parametrize("flags, shown", [("KEA", "AKE"), ("Elg", "glE"), ("An", "A"),
                                          ("gm$E", "g$Em"), ("g$lshzxetdK", "AK"), ("", "")])
def test_notify_keyspace_events_reads_back_normalised(server, real_redis, flags, shown):
    r = server.client(decode_responses=True)
    theirs = redis.Redis(port=real_redis, decode_responses=True)
    try:
        for client in (r, theirs):
            assert client.config_set("notify-keyspace-events", flags)
        assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": shown}
        assert theirs.config_get("notify-keyspace-events") == {"notify-keyspace-events": shown}
    finally:
        theirs.config_set("notify-keyspace-events", "")


def test_client_list_and_info_name_the_subcommand(r):
    assert b" cmd=client|info " in r.execute_command("CLIENT", "INFO")
    assert b" cmd=client|list " in r.execute_command("CLIENT", "LIST")


# ---- OBJECT ENCODING -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["12345678901234567890", "9223372036854775807",
                                   "9223372036854775808", "-9223372036854775808",
                                   "-9223372036854775809", "123", "x" * 44, "x" * 45])
def test_object_encoding_of_strings_as_redis(r, real_redis, value):
    theirs = redis.Redis(port=real_redis)
    for client in (r, theirs):
        client.set("enc-rc", value)
    assert r.object("encoding", "enc-rc") == theirs.object("encoding", "enc-rc")
    theirs.delete("enc-rc")


@pytest.mark.parametrize("fields", [{"f": "x" * 64}, {"f": "x" * 65}, {"y" * 65: "v"},
                                    {f"f{i}": "v" for i in range(512)},
                                    {f"f{i}": "v" for i in range(513)}])
def test_object_encoding_of_hashes_as_redis(r, real_redis, fields):
    theirs = redis.Redis(port=real_redis)
    for client in (r, theirs):
        client.hset("enc-rc-h", mapping=fields)
    assert r.object("encoding", "enc-rc-h") == theirs.object("encoding", "enc-rc-h")
    theirs.delete("enc-rc-h")


# ---- COMMAND INFO in RESP3 -------------------------------------------------------------------
def _read_reply(sock_file):
    """One RESP3 reply as (type char, value), aggregates as lists of replies, so an array and a
    set with the same elements differ."""
    line = sock_file.readline()[:-2]
    kind, rest = chr(line[0]), line[1:]
    if kind in "*~%>":
        count = int(rest) * (2 if kind == "%" else 1)
        return kind, [_read_reply(sock_file) for _ in range(max(count, 0))]
    if kind in "$=":
        data = sock_file.read(int(rest) + 2)[:-2]
        return kind, data
    return kind, rest


def _resp3(port, *args):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        handle = sock.makefile("rb")
        for command in (("HELLO", "3"), args):
            sock.sendall(b"*%d\r\n" % len(command) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in command))
            reply = _read_reply(handle)
        return reply


@pytest.mark.parametrize("name", ["get", "set", "ping", "hset", "config", "client"])
def test_command_info_resp3_flags_and_categories_are_sets_as_redis(server, real_redis, name):
    ours = _resp3(server.port, "COMMAND", "INFO", name)[1][0][1]
    theirs = _resp3(real_redis, "COMMAND", "INFO", name)[1][0][1]
    # name, arity, flags, first/last/step, ACL categories: same types, same order
    assert ours[:7] == theirs[:7]
    assert ours[2][0] == ours[6][0] == "~"
    # tips and key specs are sets too (respcache lists none of either)
    assert ours[7][0] == ours[8][0] == "~"
    assert ours[9][0] == theirs[9][0]  # subcommands: an array, or an empty set when none


def test_info_counts_the_bytes_clients_sent_and_were_sent(r):
    """total_net_input_bytes / total_net_output_bytes, which network dashboards read."""
    r.config_resetstat()
    before = r.info("stats")
    r.set("net:k", "x" * 1000)
    assert r.get("net:k") == b"x" * 1000
    after = r.info("stats")
    # the SET request (> 1000 bytes), the GET reply (> 1000 bytes), plus the INFO calls
    assert after["total_net_input_bytes"] - before["total_net_input_bytes"] > 1000
    assert after["total_net_output_bytes"] - before["total_net_output_bytes"] > 1000
    r.config_resetstat()
    assert r.info("stats")["total_net_input_bytes"] < 200


def test_error_replies_are_counted_as_redis_counts_them(server, real_redis):
    """INFO total_error_replies and errorstats (by the error's first word), on the C path
    (WRONGTYPE from GET), the Python path, inside EXEC, compared with redis-server."""
    seen = {}
    for port in (real_redis, server.port):
        r = redis.Redis(port=port)
        r.config_resetstat()
        r.hset("h", "f", "v")
        r.set("s", "abc")
        for args in [("GET", "h"), ("INCR", "s"), ("NOSUCH",), ("GET",), ("HGET", "s", "f")]:
            with pytest.raises(redis.ResponseError):
                r.execute_command(*args)
        with r.pipeline(transaction=True) as pipe:
            pipe.incr("s")
            pipe.get("h")
            pipe.set("ok", "1")
            pipe.execute(raise_on_error=False)
        stats = r.info("stats")
        errorstats = r.info("errorstats")
        seen[port] = (stats["total_error_replies"], errorstats)
    assert seen[server.port] == seen[real_redis]
    assert seen[server.port][0] == 7
