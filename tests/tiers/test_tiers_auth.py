"""Credentials on the links between tiers: refused ones are answered, logged and retried, and
CONFIG SET of downstream-auth / tls-client-cert-file applies to the next connection."""

from __future__ import annotations

import pytest

from tierlib import TLSAddress, free_port, wait_until

# &*: tier links SUBSCRIBE to coherence channels, and Redis 7 users start with no channels.
TIER_USER = "tier on >{} ~* &* +@all"


def log_lines(node, *words):
    return [line for line in node.read_log().splitlines() if all(w in line for w in words)]


# ---- a relief node that refuses the relay's downstream-auth -------------------------------------

def test_a_join_the_relief_node_refuses_is_answered_logged_retried_and_heals(topo):
    relay = topo.relay(downstream_auth='"tier wrongpw"')
    relief = topo.relief(relay=[relay], wait=False, requirepass="adminpw",
                         user=TIER_USER.format("tierpw"))
    relief.client_kwargs = {"password": "adminpw"}

    # The relay says why, naming the relief node.
    wait_until(lambda: log_lines(relay, "refused", relief.addr, "WRONGPASS"), 10,
               what="the relay logs the refused join with the relief node's address")
    # The relief node gets the answer, logs it, and keeps retrying (with backoff).
    wait_until(lambda: len(log_lines(relief, "refused the join", "WRONGPASS")) >= 2, 10,
               what="the relief node logs the refusal, twice (it retries)")
    assert "downstream-auth" in log_lines(relief, "refused the join")[0]
    assert "joined relay" not in relief.read_log()
    assert "Task exception was never retrieved" not in relay.read_log()
    assert topo.members(relay) == set()
    info = relief.tiers()
    assert "status=down" in info["link0"] and "refusals=0" not in info["link0"]
    assert "WRONGPASS" in info["link0_last_error"]
    assert relay.tiers()["join_refusals"] >= 2

    # downstream-auth is read at every JOIN: fixing it at runtime lets the node in.
    with relay.client() as client:
        client.config_set("downstream-auth", "tier tierpw")
    topo.wait_member(relay, relief, timeout=10)
    wait_until(lambda: log_lines(relief, "joined relay", relay.addr), 5,
               what="the relief node logs that it joined")
    assert "status=up" in relief.tiers()["link0"]
    # ... and the relay's data connection to it is authenticated: a write lands there.
    with relay.client() as client:
        assert client.execute_command("RESPCACHE", "PUSH", "test", "S", "k:auth", "v", 0, 0)
    with relief.client() as client:
        wait_until(lambda: client.get("k:auth") == b"v", 5, what="the write reaches the relief")


def test_a_relay_that_cannot_connect_back_answers_the_join_with_the_cause(topo):
    """A relief node announcing an address nobody listens on: refused, not left hanging."""
    relay = topo.relay()
    relief = topo.relief(relay=[relay], wait=False, relief_announce_ip="127.0.0.2")
    wait_until(lambda: log_lines(relief, "refused the join", "cannot connect back"), 10,
               what="the relief node is told the relay cannot connect back")
    assert log_lines(relay, "refused", "127.0.0.2:")
    assert "joined relay" not in relief.read_log()
    assert topo.members(relay) == set()


# ---- the edge's link follows CONFIG SET downstream-auth ------------------------------------------

def wait_link(edge, status, error=None, timeout=10):
    def check():
        info = edge.tiers()
        return info["link_status"] == status and (error is None
                                                  or error in info["link_last_error"]) and info
    return wait_until(check, timeout, what=f"{edge.name} link {status} ({error or 'any cause'})")


def relay_reads(relay, key, value, timeout=10):
    with relay.client() as client:
        wait_until(lambda: client.get(key) == value, timeout,
                   what=f"the relay has {key!r} written at the edge")


def tier_clients(relay):
    with relay.client() as client:
        return [c for c in client.client_list() if c.get("user") == "tier"]


def test_edge_reconnects_with_the_password_set_at_runtime_after_the_relay_kills_its_link(topo):
    relay = topo.relay(user=TIER_USER.format("pw1") + " >pw2")
    edge = topo.edge(downstream_auth='"tier pw1"')
    wait_until(lambda: len(tier_clients(relay)) == 2, 5, what="the edge's two connections as tier")
    with edge.client() as client:
        client.set("k:before", "1")
    relay_reads(relay, "k:before", b"1")

    # A wrong password, then the relay drops the link: the edge must come back with the NEW
    # (wrong) one, be refused, and say so.
    with edge.client() as client:
        client.config_set("downstream-auth", "tier wrongpw")
    assert edge.tiers()["link_status"] == "up"        # connections that are up are kept
    with relay.client() as client:
        assert client.execute_command("CLIENT", "KILL", "USER", "tier") == 2
    wait_link(edge, "down", "WRONGPASS")
    assert log_lines(edge, "refused the link", "WRONGPASS")
    assert tier_clients(relay) == []                  # refused attempts leave nothing open

    with edge.client() as client:
        client.set("k:while-refused", "2")           # queued while the link is down
        client.config_set("downstream-auth", "tier pw2")
    wait_link(edge, "up")
    relay_reads(relay, "k:while-refused", b"2")
    with edge.client() as client:
        client.set("k:after", "3")
    relay_reads(relay, "k:after", b"3")


