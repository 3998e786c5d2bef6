"""Failures and membership changes: relief crash, relay outage, joins, leaves, graceful hand-off."""

from __future__ import annotations

import random
import signal
import threading
import time

from tierlib import wait_until
from test_tiers_core import fetch, settle


def read_all(edge, keys, chunk=20):
    """{key: value} read through an edge with MGET (misses are fetched in batches).

    Chunks stay well under the test tables' capacity: a command's keys must fit the table at once.
    """
    out = {}
    with edge.client() as client:
        for i in range(0, len(keys), chunk):
            part = keys[i:i + chunk]
            out.update(zip(part, client.mget(part)))
    return out


def missing_of(edge, expected):
    got = read_all(edge, list(expected))
    return [k for k, v in expected.items() if got[k] != v]


def write_many(edge, items, ex=300, chunk=100):
    with edge.client() as client:
        keys = list(items)
        for i in range(0, len(keys), chunk):
            pipe = client.pipeline(transaction=False)
            for key in keys[i:i + chunk]:
                pipe.set(key, items[key], ex=ex)
            pipe.execute()


def test_kill_9_of_relief_nodes_under_write_load_loses_nothing(topo):
    relay = topo.relay(capacity=64, replicas=2)
    reliefs = [topo.relief() for _ in range(3)]
    a = topo.edge(capacity=64)
    b = topo.edge(capacity=64)
    expected = {f"w:{i}": f"value-{i}".encode() for i in range(2400)}
    keys = list(expected)
    errors = []

    def writer():
        try:
            write_many(a, {k: expected[k] for k in keys}, chunk=50)
        except Exception as exc:  # the assertion below reports it
            errors.append(exc)
    thread = threading.Thread(target=writer)
    thread.start()
    wait_until(lambda: relay.tiers().get("writes", 0) > 600, 20, what="writes under way")
    reliefs[0].kill()
    thread.join(60)
    assert not errors and not thread.is_alive()
    settle(a, 30)
    assert missing_of(b, expected) == []
    # The survivors re-replicate what the dead node held: a second crash loses nothing either.
    wait_until(lambda: topo.members(relay) == {reliefs[1].addr, reliefs[2].addr}, 10,
               what="dead node out of the ring")
    wait_until(lambda: all(r.tiers()["keys"] == len(expected) for r in reliefs[1:]), 30,
               what="survivors hold a copy of everything")
    reliefs[1].kill()
    assert missing_of(b, expected) == []


def test_relay_outage_edges_serve_hits_answer_misses_fast_and_queue_writes(topo):
    relay = topo.relay()
    topo.relief()
    a = topo.edge(downstream_queue_size=50, downstream_timeout=100)
    ca = a.client()
    ca.set("hit", "here", ex=300)
    settle(a)
    # A hung relay: misses answer nil after about downstream-timeout, hits as always.
    relay.pause()
    try:
        started = time.monotonic()
        assert ca.get("nowhere") is None
        assert time.monotonic() - started < 0.5
        assert ca.get("hit") == b"here"
    finally:
        relay.resume()
    # A dead relay: the same, and writes queue up to the bound.
    relay.kill()
    wait_until(lambda: a.tiers()["link_status"] == "down", 5, what="link down")
    started = time.monotonic()
    assert ca.get("nowhere-else") is None
    assert time.monotonic() - started < 0.5
    assert ca.get("hit") == b"here"
    for i in range(80):
        ca.set(f"q:{i}", f"v{i}", ex=300)
    wait_until(lambda: a.tiers()["queue_depth"] == 50, 5, what="queue at its bound")
    stats = a.tiers()
    assert stats["overflow"] == 30, stats
    relay.start()                    # the same port and config
    settle(a, 15)
    b = topo.edge()
    cb = b.client()
    assert [cb.get(f"q:{i}") for i in range(50)] == [f"v{i}".encode() for i in range(50)]
    log = a.read_log()
    assert "lost downstream" in log and "reconnected after" in log


