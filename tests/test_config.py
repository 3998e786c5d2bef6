"""Config files and the process: FATAL errors, include, overrides, REWRITE, limits, shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import redis

from conftest import ROOT, free_port, wait_for_port


def run_cli(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "respcache.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("line, directive, reason", [
    ("port abc", "port", "argument couldn't be parsed into an integer"),
    ("port 70000", "port", "argument must be between 0 and 65535 inclusive"),
    ("loglevel loud", "loglevel", "argument(s) must be one of the following: debug, verbose, "
                                  "notice, warning, nothing"),
    ("protected-mode maybe", "protected-mode", "argument must be 'yes' or 'no'"),
    ("no-such-directive 1", "no-such-directive", "Bad directive or wrong number of arguments"),
    ("save 900 1", "save", "wrong number of arguments"),
    ("appendonly yes", "appendonly", "respcache keeps no data on disk"),
    ("workers lots", "workers", "argument must be 'auto' or a number from 1 to 256"),
    ("notify-keyspace-events Q", "notify-keyspace-events", "Invalid event class character"),
])
def test_a_bad_line_stops_startup_naming_file_line_directive_and_reason(tmp_path, line,
                                                                          directive, reason):
    conf = tmp_path / "tier.conf"
    conf.write_text(f"# a comment\nbind 127.0.0.1\n\n{line}\n")
    out = run_cli(str(conf))
    assert out.returncode == 1
    assert "*** FATAL CONFIG FILE ERROR" in out.stderr
    assert f"Reading the configuration file {conf}, at line 4" in out.stderr
    assert f">>> '{line}'" in out.stderr
    assert f"directive '{directive}': {reason}" in out.stderr


def test_unbalanced_quotes_and_missing_include(tmp_path):
    conf = tmp_path / "q.conf"
    conf.write_text('requirepass "unterminated\n')
    out = run_cli(str(conf))
    assert out.returncode == 1 and "Unbalanced quotes in configuration line" in out.stderr
    conf.write_text("include missing.conf\n")
    out = run_cli(str(conf))
    assert out.returncode == 1
    assert f"can't open config file '{tmp_path}/missing.conf'" in out.stderr


def test_bad_command_line_override():
    out = run_cli("--port", "nope")
    assert out.returncode == 1
    assert "Reading the command line, at argument 1" in out.stderr
    assert "directive 'port': argument couldn't be parsed into an integer" in out.stderr
    out = run_cli("--port")
    assert out.returncode == 1


def test_missing_config_file():
    out = run_cli("/nonexistent/tier.conf")
    assert out.returncode == 1 and "can't open config file '/nonexistent/tier.conf'" in out.stderr


def test_sample_edge_conf_starts(start_server):
    srv = start_server(conf_text=open(os.path.join(ROOT, "conf", "edge.conf")).read())
    assert srv.client().ping()


def test_include_and_overrides_apply_in_order(start_server, tmp_path):
    (tmp_path / "common.conf").write_text("slowlog-max-len 42\ntimeout 7\n")
    srv = start_server("--timeout", "9", conf_text="include common.conf\nhz 20\n")
    values = srv.client(decode_responses=True).config_get("*")
    assert values["slowlog-max-len"] == "42"  # from the included file
    assert values["timeout"] == "9"           # the command line wins
    assert values["hz"] == "20"


def test_config_set_get_and_rewrite_keep_comments(start_server):
    srv = start_server(conf_text="# keep me\nslowlog-max-len 10   \n# and me\n")
    client = srv.client(decode_responses=True)
    assert client.config_set("slowlog-max-len", 99)
    assert client.config_get("slowlog-max-len") == {"slowlog-max-len": "99"}
    assert client.config_set("maxclients", 50)
    with pytest.raises(redis.ResponseError, match="'port'.*can't set immutable config"):
        client.config_set("port", 1)  # not settable at runtime
    with pytest.raises(redis.ResponseError, match="Unknown option or number of arguments"):
        client.config_set("no-such-option", 1)
    with pytest.raises(redis.ResponseError, match="argument couldn't be parsed into an integer"):
        client.config_set("timeout", "soon")
    assert client.config_rewrite()
    text = open(srv.conf_path).read()
    assert text.startswith("# keep me\nslowlog-max-len 99\n# and me\n")
    assert "maxclients 50" in text


def test_maxclients_refuses_the_extra_client_only(start_server):
    srv = start_server("--maxclients", "3")
    keep = [srv.client() for _ in range(3)]
    for client in keep:
        client.ping()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as extra:
        assert extra.recv(100) == b"-ERR max number of clients reached\r\n"
    assert all(client.ping() for client in keep)


def test_idle_clients_are_closed_but_not_subscribers(start_server):
    srv = start_server("--timeout", "1")
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    sub = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    sub.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n")
    assert sub.recv(100).startswith(b"*3\r\n$9\r\nsubscribe")
    time.sleep(2.6)
    idle.settimeout(2)
    assert idle.recv(10) == b""  # closed by the server
    assert srv.client().publish("c", "still-here") == 1
    assert b"still-here" in sub.recv(200)
    idle.close()
    sub.close()


def test_sigterm_and_shutdown_stop_cleanly_and_release_the_segment(start_server, tmp_path):
    pidfile = tmp_path / "edge.pid"
    logfile = tmp_path / "edge.log"
    srv = start_server("--pidfile", str(pidfile), "--logfile", str(logfile))
    assert pidfile.read_text().strip() == str(srv.proc.pid)
    assert os.path.exists(f"/dev/shm/{srv.shm_name}")
    srv.client().set("k", "v")
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(15) == 0
    assert not os.path.exists(f"/dev/shm/{srv.shm_name}")
    assert not pidfile.exists()
    log = logfile.read_text()
    assert "Received SIGTERM scheduling shutdown" in log
    assert "# respcache is now ready to exit, bye bye..." in log
    srv2 = start_server()
    try:
        srv2.client().shutdown(nosave=True)
    except redis.ConnectionError:
        pass
    assert srv2.proc.wait(15) == 0
    assert not os.path.exists(f"/dev/shm/{srv2.shm_name}")


def test_embedded_default_runs_on_7878_if_free():
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 7878)) == 0:
            pytest.fail("something already listens on 7878; the embedded default needs it")
    proc = subprocess.Popen([sys.executable, "-m", "respcache.cli"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(7878, proc)
        client = redis.Redis(port=7878, decode_responses=True)
        assert client.ping()
        assert client.config_get("shm-name") == {"shm-name": "respcache-7878"}
        assert client.config_get("bind") == {"bind": "127.0.0.1 -::1"}
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    assert not os.path.exists("/dev/shm/respcache-7878")


def test_port_in_use_fails_with_a_clear_message(start_server):
    srv = start_server()
    out = run_cli("--port", str(srv.port), "--shm-name", f"rc-test-dup-{free_port()}")
    assert out.returncode == 1
    assert f"Could not create server TCP listening socket 127.0.0.1:{srv.port}" in out.stdout


@pytest.mark.parametrize("text", ["1_0", " 5", "5 ", "+100", "-0", "010", "0x10",
                                  "99999999999999999999", ""])
def test_config_set_integer_is_parsed_as_redis_string2ll(server, real_redis, text):
    ours = server.client(decode_responses=True)
    theirs = redis.Redis(port=real_redis, decode_responses=True)
    errors = []
    for client in (ours, theirs):
        with pytest.raises(redis.ResponseError) as caught:
            client.config_set("timeout", text)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "argument couldn't be parsed into an integer" in errors[0]
    assert ours.config_get("timeout") == {"timeout": "0"}


@pytest.mark.parametrize("text", [" 2mb", "+2mb", "-2mb", "2_0mb", "2 mb"])
def test_config_set_memory_refuses_what_redis_refuses(server, real_redis, text):
    errors = []
    for client in (server.client(decode_responses=True),
                   redis.Redis(port=real_redis, decode_responses=True)):
        with pytest.raises(redis.ResponseError) as caught:
            client.config_set("proto-max-bulk-len", text)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_config_file_integer_is_strict(tmp_path):
    conf = tmp_path / "t.conf"
    conf.write_text("timeout 1_0\n")
    out = run_cli(str(conf))
    assert out.returncode == 1
    assert "directive 'timeout': argument couldn't be parsed into an integer" in out.stderr


def test_debug_sleep_reads_its_argument_as_c_atof(server):
    # Redis reads DEBUG SLEEP's seconds with atof: '1_0' is 1 second (float() made it 10) and
    # a non-number is 0, replied OK.
    client = server.client(socket_timeout=5)
    started = time.monotonic()
    assert client.execute_command("DEBUG", "SLEEP", "0_5") == b"OK"
    assert time.monotonic() - started < 2
    assert client.execute_command("DEBUG", "SLEEP", "abc") == b"OK"
    assert client.execute_command("DEBUG", "SLEEP", "0.2x") == b"OK"


def test_missing_include_names_the_including_file_line_and_directive(tmp_path):
    (tmp_path / "inner.conf").write_text("hz 5\ninclude /nonexistent-rc.conf\n")
    top = tmp_path / "top.conf"
    top.write_text("# top\ninclude inner.conf\n")
    out = run_cli(str(top))
    assert out.returncode == 1
    assert "at line None" not in out.stderr
    assert f"Reading the configuration file {tmp_path}/inner.conf, at line 2" in out.stderr
    assert f"(included from {top}, at line 2)" in out.stderr
    assert ">>> 'include /nonexistent-rc.conf'" in out.stderr
    assert ("directive 'include': Fatal error, can't open config file "
            "'/nonexistent-rc.conf': No such file or directory") in out.stderr


def test_missing_top_level_file_has_no_line_none():
    out = run_cli("/nonexistent-rc.conf")
    assert out.returncode == 1
    assert "at line None" not in out.stderr
    assert "Reading the configuration file /nonexistent-rc.conf\n" in out.stderr
    assert "can't open config file '/nonexistent-rc.conf': No such file or directory" in out.stderr


def test_bad_line_in_an_included_file_names_the_include(tmp_path):
    (tmp_path / "bad.conf").write_text("port x\n")
    top = tmp_path / "top.conf"
    top.write_text("\ninclude bad.conf\n")
    out = run_cli(str(top))
    assert out.returncode == 1
    assert f"Reading the configuration file {tmp_path}/bad.conf, at line 1" in out.stderr
    assert f"(included from {top}, at line 2)" in out.stderr


def _error(client, *args):
    with pytest.raises(redis.ResponseError) as caught:
        client.execute_command(*args)
    return str(caught.value)


def test_config_set_startup_only_directive_says_immutable_as_redis(server, real_redis):
    theirs = redis.Redis(port=real_redis)
    assert (_error(server.client(), "CONFIG", "SET", "daemonize", "yes")
            == _error(theirs, "CONFIG", "SET", "daemonize", "yes")
            == "CONFIG SET failed (possibly related to argument 'daemonize') - "
               "can't set immutable config")


def test_maxmemory_reports_the_segment_and_refuses_changes(server):
    client = server.client(decode_responses=True)
    segment = client.info("memory")["maxmemory"]
    assert segment > 0
    assert client.config_get("maxmemory") == {"maxmemory": str(segment)}
    assert {"maxmemory", "maxmemory-policy", "maxclients"} <= set(client.config_get("max*"))
    with pytest.raises(redis.ResponseError, match="shm-capacity x shm-record-size at startup"):
        client.config_set("maxmemory", "100mb")
    assert client.config_get("maxmemory") == {"maxmemory": str(segment)}


def test_maxmemory_policy_is_allkeys_lru_only(server, real_redis):
    client = server.client(decode_responses=True)
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert client.config_set("maxmemory-policy", "ALLKEYS-LRU")
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    with pytest.raises(redis.ResponseError, match="allkeys-lru is the only policy"):
        client.config_set("maxmemory-policy", "volatile-lru")
    assert (_error(client, "CONFIG", "SET", "maxmemory-policy", "foo")
            == _error(redis.Redis(port=real_redis), "CONFIG", "SET", "maxmemory-policy", "foo"))


def test_a_config_file_cannot_set_maxmemory(tmp_path):
    conf = tmp_path / "m.conf"
    conf.write_text("maxmemory 2gb\n")
    out = run_cli(str(conf))
    assert out.returncode == 1
    assert "directive 'maxmemory': the table's size is set by shm-capacity" in out.stderr


def test_acl_pubsub_default_applies_to_new_users_as_redis(server, real_redis):
    ours, theirs = server.client(decode_responses=True), redis.Redis(port=real_redis,
                                                                    decode_responses=True)
    assert ours.config_get("acl-pubsub-default") == {"acl-pubsub-default": "resetchannels"}
    try:
        for client in (ours, theirs):
            client.execute_command("ACL", "SETUSER", "before-rc")
            assert client.config_set("acl-pubsub-default", "allchannels")
            client.execute_command("ACL", "SETUSER", "after-rc")
        lists = [sorted(line for line in c.execute_command("ACL", "LIST") if "-rc" in line)
                 for c in (ours, theirs)]
        assert lists[0] == lists[1]
        assert "&*" in lists[0][0] and "resetchannels" in lists[0][1]
        assert (_error(ours, "CONFIG", "SET", "acl-pubsub-default", "x")
                == _error(theirs, "CONFIG", "SET", "acl-pubsub-default", "x"))
    finally:
        theirs.config_set("acl-pubsub-default", "resetchannels")
        theirs.execute_command("ACL", "DELUSER", "before-rc", "after-rc")


def test_acllog_max_len_bounds_the_log(server):
    client = server.client(decode_responses=True)
    assert client.config_get("acllog-max-len") == {"acllog-max-len": "128"}
    assert client.config_set("acllog-max-len", 2)
    for name in ("u1", "u2", "u3"):
        with pytest.raises(redis.AuthenticationError):
            client.execute_command("AUTH", name, "wrong")
    assert len(client.execute_command("ACL", "LOG")) == 2
    with pytest.raises(redis.ResponseError, match="argument must be between 0 and"):
        client.config_set("acllog-max-len", -1)
