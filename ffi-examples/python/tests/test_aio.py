"""distlock.aio against a real server: acquire and release, timeouts,
cancellation of a waiting task, the event loop staying responsive while a
lock is waited for, and 100 tasks taking turns on one key.

Each test runs its coroutine with asyncio.run: no pytest plugin needed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any, Coroutine, List, TypeVar

import pytest

import distlock
from distlock import aio
from support import RedisServer, RespConnection, lock_token, redis_key

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Runs ``coro`` on a fresh event loop, bounded so that a hang fails."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(bounded())


async def wait_started(lock: aio.Lock) -> None:
    """Returns once ``lock``'s acquire really waits (its first try failed),
    without blocking the loop."""
    started: threading.Event = lock.sync._wait_started
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, started.wait, 10), "the acquire never started to wait"


def test_acquire_release_and_async_with(redis_server: RedisServer, resp: RespConnection, key: str) -> None:
    async def main() -> None:
        async with aio.Client(redis_server.url) as client:
            lock = client.lock(key, ttl=5)
            assert not lock.owned() and lock.fence is None
            assert await lock.acquire() is True
            assert lock.owned()
            assert lock_token(resp, redis_key(key)) == lock.token.encode()
            first = lock.fence
            await lock.release()
            assert not lock.owned()
            assert resp.command("EXISTS", redis_key(key)) == 0
            with pytest.raises(distlock.InvalidArgument, match="does not hold"):
                await lock.release()

            async with client.lock(key, timeout=2) as again:
                assert again.owned() and again.fence > first
                assert 0 < again.remaining <= 30
                await again.extend()
                assert lock_token(resp, redis_key(key)) == again.token.encode()
            assert not again.owned()
            assert resp.command("EXISTS", redis_key(key)) == 0
        assert client.closed
        with pytest.raises(distlock.InvalidArgument, match="closed"):
            await client.lock(key).acquire()

    run(main())


def test_open_connects_off_the_loop_and_errors_are_the_sync_ones(redis_server: RedisServer, key: str) -> None:
    async def main() -> None:
        client = await aio.Client.open(redis_server.url, prefix="pyaio")
        assert "open" in repr(client)
        async with client.lock(key) as lock:
            assert lock.owned()
        await client.aclose()
        await client.aclose()  # again: nothing
        with pytest.raises(distlock.InvalidArgument, match="1 given"):
            aio.Client(nodes=["redis://127.0.0.1:1/0"])
        with pytest.raises(distlock.InvalidArgument, match="max_waiters"):
            aio.Client(redis_server.url, max_waiters=0)

    run(main())


def test_timeouts_raise_lock_timeout(redis_server: RedisServer, other_client: distlock.Client, key: str) -> None:
    holder = other_client.lock(key)
    assert holder.acquire(blocking=False)

    async def main() -> None:
        async with aio.Client(redis_server.url) as client:
            start = time.monotonic()
            with pytest.raises(distlock.LockTimeout) as info:
                async with client.lock(key, timeout=0.3):
                    pytest.fail("acquired a held lock")
            waited = time.monotonic() - start
            assert 0.3 <= waited < 2, waited
            assert info.value.status == distlock._status.TIMEOUT
            assert "within 0.3 s" in str(info.value)
            with pytest.raises(distlock.LockTimeout, match="single try"):
                async with client.lock(key, blocking=False):
                    pass
            lock = client.lock(key)
            assert await lock.acquire(timeout=0.1) is False
            assert await lock.acquire(blocking=False) is False
            assert await lock.acquire(timeout=0) is False
            assert not lock.owned()
            # Waiting forever, however it is said: cut short by wait_for.
            for forever in (None, -1, float("inf")):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(lock.acquire(timeout=forever), 0.2)
            assert not lock.owned()
            with pytest.raises(TypeError, match="timeout"):
                await lock.acquire(timeout="1")

    try:
        run(main())
        assert holder.owned()
    finally:
        holder.release()


def test_cancelling_a_waiting_task_ends_the_wait_at_once(
    redis_server: RedisServer, other_client: distlock.Client, resp: RespConnection, key: str
) -> None:
    holder = other_client.lock(key)
    assert holder.acquire(blocking=False)

    async def main() -> None:
        async with aio.Client(redis_server.url) as client:
            waiter = client.lock(key)
            task = asyncio.ensure_future(waiter.acquire(timeout=30))
            await wait_started(waiter)
            start = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            elapsed = time.monotonic() - start
            assert elapsed < 0.1, f"the wait took {elapsed:.3f} s to end"
            assert not waiter.owned()
            # The holder still holds, untouched.
            assert holder.owned()
            assert lock_token(resp, redis_key(key)) == holder.token.encode()
            # The cancelled wait is really over: once the holder lets go,
            # the key stays free, and the same Lock object can acquire.
            holder.release()
            assert resp.command("EXISTS", redis_key(key)) == 0
            assert await waiter.acquire(blocking=False)
            await waiter.release()

            # asyncio.wait_for's timeout is a cancellation too.
            assert holder.acquire(blocking=False)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.lock(key).acquire(), 0.2)
            assert holder.owned()

    try:
        run(main())
    finally:
        if holder.owned():
            holder.release()


def test_closing_the_client_ends_its_waits_and_releases_its_locks(
    redis_server: RedisServer, other_client: distlock.Client, resp: RespConnection, key: str
) -> None:
    holder = other_client.lock(key)
    assert holder.acquire(blocking=False)

    async def main() -> None:
        client = aio.Client(redis_server.url)
        mine = client.lock(key + ":mine")
        assert await mine.acquire(blocking=False)
        waiter = client.lock(key)
        task = asyncio.ensure_future(waiter.acquire())
        await wait_started(waiter)
        await client.aclose()
        with pytest.raises(distlock.Cancelled):
            await task
        assert not mine.owned()
        assert resp.command("EXISTS", redis_key(key + ":mine")) == 0
        assert holder.owned()

    try:
        run(main())
    finally:
        holder.release()


def test_a_lock_won_as_the_task_is_cancelled_is_given_back(
    redis_server: RedisServer, other_client: distlock.Client, resp: RespConnection, key: str
) -> None:
    # The holder lets go and the waiting task is cancelled at the same
    # moment, many times: whichever wins the race, no lock is left held by a
    # task that did not get it.
    outcomes = {"won": 0, "cancelled": 0}

    async def main() -> None:
        async with aio.Client(redis_server.url) as client:
            for _ in range(30):
                holder = other_client.lock(key)
                assert holder.acquire(blocking=False)
                waiter = client.lock(key)
                task = asyncio.ensure_future(waiter.acquire(timeout=10))
                await wait_started(waiter)
                loop = asyncio.get_running_loop()
                release = loop.run_in_executor(None, holder.release)
                await asyncio.sleep(0)
                task.cancel()
                await release
                try:
                    got = await task
                except asyncio.CancelledError:
                    outcomes["cancelled"] += 1
                    assert not waiter.owned()
                    assert resp.command("EXISTS", redis_key(key)) == 0
                else:
                    assert got and waiter.owned()
                    outcomes["won"] += 1
                    await waiter.release()

    run(main())
    print("won as cancelled / cancelled:", outcomes)
    assert outcomes["cancelled"] > 0, outcomes
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_a_win_the_cancelled_task_never_saw_is_released(
    redis_server: RedisServer, other_client: distlock.Client, resp: RespConnection, key: str
) -> None:
    # The exact race: the waiter thread has won the lock and handed over
    # its result, but the task is cancelled before it resumes to take it.
    holder = other_client.lock(key)
    assert holder.acquire(blocking=False)

    async def main() -> None:
        async with aio.Client(redis_server.url) as client:
            submitted: List[concurrent.futures.Future] = []
            submit = client._waiters.submit

            def recording(fn: Any) -> concurrent.futures.Future:
                submitted.append(submit(fn))
                return submitted[-1]

            client._waiters.submit = recording  # type: ignore[method-assign]
            waiter = client.lock(key)
            task = asyncio.ensure_future(waiter.acquire(timeout=10))
            await wait_started(waiter)
            # Blocking the loop on purpose, so that the task cannot resume:
            # the holder lets go and the waiter thread wins.
            holder.release()
            assert submitted[0].result(timeout=10) is True
            assert lock_token(resp, redis_key(key)) == waiter.token.encode()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not waiter.owned()
            assert resp.command("EXISTS", redis_key(key)) == 0

    run(main())


def test_acquires_beyond_max_waiters_queue_and_can_be_cancelled_there(
    redis_server: RedisServer, other_client: distlock.Client, key: str
) -> None:
    holder = other_client.lock(key)
    assert holder.acquire(blocking=False)

    async def main() -> None:
        async with aio.Client(redis_server.url, max_waiters=1) as client:
            first = client.lock(key)
            waiting = asyncio.ensure_future(first.acquire(timeout=30))
            await wait_started(first)
            # The only waiter thread is taken: this one queues, and its
            # timeout runs meanwhile.
            start = time.monotonic()
            assert await client.lock(key).acquire(timeout=0.2) is False
            assert 0.2 <= time.monotonic() - start < 2
            # A single try does not wait, so it does not queue either.
            for single in (client.lock(key + ":a", blocking=False), client.lock(key + ":b", timeout=0)):
                start = time.monotonic()
                assert await single.acquire() is True
                assert time.monotonic() - start < 1
                await single.release()
            queued = asyncio.ensure_future(client.lock(key).acquire(timeout=30))
            await asyncio.sleep(0)  # let it queue
            start = time.monotonic()
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert time.monotonic() - start < 0.1
            # The first is still waiting, and gets the lock when it is free.
            assert not waiting.done()
            await asyncio.get_running_loop().run_in_executor(None, holder.release)
            assert await waiting is True
            await first.release()

    try:
        run(main())
    finally:
        if holder.owned():
            holder.release()


def test_the_loop_keeps_running_while_a_lock_is_waited_for(
    redis_server: RedisServer, other_client: distlock.Client, key: str
) -> None:
    holder = other_client.lock(key)
    assert holder.acquire(blocking=False)
    ticks: List[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with aio.Client(redis_server.url) as client:
            stop = asyncio.Event()
            ticking = asyncio.ensure_future(ticker(stop))
            start = time.monotonic()
            # Several waits at once, none of which holds the loop.
            results = await asyncio.gather(*(client.lock(key).acquire(timeout=0.5) for _ in range(5)))
            elapsed = time.monotonic() - start
            stop.set()
            await ticking
            assert results == [False] * 5
            assert 0.5 <= elapsed < 2, elapsed
        during = [t for t in ticks if start <= t <= start + elapsed]
        # About 50 ticks of 10 ms in 0.5 s; a blocked loop would give 1.
        assert len(during) >= 20, len(during)
        gaps = [b - a for a, b in zip(during, during[1:])]
        assert max(gaps) < 0.2, max(gaps)

    try:
        run(main())
    finally:
        holder.release()


def test_a_hundred_tasks_take_turns_on_one_key(redis_server: RedisServer, resp: RespConnection, key: str) -> None:
    tasks_per_client = 50
    counter = 0
    inside = 0
    most_inside = 0
    fences: List[int] = []

    async def worker(client: aio.Client) -> None:
        nonlocal counter, inside, most_inside
        async with client.lock(key, timeout=30) as lock:
            inside += 1
            most_inside = max(most_inside, inside)
            value = counter
            await asyncio.sleep(0)  # let every other task run meanwhile
            counter = value + 1
            fences.append(lock.fence)
            inside -= 1

    async def main() -> float:
        # Two clients: the tasks of each pass the lock among themselves, and
        # the two contend through the server.
        async with aio.Client(redis_server.url) as a, aio.Client(redis_server.url) as b:
            start = time.monotonic()
            await asyncio.gather(*(worker(c) for c in (a, b) for _ in range(tasks_per_client)))
            return time.monotonic() - start

    elapsed = run(main())
    assert counter == 2 * tasks_per_client
    assert most_inside == 1
    assert len(fences) == 2 * tasks_per_client and len(set(fences)) == len(fences)
    assert resp.command("EXISTS", redis_key(key)) == 0
    print(f"100 tasks, one key: {elapsed:.3f} s")
