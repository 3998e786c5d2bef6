"""Live reconfiguration (CONFIG SET relay / replicas), INFO tiers, edge prefetch, RESPCACHE."""

from __future__ import annotations

import redis

from tierlib import wait_until
from test_tiers_core import fetch, settle
from test_tiers_failures import missing_of, write_many


def test_config_set_relay_on_an_edge_keeps_queued_work(topo):
    r1 = topo.relay()
    r2 = topo.relay()
    topo.relief(relay=[r1])
    topo.relief(relay=[r2])
    a = topo.edge(relay=[r1])
    ca = a.client()
    ca.set("before", "1", ex=300)
    settle(a)
    assert fetch(r1, "before")[0][0] == b"1"
    r1.pause()                     # R1 hangs: A's writes queue (some are in flight to R1)
    try:
        for i in range(40):
            ca.set(f"moved:{i}", f"v{i}", ex=300)
        ca.config_set("relay", r2.addr)
        assert ca.config_get("relay") == {"relay": r2.addr}
        settle(a, 15)
    finally:
        r1.resume()
    assert [fetch(r2, f"moved:{i}")[0][0] for i in range(40)] == \
        [f"v{i}".encode() for i in range(40)]
    assert a.tiers()["link_current"] == r2.addr
    # Misses now go to R2 as well.
    with r2.client() as c2:
        c2.execute_command("RESPCACHE", "PUSH", "test", "S", "only-r2", "x", "0", "0")
    assert ca.get("only-r2") == b"x"
    # And back to no relay at all: a standalone edge again (no fetches).
    ca.config_set("relay", "")
    fetched = a.tiers()["keys_fetched"]
    assert ca.get("never-anywhere") is None
    assert a.tiers()["keys_fetched"] == fetched


def test_config_set_relay_on_a_relief_node_moves_it_between_relays(topo):
    r1 = topo.relay()
    r2 = topo.relay()
    node = topo.relief(relay=[r1])
    with node.client() as c:
        c.config_set("relay", r2.addr)
    topo.wait_member(r2, node)
    topo.wait_member(r1, node, present=False)


def test_config_set_replicas_on_a_relay_re_places_objects(topo):
    relay = topo.relay(capacity=64, replicas=1)
    reliefs = [topo.relief() for _ in range(3)]
    a = topo.edge(capacity=64)
    n = 600
    expected = {f"rep:{i}": f"v{i}".encode() for i in range(n)}
    write_many(a, expected)
    settle(a)
    held = lambda: [r.tiers()["keys"] for r in reliefs]  # noqa: E731
    assert sum(held()) == n
    with relay.client() as c:
        c.config_set("replicas", "3")
    wait_until(lambda: held() == [n, n, n], 20, what="every node holds every key")
    with relay.client() as c:
        c.config_set("replicas", "2")
    wait_until(lambda: sum(held()) == 2 * n, 20, what="back to two copies")
    b = topo.edge(capacity=64)
    assert missing_of(b, expected) == []


def test_info_tiers_and_respcache_commands(topo):
    relay = topo.relay()
    relief = topo.relief()
    edge = topo.edge()
    sections = {}
    for node in (relay, relief, edge):
        with node.client() as c:
            sections[node.role] = c.info("tiers")
    assert sections["edge"]["role"] == "edge" and sections["edge"]["link_status"] == "up"
    assert "queue_depth" in sections["edge"] and "promotions" in sections["edge"]
    assert "invalidations" in sections["edge"] and "downstream_errors" in sections["edge"]
    assert sections["relay"]["role"] == "relay" and sections["relay"]["ring_members"] == 1
    assert sections["relief"]["role"] == "relief" and sections["relief"]["relief_kind"] == "aging"
    with relay.client() as c:
        # redis-py parses COMMAND into {name: info}; RESPCACHE and its subcommands are listed.
        table = c.command()
        assert "respcache" in table
        assert "respcache|topology" in {s[0].decode() if isinstance(s[0], bytes) else s[0]
                                         for s in table["respcache"]["subcommands"]}
        topology = c.execute_command("RESPCACHE", "TOPOLOGY")
        assert topology[0] == b"relay" and topology[3] == [[relief.addr.encode(), b"aging",
                                                             b"up"]]
        try:
            c.execute_command("RESPCACHE", "PUSH", "me", "Z", "k", "v", "0", "0")
            raise AssertionError("a bad record op was accepted")
        except redis.ResponseError as exc:
            assert "unknown record op" in str(exc)
    with edge.client() as c:
        try:
            c.execute_command("RESPCACHE", "JOIN", "aging", "127.0.0.1", "1")
            raise AssertionError("an edge accepted JOIN")
        except redis.ResponseError as exc:
            assert "served by relay" in str(exc)


def test_edge_prefetch_pulls_what_other_edges_write(topo):
    topo.relay()
    topo.relief()
    a = topo.edge()
    b = topo.edge(edge_prefetch="yes")
    a.client().set("pushed-to-b", "hello", ex=300)
    wait_until(lambda: b.tiers()["prefetched"] >= 1, 5, what="B prefetched")
    before = b.tiers()["keys_fetched"]
    assert b.client().get("pushed-to-b") == b"hello"
    assert b.tiers()["keys_fetched"] == before      # a hit in B's own table


def test_copies_from_downstream_are_dropped_after_the_link_was_down(topo):
    relay = topo.relay()
    topo.relief()
    a = topo.edge()
    b = topo.edge()
    a.client().set("shared", "v1", ex=300)
    settle(a)
    cb = b.client()
    assert cb.get("shared") == b"v1"             # borrowed from downstream
    cb.set("mine", "local", ex=300)               # written here: not dropped
    # Invalidations published while B's link is down never reach it: on reconnect B drops
    # what it borrowed. Point B elsewhere and back (same relay, another spelling).
    cb.config_set("relay", "127.0.0.1:1")
    wait_until(lambda: b.tiers()["link_status"] == "down", 5, what="B's link down")
    cb.config_set("relay", relay.addr)
    wait_until(lambda: b.tiers()["dropped_after_outage"] >= 1, 5, what="borrowed copies dropped")
    assert b.tiers()["keys"] == 1                 # only 'mine' is left in B's table
    assert cb.get("shared") == b"v1"              # and a read fetches it again
    assert cb.get("mine") == b"local"
