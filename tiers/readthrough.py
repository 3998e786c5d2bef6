"""Read-through for a server's miss handler: fetch what the table lacks, once per key, then run.

`before_command(conn, cmd, args)` (called by respcache's Connection.execute for keyed commands)
returns None when every key is in the table (or the command overwrites blindly), else a Future of
the encoded reply: missing keys are fetched downstream -- one fetch per key however many clients
ask at once (no stampede), batched across clients within one loop turn -- promoted into the table
with their absolute expiry (`nx`, so a local write made meanwhile wins), and the command then runs
against the table. The reply waits at most `timeout` seconds; after that the command runs as a miss.
"""

from __future__ import annotations

import asyncio

# Commands that replace a key's value without looking at it: nothing to fetch first. (DEL and
# UNLINK are not blind: their reply counts keys that may live downstream only.)
BLIND = frozenset({"setex", "psetex", "mset", "flushall", "flushdb"})
SET_READS = frozenset({b"get", b"keepttl", b"nx", b"xx"})
FETCH_BATCH = 256


class ReadThrough:
    def __init__(self, server, timeout_ms):
        self.server = server
        self.table = server.table
        self.loop = server.loop
        self.timeout = timeout_ms / 1000.0
        self.inflight = {}           # key -> Future set when its fetch is over
        self.queue = []
        self.flush_scheduled = False
        self.tasks = set()
        self.fetches = 0             # downstream round trips
        self.keys_fetched = 0
        self.found = 0
        self.promotions = 0
        self.timeouts = 0
        self.errors = 0

    # ---- hooks for the owner ---------------------------------------------------------------------
    def enabled(self) -> bool:
        return True

    def skip(self, key) -> bool:
        """True when a key must not be fetched (a local delete not yet downstream)."""
        return False

    async def fetch(self, keys) -> dict:
        raise NotImplementedError

    def before_fetch(self, keys):
        pass

    def admit(self, key, record) -> bool | None:
        """True: promote; False: drop the answer; None: fetch again (it changed meanwhile)."""
        return True

    def promoted(self, key):
        pass

    def after(self, cmd, keys):
        """Called after a deferred command ran, with the keys that were fetched for it."""

    # ---- the miss handler ------------------------------------------------------------------------
    def before_command(self, conn, cmd, args):
        if not self.enabled():
            return None
        name = cmd.name
        if name in BLIND or (name == "set" and not any(a.lower() in SET_READS for a in args[3:])):
            return None
        info = self.table.info
        missing = None
        keys = cmd.keys(args)
        for key in keys:
            if info(key) is None:
                if missing is None:
                    missing = [key]
                elif key not in missing:
                    missing.append(key)
        if missing is None:
            return None
        if len(keys) > 1:
            # The keys we have become the most recent, so promoting the others cannot push them
            # out before the command runs.
            touch = self.table.touch
            for key in keys:
                if key not in missing:
                    touch(key)
        self.before_fetch(missing)
        waits = []
        for key in missing:
            if self.skip(key):
                continue
            fut = self.inflight.get(key)
            if fut is None:
                fut = self.loop.create_future()
                self.inflight[key] = fut
                self.queue.append(key)
            waits.append(fut)
        if not waits:
            return None
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)
        return self._deferred(conn, cmd, args, waits, missing)

    def _deferred(self, conn, cmd, args, waits, missing):
        result = self.loop.create_future()
        state = {"left": len(waits), "timer": None}

        def run(_=None):
            if result.done():
                return
            if state["timer"] is not None:
                state["timer"].cancel()
            if conn.closing:
                result.cancel()
                return
            try:
                reply = conn.call(cmd, args)
                self.after(cmd, missing)
            except Exception as exc:  # conn.call already maps command errors to replies
                result.set_exception(exc)
                return
            if isinstance(reply, asyncio.Future):
                reply.add_done_callback(lambda f: _chain(f, result))
            else:
                result.set_result(reply)

        def one_done(_):
            state["left"] -= 1
            if state["left"] == 0:
                run()

        def timed_out():
            if not result.done():
                self.timeouts += 1
                run()

        for fut in waits:
            fut.add_done_callback(one_done)
        if not result.done():
            state["timer"] = self.loop.call_later(self.timeout, timed_out)
        return result

    def _flush(self):
        self.flush_scheduled = False
        while self.queue:
            batch, self.queue = self.queue[:FETCH_BATCH], self.queue[FETCH_BATCH:]
            self._start(batch, True)

    def start_fetch(self, keys) -> asyncio.Future:
        """A Future of {key: (value, type, expire_at_ms)}; owners with a callback-level fetch
        (the edge's link) override this to spare a task per batch."""
        return asyncio.ensure_future(self.fetch(keys))

    def _start(self, keys, again):
        self.fetches += 1
        self.keys_fetched += len(keys)
        try:
            fut = self.start_fetch(keys)
        except Exception:
            self.errors += 1
            self._finish(keys, {}, again)
            return
        # The command stops waiting after `timeout`; the fetch itself may finish a bit later and
        # still promote (it is the same object), but never holds its keys on a stalled peer.
        timer = self.loop.call_later(max(1.0, 10 * self.timeout), fut.cancel)
        self.tasks.add(fut)

        def done(f):
            timer.cancel()
            self.tasks.discard(f)
            if f.cancelled() or f.exception() is not None:
                self.errors += 1
                found = {}
            else:
                found = f.result()
            self._finish(keys, found, again)
        fut.add_done_callback(done)

    def _finish(self, keys, found, again):
        refetch = []
        table = self.table
        now = table.now_ms() if found else 0
        for key in keys:
            record = found.get(key)
            if record is not None:
                value, type_code, expire_at = record
                verdict = self.admit(key, record)
                if verdict is None and again:
                    refetch.append(key)
                    continue
                if verdict and (expire_at == 0 or expire_at > now):
                    self.found += 1
                    try:
                        stored = table.set(key, value, expire_at_ms=expire_at or None,
                                           type=type_code, nx=True)
                    except (ValueError, TypeError):
                        stored = False
                    if stored:
                        self.promotions += 1
                        self.promoted(key)
            fut = self.inflight.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        if refetch:
            self._start(refetch, False)

    async def fetch_and_promote(self, keys):
        """Fetch keys not yet in flight and promote what is found (edge prefetch)."""
        keys = [k for k in keys if k not in self.inflight]
        if not keys:
            return
        waits = []
        for key in keys:
            self.inflight[key] = fut = self.loop.create_future()
            waits.append(fut)
        self._start(keys, True)
        await asyncio.gather(*waits)

    def info(self) -> list:
        return [
            ("fetches", self.fetches),
            ("keys_fetched", self.keys_fetched),
            ("keys_found", self.found),
            ("promotions", self.promotions),
            ("fetch_timeouts", self.timeouts),
            ("fetch_errors", self.errors),
            ("fetches_in_flight", len(self.inflight)),
        ]

    async def stop(self):
        for task in list(self.tasks):
            task.cancel()
        for fut in self.inflight.values():
            if not fut.done():
                fut.set_result(None)
        self.inflight.clear()


def _chain(source, target):
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


def table_fields(table) -> list:
    """keys, capacity and the table's hit/miss counters, for INFO tiers and the status table."""
    try:
        stats = table.stats()
    except Exception:
        stats = {}
    return [("keys", len(table)), ("capacity", table.capacity),
            ("table_hits", stats.get("hits", 0)), ("table_misses", stats.get("misses", 0)),
            ("table_evictions", stats.get("evictions", 0))]
