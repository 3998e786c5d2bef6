"""INFO text: Redis's sections and field names (tools parse them), plus respcache's own `shm`.

Extensions add sections through `info(server) -> {name: [(field, value), ...]}` (the tiers package
adds `tiers`). Counters that differ per worker are summed over the workers' reports.
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import sys
import time
import weakref
from collections import deque

from ..config import REDIS_COMPAT_VERSION, VERSION

DEFAULT_SECTIONS = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu",
                    "shm", "errorstats", "keyspace"]
ALL_SECTIONS = DEFAULT_SECTIONS[:-1] + ["commandstats", "keyspace"]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


SAMPLE_SECONDS = 0.1  # as Redis's serverCron at hz 10: ops/sec and the memory peak
SAMPLES = 16          # Redis's STATS_METRIC_SAMPLES


class _Sampler:
    """What INFO can only know by sampling: instantaneous_ops_per_sec (the mean of the last 16
    100 ms rates, as Redis) and used_memory_peak (the highest used_memory seen by the samples
    and INFO calls; Redis samples its peak in serverCron too). One timer per process, started
    by the first INFO (or a peer's INFO request), so a server nobody asks costs nothing."""

    def __init__(self, server):
        self.server = weakref.ref(server)
        self.rates = deque(maxlen=SAMPLES)
        self.last = (time.monotonic(), server.stats_commands)
        self.peak = _used_memory(server.table.stats())
        server.loop.call_later(SAMPLE_SECONDS, self.tick)

    def tick(self):
        server = self.server()
        if server is None or server.stopping:
            return
        now, commands = time.monotonic(), server.stats_commands
        elapsed = now - self.last[0]
        if elapsed > 0:
            self.rates.append((commands - self.last[1]) / elapsed)
        self.last = (now, commands)
        self.observe(_used_memory(server.table.stats()))
        server.loop.call_later(SAMPLE_SECONDS, self.tick)

    def observe(self, used: int) -> int:
        self.peak = max(self.peak, used)
        return self.peak

    def ops_per_sec(self) -> int:
        return int(sum(self.rates) / SAMPLES)


_SAMPLERS = weakref.WeakKeyDictionary()


def sampler(server) -> _Sampler:
    found = _SAMPLERS.get(server)
    if found is None:
        found = _SAMPLERS[server] = _Sampler(server)
    return found


def _used_memory(stats) -> int:
    """The table's budget is its segment: used_memory reaches maxmemory (the segment's size)
    when every record holds data. The process's own heap is in used_memory_rss (adding it here
    counted the segment's resident pages twice, over maxmemory with no key at all)."""
    overhead = stats["segment_bytes"] - stats["capacity"] * stats["record_size"]
    return overhead + stats["used_records"] * stats["record_size"]


def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.2f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return str(n)


def sections_for(server, counters) -> dict:
    values = server.config.values
    table = server.table
    stats = table.stats()
    uptime = int(time.monotonic() - server.started_monotonic)
    total = {k: sum(c.get(k, 0) for c in counters) for k in counters[0] if k != "errorstats"}
    errorstats = {}
    for c in counters:
        for prefix, count in c.get("errorstats", {}).items():
            errorstats[prefix] = errorstats.get(prefix, 0) + count
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = _rss_bytes()
    dataset = stats["used_records"] * stats["record_size"]
    used = _used_memory(stats)
    overhead = used - dataset
    # Every worker samples the same table: the highest peak any of them saw is the peak.
    peak = max([sampler(server).observe(used)] + [c.get("memory_peak", 0) for c in counters])
    replid = hashlib.sha1(b"respcache-replid:%d" % table.generation).hexdigest()
    sections = {
        "server": [
            ("redis_version", REDIS_COMPAT_VERSION), ("respcache_version", VERSION),
            ("redis_mode", "standalone"), ("os", f"{platform.system()} {platform.release()} "
                                                 f"{platform.machine()}"),
            ("arch_bits", 64), ("multiplexing_api", "asyncio"),
            ("python_version", platform.python_version()), ("process_id", os.getpid()),
            ("process_supervised", "no"), ("run_id", f"{table.generation:040x}"[-40:]),
            ("tcp_port", values["port"]), ("server_time_usec", time.time_ns() // 1000),
            ("uptime_in_seconds", uptime), ("uptime_in_days", uptime // 86400),
            ("hz", values["hz"]), ("executable", sys.argv[0]),
            ("config_file", server.config.file or ""), ("role", values["role"]),
            ("workers", server.worker_count), ("worker_index", server.worker_index),
        ],
        "clients": [
            ("connected_clients", total["clients"]), ("maxclients", values["maxclients"]),
            ("blocked_clients", 0), ("tracking_clients", 0),
            ("pubsub_clients", total["pubsub_clients"]),
        ],
        "memory": [
            ("used_memory", used), ("used_memory_human", _human(used)),
            ("used_memory_rss", rss), ("used_memory_rss_human", _human(rss)),
            ("used_memory_peak", peak), ("used_memory_peak_human", _human(peak)),
            ("used_memory_peak_perc", f"{100 * used / peak:.2f}%" if peak else "0.00%"),
            ("used_memory_overhead", overhead), ("used_memory_dataset", dataset),
            ("maxmemory", stats["segment_bytes"]),
            ("maxmemory_human", _human(stats["segment_bytes"])),
            ("maxmemory_policy", "allkeys-lru"),
            ("mem_fragmentation_ratio", f"{rss / used:.2f}" if used else "0.00"),
            ("mem_fragmentation_bytes", rss - used), ("mem_allocator", "shm_lru"),
        ],
        "persistence": [
            ("loading", 0), ("async_loading", 0), ("rdb_changes_since_last_save", 0),
            ("rdb_bgsave_in_progress", 0), ("rdb_last_save_time", int(server.started)),
            ("rdb_last_bgsave_status", "ok"), ("aof_enabled", 0), ("aof_rewrite_in_progress", 0),
            ("aof_last_bgrewrite_status", "ok"), ("aof_last_write_status", "ok"),
        ],
        "stats": [
            ("total_connections_received", total["connections"]),
            ("total_commands_processed", total["commands"]),
            ("instantaneous_ops_per_sec", total.get("ops_per_sec", 0)),
            ("total_net_input_bytes", total["net_input"]),
            ("total_net_output_bytes", total["net_output"]),
            ("rejected_connections", total["rejected"]),
            ("expired_keys", stats["expirations"]), ("evicted_keys", stats["evictions"]),
            ("keyspace_hits", stats["hits"]), ("keyspace_misses", stats["misses"]),
            ("pubsub_channels", len(server.pubsub.channels)),
            ("pubsub_patterns", len(server.pubsub.patterns)),
            ("acl_access_denied_auth", total["auth_failures"]),
            ("total_error_replies", total["error_replies"]),
            ("tls_handshake_failures", total["tls_failures"]),
            ("journal_overruns", stats["journal_overruns"]),
        ],
        # A master without replicas, as Redis 7.0 prints it (no backlog: nothing replicates).
        "replication": [("role", "master"), ("connected_slaves", 0),
                        ("master_failover_state", "no-failover"), ("master_replid", replid),
                        ("master_replid2", "0" * 40), ("master_repl_offset", 0),
                        ("second_repl_offset", -1), ("repl_backlog_active", 0),
                        ("repl_backlog_first_byte_offset", 0), ("repl_backlog_histlen", 0)],
        "cpu": [
            ("used_cpu_sys", f"{usage.ru_stime:.6f}"), ("used_cpu_user", f"{usage.ru_utime:.6f}"),
            ("used_cpu_sys_children", f"{children.ru_stime:.6f}"),
            ("used_cpu_user_children", f"{children.ru_utime:.6f}"),
        ],
        "shm": [
            ("shm_name", values["shm-name"]), ("shm_generation", stats["generation"]),
            ("shm_segment_bytes", stats["segment_bytes"]), ("shm_capacity", stats["capacity"]),
            ("shm_record_size", stats["record_size"]),
            ("shm_bytes_per_record", f"{stats['bytes_per_record']:.2f}"),
            ("shm_used_records", stats["used_records"]),
            ("shm_free_records", stats["free_records"]), ("shm_entries", stats["entries"]),
            ("shm_sets", stats["sets"]), ("shm_deletes", stats["deletes"]),
            ("shm_journal_bytes", stats["journal_bytes"]),
            ("shm_journal_overruns", stats["journal_overruns"]),
            ("shm_lock_recoveries", stats["lock_recoveries"]),
        ],
        "keyspace": ([("db0", f"keys={stats['entries']},expires={stats['expiring']},avg_ttl=0")]
                     if stats["entries"] else []),
    }
    from .registry import unique_commands
    rows = []
    for cmd in sorted(unique_commands(), key=lambda c: c.name):
        for item in [cmd] + list(cmd.subcommands.values()):
            if item.calls:
                rows.append((f"cmdstat_{item.fullname}",
                             f"calls={item.calls},usec={item.usec},"
                             f"usec_per_call={item.usec / item.calls:.2f},rejected_calls=0,"
                             f"failed_calls=0"))
    sections["commandstats"] = rows
    sections["errorstats"] = [(f"errorstat_{prefix}", f"count={count}")
                              for prefix, count in sorted(errorstats.items()) if prefix]
    for ext in server.extensions:
        if hasattr(ext, "info"):
            for name, fields in ext.info(server).items():
                sections[name] = list(fields)
    return sections


_HEADERS = {"cpu": "CPU", "commandstats": "Commandstats", "errorstats": "Errorstats"}


def render_info(server, wanted, counters) -> str:
    sections = sections_for(server, counters)
    if not wanted or wanted == ["default"]:
        names = DEFAULT_SECTIONS + [n for n in sections if n not in ALL_SECTIONS]
    elif "all" in wanted or "everything" in wanted:
        names = ALL_SECTIONS + [n for n in sections if n not in ALL_SECTIONS]
    else:
        names = [n for n in wanted if n in sections]
    out = []
    for name in names:
        out.append(f"# {_HEADERS.get(name) or name.capitalize()}")
        out.extend(f"{field}:{value}" for field, value in sections[name])
        out.append("")
    return "\r\n".join(out).rstrip("\r\n") + "\r\n"
