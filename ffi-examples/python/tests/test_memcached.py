"""A lock cycle on memcache:// through the Python bindings: the same
Client and Lock API on the memcached backend, against a real memcached."""

from __future__ import annotations

from typing import Iterator

import pytest

import distlock
from support import MemcachedServer


@pytest.fixture(scope="module")
def memcached() -> Iterator[MemcachedServer]:
    with MemcachedServer() as server:
        yield server


def test_a_lock_cycle_on_memcached(memcached: MemcachedServer) -> None:
    with distlock.Client(memcached.url, ttl=5) as client, distlock.Client(memcached.url) as other:
        with client.lock("jobs:mc", timeout=2) as lock:
            first = lock.fence
            assert first > 0 and lock.owned()
            info = client.inspect("jobs:mc")
            assert info.held and info.token == lock.token
            # Held: another client's single try fails with the typed error.
            with pytest.raises(distlock.LockTimeout):
                with other.lock("jobs:mc", blocking=False):
                    pass
        assert not client.inspect("jobs:mc").held
        with other.lock("jobs:mc", timeout=2) as lock:
            assert lock.fence > first, "fences only go up"


def test_memcached_urls_are_single_servers(memcached: MemcachedServer) -> None:
    with pytest.raises(distlock.InvalidArgument) as err:
        distlock.check(cluster=[memcached.url])
    assert "memcache:// names a single memcached server" in str(err.value)
