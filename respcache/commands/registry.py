"""The command table: every command is registered once with its name, arity and flags.

As in Redis's command table, arity counts the command name: N means exactly N arguments, -N means
at least N. Flags use Redis's names (write, readonly, fast, admin, pubsub, noauth, ...) and feed both
dispatch (what may run before AUTH, inside MULTI, in a subscribed RESP2 connection) and COMMAND INFO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .. import _fastpath, errors


# Commands that read or write keys and nothing else: no connection state, no server state.
DATA_GROUPS = ("string", "generic", "hash")
_next_index = 0


@dataclass(eq=False)
class Command:
    name: str
    handler: Callable
    arity: int
    flags: frozenset
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    group: str = "generic"
    summary: str = ""
    since: str = "1.0.0"
    parent: "Command | None" = None
    subcommands: dict = field(default_factory=dict)
    # Dispatch reads these on every call; plain attributes are cheaper than set lookups.
    noauth: bool = False
    pubsub_ok: bool = False
    runs_in_multi: bool = False      # MULTI/EXEC/DISCARD/WATCH/... are not queued
    is_write: bool = False
    plain: bool = False              # a data command: Connection._drain may take its short path
    min_args: int = 0                # arity as a range: min_args <= len(argv) <= max_args
    max_args: int = 0
    index: int = -1                  # its counters in respcache._fastpath

    def __post_init__(self):
        global _next_index
        self.index, _next_index = _next_index, _next_index + 1
        if self.index >= _fastpath.MAX_COMMANDS:
            raise RuntimeError("too many commands for respcache._fastpath's counters")
        self.noauth = "noauth" in self.flags
        self.pubsub_ok = "pubsub-ok" in self.flags
        self.runs_in_multi = "no-multi" in self.flags
        self.is_write = "write" in self.flags
        self.plain = self.group in DATA_GROUPS and self.parent is None
        self.min_args = abs(self.arity)
        self.max_args = self.arity if self.arity > 0 else 1 << 62

    @property
    def calls(self) -> int:
        return _fastpath.stats(self.index)[0]

    @property
    def usec(self) -> int:
        return _fastpath.stats(self.index)[1]

    def entry(self) -> _fastpath.Entry:
        """What the C loop (Connection._drain) needs of a plain command."""
        return _fastpath.Entry(self.index, self.min_args, self.max_args, self.first_key > 0,
                               self.handler, self, self.name)

    @property
    def fullname(self) -> str:
        return f"{self.parent.name}|{self.name}" if self.parent else self.name

    def keys(self, args) -> list:
        """The key arguments, from the table's first/last/step (last -1 = to the end)."""
        if self.first_key <= 0 or len(args) <= self.first_key:
            return []
        last = self.last_key if self.last_key > 0 else len(args) + self.last_key
        return args[self.first_key:last + 1:self.step or 1]

    def arity_ok(self, argc: int) -> bool:
        return self.min_args <= argc <= self.max_args


COMMANDS: dict[bytes, Command] = {}
# The `plain` ones, as Connection._drain's C loop looks them up (bytes name -> Entry).
PLAIN_COMMANDS: dict[bytes, _fastpath.Entry] = {}
GROUPS = ("string", "generic", "hash", "pubsub", "transactions", "connection", "server")


def command(name, arity, flags="", keys=(0, 0, 0), group="generic", summary="", since="1.0.0"):
    """Register a top-level command. Usage: @command("get", 2, "readonly fast", keys=(1, 1, 1))."""
    def register(handler):
        if name.encode() in COMMANDS:
            raise RuntimeError(f"command {name} registered twice")
        cmd = Command(name, handler, arity, frozenset(flags.split()), *keys,
                      group=group, summary=summary, since=since)
        for spelling in (name.encode(), name.upper().encode()):
            COMMANDS[spelling] = cmd
            if cmd.plain:
                PLAIN_COMMANDS[spelling] = cmd.entry()
        return handler
    return register


def container(name, arity=-2, flags="", group="server", summary="", since="1.0.0"):
    """Register a command made of subcommands (CONFIG, CLIENT, ...); dispatch goes to the child."""
    def dispatch(conn, args):
        sub = parent.subcommands.get(args[1].lower())
        if sub is None:
            raise errors.CommandError(errors.unknown_subcommand(args[1], name))
        if not sub.arity_ok(len(args)):
            raise errors.CommandError(errors.wrong_arity(sub.fullname))
        return sub.handler(conn, args)
    parent = Command(name, dispatch, arity, frozenset(flags.split()), group=group,
                     summary=summary, since=since)
    COMMANDS[name.encode()] = parent
    COMMANDS[name.upper().encode()] = parent
    return parent


def subcommand(parent: Command, name, arity, flags="", keys=(0, 0, 0), summary="", since="1.0.0"):
    """Register PARENT NAME; arity counts the whole argv (CONFIG GET is -3), as Redis does."""
    def register(handler):
        sub = Command(name, handler, arity, frozenset(flags.split()), *keys, group=parent.group,
                      summary=summary, since=since, parent=parent)
        parent.subcommands[name.encode()] = sub
        return handler
    return register


def lookup(name: bytes) -> "Command | None":
    cmd = COMMANDS.get(name)
    if cmd is None:
        cmd = COMMANDS.get(name.lower())
    return cmd


def reset_stats():
    """CONFIG RESETSTAT: every command's calls and usec back to zero."""
    _fastpath.reset()


def unique_commands():
    seen = {}
    for cmd in COMMANDS.values():
        seen[cmd.name] = cmd
    return list(seen.values())
