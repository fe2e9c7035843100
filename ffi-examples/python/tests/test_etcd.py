"""A lock cycle on etcd:// through the Python bindings: the same Client
and Lock API on the etcd backend, against a real etcd."""

from __future__ import annotations

from typing import Iterator

import pytest

import distlock
from support import EtcdServer


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


def test_a_lock_cycle_on_etcd(etcd: EtcdServer) -> None:
    with distlock.Client(etcd.url, ttl=5) as client, distlock.Client(etcd.url) as other:
        with client.lock("jobs:etcd", timeout=2) as lock:
            first = lock.fence
            assert first > 0 and lock.owned()
            info = client.inspect("jobs:etcd")
            assert info.held and info.token == lock.token
            # Held: another client's single try fails with the typed error.
            with pytest.raises(distlock.LockTimeout):
                with other.lock("jobs:etcd", blocking=False):
                    pass
        assert not client.inspect("jobs:etcd").held
        with other.lock("jobs:etcd", timeout=2) as lock:
            assert lock.fence > first, "fences only go up"


def test_etcd_urls_name_one_cluster(etcd: EtcdServer) -> None:
    with pytest.raises(distlock.InvalidArgument) as err:
        distlock.check(cluster=[etcd.url])
    assert "etcd:// names one etcd cluster" in str(err.value)
