"""MONITOR and SLOWLOG against a real redis-server: passwords redacted, admin commands hidden from
MONITOR, EXEC shown after the commands it ran and left out of SLOWLOG (Redis 7.0's call())."""

from __future__ import annotations

import re
import socket


from test_pubsub_transactions import resp_cmd  # noqa: E402


class Reader:
    """A blocking RESP2 reader over a socket (enough for replies and MONITOR lines)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return line
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if rest == b"-1" else self.exact(int(rest))
        if kind == b"*":
            return None if rest == b"-1" else [self.reply() for _ in range(int(rest))]
        raise AssertionError(f"unexpected reply line {line!r}")


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock, Reader(sock)


def run_script(port, script):
    """Run script on one connection while another MONITORs; the monitor lines without their
    timestamp and client address, and the script connection's replies."""
    mon, mon_reader = connect(port)
    client, reader = connect(port)
    try:
        mon.sendall(resp_cmd("MONITOR"))
        assert mon_reader.reply() == b"+OK"
        replies = []
        for words in script:
            client.sendall(resp_cmd(*words))
            replies.append(reader.reply())
        client.sendall(resp_cmd("ECHO", "end-of-script"))
        reader.reply()
        lines = []
        while True:
            line = mon_reader.line()
            shown = re.sub(rb"^\+\d+\.\d+ \[0 [^\]]*\] ", b"", line)
            if shown == b'"ECHO" "end-of-script"':
                return lines, replies
            lines.append(shown)
    finally:
        mon.close()
        client.close()


def slowlog_args(port, script):
    """Run script with every command logged; SLOWLOG's argument lists, oldest first."""
    sock, reader = connect(port)
    try:
        for words in [("CONFIG", "SET", "slowlog-log-slower-than", "0"), ("SLOWLOG", "RESET"),
                      *script, ("CONFIG", "SET", "slowlog-log-slower-than", "-1")]:
            sock.sendall(resp_cmd(*words))
            reader.reply()
        sock.sendall(resp_cmd("SLOWLOG", "GET", "-1"))
        entries = reader.reply()
    finally:
        sock.close()
    return [entry[3] for entry in reversed(entries)]


# Each command redacts as it runs: forms refused first (AUTH with three arguments, HELLO with a
# bad version or an unknown option before AUTH, CONFIG SET with an odd count) keep plaintext.
PASSWORD_SCRIPT = [
    ("AUTH", "topsecret"),
    ("AUTH", "u", "p", "x"),
    ("HELLO", "2", "AUTH", "default", "x"),
    ("HELLO", "4", "AUTH", "default", "x"),
    ("HELLO", "3", "BOGUS", "AUTH", "a", "b"),
    ("HELLO", "2", "SETNAME", "n", "AUTH", "a", "b"),
    ("HELLO", "2", "AUTH", "a"),
    ("CONFIG", "SET", "requirepass", "topsecret"),
    ("AUTH", "topsecret"),
    ("AUTH", "default", "topsecret"),
    ("CONFIG", "SET", "requirepass", "a", "x"),
    ("CONFIG", "SET", "MasterAuth", "m1", "REQUIREPASS", ""),
    ("ACL", "SETUSER", "bob", ">pw", "on"),
    ("ACL", "SETUSER", "bob"),
    ("ACL", "WHOAMI"),
    ("ACL", "DELUSER", "bob"),
    ("CLIENT", "SETNAME", "x"),
    ("CLIENT", "LIST"),
    ("CLIENT", "INFO"),
    ("SLOWLOG", "LEN"),
    ("SLOWLOG", "HELP"),
    ("CONFIG", "HELP"),
    ("PING",),
]

TRANSACTION_SCRIPT = [("MULTI",), ("SET", "a", "1"), ("GET", "a"), ("EXEC",), ("GET", "a")]


def test_monitor_redacts_passwords_and_hides_admin_commands_as_redis(start_server, own_redis):
    srv = start_server()
    theirs, their_replies = run_script(own_redis, PASSWORD_SCRIPT)
    ours, _ = run_script(srv.port, PASSWORD_SCRIPT)
    assert ours == theirs
    # What the comparison is about, spelled out.
    assert b'"AUTH" "(redacted)"' in ours
    assert b'"HELLO" "2" "AUTH" "(redacted)" "(redacted)"' in ours
    assert not any(b"topsecret" in line or b"CONFIG\" \"SET" in line for line in ours)
    assert not any(line.startswith(b'"ACL" "SETUSER"') for line in ours)


def test_monitor_shows_exec_after_the_commands_it_ran(server, own_redis):
    theirs, _ = run_script(own_redis, TRANSACTION_SCRIPT)
    ours, _ = run_script(server.port, TRANSACTION_SCRIPT)
    assert ours == theirs == [b'"MULTI"', b'"SET" "a" "1"', b'"GET" "a"', b'"EXEC"', b'"GET" "a"']


def test_slowlog_redacts_passwords_as_redis(start_server, own_redis):
    srv = start_server()
    theirs = slowlog_args(own_redis, PASSWORD_SCRIPT)
    ours = slowlog_args(srv.port, PASSWORD_SCRIPT)
    assert ours == theirs
    assert [b"CONFIG", b"SET", b"requirepass", b"(redacted)"] in ours
    assert [b"ACL", b"SETUSER", b"(redacted)", b"(redacted)", b"(redacted)"] in ours
    assert not any(b"topsecret" in arg or b"pw" in arg for entry in ours for arg in entry)


def test_slowlog_leaves_exec_out_and_logs_its_commands(server, own_redis):
    theirs = slowlog_args(own_redis, TRANSACTION_SCRIPT)
    ours = slowlog_args(server.port, TRANSACTION_SCRIPT)
    assert ours == theirs
    assert [b"EXEC"] not in ours and [b"SET", b"a", b"1"] in ours
