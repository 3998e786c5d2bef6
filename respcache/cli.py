"""`respcache-server [tier.conf] [--directive value ...]`: build a Config, then run it."""

from __future__ import annotations

import asyncio
import os
import sys

from .config import VERSION, Config, ConfigError

USAGE = """Usage: respcache-server [/path/to/tier.conf] [--directive value ...]
       respcache-server -v | --version
       respcache-server -h | --help

With no arguments: a standalone edge on 127.0.0.1:7878 over a shm segment named after the port.
Examples:
       respcache-server conf/edge.conf
       respcache-server --port 7900 --shm-capacity 262144
       respcache-server conf/edge.conf --loglevel verbose
"""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-v", "--version"):
        print(f"respcache-server v={VERSION} (Redis protocol compatible with 7.0)")
        return 0
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    path = None
    if argv and not argv[0].startswith("--"):
        path = argv.pop(0)
    factories = extension_factories()  # importing them registers their directives and commands
    try:
        config = Config.load(path, argv)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    return run(config, factories)


def run(config: Config, factories=()) -> int:
    from . import log as logmod
    from .supervisor import run_workers, worker_count

    values = config.values
    if values["daemonize"]:
        _daemonize()
    log = logmod.setup(values["loglevel"], values["logfile"])
    if values["tls-port"]:
        # Checked before a segment exists or a worker forks: a bad key or password stops here.
        from .tls import TLSConfigError, server_context
        try:
            server_context(values)
        except TLSConfigError as exc:
            log.warning("Failed to configure TLS: %s", exc)
            return 1
    if values["pidfile"]:
        with open(values["pidfile"], "w") as handle:
            handle.write(f"{os.getpid()}\n")
    try:
        if worker_count(config) > 1:
            return run_workers(config, log, factories)
        return run_single(config, log, factories=factories)
    finally:
        if values["pidfile"]:
            try:
                os.unlink(values["pidfile"])
            except OSError:
                pass


def run_single(config: Config, log, table=None, owns_table=False, worker=None,
               factories=()) -> int:
    from .server import Server

    install_event_loop()
    log.info("respcache %s starting, pid=%d, role=%s", VERSION, os.getpid(), config.values["role"])
    try:
        server = Server(config, log, table=table, owns_table=owns_table, worker=worker)
    except Exception as exc:  # segment errors name the segment and both values
        log.warning("Cannot open the keyspace: %s", exc)
        return 1
    for factory in factories:
        ext = factory(config)
        if ext is not None:
            server.extensions.append(ext)
    try:
        asyncio.run(server.serve())
    except OSError as exc:
        log.warning("%s", exc)
        server.release_table()
        return 1
    return 0


def extension_factories():
    """Plug-ins in the `respcache.extensions` entry point group (the tiers package).

    Looked up by entry point so that respcache never imports tiers itself.
    """
    from importlib.metadata import entry_points
    return [ep.load() for ep in entry_points(group="respcache.extensions")]


def install_event_loop():
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _daemonize():
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


if __name__ == "__main__":
    sys.exit(main())
