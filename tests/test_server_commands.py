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
