"""Make a throwaway CA, server and client certificates for a local topology (uses openssl).

    python tools/make_certs.py DIR [--hosts 127.0.0.1 localhost ::1] [--clients client edge relay]
                                   [--other-ca] [--days 2]

Writes DIR/ca.crt, DIR/ca.key, DIR/server.crt, DIR/server.key and DIR/<name>.crt/.key per client
name; with --other-ca also DIR/other-ca.crt and DIR/rogue.crt/.key, signed by a CA nobody trusts
(for tests of refused peers). Used by the tests and by tools/topology.py --tls. Never for production.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import subprocess
import tempfile


def _run(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory, name="ca", subject="/CN=respcache test CA", days=2):
    key, crt = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
         "-days", str(days), "-subj", subject, "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return crt, key


def make_signed(directory, name, ca_crt, ca_key, hosts=(), client=False, days=2, passphrase=None):
    key, crt = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    csr = os.path.join(directory, f"{name}.csr")
    key_args = ["-nodes"] if passphrase is None else ["-passout", f"pass:{passphrase}"]
    _run("req", "-newkey", "rsa:2048", *key_args, "-keyout", key, "-out", csr,
         "-subj", f"/CN={name}")
    alt = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            alt.append(f"IP:{host}")
        except ValueError:
            alt.append(f"DNS:{host}")
    usage = "clientAuth" if client else "serverAuth,clientAuth"
    with tempfile.NamedTemporaryFile("w", suffix=".ext", delete=False) as ext:
        ext.write(f"extendedKeyUsage={usage}\n")
        if alt:
            ext.write("subjectAltName=" + ",".join(alt) + "\n")
    try:
        _run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
             "-out", crt, "-days", str(days), "-extfile", ext.name)
    finally:
        os.unlink(ext.name)
        os.unlink(csr)
    return crt, key


def make_all(directory, hosts=("127.0.0.1", "localhost", "::1"), clients=("client",),
             other_ca=False, days=2):
    os.makedirs(directory, exist_ok=True)
    ca_crt, ca_key = make_ca(directory, days=days)
    paths = {"ca": ca_crt}
    paths["server"] = make_signed(directory, "server", ca_crt, ca_key, hosts, days=days)
    for name in clients:
        paths[name] = make_signed(directory, name, ca_crt, ca_key, hosts, client=True, days=days)
    if other_ca:
        other_crt, other_key = make_ca(directory, "other-ca", "/CN=untrusted CA", days)
        paths["other-ca"] = other_crt
        paths["rogue"] = make_signed(directory, "rogue", other_crt, other_key, hosts, days=days)
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("directory")
    ap.add_argument("--hosts", nargs="+", default=["127.0.0.1", "localhost", "::1"])
    ap.add_argument("--clients", nargs="+", default=["client"])
    ap.add_argument("--other-ca", action="store_true")
    ap.add_argument("--days", type=int, default=2)
    args = ap.parse_args()
    paths = make_all(args.directory, args.hosts, args.clients, args.other_ca, args.days)
    for name, path in paths.items():
        print(name, path if isinstance(path, str) else " ".join(path))


if __name__ == "__main__":
    main()
