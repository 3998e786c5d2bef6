"""Transactions: MULTI EXEC DISCARD WATCH UNWATCH.

WATCH remembers each key's version in the shm table; EXEC aborts when any changed. Versions change
on every write whoever makes it -- another connection, another worker, a local app process writing
shared memory -- so optimistic locking holds across processes. EXEC runs the queued commands one
after another on this worker's event loop, so no other client of this worker interleaves; writes
by other processes can (there is no cross-process transaction lock).
"""

from __future__ import annotations

from .. import errors, resp
from ..errors import CommandError
from .registry import command


def discard_transaction(conn):
    """Leave MULTI and forget the WATCHed keys (EXEC, DISCARD, a refused EXEC)."""
    conn.multi = None
    conn.multi_failed = False
    conn.watched = None


@command("multi", 1, "noscript loading stale fast no-multi", group="transactions")
def multi(conn, args):
    if conn.multi is not None:
        raise CommandError(errors.NESTED_MULTI)
    conn.multi = []
    conn.multi_failed = False
    return resp.OK


@command("exec", 1, "noscript loading stale skip-slowlog no-multi", group="transactions")
def exec_(conn, args):
    if conn.multi is None:
        raise CommandError(errors.EXEC_WITHOUT_MULTI)
    queued, failed, watched = conn.multi, conn.multi_failed, conn.watched
    discard_transaction(conn)
    if failed:
        return resp.error(errors.EXECABORT)
    if watched:
        version = conn.table.version
        if any(version(key) != seen for key, seen in watched.items()):
            return resp.NIL_ARRAY[conn.proto]
    replies = []
    for cmd, cmd_args in queued:
        if cmd.name == "monitor":  # Redis's EXEC denies blocking, and MONITOR with it
            replies.append(resp.error(errors.MONITOR_IN_EXEC))
            continue
        if conn.acl_user is not None:
            # Checked again, as Redis does: the user's rules may have changed since queuing.
            refusal = conn.acl_refusal(cmd, cmd_args)
            if refusal is not None:
                conn.acl_log_denial(cmd, *refusal, context="multi")
                reply = resp.error(errors.EXEC_ACL_CHANGED.format(
                    errors.EXEC_ACL_REASONS[refusal[0]]))
                conn.server.count_error_reply(reply)
                replies.append(reply)
                continue
        reply = conn.call(cmd, cmd_args)
        if reply.__class__ is not bytes:
            # A command that would wait (a downstream fetch, DEBUG SLEEP) cannot inside EXEC.
            reply.cancel()
            reply = resp.error(f"ERR '{cmd.name}' cannot wait inside a transaction")
        if reply[:1] == b"-":  # Redis counts each error inside EXEC's reply
            conn.server.count_error_reply(reply)
        replies.append(reply)
    return resp.array(replies)


@command("discard", 1, "noscript loading stale fast no-multi", group="transactions")
def discard(conn, args):
    if conn.multi is None:
        raise CommandError(errors.DISCARD_WITHOUT_MULTI)
    discard_transaction(conn)
    return resp.OK


@command("watch", -2, "noscript loading stale fast no-multi", keys=(1, -1, 1),
         group="transactions")
def watch(conn, args):
    if conn.multi is not None:
        raise CommandError(errors.WATCH_IN_MULTI)
    if conn.watched is None:
        conn.watched = {}
    version = conn.table.version
    for key in args[1:]:
        if key not in conn.watched:  # watching again keeps the first version seen
            conn.watched[key] = version(key)
    return resp.OK


@command("unwatch", 1, "noscript loading stale fast", group="transactions")
def unwatch(conn, args):
    conn.watched = None
    return resp.OK
