"""`workers 2`: one port, two worker processes, one shm table; clients cannot tell which they got."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import redis

from shm_lru import ShmLRU

from conftest import wait_for_port


def connections_on_both_workers(srv, count=2):
    """Open connections until both workers have one; returns {worker_index: client}."""
    found = {}
    spare = []
    for _ in range(64):
        client = srv.client(protocol=2)
        worker = (client.client_id() - 1) % count
        if worker not in found:
            found[worker] = client
        else:
            spare.append(client)
        if len(found) == count:
            break
    for client in spare:
        client.close()
    assert len(found) == count, "SO_REUSEPORT never spread 64 connections over both workers"
    return found


def worker_pids(srv):
    out = os.popen(f"pgrep -P {srv.proc.pid}").read().split()
    return sorted(int(pid) for pid in out)


def wait_for_restart(srv, victim_pid, timeout=10):
    """Until the supervisor has two workers again, the killed one not among them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(srv)
        if len(pids) == 2 and victim_pid not in pids:
            return
        time.sleep(0.05)
    pytest.fail(f"worker {victim_pid} was not replaced within {timeout} s")


@pytest.fixture
def two_workers(start_server):
    srv = start_server("--workers", "2")
    deadline = time.monotonic() + 10
    while len(worker_pids(srv)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return srv


def test_writes_on_one_worker_are_read_on_the_other(two_workers):
    clients = connections_on_both_workers(two_workers)
    clients[0].set("shared", "from-0", ex=100)
    assert clients[1].get("shared") == b"from-0"
    assert 99000 < clients[1].pttl("shared") <= 100000
    assert clients[0].dbsize() == clients[1].dbsize() == 1


def test_publish_reaches_subscribers_on_every_worker_in_order(two_workers):
    clients = connections_on_both_workers(two_workers)
    subscriber = clients[1].pubsub()
    subscriber.subscribe("news")
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"
    time.sleep(0.2)  # the subscription count travels to the other worker
    receivers = [clients[0].publish("news", f"m{i}") for i in range(200)]
    assert receivers == [1] * 200
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 200 and time.monotonic() < deadline:
        message = subscriber.get_message(timeout=1)
        if message and message["type"] == "message":
            got.append(message["data"])
    assert got == [f"m{i}".encode() for i in range(200)]
    numsub = clients[0].pubsub_numsub("news")
    assert numsub == [(b"news", 1)]


def test_watch_sees_a_write_made_through_the_other_worker(two_workers):
    clients = connections_on_both_workers(two_workers)
    clients[0].set("balance", 10)
    with clients[0].pipeline() as pipe:
        pipe.watch("balance")
        clients[1].incr("balance")
        pipe.multi()
        pipe.set("balance", 0)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert clients[0].get("balance") == b"11"


def test_client_list_and_kill_cover_both_workers(two_workers):
    clients = connections_on_both_workers(two_workers)
    clients[1].client_setname("far-away")
    listing = clients[0].client_list()
    names = {c["name"] for c in listing}
    assert "far-away" in names
    far_id = clients[1].client_id()
    assert clients[0].client_kill_filter(_id=far_id) == 1
    # The killed connection is gone from every worker's list (redis-py would quietly reconnect).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        ids = {int(c["id"]) for c in clients[0].client_list()}
        if far_id not in ids:
            break
        time.sleep(0.05)
    assert far_id not in ids and clients[0].client_id() in ids


def test_config_set_applies_to_every_worker(two_workers):
    clients = connections_on_both_workers(two_workers)
    clients[0].config_set("slowlog-max-len", "77")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if clients[1].config_get("slowlog-max-len") == {"slowlog-max-len": "77"}:
            break
        time.sleep(0.02)
    assert clients[1].config_get("slowlog-max-len") in ({"slowlog-max-len": "77"},
                                                        {b"slowlog-max-len": b"77"})


def test_monitor_sees_commands_served_by_the_other_worker(two_workers):
    clients = connections_on_both_workers(two_workers)
    with clients[0].monitor() as monitor:
        time.sleep(0.2)
        clients[1].set("watched-by-monitor", "x")
        deadline = time.monotonic() + 3
        seen = False
        while not seen and time.monotonic() < deadline:
            seen = "watched-by-monitor" in monitor.next_command()["command"]
    assert seen


def test_keyspace_notifications_fire_for_keys_expiring_anywhere(two_workers):
    clients = connections_on_both_workers(two_workers)
    clients[0].config_set("notify-keyspace-events", "Ex")
    time.sleep(0.2)
    sub = clients[1].pubsub()
    sub.subscribe("__keyevent@0__:expired")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    clients[0].set("short-lived", "x", px=50)
    deadline = time.monotonic() + 5
    events = []
    while time.monotonic() < deadline and not events:
        message = sub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            events.append(message["data"])
    assert events == [b"short-lived"]


def test_worker_killed_under_load_is_restarted_and_others_do_not_notice(two_workers):
    srv = two_workers
    clients = connections_on_both_workers(srv)
    victim_pid = int(clients[1].info("server")["process_id"])
    survivor = clients[0]
    assert int(survivor.info("server")["process_id"]) != victim_pid
    errors = []
    stop = threading.Event()

    def load():
        n = 0
        while not stop.is_set() and n < 100000:
            try:
                survivor.set(f"load:{n % 500}", n)
                assert survivor.get(f"load:{n % 500}") == str(n).encode()
            except Exception as exc:  # any failure on the surviving worker fails the test
                errors.append(exc)
                return
            n += 1
    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.3)
    os.kill(victim_pid, signal.SIGKILL)
    time.sleep(0.5)
    stop.set()
    thread.join(10)
    assert errors == []
    # The victim's client reconnects (redis-py retries once on a fresh connection).
    wait_for_restart(srv, victim_pid)
    fresh = srv.client()
    assert fresh.ping()
    table = ShmLRU.attach(srv.shm_name)
    try:
        assert table.check() == []
    finally:
        table.close()


