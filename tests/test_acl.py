"""ACL command, ACL LOG, channel rules and password rotation, side by side with redis-server 7.0."""

from __future__ import annotations

import socket
import uuid

import hiredis
import pytest

from test_workers import two_workers  # noqa: F401  (fixture: a --workers 2 server)


class Raw:
    """One RESP2 connection; errors come back as hiredis.ReplyError, a close as CLOSED."""

    CLOSED = "CLOSED"

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = hiredis.Reader()

    def send(self, *commands):
        out = []
        for args in commands:
            args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
            out.append(b"*%d\r\n" % len(args))
            out += [b"$%d\r\n%b\r\n" % (len(a), a) for a in args]
        self.sock.sendall(b"".join(out))

    def read(self):
        while True:
            got = self.reader.gets()
            if got is not False:
                return got
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return self.CLOSED
            self.reader.feed(data)

    def call(self, *args):
        self.send(args)
        return self.read()

    def close(self):
        self.sock.close()


def plain(reply):
    """Comparable form: errors as ('error', text); in a rule list (ACL LIST, GETUSER commands)
    the single-command rules sorted: Redis 7.0 prints them in its command table's hash order."""
    if isinstance(reply, hiredis.ReplyError):
        return ("error", str(reply))
    if isinstance(reply, list):
        return [plain(r) for r in reply]
    if isinstance(reply, bytes) and (b"+@all" in reply or b"-@all" in reply):
        words = reply.split()
        single = [w for w in words if w[:1] in b"+-" and w[1:2] != b"@"]
        return [w for w in words if w not in single] + sorted(single)
    return reply


def both(real_redis, server):
    return Raw(real_redis), Raw(server.port)


def fresh(prefix="u"):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_setuser_getuser_list_and_errors_match_redis(real_redis, server):
    a, b = fresh(), fresh()
    script = [
        ("ACL", "SETUSER", a, "+@read", "-@read", "+@read", "-get", "+set", "+client|id",
         "+set", "-config", "+config|get"),
        ("ACL", "SETUSER", a + "c", "+get", "-get", "+set", "+get", "+@all", "-get", "-flushall"),
        ("ACL", "GETUSER", a + "c"), ("ACL", "DELUSER", a + "c"),
        ("ACL", "SETUSER", b, "~x", "~y", "~x", "&c1", "&c2", "allkeys", ">p1", ">p2", ">p1"),
        ("ACL", "GETUSER", a), ("ACL", "GETUSER", b),
        ("ACL", "SETUSER", b, "allkeys", "~foo"), ("ACL", "SETUSER", b, "allchannels", "&foo"),
        ("ACL", "SETUSER", b, "<nosuch"), ("ACL", "SETUSER", b, "#abc"),
        ("ACL", "SETUSER", b, "+nosuchcommand"), ("ACL", "SETUSER", b, "+@nosuchcategory"),
        ("ACL", "SETUSER", b, "bogus"), ("ACL", "SETUSER", "has space"),
        ("ACL", "GETUSER", b),  # unchanged: a refused SETUSER changes nothing
        ("ACL", "SETUSER", a, "reset"), ("ACL", "GETUSER", a),
        ("ACL", "SETUSER", b, "nopass", ">only"), ("ACL", "GETUSER", b),
        ("ACL", "GETUSER", "nobody-" + a), ("ACL", "DELUSER", "default"),
        ("ACL", "CAT"), ("ACL", "CAT", "nosuch"), ("ACL", "CAT", "a", "b"),
        ("ACL", "LOG", "1", "2"), ("ACL", "LOG", "x"), ("ACL", "WHOAMI"), ("ACL", "NOSUCH"),
        ("ACL", "DELUSER", a, a, b, "nobody-" + a), ("ACL", "GETUSER", a),
    ]
    real, ours = both(real_redis, server)
    for args in script:
        assert plain(ours.call(*args)) == plain(real.call(*args)), args
    # ACL LIST and USERS: the default user's line, and new users sorted among them
    for args in [("ACL", "SETUSER", a, "on", ">pw", "~k*", "&n.*", "+get"),
                 ("ACL", "SETUSER", b, "off", "+@all", "-flushall")]:
        assert ours.call(*args) == real.call(*args) == b"OK"
    mine = {a.encode(), b.encode(), b"default"}
    ours_list = [line for line in ours.call("ACL", "LIST") if line.split()[1] in mine]
    assert plain(ours_list) == plain([line for line in real.call("ACL", "LIST")
                                      if line.split()[1] in mine])
    assert ours_list[0] == b"user default on nopass ~* &* +@all"
    assert [u for u in ours.call("ACL", "USERS") if u in mine] == \
        [u for u in real.call("ACL", "USERS") if u in mine] == sorted(mine)
    ours.call("HELLO", "3")
    real.call("HELLO", "3")
    assert ours.call("ACL", "GETUSER", a) == real.call("ACL", "GETUSER", a)  # a map in RESP3
    real.call("ACL", "DELUSER", a, b)


