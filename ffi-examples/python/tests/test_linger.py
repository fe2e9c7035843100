"""Lease caching (``linger=``): a lock released while no thread of the
client waits stays held on the server (from the client's second release
of the name on: the first subscribes to the announcements of those who
want it), and the client's next acquisition of it is granted locally
(``Stats.lingered``); another client that wants it announces itself and
gets it at once. Skipped when the loaded library has no
distlock_config_set_linger_ms."""

from __future__ import annotations

import time

import pytest

import distlock
from distlock import aio
from support import RedisServer, RespConnection, redis_key

needs_linger = pytest.mark.skipif(
    not distlock._native.HAS_LINGER, reason="the loaded libdistlock has no distlock_config_set_linger_ms"
)

#: A memcached URL: refused before anything connects, so nothing listens.
MEMCACHE = "memcache://127.0.0.1:1"


def _cycle(client: distlock.Client, key: str) -> None:
    with client.lock(key):
        pass


def _linger_on(client: distlock.Client, resp: RespConnection, key: str) -> None:
    """Has ``client`` linger on ``key``, within 5 s: its first release of a
    name goes to the server and subscribes to the announcements of clients
    that want it, and once it hears them a release leaves the lock held on
    the server. Cycles until one does; the last acquisition came from the
    server, so ``Stats.lingered`` is as it was."""
    deadline = time.monotonic() + 5
    while True:
        _cycle(client, key)
        if resp.command("EXISTS", redis_key(key)) == 1:
            return
        assert time.monotonic() < deadline, f"released with linger on, {key} never stayed held"
        time.sleep(0.005)


def _taken_within(url: str, key: str, limit: float) -> None:
    """A client without linger takes ``key``, waiting at most 5 s, within
    ``limit`` seconds."""
    with distlock.Client(url) as other:
        start = time.monotonic()
        theirs = other.lock(key)
        assert theirs.acquire(timeout=5), "the other client did not get the lingering lock"
        waited = time.monotonic() - start
        theirs.release()
    assert waited < limit, f"the other client waited {waited:.2f} s"


@needs_linger
def test_linger_grants_the_next_acquisition_locally(
    redis_server: RedisServer, resp: RespConnection, key: str
) -> None:
    with distlock.Client(redis_server.url, linger=1.0) as client:
        _linger_on(client, resp, key)
        before = client.stats()
        assert before.lingered == 0 and before.acquired >= 2
        _cycle(client, key)
        stats = client.stats()
        assert (stats.acquired, stats.lingered) == (before.acquired + 1, 1)
        _taken_within(redis_server.url, key, 2)
        assert client.stats().lingered == 1


@needs_linger
def test_a_long_stay_ends_when_another_client_wants_the_lock(
    redis_server: RedisServer, resp: RespConnection, key: str
) -> None:
    # A minute's stay: only the waiter's announcement frees it in time.
    with distlock.Client(redis_server.url, linger=60) as client:
        _linger_on(client, resp, key)
        _taken_within(redis_server.url, key, 2)
        assert client.stats().lingered == 0


@needs_linger
def test_closing_the_client_releases_what_it_lingers_on(
    redis_server: RedisServer, resp: RespConnection, key: str
) -> None:
    client = distlock.Client(redis_server.url, linger=60)
    _linger_on(client, resp, key)
    client.close()
    assert resp.command("EXISTS", redis_key(key)) == 0


@needs_linger
def test_linger_is_checked(redis_server: RedisServer) -> None:
    url = redis_server.url
    refused = [
        ((MEMCACHE,), {"linger": 1}, "linger needs Redis"),
        ((url,), {"linger": 7200}, "linger must be between 1 ms and 1 hour"),
        ((url,), {"linger": 1, "fast_path": False}, "linger needs the local fast path"),
        ((url,), {"linger": 1, "max_hold": 1}, "must be shorter than max_hold"),
        ((), {"nodes": [url, url, url], "linger": 1}, "Redlock cannot"),
    ]
    for args, settings, words in refused:
        with pytest.raises(distlock.InvalidArgument) as err:
            distlock.check(*args, **settings)
        assert words in str(err.value), (settings, str(err.value))
        with pytest.raises(distlock.InvalidArgument) as err:
            distlock.Client(*args, **settings)
        assert words in str(err.value), (settings, str(err.value))
    with pytest.raises(distlock.InvalidArgument, match="linger must be a finite number of seconds"):
        distlock.check(url, linger=-0.001)
    with pytest.raises(TypeError, match="linger must be a number of seconds"):
        distlock.check(url, linger="1s")  # type: ignore[arg-type]
    # None and 0 are off, accepted with any servers; an hour is the most.
    distlock.check(MEMCACHE, linger=None)
    distlock.check(MEMCACHE, linger=0)
    distlock.check(url, linger=3600)
    distlock.check(url, linger=0.5, max_hold=60)
    # aio.Client takes it too.
    a = aio.Client(url, linger=1)
    a.close()
