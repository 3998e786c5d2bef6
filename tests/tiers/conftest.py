"""Fixtures for the tiers tests: a Topology that is torn down (by PID) after each test."""

import pytest

from tierlib import Topology


@pytest.fixture
def topo(tmp_path):
    topology = Topology(tmp_path)
    yield topology
    topology.stop_all()
