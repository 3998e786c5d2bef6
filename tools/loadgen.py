"""Session workload against respcache edges: Zipf-distributed session ids, a read/write mix, TTLs.

    python tools/topology.py --json /tmp/topo.json &         # or any running topology
    python tools/loadgen.py --topology /tmp/topo.json --duration 10
    python tools/loadgen.py --edges 127.0.0.1:7878 --sessions 50000 --zipf 1.1 --reads 0.9 \\
                            --ttl 30-300 --value-size 256 --concurrency 32

Each of --concurrency clients holds one connection to an edge (round-robin over the edges) and
runs GET session:<id> (reads) or SET session:<id> <value> EX <ttl> (writes) back to back, the id
drawn from a Zipf(s) law over --sessions ids. Reported: operations/s, latency percentiles per
operation, the client's hit rate, and -- when the topology is known (--topology or --relays) --
where reads were answered, from the nodes' RESPCACHE INFO counters before and after:
edge (its own table), relay (the relay's table), relief (a relief node), miss (nowhere).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tiers.wire import RespConnection  # noqa: E402
from tools.topology import tiers_info  # noqa: E402


def zipf_cdf(n, s):
    weights = [1.0 / (k ** s) for k in range(1, n + 1)]
    total = sum(weights)
    acc, out = 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[i]


def parse_ttl(text):
    low, _, high = text.partition("-")
    return int(low), int(high or low)


async def client_loop(host, port, ids, args, deadline, lat, counters, rng):
    conn = await RespConnection.open(host, port, 2.0)
    value = os.urandom(args.value_size // 2).hex().encode()[:args.value_size]
    ttl_low, ttl_high = parse_ttl(args.ttl)
    reads = args.reads
    clock = time.perf_counter
    try:
        while clock() < deadline:
            sid = next(ids)
            key = b"session:%d" % sid
            if rng.random() < reads:
                start = clock()
                reply = await conn.send(b"GET", key)
                lat["get"].append(clock() - start)
                counters["reads"] += 1
                if reply is None:
                    counters["nil"] += 1
            else:
                ttl = rng.randint(ttl_low, ttl_high)
                start = clock()
                await conn.send(b"SET", key, value, b"EX", b"%d" % ttl)
                lat["set"].append(clock() - start)
                counters["writes"] += 1
    finally:
        conn.close()


def id_stream(n, s, seed):
    cdf = zipf_cdf(n, s)
    rng = random.Random(seed)
    population = range(n)
    while True:
        yield from rng.choices(population, cum_weights=cdf, k=4096)


def snapshot(nodes):
    out = {}
    for role, port in nodes:
        try:
            out[(role, port)] = tiers_info(port)
        except Exception:
            out[(role, port)] = {}
    return out


def tier_breakdown(before, after, reads, nil):
    def delta(role, field):
        return sum(after[k].get(field, 0) - before[k].get(field, 0)
                   for k in after if k[0] == role)
    fetched = delta("edge", "keys_fetched")
    relay_table = delta("relay", "fetch_table_hits")
    relief = delta("relay", "relief_hits")
    if not reads:
        return {}
    return {"edge": max(0, reads - fetched) / reads, "relay": relay_table / reads,
            "relief": relief / reads, "miss": nil / reads,
            "edge_promotions": delta("edge", "promotions"),
            "demotions": delta("edge", "demoted"), "queue_overflow": delta("edge", "overflow")}


async def run(args):
    edges = [e.rsplit(":", 1) for e in args.edges]
    deadline = time.perf_counter() + args.duration
    lat = {"get": [], "set": []}
    counters = {"reads": 0, "writes": 0, "nil": 0}
    ids = id_stream(args.sessions, args.zipf, args.seed)
    tasks = []
    for i in range(args.concurrency):
        host, port = edges[i % len(edges)]
        rng = random.Random(args.seed + i)
        tasks.append(client_loop(host, int(port), ids, args, deadline, lat, counters, rng))
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return lat, counters, elapsed


def report(lat, counters, elapsed, tiers=None, out=sys.stdout):
    ops = counters["reads"] + counters["writes"]
    print(f"operations: {ops} in {elapsed:.1f} s = {ops / elapsed:,.0f} ops/s "
          f"(reads {counters['reads']}, writes {counters['writes']})", file=out)
    if counters["reads"]:
        print(f"client hit rate: {100.0 * (1 - counters['nil'] / counters['reads']):.1f}% "
              f"({counters['nil']} reads found nothing)", file=out)
    for name, values in lat.items():
        if not values:
            continue
        values.sort()
        print(f"{name.upper():4} latency ms: p50 {percentile(values, 50) * 1e3:.3f}  "
              f"p90 {percentile(values, 90) * 1e3:.3f}  p99 {percentile(values, 99) * 1e3:.3f}  "
              f"p99.9 {percentile(values, 99.9) * 1e3:.3f}  max {values[-1] * 1e3:.3f}",
              file=out)
    if tiers:
        print("reads answered by: " + "  ".join(
            f"{k} {100.0 * tiers[k]:.1f}%" for k in ("edge", "relay", "relief", "miss")) +
            f"   (promotions {tiers['edge_promotions']}, demotions {tiers['demotions']}, "
            f"queue overflow {tiers['queue_overflow']})", file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", help="JSON written by tools/topology.py --json")
    parser.add_argument("--edges", nargs="*", default=[], help="host:port of edges")
    parser.add_argument("--relays", nargs="*", default=[], help="host:port of relays (for INFO)")
    parser.add_argument("--sessions", type=int, default=50000)
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent s")
    parser.add_argument("--reads", type=float, default=0.9, help="fraction of reads")
    parser.add_argument("--ttl", default="60-600", help="write TTL range in seconds, a-b")
    parser.add_argument("--value-size", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--preload", action="store_true",
                        help="write every session once first (so reads can find them)")
    args = parser.parse_args(argv)
    nodes = []
    if args.topology:
        with open(args.topology) as handle:
            desc = json.load(handle)
        for node in desc["nodes"]:
            nodes.append((node["role"], node["port"]))
            if node["role"] == "edge":
                args.edges.append(f"127.0.0.1:{node['port']}")
    nodes += [("relay", int(r.rsplit(":", 1)[1])) for r in args.relays]
    nodes += [("edge", int(e.rsplit(":", 1)[1])) for e in args.edges
              if ("edge", int(e.rsplit(":", 1)[1])) not in nodes]
    if not args.edges:
        parser.error("no edges: give --edges or --topology")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    if args.preload:
        asyncio.run(preload(args))
    before = snapshot(nodes) if nodes else None
    lat, counters, elapsed = asyncio.run(run(args))
    tiers = None
    if nodes:
        time.sleep(0.2)
        tiers = tier_breakdown(before, snapshot(nodes), counters["reads"], counters["nil"])
    report(lat, counters, elapsed, tiers)
    return 0


async def preload(args):
    host, port = args.edges[0].rsplit(":", 1)
    conn = await RespConnection.open(host, int(port), 2.0)
    low, high = parse_ttl(args.ttl)
    value = b"v" * args.value_size
    rng = random.Random(args.seed)
    for chunk in itertools.count():
        ids = range(chunk * 500, min(args.sessions, (chunk + 1) * 500))
        if not ids:
            break
        futs = [conn.send(b"SET", b"session:%d" % i, value, b"EX", b"%d" % rng.randint(low, high))
                for i in ids]
        await asyncio.gather(*futs)
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
