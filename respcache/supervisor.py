"""`workers N`: a supervisor process and N worker processes serving one port over one shm table.

The supervisor creates the segment (shm-manage yes), forks the workers (each binds the port with
SO_REUSEPORT and attaches the segment), restarts a worker that dies, and on SIGTERM stops them all
and releases the segment. It also routes the internal bus: each worker holds one end of a
socketpair; RESP arrays on it are either broadcasts (fanned out to every other worker) or requests
(fanned out, with the replies routed back to the asker). See bus.py for the worker side.

The supervisor runs no event loop of asyncio's, so forking a worker never copies a running loop.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import sys
import time

import hiredis

from .bus import STATE_OPS, encode_message

RESTART_BACKOFF = (0.1, 0.5, 1.0, 2.0, 5.0)
OUTBOX_LIMIT = 64 * 1024 * 1024


def worker_count(config) -> int:
    workers = config.values["workers"]
    return (os.cpu_count() or 1) if workers == "auto" else int(workers)


class WorkerSlot:
    def __init__(self, index):
        self.index = index
        self.pid = None
        self.sock = None
        self.reader = None
        self.outbox = bytearray()
        self.started = 0.0
        self.restarts = 0


class Supervisor:
    def __init__(self, config, log, factories=()):
        self.config = config
        self.factories = factories
        self.log = log
        self.count = worker_count(config)
        self.slots = [WorkerSlot(i) for i in range(self.count)]
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.table = None
        self.wake_r, self.wake_w = os.pipe()
        # CONFIG SET / ACL SETUSER / ACL DELUSER as the workers applied them (bus.STATE_OPS).
        self.state_changes = []

    # ---- lifecycle ----------------------------------------------------------------------------
    def run(self) -> int:
        from .server import open_table
        self.table, _ = open_table(self.config, self.log)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.log.info("Supervisor pid=%d starting %d workers", os.getpid(), self.count)
        for slot in self.slots:
            self._spawn(slot)
        try:
            self._loop()
        finally:
            self._stop_all()
            self.table.unlink()
            self.table.close()
            self.log.warning("respcache supervisor is now ready to exit, bye bye...")
        return 0

    def _on_signal(self, sig, frame):
        if sig in (signal.SIGTERM, signal.SIGINT) and not self.stopping:
            self.stopping = True

    def _spawn(self, slot):
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                parent_end.close()
                for other in self.slots:
                    if other.sock is not None:
                        other.sock.close()
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                code = run_worker(self.config, self.log, slot.index, self.count, child_end,
                                  self.factories)
            except BaseException:
                self.log.exception("worker %d crashed", slot.index)
            finally:
                sys.stdout.flush()
                os._exit(code)
        child_end.close()
        parent_end.setblocking(False)
        slot.pid, slot.sock = pid, parent_end
        slot.reader = hiredis.Reader()
        slot.outbox = bytearray()
        slot.started = time.monotonic()
        self.selector.register(parent_end, selectors.EVENT_READ, slot)
        self.log.info("Worker %d started, pid=%d", slot.index, pid)
        for change in self.state_changes:   # a restarted worker catches up, in order
            self._send(slot, [b"Q", b"-1", b"0", *change])
        if self.state_changes:
            self.log.info("Worker %d given %d runtime changes (CONFIG SET, ACL)", slot.index,
                          len(self.state_changes))

    def _loop(self):
        pending_restarts = {}
        while not self.stopping:
            for key, events in self.selector.select(timeout=0.5):
                if key.data is None:
                    self._drain_wakeup()
                    continue
                slot = key.data
                if events & selectors.EVENT_READ:
                    self._read(slot)
                if events & selectors.EVENT_WRITE and slot.sock is not None:
                    self._write(slot)
            self._reap(pending_restarts)
            now = time.monotonic()
            for slot, when in list(pending_restarts.items()):
                if now >= when and not self.stopping:
                    del pending_restarts[slot]
                    self._spawn(slot)

    def _drain_wakeup(self):
        try:
            os.read(self.wake_r, 512)
        except BlockingIOError:
            pass

    def _reap(self, pending_restarts):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for slot in self.slots:
                if slot.pid == pid:
                    self._lost(slot, status, pending_restarts)

    def _lost(self, slot, status, pending_restarts):
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit code {os.WEXITSTATUS(status)}")
        self._close_slot(slot)
        pid, slot.pid = slot.pid, None
        if self.stopping:
            return
        lived = time.monotonic() - slot.started
        slot.restarts = 0 if lived > 30 else slot.restarts + 1
        delay = RESTART_BACKOFF[min(slot.restarts, len(RESTART_BACKOFF) - 1)]
        self.log.warning("Worker %d (pid %d) exited with %s; restarting in %.1fs", slot.index,
                         pid, how, delay)
        self._broadcast(None, [b"B", b"%d" % slot.index, b"gone"])
        pending_restarts[slot] = time.monotonic() + delay

    def _close_slot(self, slot):
        if slot.sock is not None:
            try:
                self.selector.unregister(slot.sock)
            except (KeyError, ValueError):
                pass
            slot.sock.close()
            slot.sock = None

    def _stop_all(self):
        for slot in self.slots:
            if slot.pid:
                try:
                    os.kill(slot.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        alive = {s.pid for s in self.slots if s.pid}
        while alive and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                alive.discard(pid)
            else:
                time.sleep(0.02)
        for pid in alive:
            self.log.warning("Worker pid %d did not stop in time; killing it", pid)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for slot in self.slots:
            self._close_slot(slot)

    # ---- bus routing --------------------------------------------------------------------------
    def _read(self, slot):
        try:
            data = slot.sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_slot(slot)  # the worker is gone; _reap restarts it
            return
        slot.reader.feed(data)
        while True:
            try:
                message = slot.reader.gets()
            except hiredis.ProtocolError:
                self.log.warning("Bad bus message from worker %d; dropping its link", slot.index)
                self._close_slot(slot)
                return
            if message is False:
                return
            self._route(slot, message)

    def _route(self, slot, message):
        kind = message[0]
        origin = b"%d" % slot.index
        if kind == b"B":      # [B, event, args...] -> others get [B, origin, event, args...]
            self._broadcast(slot, [b"B", origin] + message[1:])
        elif kind == b"Q":    # [Q, req_id, op, args...] -> others get [Q, origin, req_id, ...]
            if message[2] in STATE_OPS:   # the asker applied it already (see bus.STATE_OPS)
                self.state_changes.append(message[2:])
            sent = self._broadcast(slot, [b"Q", origin] + message[1:])
            self._send(slot, [b"N", message[1], b"%d" % sent])
        elif kind == b"R":    # [R, asker, req_id, payload...] -> asker gets [R, origin, req_id, ...]
            asker = int(message[1])
            if 0 <= asker < len(self.slots):
                self._send(self.slots[asker], [b"R", origin] + message[2:])

    def _broadcast(self, source, message) -> int:
        data = encode_message(message)
        sent = 0
        for slot in self.slots:
            if slot is not source and slot.sock is not None:
                self._queue(slot, data)
                sent += 1
        return sent

    def _send(self, slot, message):
        if slot.sock is not None:
            self._queue(slot, encode_message(message))

    def _queue(self, slot, data):
        if len(slot.outbox) > OUTBOX_LIMIT:
            self.log.warning("Worker %d is not reading its bus; dropping a message", slot.index)
            return
        was_empty = not slot.outbox
        slot.outbox += data
        if was_empty:
            self._write(slot)

    def _write(self, slot):
        try:
            sent = slot.sock.send(slot.outbox)
            del slot.outbox[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                raise
            slot.outbox.clear()
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if slot.outbox else 0)
        if slot.sock is not None:
            self.selector.modify(slot.sock, events, slot)


def run_worker(config, log, index, count, bus_sock, factories=()) -> int:
    from shm_lru import ShmLRU

    from .cli import run_single
    from .server import segment_name
    table = ShmLRU.attach(segment_name(config))
    return run_single(config, log, table=table, owns_table=False,
                      worker=(index, count, bus_sock), factories=factories)


def run_workers(config, log, factories=()) -> int:
    return Supervisor(config, log, factories).run()
