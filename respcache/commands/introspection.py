"""COMMAND: the command table as Redis 7 describes it (COUNT, INFO, DOCS, LIST, GETKEYS).

Everything comes from the registry: a command registered once shows up here with its arity,
flags, key positions, ACL categories and subcommands.
"""

from __future__ import annotations

from .. import errors, resp
from ..acl import CATEGORIES, categories_of
from ..errors import CommandError
from ..glob import glob_match
from .registry import COMMANDS, container, subcommand, unique_commands

_SHOWN_FLAGS = ("write", "readonly", "denyoom", "admin", "pubsub", "noscript", "blocking",
                "loading", "stale", "skip_monitor", "skip_slowlog", "fast", "no_auth",
                "may_replicate", "no_multi")
_FLAG_ALIASES = {"noauth": "no_auth", "no-multi": "no_multi", "skip-slowlog": "skip_slowlog"}


def _flags(cmd):
    flags = [_FLAG_ALIASES.get(f, f) for f in cmd.flags]
    return [f for f in _SHOWN_FLAGS if f in flags]


def command_info(cmd, proto=2) -> bytes:
    """Redis 7.0's addReplyCommandInfo: in RESP3 flags, ACL categories, tips and key specs are
    sets, and so are the subcommands of a command that has none (an array otherwise).
    Categories come in Redis's order (ACL CAT's), not sorted."""
    subs = [command_info(sub, proto) for sub in cmd.subcommands.values()]
    name = cmd.fullname.encode()
    # A container (CONFIG, CLIENT) has no flags of its own, so Redis shows it as @slow only;
    # its subcommands carry the real categories.
    categories = {"slow"} if cmd.subcommands else categories_of(cmd)
    return resp.array([
        resp.bulk(name), resp.integer(cmd.arity),
        resp.set_of([resp.simple(f) for f in _flags(cmd)], proto),
        resp.integer(cmd.first_key), resp.integer(cmd.last_key), resp.integer(cmd.step),
        resp.set_of([resp.simple("@" + c) for c in CATEGORIES if c in categories], proto),
        resp.set_of([], proto), resp.set_of([], proto),
        resp.array(subs) if subs else resp.set_of([], proto),
    ])


def command_docs(cmd, proto) -> bytes:
    fields = [(resp.bulk(b"summary"), resp.bulk((cmd.summary or cmd.fullname).encode())),
              (resp.bulk(b"since"), resp.bulk(cmd.since.encode())),
              (resp.bulk(b"group"), resp.bulk(cmd.group.encode()))]
    if cmd.subcommands:
        fields.append((resp.bulk(b"subcommands"), resp.map_of(
            [(resp.bulk(s.fullname.encode()), command_docs(s, proto))
             for s in cmd.subcommands.values()], proto)))
    return resp.map_of(fields, proto)


def _command_all(conn, args):
    return resp.array([command_info(cmd, conn.proto) for cmd in unique_commands()])


COMMAND = container("command", -1, "loading stale", group="server")
_container_dispatch = COMMAND.handler


def _command(conn, args):
    # Plain COMMAND lists everything; with a subcommand it dispatches like any container.
    if len(args) == 1:
        return _command_all(conn, args)
    return _container_dispatch(conn, args)


COMMAND.handler = _command


@subcommand(COMMAND, "count", 2, "loading stale")
def command_count(conn, args):
    return resp.integer(len(unique_commands()))


@subcommand(COMMAND, "info", -2, "loading stale")
def command_info_cmd(conn, args):
    if len(args) == 2:
        return _command_all(conn, args)
    out = []
    for name in args[2:]:
        cmd = COMMANDS.get(name.lower())
        out.append(command_info(cmd, conn.proto) if cmd else resp.NIL[conn.proto])
    return resp.array(out)


@subcommand(COMMAND, "docs", -2, "loading stale")
def command_docs_cmd(conn, args):
    if len(args) == 2:
        wanted = unique_commands()
    else:
        wanted = [COMMANDS[n.lower()] for n in args[2:] if n.lower() in COMMANDS]
    return resp.map_of([(resp.bulk(c.name.encode()), command_docs(c, conn.proto))
                        for c in wanted], conn.proto)


@subcommand(COMMAND, "list", -2, "loading stale")
def command_list(conn, args):
    names = [c.name.encode() for c in unique_commands()]
    if len(args) > 2:
        if len(args) != 5 or args[2].upper() != b"FILTERBY":
            raise CommandError(errors.SYNTAX)
        kind, value = args[3].upper(), args[4]
        if kind == b"PATTERN":
            names = [n for n in names if glob_match(value.lower(), n)]
        elif kind == b"ACLCAT":
            category = value.decode("utf-8", "replace").lower()
            names = [c.name.encode() for c in unique_commands() if category in categories_of(c)]
        elif kind == b"MODULE":
            names = []
        else:
            raise CommandError(errors.SYNTAX)
    return resp.bulk_array(names)


@subcommand(COMMAND, "getkeys", -3, "loading stale")
def command_getkeys(conn, args):
    cmd = COMMANDS.get(args[2].lower())
    if cmd is None:
        raise CommandError("ERR Invalid command specified")
    if not cmd.arity_ok(len(args) - 2):
        raise CommandError("ERR Invalid number of arguments specified for command")
    keys = cmd.keys(args[2:])
    if not keys:
        raise CommandError("ERR The command has no key arguments")
    return resp.bulk_array(keys)


@subcommand(COMMAND, "help", 2)
def command_help(conn, args):
    lines = ["COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             "(no subcommand)", "    Return details about all Redis commands.", "COUNT",
             "    Return the total number of commands in this Redis server.", "LIST",
             "    Return a list of all commands in this Redis server.",
             "INFO [<command-name> ...]", "    Return details about multiple Redis commands.",
             "DOCS [<command-name> ...]", "    Return documentation details about multiple "
             "Redis commands.", "GETKEYS <full-command>",
             "    Return the keys from a full Redis command.", "HELP", "    Print this help."]
    return resp.array([resp.simple(line) for line in lines])



