"""ACL: WHOAMI LIST USERS CAT SETUSER DELUSER GETUSER LOG HELP, replies as Redis 7.0 gives them.

Users live in each process (server.acl). With `workers N`, SETUSER and DELUSER apply here first
(so a bad rule is refused before anything changes anywhere), then on every other worker over the
bus, as CONFIG SET does; ACL LOG gathers every worker's entries.

After a change, connections logged in as that user follow it at once (Redis's clients hold the
user object): their restrictions are re-derived, a subscriber whose channels the user may no
longer use is disconnected, and every connection of a deleted user is disconnected.
"""

from __future__ import annotations

import time

from .. import errors, resp
from ..acl import CATEGORIES, RuleError
from ..acl_log import AclLogEntry
from ..bus import across_workers, bus_op
from ..errors import CommandError
from .args import parse_int
from .registry import container, subcommand

ACL = container("acl", -2, "", group="server")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _combine_ok(local, peers):
    failed = [p for p in peers if p]
    return resp.error(failed[0]) if failed else resp.OK


# ---- applying changes (here and on the other workers) -------------------------------------------
def set_user(server, name: str, rules) -> str | None:
    """Apply ACL SETUSER; returns the error line, or None once the user and its connections
    are updated."""
    try:
        server.acl.set_user(name, rules)
    except RuleError as exc:
        return errors.ACL_SETUSER_RULE.format(exc.rule, errors.ACL_RULE_REASONS[exc.kind])
    _follow_user(server, name)
    return None


def delete_users(server, names, caller=None) -> tuple[int, bool]:
    """Apply ACL DELUSER; returns (users deleted, whether the caller itself must go)."""
    deleted = server.acl.delete_users(names)
    caller_goes = False
    for name in deleted:
        caller_goes |= _follow_user(server, name, caller)
    return len(deleted), caller_goes


def _follow_user(server, name: str, caller=None) -> bool:
    """Bring the connections logged in as `name` in line with what it is now. Returns True when
    `caller` must be closed after its reply (the others are closed here)."""
    user = server.acl.users.get(name)
    caller_goes = False
    for conn in list(server.clients.values()):
        if conn.user != name or not conn.authenticated:
            continue
        if user is not None:
            conn.acl_user = None if user.unrestricted() else user
            if user.all_channels or _subscriptions_allowed(conn, user):
                continue
        # As Redis: back to an unauthenticated default user, then closed.
        conn.authenticated = False
        conn.user = "default"
        default = server.acl.users["default"]
        conn.acl_user = None if default.unrestricted() else default
        if conn is caller:
            caller_goes = True
        else:
            conn.close()
    return caller_goes


def _subscriptions_allowed(conn, user) -> bool:
    return (all(user.may_use_channel(c, False) for c in conn.channels)
            and all(user.may_use_channel(p, True) for p in conn.patterns))


def _reply_then_close(conn, reply):
    """The caller deleted its own user: its reply goes out, then the connection closes and
    nothing it pipelined after runs (Redis's CLOSE_AFTER_COMMAND). A deferred reply makes the
    connection send what came before and stop reading; the reply is written here, then closed."""
    final = conn.server.loop.create_future()

    def finish(value):
        if not conn.closing:
            conn.transport.write(value)
            conn.close()
        final.set_result(b"")

    if isinstance(reply, bytes):
        conn.server.loop.call_soon(finish, reply)
    else:
        reply.add_done_callback(lambda done: finish(
            done.result() if done.exception() is None else resp.error(str(done.exception()))))
    return final


@bus_op(b"acl-setuser")
def _peer_setuser(server, origin, args):
    return set_user(server, _text(args[0]), [_text(a) for a in args[1:]])


@bus_op(b"acl-deluser")
def _peer_deluser(server, origin, args):
    return delete_users(server, [_text(a) for a in args])[0]


# ---- subcommands --------------------------------------------------------------------------------
@subcommand(ACL, "whoami", 2, "noscript loading stale")
def acl_whoami(conn, args):
    return resp.bulk(conn.user.encode())


def _sorted_users(server):
    return sorted(server.acl.users.values(), key=lambda u: u.name.encode("utf-8",
                                                                          "surrogateescape"))


@subcommand(ACL, "list", 2, "admin noscript loading stale")
def acl_list(conn, args):
    names = conn.server.acl.names
    return resp.bulk_array([f"user {u.name} {u.describe(names)}".encode("utf-8", "surrogateescape")
                            for u in _sorted_users(conn.server)])


@subcommand(ACL, "users", 2, "admin noscript loading stale")
def acl_users(conn, args):
    return resp.bulk_array([u.name.encode("utf-8", "surrogateescape")
                            for u in _sorted_users(conn.server)])


@subcommand(ACL, "cat", -2, "noscript loading stale")
def acl_cat(conn, args):
    if len(args) > 3:
        raise CommandError(errors.SUBCOMMAND_SYNTAX.format(_text(args[1])[:128], "ACL"))
    if len(args) == 2:
        return resp.bulk_array([c.encode() for c in CATEGORIES])
    category = _text(args[2]).lower()
    if category not in CATEGORIES:
        raise CommandError(errors.ACL_UNKNOWN_CATEGORY.format(_text(args[2])))
    return resp.bulk_array([name.encode() for name, cats in conn.server.acl.names.items()
                            if category in cats])


