"""Pub/sub and transactions: raw replies compared with a real redis-server, plus client behaviour."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
import redis

from conftest import REDIS_CLI


def raw(port, payload: bytes, settle=0.3) -> bytes:
    """Send raw RESP and collect everything the server answers within `settle` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.settimeout(settle)
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
    return data


def resp_cmd(*words) -> bytes:
    out = b"*%d\r\n" % len(words)
    for word in words:
        word = word if isinstance(word, bytes) else str(word).encode()
        out += b"$%d\r\n%b\r\n" % (len(word), word)
    return out


SCRIPTS = {
    "subscribe-unsubscribe": [("SUBSCRIBE", "a", "b"), ("UNSUBSCRIBE", "a"), ("UNSUBSCRIBE",),
                              ("UNSUBSCRIBE",), ("PSUBSCRIBE", "n*", "m?"), ("PUNSUBSCRIBE",),
                              ("PING",), ("PING", "hello")],
    "subscribed-context-refusal": [("SUBSCRIBE", "a"), ("GET", "k"), ("PING",)],
    "resp3-push": [("HELLO", "3"), ("SUBSCRIBE", "x"), ("GET", "k"), ("UNSUBSCRIBE",)],
    "multi-exec": [("FLUSHALL",), ("MULTI",), ("SET", "k", "1"), ("INCR", "k"), ("INCR", "nope", "x"),
                   ("GET",), ("EXEC",), ("GET", "k")],
    "execabort": [("MULTI",), ("SET", "k"), ("GET", "k"), ("EXEC",)],
    "exec-errors-inside": [("FLUSHALL",), ("SET", "s", "abc"), ("MULTI",), ("INCR", "s"),
                           ("APPEND", "s", "d"), ("EXEC",)],
    "nesting-and-misuse": [("EXEC",), ("DISCARD",), ("MULTI",), ("MULTI",), ("WATCH", "k"),
                           ("DISCARD",), ("UNWATCH",)],
    "watch-same-connection": [("FLUSHALL",), ("WATCH", "w"), ("SET", "w", "1"), ("MULTI",),
                              ("GET", "w"), ("EXEC",)],
    "publish-counts": [("PUBLISH", "nobody", "x"), ("PUBSUB", "NUMSUB", "a", "b"),
                       ("PUBSUB", "NUMPAT"), ("PUBSUB", "CHANNELS")],
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_raw_replies_match_redis(server, real_redis, name):
    payload = b"".join(resp_cmd(*words) for words in SCRIPTS[name])
    expected = raw(real_redis, payload)
    got = raw(server.port, payload)
    # HELLO's map names the server and its id; compare everything else byte for byte.
    if name == "resp3-push":
        expected = expected[expected.index(b"modules"):]
        got = got[got.index(b"modules"):]
    assert got == expected


def test_publish_reaches_channel_and_pattern_subscribers(server):
    r = server.client(protocol=2)
    sub = r.pubsub()
    sub.subscribe("news")
    sub.psubscribe("n*")
    assert sub.get_message(timeout=1)["type"] == "subscribe"
    assert sub.get_message(timeout=1)["type"] == "psubscribe"
    assert r.publish("news", "hello") == 2
    first, second = sub.get_message(timeout=1), sub.get_message(timeout=1)
    assert {first["type"], second["type"]} == {"message", "pmessage"}
    assert first["data"] == second["data"] == b"hello"
    assert r.pubsub_numsub("news") == [(b"news", 1)]
    assert r.pubsub_numpat() == 1


def test_redis_cli_subscribe_mode_receives_messages(server):
    proc = subprocess.Popen([REDIS_CLI, "-p", str(server.port), "subscribe", "ch"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        r = server.client()
        deadline = time.monotonic() + 5
        while r.pubsub_numsub("ch")[0][1] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.publish("ch", "from-test") == 1
        lines = []
        while b"from-test" not in lines and time.monotonic() < deadline:
            lines.append(proc.stdout.readline().strip())
        assert lines[:3] == [b"subscribe", b"ch", b"1"]
        assert lines[-3:] == [b"message", b"ch", b"from-test"]
    finally:
        proc.terminate()
        proc.wait(5)


def test_slow_subscriber_is_disconnected_and_the_server_lives_on(start_server):
    srv = start_server("--client-output-buffer-limit", "pubsub", "256kb", "0", "0")
    with socket.create_connection(("127.0.0.1", srv.port)) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(resp_cmd("SUBSCRIBE", "firehose"))
        time.sleep(0.2)
        r = srv.client()
        payload = b"x" * 65536
        # Up to 128 MB to a reader that reads nothing: the kernel's socket buffers take the first
        # few MB, then the server's own buffer grows past the 256 kB limit and it lets go.
        for _ in range(2048):
            if r.publish("firehose", payload) == 0:
                break
        deadline = time.monotonic() + 5
        while r.pubsub_numsub("firehose")[0][1] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.pubsub_numsub("firehose") == [(b"firehose", 0)]
        assert r.ping() and r.set("still", "serving")
    assert "output buffer limits" in srv.output()


def test_pipeline_transaction_and_optimistic_locking(server):
    r = server.client()
    other = server.client()
    r.set("balance", 100)
    with r.pipeline() as pipe:
        pipe.incr("balance", 10)
        pipe.get("balance")
        assert pipe.execute() == [110, b"110"]
    attempts = 0
    while True:
        attempts += 1
        with r.pipeline() as pipe:
            try:
                pipe.watch("balance")
                value = int(pipe.get("balance"))
                if attempts == 1:
                    other.incr("balance")  # a concurrent writer wins the first round
                pipe.multi()
                pipe.set("balance", value * 2)
                pipe.execute()
                break
            except redis.WatchError:
                continue
    assert attempts == 2 and r.get("balance") == b"222"


def test_watch_sees_expiry_and_delete(server):
    r = server.client()
    r.set("gone", "x", px=50)
    with r.pipeline() as pipe:
        pipe.watch("gone")
        time.sleep(0.1)
        pipe.multi()
        pipe.set("gone", "y")
        with pytest.raises(redis.WatchError):
            pipe.execute()