def test_acl_cat_lists_the_commands_of_a_category(r):
    pubsub = set(r.execute_command("ACL", "CAT", "pubsub"))
    assert {b"publish", b"subscribe", b"psubscribe", b"pubsub|channels"} <= pubsub
    assert b"get" not in pubsub
    assert b"get" in r.execute_command("ACL", "CAT", "READ")
    assert r.execute_command("ACL", "CAT", "list") == []  # a Redis category with nothing here
    assert r.execute_command("ACL", "HELP")[0].startswith(b"ACL <subcommand>")


def test_channel_rules_as_redis(real_redis, server):
    user = fresh("chan")
    script = [("PUBLISH", "news.a", "m"), ("PUBLISH", "sports", "m"),
              ("PSUBSCRIBE", "news.a"), ("PSUBSCRIBE", "news.*"), ("SUBSCRIBE", "news.b", "x"),
              ("SUBSCRIBE", "news.b")]
    for port in (real_redis, server.port):
        admin = Raw(port)
        assert admin.call("ACL", "SETUSER", user, "on", ">pw", "~*", "&news.*", "+@all") == b"OK"
        assert admin.call("ACL", "SETUSER", user + "-none", "on", ">pw", "~*", "+@all") == b"OK"
    replies = {}
    for port in (real_redis, server.port):
        conn = Raw(port)
        assert conn.call("AUTH", user, "pw") == b"OK"
        replies[port] = [plain(conn.call(*args)) for args in script]
        none = Raw(port)
        assert none.call("AUTH", user + "-none", "pw") == b"OK"
        replies[port].append(plain(none.call("PUBLISH", "news.a", "m")))  # resetchannels
    denied = ("error", "NOPERM this user has no permissions to access one of the channels "
                      "used as arguments")
    assert replies[server.port] == replies[real_redis]
    assert replies[server.port][1] == replies[server.port][2] == replies[server.port][4] == denied
    assert replies[server.port][-1] == denied
    assert replies[server.port][3] == [b"psubscribe", b"news.*", 1]
    Raw(real_redis).call("ACL", "DELUSER", user, user + "-none")


def test_acl_log_records_denials_as_redis(real_redis, server):
    user = fresh("log")
    logs = {}
    for port in (real_redis, server.port):
        admin = Raw(port)
        assert admin.call("ACL", "LOG", "RESET") == b"OK"
        admin.call("ACL", "SETUSER", user, "on", ">pw", "~k*", "&news.*", "+@all", "-flushall")
        bad = Raw(port)
        for args in [("AUTH", user, "wrong"), ("AUTH", user, "wrong"), ("auth", "nobody", "x"),
                     ("HELLO", "2", "AUTH", user, "nope")]:
            assert isinstance(bad.call(*args), hiredis.ReplyError)
        conn = Raw(port)
        assert conn.call("AUTH", user, "pw") == b"OK"
        for args in [("GET", "other"), ("SET", "other", "1"), ("FLUSHALL",),
                     ("PUBLISH", "sports", "m"), ("MULTI",), ("GET", "inmulti"), ("DISCARD",)]:
            conn.call(*args)
        entries = admin.call("ACL", "LOG")
        logs[port] = [dict(zip(e[::2], e[1::2])) for e in entries]
        assert len(admin.call("ACL", "LOG", "2")) == 2
    ours, real = logs[server.port], logs[real_redis]
    fields = [b"count", b"reason", b"context", b"object", b"username"]
    assert [[e[f] for f in fields] for e in ours] == [[e[f] for f in fields] for e in real]
    assert [list(e) for e in ours] == [list(e) for e in real]  # same fields, same order
    assert ours[0][b"context"] == b"multi" and ours[0][b"object"] == b"inmulti"
    key = next(e for e in ours if e[b"object"] == b"other")
    assert key[b"count"] == 2 and key[b"reason"] == b"key"  # GET and SET grouped
    auth = [e for e in ours if e[b"reason"] == b"auth"]
    assert [(e[b"object"], e[b"username"], e[b"count"]) for e in auth] == [
        (b"HELLO", user.encode(), 1), (b"auth", b"nobody", 1), (b"AUTH", user.encode(), 2)]
    assert f"user={user} ".encode() in key[b"client-info"]
    assert b" cmd=set " in key[b"client-info"]
    assert 0 <= float(ours[0][b"age-seconds"]) < 10
    admin = Raw(server.port)
    assert admin.call("ACL", "LOG", "RESET") == b"OK" and admin.call("ACL", "LOG") == []
    Raw(real_redis).call("ACL", "DELUSER", user)


