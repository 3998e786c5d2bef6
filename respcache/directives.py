"""The directives respcache itself understands, with their defaults, bounds and checks.

Names and defaults follow Redis where Redis has the directive; respcache's own (role, workers,
shm-*) are explained in conf/edge.conf. Registered at import by config.py.
"""

from __future__ import annotations

from .config import DEFAULT_OUTPUT_LIMITS, Directive, register


def _check_notify(value):
    if any(ch not in "KEg$lshzxetmdnA" for ch in value):
        raise ValueError("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")


def _notify_flags(value):
    """Redis's keyspaceEventsFlagsToString: 'A' for all of g$lshzxetd, then K, E and m."""
    flags = set(value.replace("A", "g$lshzxetd"))
    kinds = "A" if set("g$lshzxetd") <= flags else ""
    kinds += "".join(ch for ch in "g$lshzxetdn" if ch in flags and not kinds[:1] == "A")
    return kinds + "".join(ch for ch in "KEm" if ch in flags)


def _check_shm_name(value):
    if "/" in value or not value or len(value) > 200:
        raise ValueError("the segment name must be 1-200 characters without '/'")


_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru",
             "allkeys-lfu", "allkeys-random", "noeviction")



for _d in (
    Directive("bind", "list", ["127.0.0.1", "-::1"], runtime=False),
    Directive("port", "int", 7878, runtime=False, minimum=0, maximum=65535),
    Directive("unixsocket", "string", "", runtime=False),
    Directive("unixsocketperm", "int", 0, runtime=False),
    Directive("tcp-backlog", "int", 511, runtime=False, minimum=0, maximum=65535),
    Directive("tcp-keepalive", "int", 300, minimum=0, maximum=2 ** 31 - 1),
    Directive("protected-mode", "bool", True),
    Directive("requirepass", "string", "", sensitive=True),
    Directive("maxclients", "int", 10000, minimum=1, maximum=2 ** 31 - 1),
    Directive("timeout", "int", 0, minimum=0, maximum=2 ** 31 - 1),
    Directive("loglevel", "enum", "notice", choices=("debug", "verbose", "notice", "warning",
                                                      "nothing")),
    Directive("logfile", "string", "", runtime=False),
    Directive("pidfile", "string", "", runtime=False),
    Directive("daemonize", "bool", False, runtime=False),
    Directive("databases", "int", 1, runtime=False, minimum=1, maximum=1),
    Directive("proto-max-bulk-len", "memory", 512 << 20, minimum=1024, maximum=2 ** 63 - 1),
    Directive("client-query-buffer-limit", "memory", 1 << 30, minimum=1024 * 1024,
              maximum=2 ** 63 - 1),
    Directive("client-output-buffer-limit", "oblimit", dict(DEFAULT_OUTPUT_LIMITS)),
    Directive("slowlog-log-slower-than", "int", 10000, minimum=-1, maximum=2 ** 63 - 1),
    Directive("slowlog-max-len", "int", 128, minimum=0, maximum=2 ** 31 - 1),
    Directive("notify-keyspace-events", "string", "", validate=_check_notify,
              canonical=_notify_flags),
    Directive("hz", "int", 10, minimum=1, maximum=500),
    Directive("save", "string", "", validate=lambda v: _only(v, "", "save")),
    Directive("appendonly", "bool", False, validate=lambda v: _only(v, False, "appendonly")),
    Directive("role", "enum", "edge", runtime=False, choices=("edge", "relay", "relief")),
    Directive("workers", "string", "1", runtime=False,
              validate=lambda v: None if v == "auto" or (v.isdigit() and 1 <= int(v) <= 256)
              else _raise("argument must be 'auto' or a number from 1 to 256")),
    Directive("shm-name", "string", "", runtime=False, validate=lambda v: v and _check_shm_name(v)),
    Directive("shm-capacity", "int", 131072, runtime=False, minimum=16, maximum=2 ** 31 - 1),
    Directive("shm-record-size", "int", 512, runtime=False, minimum=64, maximum=1 << 20),
    Directive("shm-manage", "bool", True, runtime=False),
    Directive("active-expire-effort", "int", 1, minimum=1, maximum=10),
    # Read-mostly, for tools that check them: CONFIG GET maxmemory reports the segment's size.
    Directive("maxmemory", "memory", 0, validate=lambda v: _raise(
        "the table's size is set by shm-capacity x shm-record-size at startup; "
        "maxmemory cannot change it")),
    Directive("maxmemory-policy", "enum", "allkeys-lru", choices=_POLICIES,
              validate=lambda v: v == "allkeys-lru" or _raise(
                  "the table always evicts the least recently used key of all: "
                  "allkeys-lru is the only policy")),
    Directive("acl-pubsub-default", "enum", "resetchannels",
              choices=("allchannels", "resetchannels")),
    Directive("acllog-max-len", "int", 128, minimum=0, maximum=2 ** 63 - 1),
):
    register(_d)


def _check_tls_protocols(value):
    words = value.lower().split()
    if not words or any(w not in ("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3") for w in words):
        raise ValueError("tls-protocols takes TLSv1, TLSv1.1, TLSv1.2 and/or TLSv1.3")


def _check_tls_ciphersuites(value):
    # Refused rather than ignored: a setting that restricts nothing would be a silent hole.
    if value:
        raise ValueError("Python's ssl module cannot choose TLS 1.3 cipher suites; leave it "
                         "empty (restrict TLS 1.2 with tls-ciphers, or keep to TLS 1.2 with "
                         "tls-protocols TLSv1.2)")


def _check_user(args):
    from .acl import validate_user_lines  # needs the command table, loaded on first use
    validate_user_lines([args])


for _d in (
    # ACL users, one `user` line each (repeatable): user <name> [rules ...]
    Directive("user", "multi", [], runtime=False, validate=_check_user),
    # TLS, as Redis names it
    Directive("tls-port", "int", 0, runtime=False, minimum=0, maximum=65535),
    Directive("tls-cert-file", "string", ""),
    Directive("tls-key-file", "string", ""),
    Directive("tls-key-file-pass", "string", "", sensitive=True),
    Directive("tls-client-cert-file", "string", ""),
    Directive("tls-client-key-file", "string", ""),
    Directive("tls-client-key-file-pass", "string", "", sensitive=True),
    Directive("tls-ca-cert-file", "string", ""),
    Directive("tls-ca-cert-dir", "string", ""),
    Directive("tls-auth-clients", "enum", "yes", choices=("yes", "no", "optional")),
    Directive("tls-protocols", "string", "TLSv1.2 TLSv1.3", validate=_check_tls_protocols),
    Directive("tls-ciphers", "string", ""),
    Directive("tls-ciphersuites", "string", "", validate=_check_tls_ciphersuites),
    Directive("tls-prefer-server-ciphers", "bool", False),
    Directive("tls-session-caching", "bool", True),
    Directive("tls-handshake-timeout", "int", 5000, minimum=100, maximum=600000),
):
    register(_d)


def _only(value, allowed, name):
    if value != allowed:
        raise ValueError(f"respcache keeps no data on disk: '{name}' can only be "
                         f"{'empty' if allowed == '' else 'no'}")


def _raise(reason):
    raise ValueError(reason)
