"""The real redis-cli (Debian's redis-tools) against respcache: what ops type every day."""

from __future__ import annotations

from conftest import redis_cli


def resp_cmd(*words) -> bytes:
    out = b"*%d\r\n" % len(words)
    for word in words:
        out += b"$%d\r\n%b\r\n" % (len(word), word)
    return out


def test_pipe_mass_insertion(server):
    payload = b"".join(resp_cmd(b"SET", b"mass:%d" % i, b"value-%d" % i) for i in range(5000))
    out = redis_cli(server.port, "--pipe", input=payload, timeout=60)
    assert out.returncode == 0
    assert b"errors: 0, replies: 5000" in out.stdout
    client = server.client()
    assert client.dbsize() == 5000
    assert client.get("mass:4999") == b"value-4999"


def test_pipe_reports_errors(server):
    payload = resp_cmd(b"SET", b"k", b"v") + resp_cmd(b"INCR", b"k") + resp_cmd(b"NOPE")
    out = redis_cli(server.port, "--pipe", input=payload)
    assert b"errors: 2, replies: 3" in out.stdout


def test_info_and_errors_as_redis_cli_prints_them(server):
    info = redis_cli(server.port, "INFO", "server").stdout.decode()
    assert "# Server" in info and "redis_version:7.0.15" in info and "tcp_port:" in info
    assert redis_cli(server.port, "--no-raw", "SET", "s", "abc").stdout == b"OK\n"
    err = redis_cli(server.port, "--no-raw", "INCR", "s").stdout
    assert err == b"(error) ERR value is not an integer or out of range\n"
    assert redis_cli(server.port, "--no-raw", "GET", "none").stdout == b"(nil)\n"
    typed = redis_cli(server.port, "--no-raw", "HSET", "h", "f", "v").stdout
    assert typed == b"(integer) 1\n"
    wrong = redis_cli(server.port, "--no-raw", "GET", "h").stdout
    assert wrong.startswith(b"(error) WRONGTYPE")


def test_scan_and_keys_through_redis_cli(server):
    client = server.client()
    for i in range(300):
        client.set(f"user:{i}", i)
    out = redis_cli(server.port, "--scan", "--pattern", "user:1*").stdout.split()
    assert sorted(out) == sorted(f"user:{i}".encode() for i in range(300)
                                 if str(i).startswith("1"))
