"""WATCH and MULTI/EXEC against a real redis-server, byte for byte: which writes break a WATCH
(Redis signals the key for a write that leaves the value as it was), and the transaction replies."""

from __future__ import annotations

import socket

import pytest

from test_pubsub_transactions import resp_cmd


class Conn:
    """One raw connection: send a command, get its reply's raw bytes (one reply each)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        end = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:end], self.buf[end:]
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$" and rest != b"-1":
            n = int(rest) + 2
            while len(self.buf) < n:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n:]
            return line + data
        if kind in (b"*", b">", b"%") and rest != b"-1":
            count = int(rest) * (2 if kind == b"%" else 1)
            return line + b"".join(self._reply() for _ in range(count))
        return line

    def __call__(self, *words) -> bytes:
        self.sock.sendall(resp_cmd(*words))
        return self._reply()

    def close(self):
        self.sock.close()


# (setup, the other client's command): Redis 7.0 signals the key for each of these.
SIGNALLING = [
    ([("HSET", "k", "f", "1")], ("HSET", "k", "f", "1")),
    ([("HSET", "k", "f", "1")], ("HMSET", "k", "f", "1")),
    ([("HSET", "k", "n", "1")], ("HINCRBY", "k", "n", "0")),
    ([("HSET", "k", "n", "1")], ("HINCRBYFLOAT", "k", "n", "0")),
    ([("SET", "k", "v")], ("APPEND", "k", "")),
    ([], ("APPEND", "k", "")),
    ([("SET", "k", "v")], ("SETRANGE", "k", "0", "v")),
    ([("SET", "k", "5")], ("INCRBY", "k", "0")),
    ([("SET", "k", "5")], ("INCRBYFLOAT", "k", "0")),
    ([("SET", "k", "v")], ("SET", "k", "v")),
    ([("SET", "k", "v")], ("GETSET", "k", "v")),
]
# ... and leaves it alone for these: nothing was written.
QUIET = [
    ([("HSET", "k", "f", "1")], ("HSETNX", "k", "f", "2")),
    ([("HSET", "k", "f", "1")], ("HDEL", "k", "nope")),
    ([], ("HDEL", "k", "nope")),
    ([("HSET", "k", "f", "1")], ("HINCRBY", "k", "f", "x")),
    ([("SET", "k", "v")], ("SETRANGE", "k", "0", "")),
    ([], ("SETRANGE", "k", "0", "")),
    ([("SET", "k", "v")], ("SETNX", "k", "v")),
]


def watch_outcome(port, setup, command):
    a, b = Conn(port), Conn(port)
    try:
        b("FLUSHALL")
        for words in setup:
            b(*words)
        a("WATCH", "k", "other")
        written = b(*command)
        a("MULTI")
        a("PING")
        return written, a("EXEC")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("setup,command", SIGNALLING + QUIET,
                         ids=[" ".join(w or "''" for w in c) + (" (new key)" if not s else "")
                              for s, c in SIGNALLING + QUIET])
def test_watch_breaks_on_the_writes_redis_signals(server, real_redis, setup, command):
    ours = watch_outcome(server.port, setup, command)
    theirs = watch_outcome(real_redis, setup, command)
    assert ours == theirs
    aborted = (setup, command) in SIGNALLING
    assert ours[1] == (b"*-1\r\n" if aborted else b"*1\r\n+PONG\r\n")


# Transactions, raw bytes compared with redis-server. A refused EXEC (arity, NOAUTH, NOPERM,
# the subscribed context) answers EXECABORT with the reason and discards the transaction and
# its WATCHes; UNWATCH, AUTH and MONITOR are queued; SHUTDOWN and SAVE are refused in MULTI.
SESSIONS = {
    "unwatch-is-queued": [("MULTI",), ("UNWATCH",), ("PING",), ("EXEC",)],
    "unwatch-queued-after-watch": [("WATCH", "q"), ("MULTI",), ("UNWATCH",), ("EXEC",)],
    "exec-arity-in-multi": [("MULTI",), ("EXEC", "x"), ("PING",), ("EXEC",)],
    "exec-arity-without-multi": [("EXEC", "x"), ("PING",)],
    "refused-exec-drops-watches": [("FLUSHALL",), ("WATCH", "k"), ("MULTI",), ("EXEC", "x"),
                                   ("SET", "k", "2"), ("MULTI",), ("PING",), ("EXEC",)],
    "exec-when-subscribed": [("SUBSCRIBE", "x"), ("EXEC",), ("PING",)],
    "shutdown-and-save-refused-in-multi": [("MULTI",), ("SHUTDOWN", "NOSAVE"), ("SAVE",),
                                           ("PING",), ("EXEC",), ("PING",)],
    "auth-and-monitor-queued": [("MULTI",), ("AUTH", "x"), ("MONITOR",), ("PING",), ("EXEC",),
                                ("PING",)],
    "exec-noperm": [("ACL", "SETUSER", "nx", "on", ">p", "+@all", "-exec"), ("AUTH", "nx", "p"),
                    ("MULTI",), ("PING",), ("EXEC",), ("PING",), ("EXEC",)],
}


def run_session(port, session):
    conn = Conn(port)
    try:
        return [conn(*words) for words in session]
    finally:
        conn.close()


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_transaction_replies_match_redis(start_server, own_redis, name):
    srv = start_server()
    assert run_session(srv.port, SESSIONS[name]) == run_session(own_redis, SESSIONS[name])


def test_exec_refused_before_auth_is_execabort(start_server, own_redis):
    srv = start_server()
    replies = []
    for port in (srv.port, own_redis):
        run_session(port, [("CONFIG", "SET", "requirepass", "pw")])
        replies.append(run_session(port, [("MULTI",), ("EXEC",), ("PING",)]))
    assert replies[0] == replies[1]
    assert replies[0][1] == (b"-EXECABORT Transaction discarded because of: "
                             b"NOAUTH Authentication required.\r\n")


# Redis resolves a subcommand with its command: unknown or miscounted, it is refused up front
# (the transaction aborts at EXEC, and MONITOR never shows it).
SUBCOMMAND_SCRIPT = [("MULTI",), ("CONFIG", "BOGUS"), ("CONFIG", "GET"), ("PING",), ("EXEC",),
                     ("CLIENT", "NOSUCH"), ("COMMAND", "COUNT", "x"), ("ECHO", "seen")]


def test_bad_subcommands_are_refused_before_running(start_server, own_redis):
    from test_monitor_slowlog import run_script
    srv = start_server()
    ours, theirs = run_session(srv.port, SUBCOMMAND_SCRIPT), run_session(own_redis, SUBCOMMAND_SCRIPT)
    assert ours == theirs
    assert ours[4] == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    script = SUBCOMMAND_SCRIPT[5:]
    assert run_script(srv.port, script)[0] == run_script(own_redis, script)[0] == [b'"ECHO" "seen"']
