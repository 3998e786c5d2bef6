"""Every link between tiers over mutual TLS, and a peer whose certificate another CA signed."""

from __future__ import annotations

import os
import sys

from tierlib import ROOT, TLSAddress, free_port, wait_until




def tls_directives(certs, tls_port, cert="server", ca="ca"):
    """A node's TLS port (client certificates required) and the certificate its links present."""
    return {"tls_port": tls_port, "tls_cert_file": f"{certs}/{cert}.crt",
            "tls_key_file": f"{certs}/{cert}.key", "tls_ca_cert_file": f"{certs}/{ca}.crt",
            "tls_auth_clients": "yes", "tls_downstream": "yes"}


def test_edge_relay_relief_over_mutual_tls(topo, certs):
    relay_tls = free_port()
    relay = topo.relay(**tls_directives(certs, relay_tls))
    reliefs = [topo.relief(relay=[TLSAddress(relay_tls)], wait=False,
                           **tls_directives(certs, free_port())) for _ in range(3)]
    wait_until(lambda: len(topo.members(relay)) == 3, 15, what="3 relief nodes joined over TLS")
    a = topo.edge(relay=[TLSAddress(relay_tls)], **tls_directives(certs, free_port()))
    b = topo.edge(relay=[TLSAddress(relay_tls)], **tls_directives(certs, free_port()))
    with a.client() as client:
        client.set("session:tls", "secret-bytes", ex=600)
    deadline_value = None
    with b.client() as client:
        wait_until(lambda: client.get("session:tls") == b"secret-bytes", 10,
                   what="B reads A's key through the relay over TLS")
        deadline_value = client.pttl("session:tls")
    assert 590_000 < deadline_value <= 600_000
    held = sum(r.tiers()["keys"] for r in reliefs)
    assert held >= 2  # replicas 2 on relief nodes reached over TLS
    assert "TLS handshake" not in relay.read_log()


def test_a_relief_node_with_a_certificate_from_another_ca_is_refused_and_logged(topo, certs):
    relay_tls = free_port()
    relay = topo.relay(**tls_directives(certs, relay_tls))
    rogue = topo.relief(relay=[TLSAddress(relay_tls)], wait=False,
                        **tls_directives(certs, free_port(), cert="rogue", ca="other-ca"))
    wait_until(lambda: "TLS handshake with 127.0.0.1:" in relay.read_log(), 15,
               what="the relay logs the refused handshake")
    assert topo.members(relay) == set()
    assert "cannot reach relay" in rogue.read_log()


def test_the_topology_launcher_puts_every_link_on_tls(tmp_path):
    """tools/topology.py --tls: nodes link to each other's TLS ports only, and it all works."""
    import json
    import signal
    import subprocess

    import redis

    endpoints = tmp_path / "topo.json"
    launcher = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "topology.py"), "--tls", "--edges", "2",
         "--aging", "1", "--expansion", "1", "--dir", str(tmp_path / "topo"),
         "--json", str(endpoints), "--interval", "60", "--grace", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(endpoints.exists, 60, what="the launcher wrote its endpoints")
        nodes = json.loads(endpoints.read_text())["nodes"]
        relay = next(n for n in nodes if n["role"] == "relay")
        edges = [n for n in nodes if n["role"] == "edge"]
        for node in nodes:
            conf = open(node["conf"]).read()
            assert "tls-downstream yes" in conf and "tls-auth-clients yes" in conf
            if node["role"] != "relay":
                assert f"relay 127.0.0.1:{relay['tls_port']}\n" in conf
        a = redis.Redis(port=edges[0]["port"])
        b = redis.Redis(port=edges[1]["port"])
        a.set("session:launcher", "over-tls", ex=300)
        wait_until(lambda: b.get("session:launcher") == b"over-tls", 10,
                   what="edge B reads edge A's key through the relay")
        # Every tier link the relay accepted came in on its TLS port. (Links are long-lived:
        # the launcher's own status calls on the plain port come and go.)
        with redis.Redis(port=relay["port"]) as admin:
            me = str(admin.client_id())

            def on_port(port):
                return [c for c in admin.client_list()
                        if c["laddr"].endswith(f":{port}") and c["id"] != me]
            wait_until(lambda: on_port(relay["port"]) == [], 10,
                       what="no tier link on the relay's plain port")
            assert len(on_port(relay["tls_port"])) >= 4  # two edges, two relief nodes
    finally:
        launcher.send_signal(signal.SIGINT)
        launcher.wait(60)
    assert launcher.returncode == 0
