"""The server process: listeners, client registry, periodic work (cron), shutdown.

A Server owns one shm_lru table (created when `shm-manage yes`, attached otherwise), its
connections, the pub/sub hub, slowlog and monitors. Extensions (the tiers package) plug in through
`server.extensions`: objects with optional `start(server)`, `stop(server)`, `cron(server)` and
`info(server) -> {section: [(field, value)]}` methods, and may set `server.miss_handler` (see
Connection.execute). This module knows nothing of what they do.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import time
from collections import deque

from shm_lru import ShmLRU

from . import errors, monitoring, resp
from .config import Config
from .acl import AclTable
from .keyspace import Keyspace
from .notifications import KeyspaceEvents
from .protocol import Connection
from .pubsub import PubSub

from .commands import load_all
from .commands.registry import unique_commands

load_all()


def segment_name(config: Config) -> str:
    """shm-name, else named after what this server listens on: its port, its TLS port when
    `port 0`, its unix socket when it has neither (servers on one host must not share one)."""
    values = config.values
    if values["shm-name"]:
        return values["shm-name"]
    if values["port"] or values["tls-port"]:
        return f"respcache-{values['port'] or values['tls-port']}"
    socket_name = os.path.basename(values["unixsocket"]).replace(".", "-") or "0"
    return f"respcache-{socket_name}"


def open_table(config: Config, log) -> tuple[ShmLRU, bool]:
    """Create (shm-manage yes) or attach the segment; returns (table, created_here)."""
    name = segment_name(config)
    config.values["shm-name"] = name  # CONFIG GET shm-name tells local clients where to attach
    if config.values["shm-manage"]:
        table = ShmLRU.create(name, capacity=config.values["shm-capacity"],
                              record_size=config.values["shm-record-size"], replace=True)
        log.info("Created shm segment '%s': %d records of %d bytes", name, table.capacity,
                 table.record_size)
        return table, True
    table = ShmLRU.attach(name)
    log.info("Attached shm segment '%s': %d records of %d bytes", name, table.capacity,
             table.record_size)
    return table, False


class Server:
    def __init__(self, config: Config, log, table: ShmLRU | None = None, owns_table=False,
                 worker=None):
        self.config = config
        self.log = log
        self.tls_context = None
        if config.values["tls-port"]:  # before the segment: a TLS error must leave nothing behind
            from .tls import server_context
            self.tls_context = server_context(config.values)  # TLSConfigError stops startup
        if table is None:
            table, owns_table = open_table(config, log)
        self.table = table
        self.owns_table = owns_table
        self.keyspace = Keyspace(table)
        self.acl = AclTable(config.values)
        self.clients = {}
        self.pubsub = PubSub()
        self.monitors = monitoring.CallbackSet(self._monitors_changed)
        self.slowlog = deque(maxlen=config.values["slowlog-max-len"])
        self.slowlog_next_id = 0
        self.slowlog_threshold_usec = config.values["slowlog-log-slower-than"]
        self.pubsub_output_limit = config.values["client-output-buffer-limit"]["pubsub"][0]
        self.extensions = []
        # Set by an extension (tiers): before_command(conn, cmd, args) -> Future | None.
        self.miss_handler = None
        self.events = KeyspaceEvents(self)
        self.listeners = []
        self.started = time.time()
        self.started_monotonic = time.monotonic()
        self.clock = self.started_monotonic   # refreshed by the cron: a coarse monotonic clock
        self.stats_connections = 0
        self.stats_rejected = 0
        self.stats_net_input_bytes = 0   # what clients sent and were sent (INFO stats)
        self.stats_net_output_bytes = 0
        self.error_replies = {}          # error prefix (ERR, WRONGTYPE...) -> count
        self.stats_auth_failures = 0          # WRONGPASS answers (INFO: acl_access_denied_auth)
        self.stats_tls_handshake_failures = 0
        self.stats_expired_by_cron = 0
        self._next_client_id = 0
        # With `workers N`: (index, count, bus socket); client ids are unique across workers.
        self.worker = worker
        self.worker_index, self.worker_count = (worker[0], worker[1]) if worker else (0, 1)
        self.bus = None
        self.stopping = False
        self._shutdown = None
        self.loop = None
        self.tcp_port = None

    @property
    def stats_commands(self) -> int:
        """Commands run (INFO total_commands_processed): the sum of the per-command counters,
        so the hot path keeps one counter, not two."""
        return sum(cmd.calls for cmd in unique_commands())

    # ---- clients ------------------------------------------------------------------------------
    def next_client_id(self) -> int:
        self._next_client_id += 1
        return (self._next_client_id - 1) * self.worker_count + self.worker_index + 1

    def admit(self, conn: Connection):
        """None to accept the connection, or the bytes to send before closing it."""
        self.stats_connections += 1
        values = self.config.values
        if len(self.clients) >= values["maxclients"]:
            self.stats_rejected += 1
            return resp.error(errors.MAX_CLIENTS)
        if (values["protected-mode"] and not values["requirepass"] and conn.kind == "tcp"
                and not _is_loopback(conn.addr)):
            self.stats_rejected += 1
            return errors.PROTECTED_MODE.encode()
        return None

    def forget(self, conn: Connection):
        self.clients.pop(conn.id, None)
        self.pubsub.drop(conn)
        self.monitors.discard(conn)

    def publish(self, channel: bytes, message: bytes) -> int:
        """PUBLISH on every worker; returns the receivers counted across all of them."""
        receivers = self.pubsub.publish(channel, message)
        if self.bus is not None:
            receivers += self.bus.remote_receivers(channel)
            self.bus.broadcast(b"pub", channel, message)
        return receivers

    def monitoring(self) -> bool:
        return bool(self.monitors) or (self.bus is not None and self.bus.remote_monitor_count() > 0)

    def _monitors_changed(self):
        if self.bus is not None:
            self.bus.local_monitors_changed(len(self.monitors))

    def feed_monitors(self, conn, args):
        """One MONITOR line for a command that ran, passwords shown as Redis shows them."""
        data = monitoring.monitor_line(conn, args)
        if data is None:
            return
        self._deliver_monitor_line(data, conn)
        if self.bus is not None and self.bus.remote_monitor_count():
            self.bus.broadcast(b"monitor-line", data)

    def _deliver_monitor_line(self, data, source=None):
        for monitor in list(self.monitors):
            if monitor is not source:
                monitor.send(data)

    def count_error_reply(self, reply: bytes):
        """INFO errorstats and total_error_replies, by the error's first word as Redis keeps
        them (at most 128 kinds, Redis's ERRORSTATS_LIMIT; more are counted in the total)."""
        end = reply.find(b" ")
        prefix = reply[1:end if end > 0 else -2].decode("utf-8", "replace")
        counts = self.error_replies
        if prefix in counts or len(counts) < 128:
            counts[prefix] = counts.get(prefix, 0) + 1
        else:
            counts[""] = counts.get("", 0) + 1

    def slowlog_add(self, conn, args, usec):
        shown = monitoring.slowlog_args(args)
        if shown is None:
            return
        self.slowlog.appendleft((self.slowlog_next_id, int(time.time()), usec, shown,
                                 conn.addr.encode(), conn.name))
        self.slowlog_next_id += 1

    def config_changed(self, names):
        """Re-derive cached settings after CONFIG SET."""
        values = self.config.values
        if "slowlog-log-slower-than" in names:
            self.slowlog_threshold_usec = values["slowlog-log-slower-than"]
        if "client-output-buffer-limit" in names:
            self.pubsub_output_limit = values["client-output-buffer-limit"]["pubsub"][0]
        if "slowlog-max-len" in names:
            self.slowlog = deque(self.slowlog, maxlen=values["slowlog-max-len"])
        if "notify-keyspace-events" in names:
            self.events.configure(values["notify-keyspace-events"])
        if "loglevel" in names:
            from .log import set_level
            set_level(self.log, values["loglevel"])
        if "requirepass" in names:
            # As Redis: the default user gets resetpass then >new (nopass when empty); other users,
            # and rules ACL SETUSER gave, stay. Connections already authenticated stay so too.
            self.acl.set_default_password(values["requirepass"])
        from .tls import TLS_FILE_DIRECTIVES
        if self.tls_context is not None and any(n in TLS_FILE_DIRECTIVES for n in names):
            from .tls import server_context
            # New connections get the new certificates; connections that are up keep theirs.
            self.tls_context = server_context(values)
            self.log.info("TLS configuration reloaded for new connections")
        for ext in self.extensions:
            if hasattr(ext, "config_changed"):
                ext.config_changed(self, names)

    # ---- lifecycle ----------------------------------------------------------------------------
    async def serve(self, ready=None):
        self.loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        await self._listen()
        if self.worker is not None:
            await self._join_bus()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        for ext in self.extensions:
            if hasattr(ext, "start"):
                await ext.start(self)
        cron = self.loop.create_task(self._cron())
        self.events.start(self.loop)
        self.log.info("Ready to accept connections")
        if ready is not None:
            ready()
        await self._shutdown.wait()
        cron.cancel()
        self.events.stop()
        await self._close()

    async def _listen(self):
        values = self.config.values
        if values["port"]:
            await self._bind_all(lambda: Connection(self), values["port"], "TCP")
            if self.listeners:
                self.tcp_port = self.listeners[-1].sockets[0].getsockname()[1]
        if values["tls-port"]:
            self._listen_tls()
        if values["unixsocket"]:
            path = values["unixsocket"]
            if os.path.exists(path):
                os.unlink(path)
            listener = await self.loop.create_unix_server(lambda: Connection(self), path,
                                                          backlog=values["tcp-backlog"])
            if values["unixsocketperm"]:
                os.chmod(path, int(str(values["unixsocketperm"]), 8))
            self.listeners.append(listener)
        if not self.listeners:
            raise OSError("no listening socket: set port or unixsocket")

    async def _join_bus(self):
        from .bus import Bus
        index, count, sock = self.worker
        self.bus = Bus(self, index, count)
        self.bus.events[b"pub"] = lambda origin, args: self.pubsub.publish(args[0], args[1])
        self.bus.events[b"monitor-line"] = lambda origin, args: self._deliver_monitor_line(args[0])
        self.pubsub.listener = self.bus.local_subscription_changed
        await self.loop.create_unix_connection(lambda: self.bus, sock=sock)

    def _listen_tls(self):
        from .tls import TLSListener, listen_socket
        values = self.config.values
        workers = values["workers"]
        for address in values["bind"]:
            host = address.lstrip("-")
            try:
                sock = listen_socket(host, values["tls-port"], values["tcp-backlog"],
                                     workers == "auto" or int(workers) > 1)
            except OSError as exc:
                if address.startswith("-"):
                    continue
                raise OSError(exc.errno, f"Could not create server TLS listening socket "
                              f"{host}:{values['tls-port']}: {exc.strerror}") from None
            self.listeners.append(TLSListener(self, sock, lambda: Connection(self)))

    async def _bind_all(self, factory, port, kind):
        """Listen on every `bind` address; a leading '-' marks one that may be unavailable."""
        values = self.config.values
        workers = values["workers"]
        reuse = workers == "auto" or int(workers) > 1   # workers share the port
        for address in values["bind"]:
            optional = address.startswith("-")
            host = address.lstrip("-")
            try:
                listener = await self.loop.create_server(
                    factory, host, port, backlog=values["tcp-backlog"], reuse_address=True,
                    reuse_port=reuse or None)
            except OSError as exc:
                if optional:
                    self.log.warning("Could not listen on %s:%d (%s); skipped (optional bind)",
                                     host, port, exc.strerror)
                    continue
                raise OSError(exc.errno, f"Could not create server {kind} listening socket "
                              f"{host}:{port}: {exc.strerror}") from None
            self.listeners.append(listener)

    def _on_signal(self, sig):
        self.log.warning("Received %s scheduling shutdown...", signal.Signals(sig).name)
        self.request_shutdown()

    def request_shutdown(self):
        if self._shutdown is not None:
            self._shutdown.set()

    async def _close(self):
        self.stopping = True
        self.log.warning("User requested shutdown...")
        for listener in self.listeners:
            listener.close()
        for ext in self.extensions:
            if hasattr(ext, "stop"):
                try:
                    await ext.stop(self)
                except Exception:  # a failing hand-off must not keep the process alive
                    self.log.exception("extension stop failed")
        for conn in list(self.clients.values()):
            conn.close()  # the transport flushes what it holds before closing
        deadline = time.monotonic() + 2.0
        while self.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.clients.values()):
            conn.abort()  # peers that did not read their last replies in 2 s
        if self.config.values["unixsocket"]:
            try:
                os.unlink(self.config.values["unixsocket"])
            except OSError:
                pass
        self.release_table()
        self.log.warning("respcache is now ready to exit, bye bye...")

    def release_table(self):
        if self.table is None:
            return
        if self.owns_table and self.config.values["shm-manage"]:
            self.table.unlink()
        self.table.close()
        self.table = None

    # ---- periodic work ------------------------------------------------------------------------
    async def _cron(self):
        last_second = time.monotonic()
        while True:
            await asyncio.sleep(1.0 / self.config.values["hz"])
            try:
                self.clock = now = time.monotonic()
                self.cron_tick()
                if now - last_second >= 1.0:
                    last_second = now
                    self._close_idle_clients(now)
                for ext in self.extensions:
                    if hasattr(ext, "cron"):
                        ext.cron(self)
            except Exception:  # the cron must survive anything one tick runs into
                self.log.exception("cron tick failed")

    def cron_tick(self):
        # Visit the whole table about every 2 s (faster with active-expire-effort), so that
        # `expired` events fire soon after the deadline even for keys nobody reads.
        effort = self.config.values["active-expire-effort"]
        checks = max(1000, self.table.capacity * effort // (2 * self.config.values["hz"]))
        self.stats_expired_by_cron += self.table.sweep(max_checks=checks)

    def _close_idle_clients(self, now):
        timeout = self.config.values["timeout"]
        if not timeout:
            return
        for conn in list(self.clients.values()):
            if (not conn.channels and not conn.patterns and conn.blocked is None
                    and not conn.monitor and now - conn.last_interaction > timeout):
                self.log.verbose("Closing idle client id=%d addr=%s", conn.id, conn.addr)
                conn.close()


def _is_loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
