"""Read-write locks, semaphores and fair locks through the Python bindings,
against a real redis-server (and a memcached, which refuses them): who may
hold at once, writer preference, the permit count, arrival order, and the
library's own words for bad input."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

import distlock
from distlock import aio
from support import MemcachedServer, RespConnection, redis_key


def until(check: Callable[[], bool], what: str) -> None:
    """Waits (at most five seconds, looking every 2 ms) until ``check``
    holds: for server state a waiter leaves while it waits."""
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.002)


def test_readers_share_and_a_writer_excludes_them(
    client: distlock.Client, other_client: distlock.Client, resp: RespConnection, key: str
) -> None:
    rw = client.rw_lock(key)
    assert rw.name == key
    with rw.read() as r1, other_client.rw_lock(key).read(ttl=5) as r2:
        assert r1.kind == r2.kind == "read"
        assert r1.token != r2.token
        assert r2.fence > r1.fence, "every share has its own fence"
        assert resp.command("ZCARD", redis_key(key)) == 2
        assert r1.owned() and r1.remaining > 0
        r1.extend()
        writer = other_client.rw_lock(key).write()
        assert not writer.acquire(blocking=False)
        assert not writer.acquire(timeout=0.05)
        with pytest.raises(distlock.LockTimeout):
            with other_client.rw_lock(key).write(timeout=0.05):
                pass
        last_reader = r2.fence
    with other_client.rw_lock(key).write(blocking=False) as w:
        assert w.kind == "write"
        assert w.fence > last_reader
        assert not rw.read().acquire(blocking=False), "a reader beside the writer"
        assert not rw.write().acquire(blocking=False), "two writers"
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_a_waiting_writer_holds_new_readers_back(
    client: distlock.Client, other_client: distlock.Client, resp: RespConnection, key: str
) -> None:
    reader = client.rw_lock(key).read()
    reader.acquire()
    writer = other_client.rw_lock(key).write(timeout=10)
    got: List[bool] = []
    t = threading.Thread(target=lambda: got.append(writer.acquire()))
    t.start()
    until(lambda: resp.command("EXISTS", "{%s}:writers" % redis_key(key)) == 1, "the writer waits")
    assert not client.rw_lock(key).read().acquire(blocking=False), "a reader overtook a waiting writer"
    reader.release()
    t.join(10)
    assert got == [True]
    assert not client.rw_lock(key).read().acquire(blocking=False)
    writer.release()
    with client.rw_lock(key).read(blocking=False):
        pass


def test_a_semaphore_grants_its_permits_and_no_more(
    client: distlock.Client, other_client: distlock.Client, resp: RespConnection, key: str
) -> None:
    n = 3
    permits = [(client if i % 2 else other_client).semaphore(key, n) for i in range(n)]
    for p in permits:
        assert p.kind == "permit" and p.permits == n
        assert p.acquire(timeout=1)
    assert resp.command("ZCARD", redis_key(key)) == n
    extra = client.semaphore(key, n)
    assert not extra.acquire(blocking=False)
    assert not extra.acquire(timeout=0.05)
    permits[0].release()
    assert extra.acquire(blocking=False), "a returned permit is free again"
    with pytest.raises(distlock.LockTimeout):
        with client.semaphore(key, n, blocking=False):
            pass
    for p in [extra] + permits[1:]:
        p.release()
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_bad_input_gets_the_librarys_messages(client: distlock.Client, key: str) -> None:
    for permits in (0, distlock.MAX_PERMITS + 1):
        with pytest.raises(distlock.InvalidArgument) as err:
            client.semaphore(key, permits).acquire(blocking=False)
        assert f"a semaphore must have 1 to 10000 permits, got {permits}" in str(err.value)
        assert err.value.detail is not None and "1 to 10000 permits" in err.value.detail
    assert distlock.MAX_PERMITS == 10000
    with pytest.raises(distlock.InvalidArgument, match="out of range"):
        client.semaphore(key, -1)
    with pytest.raises(TypeError):
        client.semaphore(key, 2.5)  # type: ignore[arg-type]
    with pytest.raises(distlock.InvalidArgument):
        client.rw_lock("").read().acquire()

    # A name held as one kind is refused as another, in the library's words.
    with client.lock(key, blocking=False):
        with pytest.raises(distlock.InvalidArgument, match="in use by a plain lock; a read-write lock"):
            client.rw_lock(key).read().acquire(blocking=False)
        with pytest.raises(distlock.InvalidArgument, match="in use by a plain lock; a semaphore"):
            client.semaphore(key, 2).acquire(timeout=0.1)
    with client.rw_lock(key).read():
        with pytest.raises(
            distlock.InvalidArgument, match="in use by a read-write lock or a semaphore; a plain lock"
        ):
            client.lock(key).acquire(blocking=False)
        with pytest.raises(distlock.InvalidArgument, match="in use by a read-write lock; a semaphore"):
            client.semaphore(key, 5).acquire()
    with client.semaphore(key, 5):
        pass  # free again: any kind may take the name


def test_a_fair_lock_serves_waiters_in_arrival_order(
    redis_server: Any, client: distlock.Client, resp: RespConnection, key: str
) -> None:
    first = client.lock(key, fair=True)
    assert first.kind == "fair"
    first.acquire()
    assert not client.lock(key, fair=True).acquire(blocking=False)
    order: List[int] = []
    clients = [distlock.Client(redis_server.url) for _ in range(3)]
    threads = []
    try:
        for i, c in enumerate(clients):

            def wait(c: distlock.Client = c, i: int = i) -> None:
                with c.lock(key, fair=True, timeout=10):
                    order.append(i)

            t = threading.Thread(target=wait)
            t.start()
            threads.append(t)
            # In line before the next waiter comes.
            until(lambda: resp.command("ZCARD", "{%s}:line" % redis_key(key)) == i + 1, "in line")
        first.release()
        for t in threads:
            t.join(10)
    finally:
        for c in clients:
            c.close()
    assert order == [0, 1, 2]
    assert resp.command("ZCARD", "{%s}:line" % redis_key(key)) == 0


def test_kinds_are_awaitable_too(redis_server: Any, key: str) -> None:
    import asyncio

    async def main() -> None:
        async with aio.Client(redis_server.url) as c:
            rw = c.rw_lock(key)
            async with rw.read() as r1, rw.read() as r2:
                assert r1.fence is not None and r2.fence is not None and r2.fence > r1.fence
                assert not await rw.write().acquire(blocking=False)
            async with rw.write(timeout=5):
                pass
            async with c.semaphore(key + ":sem", 1):
                assert not await c.semaphore(key + ":sem", 1).acquire(blocking=False)
            async with c.lock(key + ":fair", fair=True):
                pass

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.fixture(scope="module")
def memcached() -> Iterator[MemcachedServer]:
    with MemcachedServer() as server:
        yield server


def test_memcached_refuses_the_kinds(memcached: MemcachedServer) -> None:
    with distlock.Client(memcached.url) as c:
        for lock, says in (
            (c.rw_lock("k").read(), "read-write locks are not supported with"),
            (c.rw_lock("k").write(), "read-write locks are not supported with"),
            (c.semaphore("k", 2), "semaphores are not supported with"),
            (c.lock("k", fair=True), "fair locks are not supported with"),
        ):
            with pytest.raises(distlock.InvalidArgument, match=says):
                lock.acquire(blocking=False)
        with c.lock("k", blocking=False):
            pass


def test_inspect_counts_the_shares_and_locked_sees_them(client: distlock.Client, key: str) -> None:
    sem = client.semaphore(key, 3)
    with sem, client.semaphore(key, 3):
        info = client.inspect(key)
        assert info.held and info.shares == 2 and info.token is None
        assert info.remaining is not None and info.remaining > 0
        assert client.lock(key).locked(), "locked() sees the permits"
    info = client.inspect(key)
    assert not info.held and info.shares == 0
