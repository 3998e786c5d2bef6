"""TLS directives at startup and at runtime: what fails, fails early and leaves nothing behind."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import uuid

import pytest
import redis

from conftest import ROOT, free_port, wait_for_port

sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_certs import make_all, make_signed  # noqa: E402


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tls-config-certs"))
    paths = make_all(directory, clients=("client",))
    make_signed(directory, "locked", paths["ca"], os.path.join(directory, "ca.key"),
                hosts=("127.0.0.1",), passphrase="right-pass")
    return directory


def tls_args(certs, key="server"):
    return ["--tls-cert-file", f"{certs}/{key}.crt", "--tls-key-file", f"{certs}/{key}.key",
            "--tls-ca-cert-file", f"{certs}/ca.crt", "--tls-auth-clients", "no"]


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "respcache.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tls_client(port, certs, **kwargs):
    return redis.Redis(port=port, ssl=True, ssl_ca_certs=f"{certs}/ca.crt",
                       ssl_check_hostname=False, **kwargs)


def test_a_wrong_key_password_stops_startup_before_the_segment_exists(certs):
    name = f"rc-tls-{uuid.uuid4().hex[:10]}"
    proc = start("--port", str(free_port()), "--tls-port", str(free_port()), "--shm-name", name,
                 *tls_args(certs, "locked"), "--tls-key-file-pass", "wrong-pass")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Failed to configure TLS: cannot load TLS files" in out
    assert not os.path.exists(f"/dev/shm/{name}")
    # The right password starts it.
    port, tls_port = free_port(), free_port()
    proc = start("--port", str(port), "--tls-port", str(tls_port), "--shm-name", name,
                 *tls_args(certs, "locked"), "--tls-key-file-pass", "right-pass")
    try:
        wait_for_port(tls_port, proc)
        assert tls_client(tls_port, certs).ping()
    finally:
        stop(proc)
    assert not os.path.exists(f"/dev/shm/{name}")


def test_tls_only_servers_on_one_host_get_segments_of_their_own(certs):
    """`port 0` + tls-port: the default segment is named after the TLS port, not 'respcache-0'
    (two such servers used to share, and the second one's exit retired the first's)."""
    ports = [free_port(), free_port()]
    procs = [start("--port", "0", "--tls-port", str(p), *tls_args(certs)) for p in ports]
    try:
        for port, proc in zip(ports, procs):
            wait_for_port(port, proc)
        names = [tls_client(p, certs).config_get("shm-name")["shm-name"] for p in ports]
        assert names == [f"respcache-{p}" for p in ports]
        tls_client(ports[0], certs).set("mine", "1")
        stop(procs[1])
        assert tls_client(ports[0], certs).get("mine") == b"1"
    finally:
        for proc in procs:
            stop(proc)


def test_a_failed_config_set_of_a_tls_file_keeps_the_old_value(certs, start_server):
    srv = start_server("--tls-port", str(free_port()), *tls_args(certs))
    r = srv.client()
    before = r.config_get("tls-cert-file")["tls-cert-file"]
    with pytest.raises(redis.ResponseError, match="^CONFIG SET failed"):
        r.config_set("tls-cert-file", "/nonexistent/server.crt")
    assert r.config_get("tls-cert-file")["tls-cert-file"] == before
    # All or nothing: a good directive in the same call is put back too.
    with pytest.raises(redis.ResponseError):
        r.execute_command("CONFIG", "SET", "tls-cert-file", "/nonexistent/server.crt",
                          "slowlog-max-len", "7")
    assert r.config_get("slowlog-max-len")["slowlog-max-len"] == "128"
    assert r.config_get("tls-cert-file")["tls-cert-file"] == before


def test_tls_ciphersuites_is_refused_rather_than_ignored(certs):
    proc = start("--port", str(free_port()), "--tls-port", str(free_port()), *tls_args(certs),
                 "--tls-ciphersuites", "TLS_AES_128_GCM_SHA256")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "*** FATAL CONFIG FILE ERROR" in out and "tls-ciphersuites" in out
    assert "cannot choose TLS 1.3 cipher suites" in out


def _tls13_resumed(port, certs) -> bool:
    """Connect, take the session ticket, reconnect offering it: was the session resumed?"""
    context = ssl.create_default_context(cafile=f"{certs}/ca.crt")
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        with context.wrap_socket(raw) as first:
            first.sendall(b"PING\r\n")
            assert first.recv(100) == b"+PONG\r\n"  # tickets come after the handshake
            session = first.session
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        with context.wrap_socket(raw, session=session) as second:
            second.sendall(b"PING\r\n")
            assert second.recv(100) == b"+PONG\r\n"
            return second.session_reused


@pytest.mark.parametrize("caching, resumed", [("yes", True), ("no", False)])
def test_tls_session_caching_decides_whether_tls13_sessions_resume(certs, start_server, caching,
                                                                   resumed):
    tls_port = free_port()
    srv = start_server("--tls-port", str(tls_port), *tls_args(certs),
                       "--tls-session-caching", caching)
    wait_for_port(tls_port, srv.proc)
    assert _tls13_resumed(tls_port, certs) is resumed