def test_edge_follows_a_password_rotated_on_a_restarted_relay(topo):
    relay = topo.relay(user=TIER_USER.format("old"))
    edge = topo.edge(downstream_auth='"tier old"')
    with edge.client() as client:
        client.set("k:old", "1")
    relay_reads(relay, "k:old", b"1")

    relay.reconfigure(user=TIER_USER.format("new"))
    wait_link(edge, "down", "WRONGPASS")             # the old password no longer works
    with edge.client() as client:
        client.config_set("downstream-auth", "tier new")
    wait_link(edge, "up")
    with edge.client() as client:
        client.set("k:new", "2")
    relay_reads(relay, "k:new", b"2")
    assert len(tier_clients(relay)) == 2


# ---- the edge's link follows CONFIG SET tls-client-cert-file --------------------------------------



def tls_directives(certs, tls_port):
    return {"tls_port": tls_port, "tls_cert_file": f"{certs}/server.crt",
            "tls_key_file": f"{certs}/server.key", "tls_ca_cert_file": f"{certs}/ca.crt",
            "tls_auth_clients": "yes", "tls_downstream": "yes"}


def set_client_cert(edge, certs, name):
    with edge.client() as client:
        client.execute_command("CONFIG", "SET", "tls-client-cert-file", f"{certs}/{name}.crt",
                               "tls-client-key-file", f"{certs}/{name}.key")


def test_edge_presents_the_client_certificate_set_at_runtime_on_its_next_connection(topo, certs):
    relay_tls = free_port()
    relay = topo.relay(**tls_directives(certs, relay_tls))
    edge = topo.edge(relay=[TLSAddress(relay_tls)], **tls_directives(certs, free_port()))
    with edge.client() as client:
        client.set("k:tls", "1")
    relay_reads(relay, "k:tls", b"1")

    def kill_tier_links():
        with relay.client() as client:
            return client.execute_command("CLIENT", "KILL", "LADDR", f"127.0.0.1:{relay_tls}")

    # A certificate the relay does not trust: the next connection presents it and is refused.
    set_client_cert(edge, certs, "rogue")
    assert edge.tiers()["link_status"] == "up"
    assert "TLS handshake" not in relay.read_log()
    assert kill_tier_links() == 2
    wait_until(lambda: "TLS handshake with 127.0.0.1:" in relay.read_log(), 10,
               what="the relay refuses the edge's new certificate")
    wait_link(edge, "down")
    assert log_lines(edge, "edge link: downstream", f"127.0.0.1:{relay_tls}", "retrying")

    # A trusted one: the link comes back with it, and writes flow again.
    set_client_cert(edge, certs, "node")
    wait_link(edge, "up")
    with edge.client() as client:
        client.set("k:tls2", "2")
    relay_reads(relay, "k:tls2", b"2")


def test_tls_client_files_that_do_not_load_are_refused_by_config_set(topo, certs):
    relay_tls = free_port()
    topo.relay(**tls_directives(certs, relay_tls))
    edge = topo.edge(relay=[TLSAddress(relay_tls)], **tls_directives(certs, free_port()))
    with edge.client() as client:
        with pytest.raises(Exception, match="cannot load TLS files"):
            client.execute_command("CONFIG", "SET", "tls-client-cert-file",
                                   f"{certs}/missing.crt", "tls-client-key-file",
                                   f"{certs}/missing.key")
    assert edge.alive()


def test_an_edge_whose_tier_user_may_not_subscribe_says_so(topo):
    """A tier user without channel rights (Redis 7's default for new users) gets NOPERM for the
    coherence SUBSCRIBE: the edge must say so, not go quietly stale."""
    relay = topo.relay(user="tier on >pw ~* +@all")
    edge = topo.edge(downstream_auth='"tier pw"')
    wait_until(lambda: log_lines(edge, "refused the coherence subscription", "NOPERM"), 10,
               what="the edge logs the refused SUBSCRIBE")
    assert "NOPERM" in edge.tiers()["link_last_error"]
    relay_ok = topo.relay(user=TIER_USER.format("pw"))
    edge_ok = topo.edge(relay=[relay_ok], downstream_auth='"tier pw"')
    with edge_ok.client() as client:
        client.set("k:sub", "1")
    relay_reads(relay_ok, "k:sub", b"1")
    assert not log_lines(edge_ok, "refused the coherence subscription")
