"""respcache.Client local reads vs redis-py GET to redis-server, side by side in one run.

Starts redis-server and a respcache edge on free loopback ports, stores N 384-byte sessions in
both, then times random GET hits: redis-py -> redis-server over loopback, redis-py -> the edge, and
respcache.Client (shared memory). Then 1, 2 and 4 app processes reading at once through
respcache.Client, to show how local reads scale across cores.

    python tools/bench_client.py [--keys 20000] [--seconds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import time
import uuid

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from respcache.client import Client  # noqa: E402


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


def timed_gets(get, keys, seconds):
    """Calls per second of get(random key) for about `seconds`, in batches of 1000."""
    rng = random.Random(7)
    order = [keys[rng.randrange(len(keys))] for _ in range(1000)]
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for key in order:
            get(key)
        done += len(order)
    return done / (time.perf_counter() - start)


def reader(port, shm_name, keys, seconds, start_at, out):
    app = Client(port=port, shm_name=shm_name)
    while time.time() < start_at:
        time.sleep(0.001)
    out.put(timed_gets(app.get, keys, seconds))
    app.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--size", type=int, default=384)
    args = ap.parse_args()

    redis_port, edge_port = free_port(), free_port()
    shm_name = f"bench-client-{uuid.uuid4().hex[:8]}"
    procs = [
        subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                          "--appendonly", "no"], stdout=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "respcache.cli", "--port", str(edge_port),
                          "--shm-name", shm_name, "--shm-capacity",
                          str(max(65536, args.keys * 3))], stdout=subprocess.DEVNULL, cwd=ROOT),
    ]
    try:
        wait_port(redis_port)
        wait_port(edge_port)
        keys = [f"session:{i}".encode() for i in range(args.keys)]
        value = os.urandom(args.size // 2).hex().encode()[:args.size]
        for port in (redis_port, edge_port):
            client = redis.Redis(port=port)
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, value)
                pipe.execute()
            client.close()

        plain_redis = redis.Redis(port=redis_port)
        plain_edge = redis.Redis(port=edge_port)
        app = Client(port=edge_port, shm_name=shm_name)
        assert app.get(keys[0]) == value and plain_redis.get(keys[0]) == value
        rows = [
            ("redis-py GET -> redis-server", timed_gets(plain_redis.get, keys, args.seconds)),
            ("redis-py GET -> respcache edge", timed_gets(plain_edge.get, keys, args.seconds)),
            ("respcache.Client.get (shm)", timed_gets(app.get, keys, args.seconds)),
        ]
        app.close()
        base = rows[0][1]
        print(f"{args.keys} keys, {args.size}-byte values, random GET hits, one process")
        for name, rate in rows:
            print(f"  {name:<32} {rate:>12,.0f} ops/s   {rate / base:8.1f}x redis-py->redis")

        ctx = multiprocessing.get_context("spawn")
        print("\nrespcache.Client.get, N app processes reading at once (aggregate)")
        single = None
        for n in (1, 2, 4):
            out = ctx.Queue()
            start_at = time.time() + 1.5
            workers = [ctx.Process(target=reader, args=(edge_port, shm_name, keys, args.seconds,
                                                        start_at, out)) for _ in range(n)]
            for w in workers:
                w.start()
            total = sum(out.get(timeout=120) for _ in workers)
            for w in workers:
                w.join()
            single = single or total
            print(f"  {n} process(es) {total:>14,.0f} ops/s   {total / single:5.2f}x one process")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
