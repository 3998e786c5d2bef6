"""Many processes on one segment: exact accounting under contention, and SIGKILL mid-write."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
import uuid

import pytest

from shm_lru import ShmLRU

CTX = multiprocessing.get_context("fork")


@pytest.fixture
def segment():
    name = f"shmproc-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    table = ShmLRU.create(name, capacity=4096, record_size=128)
    yield table
    table.unlink()
    table.close()


def _incr_worker(name, key_count, rounds):
    table = ShmLRU.attach(name)
    for i in range(rounds):
        table.incrby(b"counter:%d" % (i % key_count), 1)
    table.close()


def test_concurrent_incrby_loses_no_update(segment):
    procs = [CTX.Process(target=_incr_worker, args=(segment.name, 7, 3000)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    total = sum(int(segment.get(b"counter:%d" % i)) for i in range(7))
    assert total == 4 * 3000
    assert segment.check() == []


def _mixed_worker(name, seed, rounds):
    table = ShmLRU.attach(name)
    rng = random.Random(seed)
    for _ in range(rounds):
        key = b"k%d" % rng.randrange(300)
        op = rng.random()
        if op < 0.4:
            table.set(key, os.urandom(rng.randrange(1, 600)), ttl_ms=rng.choice([None, 5, 60000]))
        elif op < 0.7:
            table.get(key)
        elif op < 0.8:
            table.delete(key)
        elif op < 0.9:
            table.expire(key, rng.randrange(1, 100))
        else:
            table.sweep(50)
    table.close()


def test_processes_hammering_one_table_leave_it_consistent(segment):
    reader = segment.journal()
    procs = [CTX.Process(target=_mixed_worker, args=(segment.name, seed, 4000))
             for seed in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    assert segment.check() == []
    stats = segment.stats()
    assert stats["used_records"] + stats["free_records"] == 4096
    assert stats["lock_recoveries"] == 0
    # every set any process made is in the journal (or counted as lost by the reader)
    sets = 0
    lost_total = 0
    while True:
        lost, records = reader.read(4096)
        lost_total += lost
        sets += sum(1 for r in records if r[0] == 1)
        if not records and not lost:
            break
    assert lost_total > 0 or sets == stats["sets"]


def _writer_until_killed(name, seed, ready):
    table = ShmLRU.attach(name)
    rng = random.Random(seed)
    ready.set()
    while True:
        key = b"w%d" % rng.randrange(200)
        if rng.random() < 0.8:
            table.set(key, b"x" * rng.randrange(1, 900), ttl_ms=rng.choice([None, 60000]))
        else:
            table.delete(key)


def test_sigkill_in_the_middle_of_writes_never_wedges_or_corrupts(segment):
    """Kill a writer thousands of times at random moments; the lock recovers and check() is clean.

    A writer spends most of its time inside the table lock, so many of the kills land while it
    holds the lock and is halfway through an operation.
    """
    kills = 0
    deadline = time.monotonic() + 40
    while kills < 2000 and time.monotonic() < deadline:
        ready = CTX.Event()
        proc = CTX.Process(target=_writer_until_killed, args=(segment.name, kills, ready))
        proc.start()
        ready.wait(5)
        time.sleep(random.random() * 0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)
        kills += 1
        if kills % 100 == 0:
            assert segment.check() == [], f"after {kills} kills"
    assert kills >= 500
    # The survivor can still lock, read and write, and the table is whole.
    segment.set(b"after", b"all")
    assert segment.get(b"after") == b"all"
    assert segment.check() == []
    assert segment.stats()["lock_recoveries"] > 0  # some kills did land inside the lock


def _reader(name, keys, rounds, out):
    table = ShmLRU.attach(name)
    hits = 0
    for i in range(rounds):
        if table.get(keys[i % len(keys)]) is not None:
            hits += 1
    out.put(hits)
    table.close()


def test_readers_in_several_processes_see_every_value(segment):
    keys = [b"r%d" % i for i in range(500)]
    for key in keys:
        segment.set(key, b"value-" + key)
    out = CTX.Queue()
    procs = [CTX.Process(target=_reader, args=(segment.name, keys, 5000, out)) for _ in range(3)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(10)
    assert results == [5000, 5000, 5000]
