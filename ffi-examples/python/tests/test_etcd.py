"""A lock cycle on etcd:// through the Python bindings: the same Client
and Lock API on the etcd backend, against a real etcd."""

from __future__ import annotations

from typing import Iterator

import pytest

import distlock
from support import EtcdServer, lock_cycle


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


def test_a_lock_cycle_on_etcd(etcd: EtcdServer) -> None:
    lock_cycle(etcd.url, "jobs:etcd")


def test_etcd_urls_name_one_cluster(etcd: EtcdServer) -> None:
    with pytest.raises(distlock.InvalidArgument) as err:
        distlock.check(cluster=[etcd.url])
    assert "etcd:// names one etcd cluster" in str(err.value)
