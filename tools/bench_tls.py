"""GET/SET over TLS vs plain TCP, for redis-server and respcache with the same certificates.

Makes a throwaway CA, server and client certificates (tools/make_certs.py), starts redis-server
and respcache each with a plain port and a TLS port that requires a client certificate (mutual
TLS, as tier links run), and runs redis-benchmark against the four endpoints in alternating
rounds. Prints requests/s and p99 per endpoint, with two ratios: TLS against plain on the same
server (what TLS costs), and respcache against redis-server over TLS.

    python tools/bench_tls.py                       # -c 50 -n 100000, -P 1 and -P 16, 3 rounds
    python tools/bench_tls.py --rounds 5 --pipeline 1 --requests 200000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_server import PIN, free_port, pinned, run_benchmark, start  # noqa: E402
from make_certs import make_all  # noqa: E402


def tls_args(certs, prefix=""):
    """The certificate directives as command-line options (redis-server and respcache share
    Redis's names)."""
    return [f"{prefix}tls-cert-file", os.path.join(certs, "server.crt"),
            f"{prefix}tls-key-file", os.path.join(certs, "server.key"),
            f"{prefix}tls-ca-cert-file", os.path.join(certs, "ca.crt"),
            f"{prefix}tls-auth-clients", "yes"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--pipeline", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--tests", default="set,get")
    args = ap.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark not found: apt-get install redis-tools")

    certs = tempfile.mkdtemp(prefix="bench-tls-")
    make_all(certs, hosts=["127.0.0.1", "localhost"], clients=["client"])
    client_tls = ["--tls", "--cacert", os.path.join(certs, "ca.crt"),
                  "--cert", os.path.join(certs, "client.crt"),
                  "--key", os.path.join(certs, "client.key")]
    endpoints = []  # (server name, transport, port, extra redis-benchmark args)
    servers = []
    try:
        plain, tls = free_port(), free_port()
        servers.append(start("redis-server", pinned(
            ["redis-server", "--port", str(plain), "--tls-port", str(tls), "--save", "",
             "--appendonly", "no", *tls_args(certs, "--")], "0"), plain))
        endpoints += [("redis-server", "tcp", plain, ()), ("redis-server", "tls", tls, client_tls)]
        plain, tls = free_port(), free_port()
        servers.append(start("respcache", pinned(
            [sys.executable, "-m", "respcache.cli", "--port", str(plain), "--tls-port", str(tls),
             "--shm-name", f"bench-tls-{uuid.uuid4().hex[:8]}", "--shm-capacity", "65536",
             *tls_args(certs, "--")], "0"), plain))
        endpoints += [("respcache", "tcp", plain, ()), ("respcache", "tls", tls, client_tls)]

        results = {}  # (server, transport, pipeline, test) -> [row]
        for round_no in range(args.rounds):
            for pipeline in args.pipeline:
                for name, transport, port, extra in endpoints:
                    rows, _ = run_benchmark(port, args.tests, args.size, args.clients,
                                            args.requests, pipeline, extra)
                    for test, row in rows.items():
                        results.setdefault((name, transport, pipeline, test), []).append(row)
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)

        def median(key, field):
            return statistics.median(row[field] for row in results[key])

        print(f"redis-benchmark -t {args.tests} -d {args.size} -c {args.clients} "
              f"-n {args.requests}, median of {args.rounds} alternating rounds; TLS with client "
              "certificates (tls-auth-clients yes)"
              + (", servers on core 0, redis-benchmark on core 1" if PIN else ""))
        tests = sorted({key[3] for key in results})
        for pipeline in args.pipeline:
            for test in tests:
                print(f"\n-P {pipeline:<3} {test:<4}{'req/s':>22}{'p99 ms':>9}"
                      f"{'tls/tcp':>10}{'vs redis':>10}")
                for name in ("redis-server", "respcache"):
                    for transport in ("tcp", "tls"):
                        key = (name, transport, pipeline, test)
                        rps, p99 = median(key, "rps"), median(key, "p99")
                        over_plain = rps / median((name, "tcp", pipeline, test), "rps")
                        over_redis = rps / median(("redis-server", transport, pipeline, test),
                                                  "rps")
                        print(f"  {name:<13} {transport:<4}{rps:>14,.0f}{p99:>9.3f}"
                              f"{over_plain:>9.2f}x{over_redis:>9.2f}x")
    finally:
        for srv in servers:
            srv["proc"].terminate()
            srv["proc"].wait(10)
        shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    main()
