"""Client.stats(): a client's counters, read through distlock_client_stats
(skipped when the loaded library does not have it yet)."""

from __future__ import annotations

import dataclasses

import pytest

import distlock
from distlock import aio
from support import RedisServer

needs_stats = pytest.mark.skipif(
    not distlock._native.HAS_STATS, reason="the loaded libdistlock has no distlock_client_stats"
)


@needs_stats
def test_stats_count_acquisitions_and_timeouts(
    redis_server: RedisServer, other_client: distlock.Client, key: str
) -> None:
    with distlock.Client(redis_server.url) as client:
        zero = client.stats()
        assert zero.acquired == 0 and zero.timed_out == 0
        for _ in range(2):
            with client.lock(key, ttl=5):
                pass
        two = client.stats()
        assert two.acquired == 2
        assert two.timed_out == 0 and two.lost == 0
        assert 0 <= two.wait_p50 <= two.wait_p99 <= two.wait_max < 5

        # Held by another client: a wait that runs out is counted.
        theirs = other_client.lock(key, ttl=5)
        assert theirs.acquire(blocking=False)
        try:
            assert not client.lock(key).acquire(timeout=0.5)
            # A single try that finds it held did not wait: not counted.
            assert not client.lock(key).acquire(blocking=False)
        finally:
            theirs.release()
        after = client.stats()
        assert after.timed_out == 1
        assert after.acquired == 2
        # The other client's counters are its own.
        assert other_client.stats().acquired == 1


@needs_stats
def test_stats_is_a_frozen_value_with_every_field(client: distlock.Client, redis_server: RedisServer) -> None:
    stats = client.stats()
    names = [f.name for f in dataclasses.fields(stats)]
    assert names == [
        "acquired", "contended", "timed_out", "cancelled", "lost", "renewals",
        "renewal_failures", "local_handoffs", "feed_reconnects",
        "wait_p50", "wait_p99", "wait_max", "lingered",
    ]
    for name in names[:9] + names[12:]:
        assert isinstance(getattr(stats, name), int), name
    for name in names[9:12]:
        assert isinstance(getattr(stats, name), float), name
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.acquired = 1  # type: ignore[misc]
    # aio.Client reads the same counters, without awaiting.
    a = aio.Client(redis_server.url)
    try:
        assert a.stats() == a.sync.stats()
        assert a.stats().acquired == 0
    finally:
        a.close()


@needs_stats
def test_stats_of_a_closed_client_is_refused(redis_server: RedisServer) -> None:
    c = distlock.Client(redis_server.url)
    c.close()
    with pytest.raises(distlock.InvalidArgument, match="closed"):
        c.stats()


@pytest.mark.skipif(distlock._native.HAS_STATS, reason="the loaded libdistlock has distlock_client_stats")
def test_stats_without_the_function_says_what_is_missing(client: distlock.Client) -> None:
    with pytest.raises(NotImplementedError, match="distlock_client_stats"):
        client.stats()
