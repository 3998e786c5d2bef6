"""Fixtures that run real processes: respcache-server and redis-server on free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, proc=None, timeout=15.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port}")


class ServerProcess:
    """A respcache-server subprocess; stopped by PID (SIGTERM, then SIGKILL) at teardown."""

    def __init__(self, *args, conf_text=None, tmp_path=None, port=None, env=None, wait=True):
        self.port = port or free_port()
        self.shm_name = f"rc-test-{uuid.uuid4().hex[:12]}"
        argv = [sys.executable, "-m", "respcache.cli"]
        if conf_text is not None:
            path = os.path.join(str(tmp_path), f"server-{self.port}.conf")
            with open(path, "w") as handle:
                handle.write(conf_text)
            argv.append(path)
            self.conf_path = path
        argv += ["--port", str(self.port), "--shm-name", self.shm_name, "--shm-capacity", "8192"]
        argv += list(args)
        self.argv = argv
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env=dict(os.environ, **(env or {})))
        if wait:
            wait_for_port(self.port, self.proc)

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        self.stop()
        return self.proc.stdout.read()


@pytest.fixture
def server(tmp_path):
    srv = ServerProcess(tmp_path=tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def r(server):
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def start_server(tmp_path):
    """Factory: start_server('--timeout', '1', conf_text=...) -> ServerProcess."""
    started = []

    def start(*args, **kwargs):
        srv = ServerProcess(*args, tmp_path=tmp_path, **kwargs)
        started.append(srv)
        return srv
    yield start
    for srv in started:
        srv.stop()


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def redis_server_process(*extra):
    """Start Debian's redis-server on a free loopback port (with `extra` arguments); yields the
    port, stops it by PID. For fixtures: `yield from redis_server_process(...)`."""
    if not os.path.exists(REDIS_SERVER):
        pytest.fail("redis-server is not installed: .ci/run installs Debian's redis-server")
    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--daemonize", "no", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def real_redis():
    """A real redis-server (Debian's) on a free loopback port, for differential tests."""
    yield from redis_server_process()


@pytest.fixture
def own_redis():
    """A private redis-server, for scripts that change requirepass or users (the shared
    real_redis must keep its settings)."""
    yield from redis_server_process()


def redis_cli(port, *args, input=None, timeout=20):
    if not os.path.exists(REDIS_CLI):
        pytest.fail("redis-cli is not installed: .ci/run installs Debian's redis-tools")
    return subprocess.run([REDIS_CLI, "-p", str(port), *args], input=input, capture_output=True,
                          timeout=timeout)
