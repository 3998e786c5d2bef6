"""Side-by-side throughput: redis-server vs respcache vs the toy Python ceiling, one run.

Starts all three servers on free loopback ports, runs redis-benchmark against each in turn
(alternating, several rounds), and prints requests/s with ratios to redis-server and to the toy.

    python tools/bench_server.py                       # the issue's standard run
    python tools/bench_server.py --rounds 5 --pipeline 1 16 --workers 1 2
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.args}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


PIN = bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2


def pinned(argv, cpus):
    """On this 2-core box, put servers on core 0 and the load generator on core 1: left to the
    scheduler they often share a core, which halves throughput at random between runs."""
    return ["taskset", "-c", cpus] + argv if PIN else argv


def start(name, argv, port):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wait_port(port, proc)
    return {"name": name, "proc": proc, "port": port}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_benchmark(port, tests, size, clients, requests, pipeline, extra=()):
    """{test: {"rps": .., "p99": ..}}, and the share of one core the load generator itself used.
    `extra` goes to redis-benchmark as it is (the TLS options, say)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(pinned(
        ["redis-benchmark", "-p", str(port), "-t", tests, "-d", str(size), "-c", str(clients),
         "-n", str(requests), "-P", str(pipeline), "-r", "20000", "--csv", *extra], "1"),
        capture_output=True, text=True, timeout=600).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    rows = {}
    for row in csv.DictReader(io.StringIO(out)):
        rows[row["test"]] = {"rps": float(row["rps"]), "p99": float(row["p99_latency_ms"])}
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no results for port {port}")
    return rows, cpu / (time.monotonic() - started)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--pipeline", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--tests", default="set,get")
    ap.add_argument("--workers", nargs="+", default=["1"],
                    help="respcache worker counts to compare (each is one more server)")
    ap.add_argument("--no-toy", action="store_true")
    args = ap.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark not found: apt-get install redis-tools")

    servers = []
    try:
        port = free_port()
        servers.append(start("redis-server", pinned(["redis-server", "--port", str(port),
                                                     "--save", "", "--appendonly", "no"], "0"),
                             port))
        for workers in args.workers:
            port = free_port()
            # One worker shares core 0 with nothing; more workers get both cores (and so share
            # one with the load generator): that is what `workers 2` buys on this box.
            servers.append(start(f"respcache w={workers}", pinned([
                sys.executable, "-m", "respcache.cli", "--port", str(port), "--workers", workers,
                "--shm-name", f"bench-{uuid.uuid4().hex[:8]}", "--shm-capacity", "65536"],
                "0" if workers == "1" else "0,1"), port))
        if not args.no_toy:
            port = free_port()
            servers.append(start("toy (uvloop+hiredis)", pinned([
                sys.executable, os.path.join(ROOT, "tools", "toy_server.py"), str(port)], "0"),
                port))

        results = {}  # (server, pipeline, test) -> [rps]
        loadgen_cpu = {}  # (server, pipeline) -> [cores used by redis-benchmark]
        for round_no in range(args.rounds):
            for pipeline in args.pipeline:
                for srv in servers:
                    rows, cpu = run_benchmark(srv["port"], args.tests, args.size, args.clients,
                                              args.requests, pipeline)
                    for test, row in rows.items():
                        results.setdefault((srv["name"], pipeline, test), []).append(row["rps"])
                    loadgen_cpu.setdefault((srv["name"], pipeline), []).append(cpu)
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)

        print(f"redis-benchmark -t {args.tests} -d {args.size} -c {args.clients} "
              f"-n {args.requests}, median of {args.rounds} alternating rounds"
              + (", servers on core 0, redis-benchmark on core 1" if PIN else ""))
        tests = sorted({k[2] for k in results})
        for pipeline in args.pipeline:
            for test in tests:
                base = statistics.median(results[("redis-server", pipeline, test)])
                toy = (statistics.median(results[("toy (uvloop+hiredis)", pipeline, test)])
                       if not args.no_toy else None)
                print(f"\n-P {pipeline:<3} {test}")
                for srv in servers:
                    rps = statistics.median(results[(srv["name"], pipeline, test)])
                    line = f"  {srv['name']:<22} {rps:>12,.0f} req/s   {rps / base:5.2f}x redis"
                    if toy:
                        line += f"   {rps / toy:5.2f}x toy"
                    print(line)
        print("\nredis-benchmark's own CPU (cores of 2) while loading each server:")
        for (name, pipeline), shares in sorted(loadgen_cpu.items()):
            print(f"  -P {pipeline:<3} {name:<22} {statistics.median(shares):.2f}")
        print("\nRSS after the run (kB):",
              ", ".join(f"{s['name']}={rss_kb(s['proc'].pid)}" for s in servers))
    finally:
        for srv in servers:
            srv["proc"].terminate()
            try:
                srv["proc"].wait(10)
            except subprocess.TimeoutExpired:
                srv["proc"].kill()


if __name__ == "__main__":
    main()