def test_changes_reach_live_connections_and_deluser_disconnects(server):
    admin = Raw(server.port)
    assert admin.call("ACL", "SETUSER", "al", "on", ">old", "~*", "&*", "+@all") == b"OK"
    full = Raw(server.port)      # unrestricted: the connection holds no ACL user
    assert full.call("AUTH", "al", "old") == b"OK" and full.call("SET", "k", "1") == b"OK"
    assert admin.call("ACL", "SETUSER", "al", "-set", ">new", "<old") == b"OK"
    assert str(full.call("SET", "k", "2")).startswith("NOPERM this user has no permissions to "
                                                      "run the 'set' command")
    assert full.call("GET", "k") == b"1"
    assert isinstance(Raw(server.port).call("AUTH", "al", "old"), hiredis.ReplyError)
    sub = Raw(server.port)
    assert sub.call("AUTH", "al", "new") == b"OK"
    assert sub.call("SUBSCRIBE", "news.1") == [b"subscribe", b"news.1", 1]
    assert admin.call("ACL", "SETUSER", "al", "resetchannels", "&news.*") == b"OK"
    assert admin.call("PUBLISH", "news.1", "still") == 1
    assert sub.read() == [b"message", b"news.1", b"still"]
    assert admin.call("ACL", "SETUSER", "al", "resetchannels", "&other") == b"OK"
    assert sub.read() == Raw.CLOSED  # subscribed to a channel it may no longer use
    assert admin.call("ACL", "DELUSER", "al") == 1
    assert full.read() == Raw.CLOSED
    assert isinstance(Raw(server.port).call("AUTH", "al", "new"), hiredis.ReplyError)
    # deleting one's own user: the reply, then the close; what was pipelined after never runs
    assert admin.call("ACL", "SETUSER", "me", "on", ">p", "~*", "+@all") == b"OK"
    me = Raw(server.port)
    assert me.call("AUTH", "me", "p") == b"OK"
    me.send(("GET", "k"), ("ACL", "DELUSER", "me"), ("SET", "k", "after"))
    assert [me.read(), me.read(), me.read()] == [b"1", 1, Raw.CLOSED]
    assert admin.call("GET", "k") == b"1"
    assert admin.call("ACL", "WHOAMI") == b"default"


def test_requirepass_rotation(start_server):
    srv = start_server("--requirepass", "fromconf", "--user", "default", "on", ">pw", "~*", "&*",
                       "+@all")
    # the `user default` line reset the default user: requirepass left no second password
    assert isinstance(Raw(srv.port).call("AUTH", "fromconf"), hiredis.ReplyError)
    admin = Raw(srv.port)
    assert admin.call("AUTH", "pw") == b"OK"
    assert admin.call("ACL", "SETUSER", "bob", "on", ">b", "+get", "~*") == b"OK"
    assert admin.call("CONFIG", "SET", "requirepass", "new") == b"OK"
    for password, ok in (("pw", False), ("fromconf", False), ("new", True)):
        assert (Raw(srv.port).call("AUTH", password) == b"OK") is ok, password
    assert Raw(srv.port).call("AUTH", "bob", "b") == b"OK"  # SETUSER's users survive
    assert admin.call("ACL", "LIST")[1].startswith(b"user default on sanitize-payload #")
    assert admin.call("CONFIG", "SET", "requirepass", "") == b"OK"
    assert Raw(srv.port).call("GET", "k") is None  # nopass: no AUTH needed any more


def raw_on_worker(srv, index, count=2):
    for _ in range(64):
        conn = Raw(srv.port)
        if (conn.call("CLIENT", "ID") - 1) % count == index:
            return conn
        conn.close()
    pytest.fail(f"SO_REUSEPORT never gave worker {index} one of 64 connections")


