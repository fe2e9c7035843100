"""A lock cycle on zk:// through the Python bindings: the same Client and
Lock API on the ZooKeeper backend, against a real ZooKeeper."""

from __future__ import annotations

from typing import Iterator

import pytest

from support import ZooKeeperServer, lock_cycle


@pytest.fixture(scope="module")
def zookeeper() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer(chroot="/distlock-py-test") as server:
        yield server


def test_a_lock_cycle_on_zookeeper(zookeeper: ZooKeeperServer) -> None:
    lock_cycle(zookeeper.url, "jobs:zk")
