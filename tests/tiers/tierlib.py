"""Real-process topologies on loopback for the tiers tests: edges, a relay, relief nodes.

Every node is `python -m respcache.cli <generated conf>` with its log in a file (a pipe nobody reads
would stall a chatty server). Nodes are stopped by PID: SIGTERM (or SIGKILL when asked), always
bounded by a timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TLSAddress:
    """Stands for a relay in the topology helpers: its address is the relay's TLS port."""

    def __init__(self, port):
        self.addr = f"127.0.0.1:{port}"


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Node:
    def __init__(self, tmp_path, role, directives, capacity=4096, name=None):
        self.role = role
        self.port = free_port()
        self.name = name or f"{role}-{self.port}"
        self.addr = f"127.0.0.1:{self.port}"
        self.shm_name = f"rc-tiers-{uuid.uuid4().hex[:12]}"
        self.conf_path = os.path.join(str(tmp_path), f"{self.name}.conf")
        self.log_path = os.path.join(str(tmp_path), f"{self.name}.log")
        lines = [f"role {role}", f"port {self.port}", "bind 127.0.0.1",
                 f"shm-name {self.shm_name}", f"shm-capacity {capacity}", "loglevel verbose"]
        self.base_lines = lines
        self.directives = dict(directives)
        self.client_kwargs = {}     # e.g. {"password": ...} when the node requires AUTH
        self._write_conf()
        self.proc = None
        self.start()

    def _write_conf(self):
        lines = list(self.base_lines)
        for key, value in self.directives.items():
            if value is None:
                continue
            # A list is one line per item (several `user` lines, say).
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                lines.append(f"{key} {item}")
        with open(self.conf_path, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def reconfigure(self, **directives):
        """Rewrite the config file with these directives changed (None removes one), then
        restart the node on the same port."""
        for key, value in _dash(directives).items():
            self.directives[key] = value
        self.stop()
        self._write_conf()
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "respcache.cli", self.conf_path],
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   + self.read_log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"{self.name} does not listen on {self.port}")

    def client(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 5)
        for key, value in self.client_kwargs.items():
            kwargs.setdefault(key, value)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def tiers(self) -> dict:
        """The tiers INFO section as a dict (RESPCACHE INFO: the same fields as INFO tiers)."""
        with self.client() as client:
            text = client.execute_command("RESPCACHE", "INFO")
        if isinstance(text, bytes):
            text = text.decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                name, _, value = line.partition(":")
                out[name] = int(value) if value.lstrip("-").isdigit() else value
        return out

    def read_log(self) -> str:
        try:
            with open(self.log_path) as handle:
                return handle.read()
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        if self.proc.returncode != 0:
            release_segment(self.shm_name)   # a killed node leaves its segment behind
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self):
        self.stop()
        self.start()


class Topology:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.nodes = []
        self.relays = []
        self.reliefs = []
        self.edges = []

    def relay(self, capacity=4096, **directives) -> Node:
        node = Node(self.tmp_path, "relay", _dash(directives), capacity)
        self.nodes.append(node)
        self.relays.append(node)
        return node

    def relief(self, kind="aging", relay=None, capacity=4096, wait=True, **directives) -> Node:
        relays = relay or self.relays
        d = {"relief-kind": kind, "relay": " ".join(r.addr for r in relays)}
        d.update(_dash(directives))
        node = Node(self.tmp_path, "relief", d, capacity)
        self.nodes.append(node)
        self.reliefs.append(node)
        if wait:
            for r in relays:
                self.wait_member(r, node)
        return node

    def edge(self, relay=None, capacity=4096, **directives) -> Node:
        relays = self.relays if relay is None else relay
        d = {"relay": " ".join(r.addr for r in relays) or None}
        d.update(_dash(directives))
        node = Node(self.tmp_path, "edge", d, capacity)
        self.nodes.append(node)
        self.edges.append(node)
        if relays:
            wait_until(lambda: node.tiers().get("link_status") == "up", 10,
                       what=f"{node.name} link up")
        return node

    def members(self, relay) -> set:
        with relay.client() as client:
            reply = client.execute_command("RESPCACHE", "TOPOLOGY")
        return {row[0].decode() for row in reply[3] if row[2] == b"up"}

    def wait_member(self, relay, node, present=True, timeout=10):
        wait_until(lambda: (node.addr in self.members(relay)) == present, timeout,
                   what=f"{node.name} {'in' if present else 'out of'} {relay.name}'s ring")

    def stop_all(self):
        for node in reversed(self.nodes):
            try:
                node.stop(signal.SIGKILL if node.role != "relay" else signal.SIGTERM, timeout=10)
            except Exception:
                pass


def release_segment(name):
    try:
        from shm_lru import ShmLRU
        ShmLRU.unlink_name(name)
    except Exception:
        pass


def _dash(directives):
    return {k.replace("_", "-"): v for k, v in directives.items()}