def test_setuser_and_deluser_reach_every_worker(two_workers):
    zero, one = raw_on_worker(two_workers, 0), raw_on_worker(two_workers, 1)
    assert zero.call("ACL", "SETUSER", "w", "on", ">pw", "~*", "&*", "+@all") == b"OK"
    assert one.call("ACL", "GETUSER", "w")[1] == [b"on"]
    assert one.call("ACL", "LIST") == zero.call("ACL", "LIST")
    user_on_one = raw_on_worker(two_workers, 1)
    assert user_on_one.call("AUTH", "w", "pw") == b"OK"
    assert isinstance(raw_on_worker(two_workers, 1).call("AUTH", "w", "bad"), hiredis.ReplyError)
    entry = zero.call("ACL", "LOG", "1")[0]   # recorded on worker 1, gathered by worker 0
    assert dict(zip(entry[::2], entry[1::2]))[b"username"] == b"w"
    assert zero.call("ACL", "LOG", "RESET") == b"OK" and one.call("ACL", "LOG") == []
    assert zero.call("ACL", "DELUSER", "w") == 1
    assert user_on_one.read() == Raw.CLOSED
    assert one.call("ACL", "GETUSER", "w") is None


def test_refused_setuser_changes_no_worker(two_workers):
    zero, one = raw_on_worker(two_workers, 0), raw_on_worker(two_workers, 1)
    assert zero.call("ACL", "SETUSER", "z", "on", ">pw") == b"OK"
    reply = zero.call("ACL", "SETUSER", "z", "off", "+nosuchcommand")
    assert str(reply) == ("ERR Error in ACL SETUSER modifier '+nosuchcommand': Unknown command "
                          "or category name in ACL")
    assert one.call("ACL", "GETUSER", "z")[1] == zero.call("ACL", "GETUSER", "z")[1] == [b"on"]


def test_data_commands_of_users_with_key_or_command_rules_are_still_checked(start_server):
    """Users allowed every command and key run data commands on the C path whatever their
    channel rules; anyone with a key or command rule is checked on every one."""
    import redis
    srv = start_server("--user", "wide", "on", ">pw", "~*", "+@all",
                       "--user", "keys", "on", ">pw", "~k:*", "+@all",
                       "--user", "cmds", "on", ">pw", "~*", "+@all", "-set")
    wide = srv.client(username="wide", password="pw")
    assert wide.set("other", "1") and wide.get("other") == b"1"
    with pytest.raises(redis.exceptions.NoPermissionError, match="channels"):
        wide.publish("news", "x")                      # no &pattern: channels are refused
    keys = srv.client(username="keys", password="pw")
    assert keys.set("k:1", "v") and keys.get("k:1") == b"v"
    with pytest.raises(redis.exceptions.NoPermissionError, match="keys"):
        keys.get("other")
    with pytest.raises(redis.exceptions.NoPermissionError):
        keys.execute_command("GET", "other")           # pipelined or not, the same
    cmds = srv.client(username="cmds", password="pw")
    assert cmds.get("other") == b"1"
    with pytest.raises(redis.exceptions.NoPermissionError, match="set"):
        cmds.set("other", "2")


def test_exec_checks_acls_again_when_the_rules_changed_while_queued(real_redis, server):
    """Redis re-checks every queued command at EXEC: a rule taken away meanwhile answers that
    command's slot with NOPERM ('ACLs rules changed ...') and logs it in context multi."""
    user = fresh("ex")
    seen = {}
    for port in (real_redis, server.port):
        admin = Raw(port)
        admin.call("ACL", "LOG", "RESET")
        admin.call("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all")
        conn = Raw(port)
        assert conn.call("AUTH", user, "pw") == b"OK"
        assert conn.call("MULTI") == b"OK"
        for args in [("GET", "k"), ("GET", "k2"), ("SET", "k2", "v"), ("PUBLISH", "ch", "m")]:
            assert conn.call(*args) == b"QUEUED"
        assert admin.call("ACL", "SETUSER", user, "resetkeys", "~k2*", "resetchannels") == b"OK"
        seen[port] = (plain(conn.call("EXEC")),
                      [(e[3], e[5], e[7]) for e in admin.call("ACL", "LOG")])
        admin.call("ACL", "DELUSER", user)
    assert seen[server.port] == seen[real_redis]
    replies, log = seen[server.port]
    assert replies[0][0] == "error" and "ACLs rules changed" in replies[0][1]
    assert "no permission to touch the specified keys" in replies[0][1]
    assert replies[1] is None and replies[2] == b"OK"
    assert "channels used as arguments" in replies[3][1]
    assert [entry[:2] for entry in log] == [(b"channel", b"multi"), (b"key", b"multi")]
