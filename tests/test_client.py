"""respcache.Client / AsyncClient: local reads from shared memory, writes over RESP."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time

import pytest
import redis

import respcache.client as client_module
from respcache.client import AsyncClient, Client


def test_reads_come_from_shared_memory_and_writes_through_the_edge(server):
    app = Client(port=server.port)
    try:
        assert app.local.table is not None, "the client should have attached the segment"
        assert app.set("session:1", "alice", ex=60)
        before = app.local.table.stats()["hits"]
        assert app.get("session:1") == b"alice"
        assert app.local.table.stats()["hits"] == before + 1  # served by the table, not RESP
        assert 59 <= app.ttl("session:1") <= 60
        # the edge saw the write: another plain client reads it
        assert server.client().get("session:1") == b"alice"
    finally:
        app.close()


def test_no_stale_read_after_a_write_returns(server):
    app = Client(port=server.port)
    other = server.client()
    try:
        for i in range(300):
            other.set("counter", i)
            assert app.get("counter") == str(i).encode()
            app.set("counter", f"app-{i}")
            assert other.get("counter") == f"app-{i}".encode()
    finally:
        app.close()


def test_wrong_type_and_hashes(server):
    app = Client(port=server.port)
    try:
        app.hset("user:1", mapping={"name": "bob", "role": "admin"})
        assert app.hget("user:1", "name") == b"bob"
        assert app.hgetall("user:1") == {b"name": b"bob", b"role": b"admin"}
        assert app.hmget("user:1", ["role", "missing"]) == [b"admin", None]
        assert app.hlen("user:1") == 2 and app.hexists("user:1", "role")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            app.get("user:1")
        assert app.type("user:1") == b"hash"
    finally:
        app.close()


def test_decode_responses(server):
    app = Client(port=server.port, decode_responses=True)
    try:
        app.set("k", "välue")
        assert app.get("k") == "välue"
        assert app.mget("k", "missing") == ["välue", None]
    finally:
        app.close()


def test_a_miss_goes_to_the_edge(server):
    app = Client(port=server.port)
    try:
        assert app.get("never-set") is None
        info = server.client().info("stats")
        assert info["keyspace_misses"] >= 1  # the edge was asked (where tiers look downstream)
    finally:
        app.close()


def _reader_process(port, key, rounds, out):
    app = Client(port=port)
    hits = sum(1 for _ in range(rounds) if app.get(key) == b"shared-value")
    app.close()
    out.put(hits)


def test_many_app_processes_read_the_same_table(server):
    server.client().set("hot", "shared-value")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_reader_process, args=(server.port, "hot", 2000, out))
             for _ in range(4)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert results == [2000] * 4


def test_edge_restart_is_noticed_and_the_client_reattaches(start_server, caplog):
    srv = start_server()
    app = Client(port=srv.port, shm_name=srv.shm_name)
    try:
        app.set("before-restart", "old")
        assert app.get("before-restart") == b"old"
        srv.stop()
        # The segment is gone: reads fall back to RESP (and fail, the edge is down), said once.
        caplog.set_level(logging.WARNING, logger="respcache.client")
        with pytest.raises(redis.ConnectionError):
            app.get("before-restart")
        # The later --shm-name wins over the fixture's random one: the same segment name.
        again = start_server("--shm-name", srv.shm_name, port=srv.port)
        again.client().set("after-restart", "new")
        client_module.REATTACH_EVERY = 0.0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if app.get("after-restart") == b"new":
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        assert app.get("after-restart") == b"new"
        assert app.local.table is not None
        assert app.get("before-restart") is None  # never a stale read from the old segment
        warnings = [r for r in caplog.records if "not available" in r.getMessage()]
        assert len(warnings) <= 1
    finally:
        client_module.REATTACH_EVERY = 1.0
        app.close()


def test_missing_segment_falls_back_to_resp_and_says_so_once(server, caplog):
    caplog.set_level(logging.WARNING, logger="respcache.client")
    app = Client(port=server.port, shm_name="rc-test-no-such-segment")
    try:
        server.client().set("k", "v")
        assert app.get("k") == b"v"
        assert app.get("k") == b"v"
        warnings = [r for r in caplog.records if "not available" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        app.close()


def test_async_client(server):
    async def go():
        async with AsyncClient(port=server.port) as app:
            await app.set("a", "1")
            assert await app.get("a") == b"1"
            await app.hset("h", "f", "v")
            assert await app.hgetall("h") == {b"f": b"v"}
            return app.local.table is not None
    assert asyncio.run(go())