def test_sigterm_stops_every_worker_and_releases_the_segment(start_server):
    srv = start_server("--workers", "2")
    deadline = time.monotonic() + 10
    while len(worker_pids(srv)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = worker_pids(srv)
    assert len(pids) == 2
    assert os.path.exists(f"/dev/shm/{srv.shm_name}")
    assert srv.stop() == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert not os.path.exists(f"/dev/shm/{srv.shm_name}")


def test_workers_auto_starts_one_per_core(start_server):
    srv = start_server("--workers", "auto")
    deadline = time.monotonic() + 10
    while len(worker_pids(srv)) < (os.cpu_count() or 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(worker_pids(srv)) == (os.cpu_count() or 1)
    wait_for_port(srv.port)
    assert srv.client().ping()


def test_a_restarted_worker_has_the_runtime_changes_the_others_have(two_workers):
    """CONFIG SET and ACL SETUSER/DELUSER made while it ran reach a worker started again: the
    supervisor replays them in order (it used to come back as the config file's server)."""
    srv = two_workers
    clients = connections_on_both_workers(srv)
    clients[0].config_set("slowlog-max-len", 7)
    clients[0].execute_command("ACL", "SETUSER", "app", "on", ">pw1", "~*", "&*", "+@all")
    clients[0].execute_command("ACL", "SETUSER", "app", "resetpass", ">pw2")
    clients[0].execute_command("ACL", "SETUSER", "gone", "on", ">x", "~*", "+@all")
    clients[0].execute_command("ACL", "DELUSER", "gone")
    victim_pid = int(clients[1].info("server")["process_id"])
    os.kill(victim_pid, signal.SIGKILL)
    wait_for_restart(srv, victim_pid)
    new_pid = next(pid for pid in worker_pids(srv) if pid != int(
        clients[0].info("server")["process_id"]))
    # Connect until a connection lands on the restarted worker.
    for _ in range(64):
        client = srv.client(protocol=2)
        if int(client.info("server")["process_id"]) == new_pid:
            break
        client.close()
    else:
        pytest.fail("no connection reached the restarted worker")
    assert client.config_get("slowlog-max-len") == {"slowlog-max-len": "7"}
    users = client.execute_command("ACL", "USERS")
    assert b"app" in users and b"gone" not in users
    with pytest.raises(redis.AuthenticationError):
        client.execute_command("AUTH", "app", "pw1")
    assert client.execute_command("AUTH", "app", "pw2") is True
