"""Relief node policies, driven directly with RESPCACHE PUSH/FETCH (no relay needed)."""

from __future__ import annotations

import time

from tierlib import Node


def now_ms():
    return time.time_ns() // 1_000_000


def test_aging_decay_lets_idle_objects_go_and_keeps_read_ones(tmp_path):
    node = Node(tmp_path, "relief", {"relief-kind": "aging", "relief-decay-ms": "400"})
    try:
        c = node.client()
        own = now_ms() + 60_000
        for key in ("idle", "read"):
            c.execute_command("RESPCACHE", "PUSH", "t", "P", key, "v", "0", str(own))
        # Held for at most the decay window here, but answers carry the object's own expiry.
        assert 0 < c.pttl("idle") <= 400
        for _ in range(8):                       # 800 ms of reads, one every 100 ms
            assert c.execute_command("RESPCACHE", "FETCH", "read") == [[b"v", 0, own]]
            time.sleep(0.1)
        assert c.execute_command("RESPCACHE", "FETCH", "idle") == [None]
        assert c.exists("idle") == 0 and c.exists("read") == 1
        # Decay never extends an object past its own expiry.
        soon = now_ms() + 150
        c.execute_command("RESPCACHE", "PUSH", "t", "P", "short", "v", "0", str(soon))
        assert c.pexpiretime("short") == soon
        time.sleep(0.25)
        assert c.execute_command("RESPCACHE", "FETCH", "short") == [None]
    finally:
        node.stop()


def test_relief_push_ops_write_place_delete(tmp_path):
    node = Node(tmp_path, "relief", {"relief-kind": "aging"})
    try:
        c = node.client()
        exp = now_ms() + 60_000
        c.execute_command("RESPCACHE", "PUSH", "t", "S", "k", "v1", "0", str(exp))
        # A placement (hand-off/demotion) never overwrites what is there.
        c.execute_command("RESPCACHE", "PUSH", "t", "P", "k", "stale", "0", str(exp))
        assert c.execute_command("RESPCACHE", "FETCH", "k") == [[b"v1", 0, exp]]
        c.execute_command("RESPCACHE", "PUSH", "t", "S", "k", "v2", "0", str(exp))
        assert c.get("k") == b"v2"
        c.execute_command("RESPCACHE", "PUSH", "t", "D", "k", "", "0", "0")
        assert c.execute_command("RESPCACHE", "FETCH", "k") == [None]
        # Already expired records are not stored.
        c.execute_command("RESPCACHE", "PUSH", "t", "S", "old", "v", "0", str(now_ms() - 1))
        assert c.exists("old") == 0
    finally:
        node.stop()
