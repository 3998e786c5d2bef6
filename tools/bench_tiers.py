"""Tier latency and throughput, side by side with redis-server and a standalone edge, in one run.

    python tools/bench_tiers.py                      # the standard run (about a minute)
    python tools/bench_tiers.py --samples 5000 --duration 8 --json /tmp/bench.json

One run starts: redis-server; a standalone edge (no relay); and a topology of relay R1 (large
table), relay R2 (tiny table, so it answers from relief nodes), 3 aging relief nodes that join
both relays, and edges A (writer, R1), B (R1), C (R2). Keys are written once through A, then:

  redis GET        plain GET against redis-server (the yardstick)
  standalone hit   GET of a key in a standalone edge's table
  edge hit         GET of a key in edge A's table (A has a relay)
  relay hit        first GET at B of a key: B's table misses, R1's table has it
  relief hit       first GET at C of a key: C and R2 miss, a relief node has it
  coherence        A overwrites (or deletes) a key that B holds; time from A's acknowledgement
                   until B answers the new value (B polled back to back)
  miss-heavy       --clients connections GET uniformly random keys of a set far larger than the
                   edge's table (almost every GET goes to the relief nodes); the same client
                   against redis-server (all hits there) for scale

Latencies come from one connection doing one request at a time (a blocking socket, hiredis
parsing); every number in one table is from the same client code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time

import hiredis

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tiers.wire import RespConnection  # noqa: E402
from tools.topology import Topology, free_port, tiers_info  # noqa: E402


class SyncClient:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%b\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            self.reader.feed(self.sock.recv(65536))

    def close(self):
        self.sock.close()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def timed_gets(port, keys, expect=None):
    client = SyncClient(port)
    lat, wrong = [], 0
    clock = time.perf_counter
    for key in keys:
        start = clock()
        reply = client.call(b"GET", key)
        lat.append(clock() - start)
        if expect is not None and reply != expect(key):
            wrong += 1
    client.close()
    return lat, wrong


def load(port, keys, value_of, ex=3600):
    client = SyncClient(port)
    for i in range(0, len(keys), 200):
        chunk = keys[i:i + 200]
        out = []
        for key in chunk:
            v = value_of(key)
            out.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nEX\r\n$%d\r\n%d\r\n"
                       % (len(key), key, len(v), v, len(str(ex)), ex))
        client.sock.sendall(b"".join(out))
        got = 0
        while got < len(chunk):
            reply = client.reader.gets()
            if reply is False:
                client.reader.feed(client.sock.recv(65536))
                continue
            got += 1
    client.close()


def wait_drained(port, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        info = tiers_info(port)
        state = (info["queue_depth"], info["pending_deletes"], info["pushed"], info["demoted"])
        if state[0] == 0 and state[1] == 0 and state == last:
            return
        last = state
        time.sleep(0.1)
    raise TimeoutError("edge queue did not drain")


def coherence(writer_port, reader_port, rounds, delete=False):
    w, r = SyncClient(writer_port), SyncClient(reader_port)
    delays = []
    clock = time.perf_counter
    for i in range(rounds):
        key = b"coh:%d" % (i % 50)
        old = b"old-%d" % i
        w.call(b"SET", key, old, b"EX", b"600")
        deadline = clock() + 5
        while r.call(b"GET", key) != old:           # B holds the old value now
            if clock() > deadline:
                raise TimeoutError("reader never saw the first value")
            time.sleep(0.0005)
        if delete:
            w.call(b"DEL", key)
            acked = clock()
            new = None
        else:
            new = b"new-%d" % i
            w.call(b"SET", key, new, b"EX", b"600")
            acked = clock()
        while r.call(b"GET", key) != new:
            if clock() - acked > 5:
                raise TimeoutError("reader kept the old value for 5 s")
        delays.append(clock() - acked)
    w.close()
    r.close()
    return delays


async def throughput(port, keys, clients, duration):
    count = 0
    deadline = time.perf_counter() + duration

    async def one(seed):
        nonlocal count
        rng = random.Random(seed)
        conn = await RespConnection.open("127.0.0.1", port, 2.0)
        try:
            while time.perf_counter() < deadline:
                await conn.send(b"GET", rng.choice(keys))
                count += 1
        finally:
            conn.close()
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    return count / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3000, help="GETs per latency figure")
    parser.add_argument("--value-size", type=int, default=200)
    parser.add_argument("--miss-keys", type=int, default=40000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--coherence-rounds", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    n = args.samples
    value = b"x" * args.value_size

    topo = Topology()
    redis_port = free_port()
    redis_proc = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    try:
        standalone = topo.add("edge", shm_capacity=65536)
        r1 = topo.relay(capacity=262144)
        r2 = topo.relay(capacity=16)
        for _ in range(3):
            topo.relief([r1, r2], capacity=262144)
        topo.wait_joined([r1, r2], 3)
        a = topo.edge([r1], capacity=65536)
        b = topo.edge([r1], capacity=65536)
        c = topo.edge([r2], capacity=65536)
        d = topo.edge([r2], capacity=1024)
        for port in (redis_port,):
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

        rounds = 2
        keys = [[b"bench:%d:%d" % (r, i) for i in range(n)] for r in range(rounds)]
        everything = [k for ks in keys for k in ks]
        load(redis_port, everything, lambda k: value)
        load(standalone.port, everything, lambda k: value)
        load(a.port, everything, lambda k: value)
        miss_keys = [b"miss:%d" % i for i in range(args.miss_keys)]
        load(a.port, miss_keys, lambda k: value)
        wait_drained(a.port)
        expect = lambda k: value  # noqa: E731
        lat = {name: [] for name in ("redis GET", "standalone hit", "edge hit", "relay hit",
                                     "relief hit")}
        wrong = 0
        for r in range(rounds):
            # alternate the order of the hit measurements between rounds
            for name, port in ((("redis GET", redis_port), ("standalone hit", standalone.port),
                                ("edge hit", a.port))[::(1 if r % 2 == 0 else -1)]):
                values, bad = timed_gets(port, keys[r], expect)
                lat[name] += values
                wrong += bad
            values, bad = timed_gets(b.port, keys[r], expect)    # first reads at B: relay hits
            lat["relay hit"] += values
            wrong += bad
            values, bad = timed_gets(c.port, keys[r], expect)    # first reads at C: relief hits
            lat["relief hit"] += values
            wrong += bad
        r2_info = tiers_info(r2.port)
        results["relief_hit_share"] = r2_info.get("relief_hits", 0) / (rounds * n)
        results["relay_hit_share"] = tiers_info(r1.port).get("fetch_table_hits", 0) / (rounds * n)
        results["wrong_answers"] = wrong
        results["latency_ms"] = {name: {"p50": pct(v, 50) * 1e3, "p99": pct(v, 99) * 1e3}
                                 for name, v in lat.items()}
        results["coherence_overwrite_ms"] = _p(coherence(a.port, b.port, args.coherence_rounds))
        results["coherence_delete_ms"] = _p(coherence(a.port, b.port, args.coherence_rounds,
                                                      delete=True))
        tput = {}
        tput["redis GET (hits)"] = asyncio.run(throughput(redis_port, miss_keys, args.clients,
                                                          args.duration))
        tput["standalone edge (hits)"] = asyncio.run(throughput(standalone.port, everything,
                                                                args.clients, args.duration))
        before = tiers_info(d.port)
        tput["edge, miss-heavy"] = asyncio.run(throughput(d.port, miss_keys, args.clients,
                                                          args.duration))
        after = tiers_info(d.port)
        fetched = after["keys_fetched"] - before["keys_fetched"]
        reads = tput["edge, miss-heavy"] * args.duration
        results["miss_heavy_miss_share"] = fetched / reads if reads else 0
        results["throughput_ops"] = tput
    finally:
        topo.stop()
        redis_proc.terminate()
        redis_proc.wait(10)

    print_results(results, args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0 if results.get("wrong_answers", 1) == 0 else 1


def _p(values):
    return {"p50": pct(values, 50) * 1e3, "p99": pct(values, 99) * 1e3, "n": len(values)}


def print_results(results, args):
    lat = results["latency_ms"]
    base = lat["redis GET"]
    print(f"GET latency, one request at a time, {args.samples * 2} samples each "
          f"({args.value_size}-byte values), loopback:")
    print(f"  {'':16} {'p50 ms':>8} {'p99 ms':>8}   {'p50 vs redis':>12} {'p99 vs redis':>12}")
    for name, v in lat.items():
        print(f"  {name:16} {v['p50']:8.3f} {v['p99']:8.3f}   {v['p50'] / base['p50']:11.2f}x "
              f"{v['p99'] / base['p99']:11.2f}x")
    print(f"  (relay hits answered by R1's table: {100 * results['relay_hit_share']:.0f}%; "
          f"relief hits answered by relief nodes: {100 * results['relief_hit_share']:.0f}%; "
          f"wrong answers: {results['wrong_answers']})")
    for kind in ("overwrite", "delete"):
        c = results[f"coherence_{kind}_ms"]
        print(f"coherence delay after an acknowledged {kind} at another edge: "
              f"p50 {c['p50']:.2f} ms, p99 {c['p99']:.2f} ms ({c['n']} rounds)")
    tput = results["throughput_ops"]
    redis_ops = tput["redis GET (hits)"]
    print(f"throughput, {args.clients} connections, one request in flight each:")
    for name, ops in tput.items():
        print(f"  {name:24} {ops:10,.0f} ops/s   {ops / redis_ops:5.2f}x redis")
    print(f"  (miss-heavy: {100 * results['miss_heavy_miss_share']:.0f}% of GETs went "
          f"downstream)")


if __name__ == "__main__":
    sys.exit(main())
