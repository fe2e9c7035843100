"""A lock cycle on memcache:// through the Python bindings: the same
Client and Lock API on the memcached backend, against a real memcached."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

import distlock
from support import MemcachedServer, lock_cycle


@pytest.fixture(scope="module")
def memcached() -> Iterator[MemcachedServer]:
    with MemcachedServer() as server:
        yield server


def test_a_lock_cycle_on_memcached(memcached: MemcachedServer) -> None:
    lock_cycle(memcached.url, "jobs:mc")


def test_memcached_urls_are_single_servers(memcached: MemcachedServer) -> None:
    with pytest.raises(distlock.InvalidArgument) as err:
        distlock.check(cluster=[memcached.url])
    assert "memcache:// names a single memcached server" in str(err.value)


def test_poll_interval_is_a_setting_with_the_librarys_bounds(memcached: MemcachedServer) -> None:
    for bad in (0, 7200):
        with pytest.raises(distlock.InvalidArgument) as err:
            distlock.check(memcached.url, poll_interval=bad)
        if bad:
            assert "poll_interval must be between 1 ms and 1 hour" in str(err.value)
    # A waiter whose own retries are an hour apart is woken by the feed,
    # polling every 5 ms, when the holder lets go.
    with distlock.Client(memcached.url, poll_interval=0.005, max_retry_interval=3600) as client, \
            distlock.Client(memcached.url) as holder:
        held = holder.lock("jobs:poll")
        held.acquire()
        done = threading.Event()

        def wait() -> None:
            with client.lock("jobs:poll", timeout=10):
                done.set()

        t = threading.Thread(target=wait)
        t.start()
        held.release()
        t.join(15)
        assert done.is_set(), "the waiter was not woken"
