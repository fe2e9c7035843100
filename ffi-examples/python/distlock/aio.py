"""distlock for asyncio: the same locks, awaited instead of blocking.

>>> from distlock import aio
>>> async def main() -> None:                                  # doctest: +SKIP
...     async with aio.Client("redis://127.0.0.1:6379/0") as client:
...         async with client.lock("orders:42", timeout=2) as lock:
...             await save_order(42, fence=lock.fence)

Every call that talks to Redis runs on a worker thread, never on the event
loop: waiting for a lock (on one of the client's *waiter* threads, at most
``max_waiters`` at once; more acquires queue for a free one, their timeout
running meanwhile) and the short calls (release, extend,
:meth:`Lock.locked`, single tries, on a few threads of their own, so that
they are never stuck behind waiting acquires). The loop keeps
running everything else meanwhile.

Cancelling a task that awaits :meth:`Lock.acquire` (``task.cancel()``,
``asyncio.wait_for`` running out, a TaskGroup failing) stops the native wait
at once through a cancel token, and never leaves the lock held: if the
acquire wins just as the task is cancelled, the lock is released before the
``CancelledError`` goes on.

A :class:`Client` opens its connections when it is created, as
:class:`distlock.Client` does (for at most ``connect_timeout``): create it
with ``await Client.open(...)`` to keep even that off the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import queue
import threading
import time
from types import TracebackType
from typing import Any, Callable, Optional, Sequence, Tuple, Type, TypeVar

from . import _client
from . import _lock
from . import _status as st
from ._cancel import CancelToken
from ._config import PemSource
from ._convert import Key, _seconds
from ._info import HeldLocks, LockInfo, Stats
from ._errors import DistlockError, InvalidArgument, LockTimeout

__all__ = ["Client", "Lock", "RwLock"]

_T = TypeVar("_T")

#: Threads for the short calls (release, extend, locked) of one client.
_CALL_THREADS = 4


class _Pool:
    """A few daemon threads running blocking calls for one client, started
    as needed up to ``size``; each call's :class:`concurrent.futures.Future`
    is returned at once.

    Not a ThreadPoolExecutor: its threads are joined before ``atexit``
    handlers run, so a wait still under way at exit would keep the
    interpreter from exiting, while the handler that would end it (closing
    every client) had not run yet. These threads are daemons; the clients
    still open at exit are closed by that handler, which ends their waits.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._work: "queue.SimpleQueue[Optional[Tuple[concurrent.futures.Future[Any], Callable[[], Any]]]]" = (
            queue.SimpleQueue()
        )
        self._idle = threading.Semaphore(0)
        self._mutex = threading.Lock()
        self._threads = 0
        self._shut = False

    def submit(self, fn: Callable[[], _T]) -> "concurrent.futures.Future[_T]":
        """Queues ``fn``; raises RuntimeError once :meth:`shutdown` was called."""
        future: "concurrent.futures.Future[_T]" = concurrent.futures.Future()
        with self._mutex:
            if self._shut:
                raise RuntimeError("pool shut down")
            self._work.put((future, fn))
            if not self._idle.acquire(blocking=False) and self._threads < self._size:
                self._threads += 1
                threading.Thread(target=self._run, name=f"{self._name}-{self._threads}", daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn()
                except BaseException as e:
                    future.set_exception(e)
                else:
                    future.set_result(result)
            del item, future, fn
            self._idle.release()

    def shutdown(self) -> None:
        """Lets the threads end once the calls queued so far are done."""
        with self._mutex:
            if self._shut:
                return
            self._shut = True
            for _ in range(self._threads):
                self._work.put(None)


class Client:
    """An asyncio front of :class:`distlock.Client`: the same arguments
    and the same servers, with :meth:`lock` giving awaitable locks.

    ``max_waiters`` (default 64) is how many acquires of this client may
    wait at once, each on a thread of its own; further acquires queue (their
    ``timeout`` counts from the call, queueing included).

    Use ``async with`` (or :meth:`aclose`) to close it: closing releases
    every lock still held through it and ends its waiting acquires with
    :class:`distlock.Cancelled`. Every other error is that of
    :class:`distlock.Client`.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        prefix: Optional[str] = None,
        ttl: Optional[float] = None,
        pool_size: Optional[int] = None,
        connect_timeout: Optional[float] = None,
        command_timeout: Optional[float] = None,
        nodes: Optional[Sequence[str]] = None,
        cluster: Optional[Sequence[str]] = None,
        sentinel: Optional[Tuple[Sequence[str], Optional[str]]] = None,
        replicas: Optional[Tuple[int, float]] = None,
        fast_path: Optional[bool] = None,
        handoff_limit: Optional[int] = None,
        handoff_budget: Optional[float] = None,
        max_retry_interval: Optional[float] = None,
        poll_interval: Optional[float] = None,
        linger: Optional[float] = None,
        max_hold: Optional[float] = None,
        tls_ca: Optional[PemSource] = None,
        tls_client_cert: Optional[Tuple[PemSource, PemSource]] = None,
        holder_label: Optional[str] = None,
        max_waiters: int = 64,
    ) -> None:
        if isinstance(max_waiters, bool) or not isinstance(max_waiters, int):
            raise TypeError(f"max_waiters must be an int, not {type(max_waiters).__name__}")
        if max_waiters < 1:
            raise InvalidArgument(f"max_waiters must be at least 1, got {max_waiters}")
        #: The blocking client behind this one (its locks are the same locks).
        self.sync: _client.Client = _client.Client(
            url,
            prefix=prefix,
            ttl=ttl,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            nodes=nodes,
            cluster=cluster,
            sentinel=sentinel,
            replicas=replicas,
            fast_path=fast_path,
            handoff_limit=handoff_limit,
            handoff_budget=handoff_budget,
            max_retry_interval=max_retry_interval,
            poll_interval=poll_interval,
            linger=linger,
            max_hold=max_hold,
            tls_ca=tls_ca,
            tls_client_cert=tls_client_cert,
            holder_label=holder_label,
        )
        self._waiters = _Pool(max_waiters, "distlock-aio-wait")
        self._calls = _Pool(_CALL_THREADS, "distlock-aio-call")

    @classmethod
    async def open(cls, url: Optional[str] = None, **settings: Any) -> "Client":
        """Creates a client (same arguments as the constructor) on a worker
        thread, so that connecting does not hold up the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(cls, url, **settings))

    def lock(
        self,
        key: Key,
        ttl: Optional[float] = None,
        timeout: Optional[float] = None,
        blocking: bool = True,
        *,
        fair: bool = False,
    ) -> "Lock":
        """A :class:`Lock` on the name ``key``, as :meth:`distlock.Client.lock`
        (nothing is sent until it is acquired). ``timeout`` and ``blocking``
        are the defaults of :meth:`Lock.acquire` and of ``async with``;
        ``fair=True`` serves waiters in arrival order."""
        return Lock(self, self.sync.lock(key, ttl=ttl, timeout=timeout, blocking=blocking, fair=fair))

    def rw_lock(self, key: Key) -> "RwLock":
        """The read-write lock named ``key``, as :meth:`distlock.Client.rw_lock`,
        with awaitable sides."""
        return RwLock(self, self.sync.rw_lock(key))

    def semaphore(
        self,
        key: Key,
        permits: int,
        ttl: Optional[float] = None,
        timeout: Optional[float] = None,
        blocking: bool = True,
    ) -> "Lock":
        """An awaitable :class:`Lock` whose acquisitions are permits of the
        semaphore ``key``, as :meth:`distlock.Client.semaphore`."""
        return Lock(self, self.sync.semaphore(key, permits, ttl=ttl, timeout=timeout, blocking=blocking))

    async def _call(self, fn: Callable[[], _T]) -> _T:
        """Runs a short blocking call on one of the call threads. If the
        awaiting task is cancelled the call still completes (its effect is
        not undone), but the task does not wait for it."""
        try:
            future = self._calls.submit(fn)
        except RuntimeError:  # shut down by close()
            raise InvalidArgument("the client is closed") from None
        return await asyncio.wrap_future(future)

    async def inspect(self, key: Key) -> LockInfo:
        """What the server holds for the lock ``key`` (on a call thread); see
        :meth:`distlock.Client.inspect`."""
        return await self._call(functools.partial(self.sync.inspect, key))

    async def held(self, pattern: Key = "*", limit: int = 100) -> HeldLocks:
        """The locks held under this client's prefix that match ``pattern``
        (on a call thread); see :meth:`distlock.Client.held`."""
        return await self._call(functools.partial(self.sync.held, pattern, limit))

    async def release_token(self, key: Key, token: str) -> bool:
        """Deletes the lock ``key`` if it is held with ``token`` (on a call
        thread); see :meth:`distlock.Client.release_token`."""
        return await self._call(functools.partial(self.sync.release_token, key, token))

    def stats(self) -> Stats:
        """This client's counters; read locally, so not awaited. See
        :meth:`distlock.Client.stats`."""
        return self.sync.stats()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` was called."""
        return self.sync.closed

    def close(self) -> None:
        """Closes the client now, from synchronous code: releases its locks
        (a round trip each) and cancels its waits. Prefer :meth:`aclose` in
        a coroutine."""
        self.sync.close()
        self._waiters.shutdown()
        self._calls.shutdown()

    async def aclose(self) -> None:
        """Closes the client off the event loop: releases every lock still
        held through it and ends its waiting acquires. Calling it again
        does nothing."""
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.close)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<distlock.aio.Client {self.sync._url} {'closed' if self.closed else 'open'}>"


class _Attempt:
    """One acquire run on a waiter thread, and the hand-over of its result
    to the task that awaits it, or, if that task was cancelled, its undoing.

    Whoever comes second cleans up: the waiter thread publishes its result
    and the cancelled task abandons the attempt under one mutex, so a lock
    won just as the task is cancelled is released exactly once, by the
    waiter thread if it had not published yet, else by the task.
    """

    def __init__(self, lock: _lock.Lock, blocking: Optional[bool], timeout: Optional[float]) -> None:
        self._lock = lock
        self._blocking = blocking
        blocks = lock._blocking if blocking is None else blocking
        if timeout is None and blocks:
            timeout = lock._timeout  # the Lock's default, counted from now
        self._timeout = timeout
        #: Whether it may wait (else it tries once, a short call).
        self.waits = bool(blocks) and timeout != 0
        # Timeouts count from the call, so time spent queued for a waiter
        # thread is part of them.
        forever = timeout is None or timeout < 0 or math.isinf(timeout)
        self.deadline = None if forever else time.monotonic() + timeout
        self.cancel = CancelToken()
        self._mutex = threading.Lock()
        self._abandoned = False
        self._won = False

    def run(self) -> bool:
        timeout = self._timeout
        if self.deadline is not None:
            timeout = max(0.0, self.deadline - time.monotonic())
        try:
            won = self._lock.acquire(self._blocking, timeout, cancel=self.cancel)
        except DistlockError:
            with self._mutex:
                if self._abandoned:
                    return False  # nobody is waiting for this error
            raise
        with self._mutex:
            abandoned = self._abandoned
            self._won = won and not abandoned
        if won and abandoned:
            _release_quietly(self._lock)
            return False
        if won:
            # A lock may be granted without its fence, given on first read
            # (one round trip): read it here, on the waiter thread, so that
            # the `fence` property does not block the event loop. If that
            # fails, the property says why.
            try:
                self._lock.fence
            except DistlockError:
                pass
        return won

    def abandon(self) -> bool:
        """Gives up on the attempt and stops its wait; True if it had already
        won the lock, which the caller must then release."""
        with self._mutex:
            self._abandoned = True
            won = self._won
        self.cancel.cancel()
        return won


def _release_quietly(lock: _lock.Lock) -> None:
    """Releases a lock nobody asked for in the end; errors (a lease already
    lost) do not matter, as nobody relied on it."""
    try:
        lock.release()
    except DistlockError:
        pass


async def _settle(future: "asyncio.Future[Any]") -> None:
    """Waits for ``future`` to finish, whatever it ends with, even through
    further cancellation of the current task (which is then re-raised)."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                break
            cancelled = True
        except BaseException:
            break
    if not future.cancelled():
        future.exception()  # retrieved: never reported as "never retrieved"
    if cancelled:
        raise asyncio.CancelledError()


class Lock:
    """A named distributed lock for asyncio, made by :meth:`Client.lock`.

    The awaitable counterpart of :class:`distlock.Lock`: ``await
    acquire()`` / ``await release()``, or ``async with``. Like it, one Lock
    object holds at most one acquisition: give each task its own Lock
    (``client.lock(key)`` is cheap and sends nothing).
    """

    def __init__(self, client: Client, lock: _lock.Lock) -> None:
        self._client = client
        #: The blocking Lock behind this one.
        self.sync: _lock.Lock = lock

    @property
    def name(self) -> str:
        """The lock's name (the key passed to :meth:`Client.lock`)."""
        return self.sync.name

    async def acquire(self, blocking: Optional[bool] = None, timeout: Optional[float] = None) -> bool:
        """Acquires the lock; True when acquired, False when not in time.

        The arguments are those of :meth:`distlock.Lock.acquire`: ``timeout``
        in seconds (``None``: the Lock's default, forever unless
        :meth:`Client.lock` was given one), ``blocking=False`` to try once.
        The wait runs on a waiter thread; the event loop is not held up.

        Cancelling the awaiting task ends the wait at once and raises
        ``CancelledError`` with the lock not held (released again if it was
        won meanwhile). Raises the :class:`distlock.DistlockError`
        subclasses on errors.
        """
        if timeout is not None:
            _seconds(timeout, "timeout")  # a bad type fails here, not in a thread
        attempt = _Attempt(self.sync, blocking, timeout)
        # A single try does not wait: it goes with the short calls, never
        # queued behind waits.
        pool = self._client._waiters if attempt.waits else self._client._calls
        try:
            work = pool.submit(attempt.run)
        except RuntimeError:  # shut down by close()
            raise InvalidArgument("the client is closed") from None
        future = asyncio.wrap_future(work)
        try:
            if attempt.waits and attempt.deadline is not None:
                # Queued behind max_waiters other waits, it may not get a
                # thread before its time is up: then it is not acquired.
                await asyncio.wait({future}, timeout=max(0.0, attempt.deadline - time.monotonic()))
                if work.cancel():
                    return False
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if work.cancel():
                raise  # still queued: it never runs
            if attempt.abandon():
                try:
                    undo = self._client._calls.submit(functools.partial(_release_quietly, self.sync))
                except RuntimeError:
                    pass  # the client was closed, which released the lock
                else:
                    await _settle(asyncio.wrap_future(undo))
            else:
                # The wait ends within moments of the cancel; waiting for it
                # leaves this Lock object idle, ready for another acquire.
                await _settle(future)
            raise

    async def release(self) -> None:
        """Releases the lock (on a call thread). Raises
        :class:`distlock.LockLost` if it had been lost before, and
        :class:`distlock.InvalidArgument` if this Lock object does not hold
        it."""
        if self.sync._guard is None:
            # Said at once, without a thread hop.
            raise InvalidArgument(f"release of lock {self.name!r}, which this Lock object does not hold")
        await self._client._call(self.sync.release)

    async def extend(self) -> None:
        """Renews the lease now, for a full TTL from now (on a call thread);
        see :meth:`distlock.Lock.extend`."""
        await self._client._call(self.sync.extend)

    async def locked(self) -> bool:
        """Whether anyone holds the lock right now, as the server says (on a
        call thread); see :meth:`distlock.Lock.locked`."""
        return await self._client._call(self.sync.locked)

    def owned(self) -> bool:
        """Whether this Lock object holds the lock right now; answered
        locally, without a round trip."""
        return self.sync.owned()

    @property
    def fence(self) -> Optional[int]:
        """The fencing token of the latest acquisition through this Lock
        object (None before the first); see :attr:`distlock.Lock.fence`.
        Read on the waiter thread as the lock is won, so reading it here
        does not wait on the server."""
        return self.sync.fence

    @property
    def token(self) -> Optional[str]:
        """The latest acquisition's token; see :attr:`distlock.Lock.token`."""
        return self.sync.token

    @property
    def remaining(self) -> float:
        """Seconds left on the current lease as this process knows it (0.0
        when not held)."""
        return self.sync.remaining

    async def __aenter__(self) -> "Lock":
        if not await self.acquire():
            lock = self.sync
            single = not lock._blocking or lock._timeout == 0
            status = st.NOT_ACQUIRED if single else st.TIMEOUT
            within = "on a single try" if single else f"within {lock._timeout} s"
            raise LockTimeout(f"could not acquire lock {self.name!r} {within}", status)
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            await self.release()
            return
        # The block already failed: release, but never hide its exception
        # behind a release error.
        try:
            await self.release()
        except DistlockError:
            pass

    def __repr__(self) -> str:
        return f"<distlock.aio.Lock {self.name!r} {'held' if self.sync._guard is not None else 'not held'}>"


class RwLock:
    """A read-write lock for asyncio, made by :meth:`Client.rw_lock`: the
    awaitable counterpart of :class:`distlock.RwLock`, whose :meth:`read`
    and :meth:`write` give awaitable :class:`Lock` objects."""

    def __init__(self, client: Client, rw: _lock.RwLock) -> None:
        self._client = client
        #: The blocking RwLock behind this one.
        self.sync: _lock.RwLock = rw

    @property
    def name(self) -> str:
        """The lock's name (the key passed to :meth:`Client.rw_lock`)."""
        return self.sync.name

    def read(self, ttl: Optional[float] = None, timeout: Optional[float] = None, blocking: bool = True) -> Lock:
        """An awaitable :class:`Lock` of read shares, as
        :meth:`distlock.RwLock.read`."""
        return Lock(self._client, self.sync.read(ttl=ttl, timeout=timeout, blocking=blocking))

    def write(self, ttl: Optional[float] = None, timeout: Optional[float] = None, blocking: bool = True) -> Lock:
        """An awaitable :class:`Lock` of the write side, as
        :meth:`distlock.RwLock.write`."""
        return Lock(self._client, self.sync.write(ttl=ttl, timeout=timeout, blocking=blocking))

    def __repr__(self) -> str:
        return f"<distlock.aio.RwLock {self.name!r}>"
