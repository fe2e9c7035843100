"""Client.inspect (what the server holds for a lock) and
Client.release_token (the operator's way to free a dead holder's lock),
against a real server."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

import distlock
from distlock import aio
from support import RedisServer, RespConnection, redis_key

pytestmark = pytest.mark.skipif(
    not (distlock._native.HAS_INSPECT and distlock._native.HAS_RELEASE_TOKEN),
    reason="the loaded libdistlock has no distlock_client_inspect / distlock_client_release_token",
)


def test_inspect_a_free_held_and_released_lock(client: distlock.Client, other_client: distlock.Client, key: str) -> None:
    free = client.inspect(key)
    assert free == distlock.LockInfo(key=key, held=False, token=None, remaining=None, fence=None)

    lock = other_client.lock(key, ttl=10)
    assert lock.acquire(blocking=False)
    assert lock.fence > 0  # given on first read: the counter inspect shows
    held = client.inspect(key)
    assert held.key == key and held.held
    assert held.token == lock.token and len(held.token) == 36
    assert held.remaining is not None and 0 < held.remaining <= 10
    assert held.fence is not None and held.fence >= lock.fence

    lock.release()
    released = client.inspect(key)
    assert not released.held and released.token is None and released.remaining is None
    # The fence counter outlives the lock: the next holder's is higher.
    assert released.fence == held.fence
    again = other_client.lock(key)
    assert again.acquire(blocking=False)
    assert again.fence > held.fence
    again.release()


def test_lock_info_is_a_frozen_value(client: distlock.Client, key: str) -> None:
    info = client.inspect(key.encode())  # bytes names work too
    assert info.key == key
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.held = True  # type: ignore[misc]


def test_inspect_grows_its_buffer_for_a_long_foreign_value(
    client: distlock.Client, resp: RespConnection, key: str
) -> None:
    # Set by something other than distlock: longer than any token, and
    # without an expiry.
    value = "v" * 300
    resp.command("SET", redis_key(key), value)
    try:
        info = client.inspect(key)
        assert info.held and info.token == value and info.remaining is None
    finally:
        resp.command("DEL", redis_key(key))


def test_inspect_refuses_bad_names_and_closed_clients(redis_server: RedisServer, key: str) -> None:
    c = distlock.Client(redis_server.url)
    with pytest.raises(distlock.InvalidArgument):
        c.inspect("")  # the library's refusal
    with pytest.raises(TypeError):
        c.inspect(42)  # type: ignore[arg-type]
    c.close()
    with pytest.raises(distlock.InvalidArgument, match="closed"):
        c.inspect(key)
    with pytest.raises(distlock.InvalidArgument, match="closed"):
        c.release_token(key, "x" * 36)


def test_release_token_frees_only_the_right_holder(
    client: distlock.Client, other_client: distlock.Client, key: str
) -> None:
    # A short lease, so that the holder's renewal (every third of it)
    # finds out soon.
    lock = other_client.lock(key, ttl=1)
    assert lock.acquire(blocking=False)
    token = lock.token
    assert token is not None

    wrong = "0" * 36
    assert client.release_token(key, wrong) is False
    assert lock.owned() and client.inspect(key).token == token

    started = time.monotonic()
    assert client.release_token(key, token) is True
    assert not client.inspect(key).held
    # The holder sees it lost at its next renewal, well within its lease.
    assert lock.wait_lost(timeout=5), "the holder never saw its lock released by token"
    lost_after = time.monotonic() - started
    assert lost_after < 2, f"the holder took {lost_after:.2f} s to see the loss"
    assert not lock.owned()
    with pytest.raises(distlock.LockLost):
        lock.release()
    # Gone: a second release by the same token finds nothing.
    assert client.release_token(key, token) is False


def test_release_token_of_a_free_lock_and_bad_tokens(client: distlock.Client, key: str) -> None:
    assert client.release_token(key, "x" * 36) is False
    assert client.release_token(key, b"x" * 36) is False
    with pytest.raises(distlock.InvalidArgument):
        client.release_token(key, "")  # the library's refusal
    with pytest.raises(distlock.InvalidArgument):
        client.release_token(key, "x" * 5000)  # longer than DISTLOCK_MAX_TOKEN_LEN
    with pytest.raises(TypeError):
        client.release_token(key, 36)  # type: ignore[arg-type]


def test_aio_inspect_and_release_token(redis_server: RedisServer, key: str) -> None:
    async def main() -> None:
        async with aio.Client(redis_server.url) as client:
            lock = client.lock(key, ttl=1)
            assert await lock.acquire(blocking=False)
            info = await client.inspect(key)
            assert info.held and info.token == lock.token
            assert await client.release_token(key, "0" * 36) is False
            assert await client.release_token(key, info.token) is True
            assert not (await client.inspect(key)).held

    asyncio.run(asyncio.wait_for(main(), 30))
