"""A hypothesis state machine: the table against a pure-Python LRU with TTL and record accounting."""

from __future__ import annotations

import os
import uuid
from collections import OrderedDict

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import shm_lru
from shm_lru import ShmLRU

CAPACITY, RECORD = 7, 96
HEAD_ROOM = RECORD - shm_lru.HEAD_OVERHEAD
CHAIN_ROOM = RECORD - shm_lru.CHAIN_OVERHEAD
KEYS = st.sampled_from([b"a", b"b", b"c", b"d", b"e", b"f", b"gg", b"hhhh"])
# Small values and multi-record ones, so that eight keys overflow seven records often.
VALUES = st.one_of(st.binary(max_size=16), st.binary(min_size=RECORD, max_size=3 * RECORD))


def records_for(key, value):
    need = len(key) + len(value)
    if need <= HEAD_ROOM:
        return 1
    return 1 + -(-(need - HEAD_ROOM) // CHAIN_ROOM)


class TableModel(RuleBasedStateMachine):
    """No TTL runs out during a run (deadlines are far), so the model needs no clock; expiry
    itself is covered by the unit tests. LRU order is exact (touch_interval_ms=0)."""

    evictions_seen = 0

    def __init__(self):
        super().__init__()
        self.table = ShmLRU.create(f"shmmodel-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                                   capacity=CAPACITY, record_size=RECORD, touch_interval_ms=0)
        self.model = OrderedDict()   # key -> (value, type, has_ttl); last = most recent
        self.evictions = 0

    def teardown(self):
        TableModel.evictions_seen += self.evictions
        self.table.unlink()
        self.table.close()

    def _touch(self, key):
        self.model.move_to_end(key)

    def _used(self):
        return sum(records_for(k, v[0]) for k, v in self.model.items())

    def _store(self, key, value, type_code=0, has_ttl=False):
        self.model.pop(key, None)
        need = records_for(key, value)
        while CAPACITY - self._used() < need:
            self.model.popitem(last=False)
            self.evictions += 1
        self.model[key] = (value, type_code, has_ttl)

    @rule(key=KEYS, value=VALUES)
    def set(self, key, value):
        assert self.table.set(key, value) is True
        self._store(key, value)

    @rule(key=KEYS, value=VALUES)
    def set_with_ttl(self, key, value):
        assert self.table.set(key, value, ttl_ms=3_600_000) is True
        self._store(key, value, has_ttl=True)

    @rule(key=KEYS, value=VALUES)
    def set_nx(self, key, value):
        expected = key not in self.model
        assert self.table.set(key, value, nx=True) is expected
        if expected:
            self._store(key, value)

    @rule(key=KEYS, value=VALUES)
    def set_xx_keepttl(self, key, value):
        expected = key in self.model
        assert self.table.set(key, value, xx=True, keepttl=True) is expected
        if expected:
            self._store(key, value, has_ttl=self.model[key][2])

    @rule(key=KEYS, value=st.binary(max_size=20))
    def set_hash_typed(self, key, value):
        self.table.set(key, value, type=1)
        self._store(key, value, type_code=1)

    @rule(key=KEYS)
    def get(self, key):
        got = self.table.get(key)
        if key in self.model:
            assert got == self.model[key][0]
            self._touch(key)
        else:
            assert got is None

    @rule(key=KEYS)
    def delete(self, key):
        assert self.table.delete(key) is (key in self.model)
        self.model.pop(key, None)

    @rule(key=KEYS)
    def persist(self, key):
        had_ttl = key in self.model and self.model[key][2]
        assert self.table.persist(key) is bool(had_ttl)
        if key in self.model:
            value, type_code, _ = self.model[key]
            self.model[key] = (value, type_code, False)

    @rule(key=KEYS, delta=st.integers(-1000, 1000))
    def incrby(self, key, delta):
        entry = self.model.get(key)
        if entry is not None and entry[1] != 0:
            try:
                self.table.incrby(key, delta)
            except shm_lru.WrongTypeError:
                return
            raise AssertionError("incrby on a hash-typed entry must raise WrongTypeError")
        current = entry[0] if entry else b"0"
        try:
            number = int(current)
            valid = current == str(number).encode()
        except ValueError:
            valid = False
        if not valid:
            try:
                self.table.incrby(key, delta)
            except ValueError:
                return
            raise AssertionError(f"incrby on {current!r} must raise ValueError")
        assert self.table.incrby(key, delta) == number + delta
        self._store(key, str(number + delta).encode(), has_ttl=bool(entry and entry[2]))

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def flush(self):
        assert self.table.flush() == len(self.model)
        self.model.clear()

    @invariant()
    def agrees(self):
        assert len(self.table) == len(self.model)
        stats = self.table.stats()
        assert stats["used_records"] == self._used()
        assert stats["expiring"] == sum(1 for v in self.model.values() if v[2])
        assert stats["evictions"] == self.evictions
        for key, (value, type_code, has_ttl) in self.model.items():
            info = self.table.info(key)
            assert info is not None and info[0] == type_code
            assert (info[3] != 0) == has_ttl
        assert self.table.check() == []


TableModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
test_table_matches_model = TableModel.TestCase


def test_the_model_runs_exercised_eviction():
    """Guards the state machine itself: runs that never evict would prove nothing about LRU."""
    assert TableModel.evictions_seen > 0
