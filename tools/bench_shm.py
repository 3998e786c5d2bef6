"""shm_lru single-process speed next to its peers, and read scaling across processes, one run.

    python tools/bench_shm.py [--keys 20000] [--size 384] [--ops 400000] [--record-size 512]

Random access over --keys keys with --size-byte values. Peers, in the same run: a plain dict, an
OrderedDict LRU (move_to_end on hit, popitem on overflow), redis-py GET/SET against a local
redis-server over loopback (started here, stopped by PID), and lmdb on /dev/shm. Then 1 and 2
processes reading the same shm_lru table at once (aggregate ops/s).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from shm_lru import ShmLRU  # noqa: E402


def rate(fn, order, seconds=None):
    start = time.perf_counter()
    for key in order:
        fn(key)
    return len(order) / (time.perf_counter() - start)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shm_reader(name, keys, ops, start_at, out):
    table = ShmLRU.attach(name)
    rng = random.Random(os.getpid())
    order = [keys[rng.randrange(len(keys))] for _ in range(ops)]
    get = table.get
    while time.time() < start_at:
        time.sleep(0.0005)
    out.put(rate(get, order))
    table.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--ops", type=int, default=400000)
    ap.add_argument("--record-size", type=int, default=512,
                    help="shm_lru record size (default fits a 384-byte session in one record)")
    ap.add_argument("--redis-ops", type=int, default=20000)
    args = ap.parse_args()

    rng = random.Random(1)
    keys = [b"session:%08d" % i for i in range(args.keys)]
    value = os.urandom(args.size)
    order = [keys[rng.randrange(len(keys))] for _ in range(args.ops)]
    rows = []

    name = f"bench-shm-{uuid.uuid4().hex[:8]}"
    table = ShmLRU.create(name, capacity=args.keys * 2, record_size=args.record_size)
    try:
        for key in keys:
            table.set(key, value)
        set_ = table.set
        rows.append(("shm_lru", rate(table.get, order), rate(lambda k: set_(k, value), order)))

        plain = {k: value for k in keys}
        rows.append(("dict", rate(plain.get, order),
                     rate(lambda k: plain.__setitem__(k, value), order)))

        lru = OrderedDict((k, value) for k in keys)

        def lru_get(key):
            v = lru.get(key)
            if v is not None:
                lru.move_to_end(key)
            return v

        def lru_set(key):
            lru[key] = value
            lru.move_to_end(key)
            if len(lru) > args.keys:
                lru.popitem(last=False)
        rows.append(("OrderedDict LRU", rate(lru_get, order), rate(lru_set, order)))

        if shutil.which("redis-server"):
            import redis
            port = free_port()
            proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                                     "--appendonly", "no"], stdout=subprocess.DEVNULL)
            try:
                for _ in range(200):
                    try:
                        client = redis.Redis(port=port)
                        client.ping()
                        break
                    except redis.ConnectionError:
                        time.sleep(0.05)
                with client.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.set(key, value)
                    pipe.execute()
                short = order[:args.redis_ops]
                rows.append(("redis-py -> redis-server", rate(client.get, short),
                             rate(lambda k: client.set(k, value), short)))
                client.close()
            finally:
                proc.terminate()
                proc.wait(10)

        try:
            import lmdb
        except ImportError:
            lmdb = None
        if lmdb is not None:
            path = tempfile.mkdtemp(dir="/dev/shm", prefix="bench-lmdb-")
            env = lmdb.open(path, map_size=1 << 30, sync=False, metasync=False, writemap=True)
            try:
                with env.begin(write=True) as txn:
                    for key in keys:
                        txn.put(key, value)

                def lmdb_get(key):
                    with env.begin() as txn:
                        return txn.get(key)

                def lmdb_set(key):
                    with env.begin(write=True) as txn:
                        txn.put(key, value)
                rows.append(("lmdb on /dev/shm", rate(lmdb_get, order), rate(lmdb_set, order)))
            finally:
                env.close()
                shutil.rmtree(path)

        print(f"{args.keys} keys, {args.size}-byte values, {args.ops} random ops, one process "
              f"(shm_lru record_size {args.record_size})")
        base_get, base_set = rows[0][1], rows[0][2]
        print(f"  {'':<26}{'get ops/s':>14}{'set ops/s':>14}   shm_lru is ... x faster")
        for label, get_rate, set_rate in rows:
            print(f"  {label:<26}{get_rate:>14,.0f}{set_rate:>14,.0f}   get {base_get / get_rate:6.2f}x"
                  f"   set {base_set / set_rate:6.2f}x")

        ctx = multiprocessing.get_context("fork")
        print("\nshm_lru get, processes reading the same table at once (aggregate)")
        single = None
        for n in (1, 2):
            out = ctx.Queue()
            start_at = time.time() + 0.5
            procs = [ctx.Process(target=shm_reader, args=(name, keys, args.ops, start_at, out))
                     for _ in range(n)]
            for proc in procs:
                proc.start()
            total = sum(out.get(timeout=120) for _ in procs)
            for proc in procs:
                proc.join()
            single = single or total
            print(f"  {n} process(es) {total:>14,.0f} ops/s   {total / single:5.2f}x one process")
    finally:
        table.unlink()
        table.close()


if __name__ == "__main__":
    main()