def test_sigterm_on_a_relief_node_hands_its_objects_over(topo):
    relay = topo.relay(capacity=64, replicas=1)
    reliefs = [topo.relief() for _ in range(3)]
    a = topo.edge(capacity=64)
    expected = {f"h:{i}": f"v{i}".encode() for i in range(900)}
    write_many(a, expected)
    settle(a)
    held = reliefs[0].tiers()["keys"]
    assert held > 150
    assert reliefs[0].stop(signal.SIGTERM) == 0
    assert "handed %d objects" % held in reliefs[0].read_log()
    b = topo.edge(capacity=64)
    assert missing_of(b, expected) == []


def test_join_and_leave_keep_every_key_readable_and_move_little(topo):
    relay = topo.relay(capacity=64, replicas=2)
    reliefs = [topo.relief() for _ in range(3)]
    a = topo.edge(capacity=64)
    n = 1500
    expected = {f"j:{i}": f"v{i}".encode() for i in range(n)}
    write_many(a, expected)
    settle(a)
    b = topo.edge(capacity=64)
    stop = threading.Event()
    misses = []

    def reader():
        client = b.client()
        keys = list(expected)
        while not stop.is_set():
            part = random.sample(keys, 20)
            for key, value in zip(part, client.mget(part)):
                if value != expected[key]:
                    misses.append(key)
        client.close()
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        fourth = topo.relief()
        wait_until(lambda: sum(r.tiers()["keys"] for r in reliefs + [fourth]) == 2 * n, 30,
                   what="rebalanced after the join")
        moved = fourth.tiers()["keys"] / (2 * n)
        assert moved <= 0.30, moved
        assert fourth.stop(signal.SIGTERM) == 0            # graceful leave
        wait_until(lambda: sum(r.tiers()["keys"] for r in reliefs) >= 2 * n, 30,
                   what="copies restored after the leave")
    finally:
        stop.set()
        thread.join(30)
    assert misses == []
    assert missing_of(b, expected) == []


def test_sigterm_on_an_edge_pushes_its_objects_downstream(topo):
    topo.relay()
    topo.relief()
    a = topo.edge(capacity=4096)
    expected = {f"e:{i}": f"v{i}".encode() for i in range(1000)}
    write_many(a, expected, chunk=500)
    assert a.stop(signal.SIGTERM) == 0
    log = a.read_log()
    assert "live objects downstream before exiting" in log
    b = topo.edge()
    assert missing_of(b, expected) == []


def test_expansion_nodes_let_objects_go_to_the_aging_nodes(topo):
    relay = topo.relay(capacity=64, replicas=1)
    expansion = topo.relief("expansion", relief_hold_ms=300)
    aging = topo.relief("aging")
    a = topo.edge(capacity=64)
    expected = {f"x:{i}": f"v{i}".encode() for i in range(600)}
    write_many(a, expected)
    settle(a)
    wait_until(lambda: expansion.tiers()["keys"] == 0, 10, what="expansion node emptied")
    assert expansion.tiers()["aged_out"] > 100
    assert aging.tiers()["keys"] == len(expected)
    b = topo.edge(capacity=64)
    assert missing_of(b, expected) == []
    assert fetch(relay, "x:1") == [[b"v1", 0, fetch(aging, "x:1")[0][2]]]


def test_a_hung_relief_node_is_dropped_from_the_ring_and_rejoins_when_it_wakes(topo):
    relay = topo.relay(capacity=64, replicas=2)
    reliefs = [topo.relief() for _ in range(3)]
    a = topo.edge(capacity=64)
    reliefs[0].pause()
    try:
        expected = {f"hung:{i}": f"v{i}".encode() for i in range(300)}
        write_many(a, expected, chunk=20)
        wait_until(lambda: reliefs[0].addr not in topo.members(relay), 20,
                   what="hung node out of the ring")
        settle(a, 20)
    finally:
        reliefs[0].resume()
    topo.wait_member(relay, reliefs[0], timeout=15)
    assert "did not acknowledge" in relay.read_log()
    b = topo.edge(capacity=64)
    assert missing_of(b, expected) == []