@subcommand(ACL, "setuser", -3, "admin noscript loading stale")
def acl_setuser(conn, args):
    name = _text(args[2])
    if any(c.isspace() or c == "\0" for c in name):
        raise CommandError(errors.ACL_BAD_USERNAME)
    error = set_user(conn.server, name, [_text(a) for a in args[3:]])
    if error is not None:
        raise CommandError(error)
    return across_workers(conn.server, b"acl-setuser", args[2:], None, _combine_ok)


@subcommand(ACL, "deluser", -3, "admin noscript loading stale")
def acl_deluser(conn, args):
    names = [_text(a) for a in args[2:]]
    if "default" in names:
        raise CommandError(errors.ACL_DELETE_DEFAULT)
    count, caller_goes = delete_users(conn.server, names, caller=conn)
    reply = across_workers(conn.server, b"acl-deluser", args[2:], count,
                           lambda local, peers: resp.integer(local))
    return _reply_then_close(conn, reply) if caller_goes else reply


@subcommand(ACL, "getuser", 3, "admin noscript loading stale")
def acl_getuser(conn, args):
    user = conn.server.acl.users.get(_text(args[2]))
    if user is None:
        return resp.NIL[conn.proto]
    fields = [(b"flags", resp.set_of([resp.bulk(f.encode()) for f in user.flags()], conn.proto)),
              (b"passwords", resp.bulk_array([h.encode() for h in user.password_hashes])),
              (b"commands", resp.bulk(user.commands_text(conn.server.acl.names).encode())),
              (b"keys", resp.bulk(user.keys_text().encode("utf-8", "surrogateescape"))),
              (b"channels", resp.bulk(user.channels_text().encode("utf-8", "surrogateescape"))),
              (b"selectors", resp.EMPTY_ARRAY)]
    return resp.map_of([(resp.bulk(k), v) for k, v in fields], conn.proto)


# ---- LOG ----------------------------------------------------------------------------------------
@bus_op(b"acl-log")
def _peer_log(server, origin, args):
    return [e.to_json() for e in server.acl.log.newest(int(args[0]))]


@bus_op(b"acl-log-reset")
def _peer_log_reset(server, origin, args):
    server.acl.log.reset()
    return 0


def _render_entry(entry, now_ms, proto) -> bytes:
    age = b"%.17g" % ((now_ms - entry.ctime_ms) / 1000)   # Redis: addReplyDouble, %.17g
    fields = [(b"count", resp.integer(entry.count)),
              (b"reason", resp.bulk(entry.reason.encode())),
              (b"context", resp.bulk(entry.context.encode())),
              (b"object", resp.bulk(entry.object)),
              (b"username", resp.bulk(entry.username.encode("utf-8", "surrogateescape"))),
              (b"age-seconds", b",%b\r\n" % age if proto == 3 else resp.bulk(age)),
              (b"client-info", resp.bulk(entry.client_info.encode("utf-8", "replace")))]
    return resp.map_of([(resp.bulk(k), v) for k, v in fields], proto)


@subcommand(ACL, "log", -2, "admin noscript loading stale")
def acl_log(conn, args):
    if len(args) > 3:
        raise CommandError(errors.SUBCOMMAND_SYNTAX.format(_text(args[1])[:128], "ACL"))
    server = conn.server
    if len(args) == 3 and args[2].lower() == b"reset":
        server.acl.log.reset()
        return across_workers(server, b"acl-log-reset", (), 0, lambda local, peers: resp.OK)
    count = parse_int(args[2]) if len(args) == 3 else 10
    local = [e.to_json() for e in server.acl.log.newest(count)]

    def combine(local, peers):
        rows = local + [row for peer in peers for row in peer]
        entries = sorted((AclLogEntry.from_json(row) for row in rows),
                         key=lambda e: e.created_ms, reverse=True)[:max(0, count)]
        now_ms = int(time.time() * 1000)
        return resp.array([_render_entry(e, now_ms, conn.proto) for e in entries])
    return across_workers(server, b"acl-log", (b"%d" % count,), local, combine)


@subcommand(ACL, "help", 2, "loading stale")
def acl_help(conn, args):
    lines = ["ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             "CAT [<category>]",
             "    List all commands that belong to <category>, or all command categories",
             "    when no category is specified.",
             "DELUSER <username> [<username> ...]",
             "    Delete a list of users.",
             "GETUSER <username>",
             "    Get the user's details.",
             "LIST",
             "    Show users details in config file format.",
             "LOG [<count> | RESET]",
             "    Show the ACL log entries.",
             "SETUSER <username> <attribute> [<attribute> ...]",
             "    Create or modify a user with the specified attributes.",
             "USERS",
             "    List all the registered usernames.",
             "WHOAMI",
             "    Return the current connection username.",
             "HELP",
             "    Prints this help."]
    return resp.array([resp.simple(line) for line in lines])
