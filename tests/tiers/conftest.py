"""Fixtures for the tiers tests: a Topology that is torn down (by PID) after each test."""

import os
import sys

import pytest

from tierlib import ROOT, Topology

sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_certs import make_all  # noqa: E402


@pytest.fixture
def topo(tmp_path):
    topology = Topology(tmp_path)
    yield topology
    topology.stop_all()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A throwaway CA, a server certificate, a client one ('node'), and a rogue pair signed by
    another CA (tools/make_certs.py)."""
    directory = str(tmp_path_factory.mktemp("tier-certs"))
    make_all(directory, clients=("node",), other_ca=True)
    return directory
