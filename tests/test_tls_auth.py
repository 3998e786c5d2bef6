"""TLS on the client port and ACL users: real certificates made at test time, redis-cli and redis-py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import redis

from conftest import REDIS_CLI, ROOT, free_port, wait_for_port

sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_certs import make_all  # noqa: E402


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("certs"))
    make_all(directory, clients=("client",), other_ca=True)
    return directory


@pytest.fixture
def tls_server(start_server, certs):
    def start(*extra):
        tls_port = free_port()
        srv = start_server("--tls-port", str(tls_port),
                           "--tls-cert-file", f"{certs}/server.crt",
                           "--tls-key-file", f"{certs}/server.key",
                           "--tls-ca-cert-file", f"{certs}/ca.crt", *extra)
        wait_for_port(tls_port)
        srv.tls_port = tls_port
        return srv
    return start


def tls_client(port, certs, cert="client", **kwargs):
    options = dict(ssl=True, ssl_ca_certs=f"{certs}/ca.crt")
    if cert:
        options.update(ssl_certfile=f"{certs}/{cert}.crt", ssl_keyfile=f"{certs}/{cert}.key")
    options.update(kwargs)
    return redis.Redis(port=port, **options)


def cli_tls(port, certs, *args, cert="client"):
    argv = [REDIS_CLI, "-p", str(port), "--tls", "--cacert", f"{certs}/ca.crt"]
    if cert:
        argv += ["--cert", f"{certs}/{cert}.crt", "--key", f"{certs}/{cert}.key"]
    return subprocess.run(argv + list(args), capture_output=True, timeout=20)


def test_redis_py_and_redis_cli_with_client_certificates(tls_server, certs):
    srv = tls_server()
    client = tls_client(srv.tls_port, certs)
    assert client.set("over-tls", "yes")
    assert client.get("over-tls") == b"yes"
    assert srv.client().get("over-tls") == b"yes"  # same keyspace as the plain port
    assert cli_tls(srv.tls_port, certs, "GET", "over-tls").stdout == b"yes\n"


def test_client_certificate_required_by_default(tls_server, certs):
    srv = tls_server()
    with pytest.raises(redis.ConnectionError):
        tls_client(srv.tls_port, certs, cert=None).ping()
    assert "TLS handshake with 127.0.0.1:" in srv.output()


def test_optional_and_no_client_auth(tls_server, certs):
    srv = tls_server("--tls-auth-clients", "optional")
    assert tls_client(srv.tls_port, certs, cert=None).ping()
    assert tls_client(srv.tls_port, certs).ping()
    srv2 = tls_server("--tls-auth-clients", "no")
    assert cli_tls(srv2.tls_port, certs, "PING", cert=None).stdout == b"PONG\n"


def test_certificate_from_another_ca_is_refused_and_logged(tls_server, certs):
    srv = tls_server()
    with pytest.raises(redis.ConnectionError):
        tls_client(srv.tls_port, certs, cert="rogue").ping()
    assert srv.client().ping()  # the server goes on
    log = srv.output()
    assert "TLS handshake with 127.0.0.1:" in log and "failed" in log


def test_plain_text_on_the_tls_port_is_dropped_and_counted(tls_server, certs):
    srv = tls_server("--tls-handshake-timeout", "500")
    with socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        sock.settimeout(5)
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
        assert b"PONG" not in data
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if srv.client().info("stats")["tls_handshake_failures"] >= 1:
            break
        time.sleep(0.05)
    assert srv.client().info("stats")["tls_handshake_failures"] >= 1


def test_a_stalled_handshake_is_dropped_after_the_timeout(tls_server, certs):
    srv = tls_server("--tls-handshake-timeout", "300")
    with socket.create_connection(("127.0.0.1", srv.tls_port), timeout=5) as sock:
        started = time.monotonic()
        sock.settimeout(5)
        try:
            assert sock.recv(100) == b""  # we send nothing; the server hangs up
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 3
    assert srv.client().ping()


def test_certificates_rotate_without_a_restart(tls_server, certs, tmp_path):
    srv = tls_server()
    live = tls_client(srv.tls_port, certs)
    assert live.set("k", "v")
    # Point the server at a new CA and server certificate; the live connection stays up.
    newdir = str(tmp_path / "new")
    make_all(newdir, clients=("client",))
    admin = srv.client()
    assert admin.execute_command("CONFIG", "SET", "tls-ca-cert-file", f"{newdir}/ca.crt",
                                 "tls-cert-file", f"{newdir}/server.crt",
                                 "tls-key-file", f"{newdir}/server.key")
    assert live.get("k") == b"v"
    assert tls_client(srv.tls_port, newdir).get("k") == b"v"
    with pytest.raises(redis.ConnectionError):
        tls_client(srv.tls_port, certs).ping()  # the old CA's client certificate is refused


def test_requirepass_noauth_wrongpass_and_counting(start_server):
    srv = start_server("--requirepass", "s3cret")
    anonymous = srv.client()
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("k")
    with pytest.raises(redis.AuthenticationError):
        srv.client(password="wrong").ping()
    good = srv.client(password="s3cret")
    assert good.set("k", "v") and good.get("k") == b"v"
    refused = good.info("stats")["acl_access_denied_auth"]
    assert refused >= 1  # redis-py may retry a refused AUTH; each refusal counts
    srv.client(password="s3cret").ping()
    assert good.info("stats")["acl_access_denied_auth"] == refused
    hello = srv.client(protocol=3, username="default", password="s3cret")
    assert hello.get("k") == b"v"


def test_acl_users_keys_and_commands(start_server):
    srv = start_server("--user", "app", "on", ">apppw", "~session:*", "+@read", "+@write",
                       "-flushall", "--user", "reader", "on", ">r", "~*", "+get",
                       "--user", "disabled", "off", ">x", "+@all", "~*")
    app = srv.client(username="app", password="apppw")
    assert app.set("session:1", "data")
    with pytest.raises(redis.exceptions.NoPermissionError, match="keys used as arguments"):
        app.set("other", "x")
    with pytest.raises(redis.exceptions.NoPermissionError, match="'flushall' command"):
        app.flushall()
    reader = srv.client(username="reader", password="r")
    assert reader.get("session:1") == b"data"
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.set("session:1", "y")
    with pytest.raises(redis.AuthenticationError):
        srv.client(username="disabled", password="x").ping()
    # the default user is untouched (no requirepass): anyone may run anything
    assert srv.client().flushall()


def test_bad_user_rule_stops_startup_naming_the_directive(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("port 0\nuser bob on >pw +nosuchcommand\n")
    out = subprocess.run([sys.executable, "-m", "respcache.cli", str(conf)], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"Reading the configuration file {conf}, at line 2" in out.stderr
    assert "directive 'user': Unknown command 'nosuchcommand'" in out.stderr


def test_tls_without_certificates_stops_startup(start_server, tmp_path):
    out = subprocess.run([sys.executable, "-m", "respcache.cli", "--port", str(free_port()),
                          "--shm-name", f"rc-test-tls-{os.getpid()}", "--tls-port",
                          str(free_port())], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 1
    assert "tls-port needs tls-cert-file and tls-key-file" in out.stdout + out.stderr


def test_tier_commands_need_the_right_to_run_them(start_server):
    srv = start_server("--user", "app", "on", ">pw", "~*", "+@read", "+@write",
                       "--user", "tier", "on", ">t", "~*", "+@read", "+respcache")
    app = srv.client(username="app", password="pw")
    with pytest.raises(redis.exceptions.NoPermissionError, match="'respcache|"):
        app.execute_command("RESPCACHE", "TOPOLOGY")
    tier = srv.client(username="tier", password="t")
    assert tier.execute_command("RESPCACHE", "TOPOLOGY")[0] == b"edge"
