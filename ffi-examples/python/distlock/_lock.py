"""Lock: one holder of a named distributed lock, like threading.Lock."""

from __future__ import annotations

import ctypes
import math
import threading
import time
from typing import TYPE_CHECKING, NamedTuple, Optional, Tuple, Type
from types import TracebackType

from . import _native as n
from . import _status as st
from ._cancel import _MAIN_WAIT_SLICE, CancelToken, _in_main_thread
from ._convert import Key, _key_bytes, _positive_ms, _seconds, _wait_ms
from ._errors import Cancelled, DistlockError, InvalidArgument, LockLost, LockTimeout
from ._handle import Handle, HandleClosed

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Lock", "RwLock"]


class _Kind(NamedTuple):
    """What an acquisition asks for: a DISTLOCK_KIND_* and, for a permit,
    the semaphore's count."""

    kind: int = n.KIND_PLAIN
    permits: int = 0


_PLAIN = _Kind()

#: How a kind shows in a Lock's repr and :attr:`Lock.kind`.
_KIND_NAMES = {
    n.KIND_PLAIN: "plain",
    n.KIND_READ: "read",
    n.KIND_WRITE: "write",
    n.KIND_PERMIT: "permit",
    n.KIND_FAIR: "fair",
}


class Lock:
    """A named distributed lock, owned by one holder at a time.

    Create it with :meth:`Client.lock`. It works like
    :class:`threading.Lock`: ``acquire()`` / ``release()``, or ``with``.
    A Lock object holds at most one acquisition: to contend from several
    threads, give each its own Lock from ``client.lock(key)`` (that is
    cheap and sends nothing). Acquiring through a Lock object that already
    holds the lock, or while another thread is acquiring through it,
    raises :class:`InvalidArgument` instead of deadlocking.

    While held, the lease is renewed in the background; :meth:`owned`
    turns False and :meth:`wait_lost` returns True if it is lost anyway
    (for instance when Redis is unreachable for longer than the TTL).
    """

    def __init__(
        self,
        client: Client,
        key: Key,
        *,
        ttl: Optional[float] = None,
        timeout: Optional[float] = None,
        blocking: bool = True,
        cancel: Optional[CancelToken] = None,
        _kind: _Kind = _PLAIN,
    ) -> None:
        self._guard: Optional[Handle] = None
        self._client = client
        self._key = _key_bytes(key)
        self._kind = _kind
        self._ttl_ms = 0 if ttl is None else _positive_ms(ttl, "ttl")
        if not blocking and timeout is not None:
            raise InvalidArgument("can't specify a timeout for a non-blocking lock")
        if timeout is not None:
            _seconds(timeout, "timeout")
        self._timeout = timeout
        self._blocking = bool(blocking)
        self._cancel = cancel
        self._mutex = threading.Lock()
        self._acquiring = False
        # The guard of the latest acquisition once released: kept (not
        # freed) until the next acquisition, client close or garbage
        # collection, so that its fence and token can still be read.
        self._spent: Optional[Handle] = None
        # The latest acquisition's fence and token, read from its guard the
        # first time they are asked for (the lock cycle never pays for it).
        self._fence: Optional[int] = None
        self._token: Optional[str] = None
        # Set when an acquire starts to wait (after a first try failed);
        # lets tests and tools know that a wait is really under way.
        self._wait_started = threading.Event()

    @property
    def name(self) -> str:
        """The lock's name (the key passed to :meth:`Client.lock`)."""
        return self._key.decode("utf-8", "replace")

    @property
    def kind(self) -> str:
        """What an acquisition holds: ``"plain"``, ``"fair"`` (from
        :meth:`Client.lock`), ``"read"`` or ``"write"`` (the sides of a
        :class:`RwLock`), or ``"permit"`` (from :meth:`Client.semaphore`)."""
        return _KIND_NAMES[self._kind.kind]

    @property
    def permits(self) -> Optional[int]:
        """The semaphore's permit count for a ``"permit"`` Lock, else None."""
        return self._kind.permits if self._kind.kind == n.KIND_PERMIT else None

    # -- acquiring and releasing ------------------------------------------

    def acquire(
        self,
        blocking: Optional[bool] = None,
        timeout: Optional[float] = None,
        *,
        cancel: Optional[CancelToken] = None,
    ) -> bool:
        """Acquires the lock; True when acquired, False when not in time.

        ``blocking=False`` tries once and never waits. Otherwise it waits
        at most ``timeout`` seconds (``None``: the Lock's default, which is
        forever unless :meth:`Client.lock` was given one; a negative value
        also waits forever; ``0`` tries once). ``None`` for ``blocking``
        and ``cancel`` likewise use the Lock's defaults.

        Raises :class:`Cancelled` when ``cancel`` (a :class:`CancelToken`)
        is cancelled during the wait or before it, and the other
        :class:`DistlockError` subclasses on errors. In the main thread
        the wait can be interrupted with Ctrl-C: KeyboardInterrupt is
        raised and the lock is not acquired.
        """
        if blocking is None:
            blocking = self._blocking
        if not blocking:
            if timeout is not None and timeout != -1:
                raise InvalidArgument("can't specify a timeout for a non-blocking call")
            timeout_ms = 0
        else:
            timeout_ms = _wait_ms(self._timeout if timeout is None else timeout)
        token = self._cancel if cancel is None else cancel
        with self._mutex:
            if self._guard is not None:
                raise InvalidArgument(f"lock {self.name!r} is already held through this Lock object")
            if self._acquiring:
                raise InvalidArgument(
                    f"another thread is already acquiring lock {self.name!r} through this Lock object"
                )
            self._acquiring = True
            if self._wait_started.is_set():
                self._wait_started.clear()
        try:
            guard = self._client._acquire(
                self._key, self._kind, self._ttl_ms, timeout_ms, token, self._wait_started
            )
            if guard is None:
                return False
            with self._mutex:
                spent, self._spent = self._spent, None
                self._fence = self._token = None
            try:
                installed = self._client._install(self, guard)
            except BaseException:
                guard.close()
                raise
            finally:
                if spent is not None:
                    spent.close()
            if not installed:
                guard.close()
                raise Cancelled(f"acquire {self.name!r}: the client was closed")
            return True
        finally:
            with self._mutex:
                self._acquiring = False

    def _identity(self, with_fence: bool = True) -> Tuple[Optional[int], Optional[str]]:
        """The latest acquisition's (fence, token), read from its guard on
        first use; (None, None) before the first acquisition. Without
        ``with_fence`` only the token is read (the fence may cost a round
        trip: a lock can be granted without one, given when first read)."""
        with self._mutex:
            if self._fence is not None or (not with_fence and self._token is not None):
                return self._fence, self._token
            guard = self._guard if self._guard is not None else self._spent
        if guard is None:
            return self._fence, self._token
        try:
            fence, token = self._read_identity(guard, with_fence)
        except HandleClosed:
            return self._fence, self._token
        with self._mutex:
            if guard is self._guard or guard is self._spent:
                self._token = token
                if fence is not None:
                    self._fence = fence
        return fence, token

    @staticmethod
    def _read_identity(guard: Handle, with_fence: bool) -> Tuple[Optional[int], str]:
        fence = ctypes.c_uint64()
        buf = ctypes.create_string_buffer(n.TOKEN_LEN + 1)
        ptr = guard.pin()
        try:
            n.check(n.lib.distlock_guard_token(ptr, buf, len(buf)), "token")
            if with_fence:
                n.check(n.lib.distlock_guard_fence(ptr, ctypes.byref(fence)), "fence")
        finally:
            guard.unpin()
        return (fence.value if with_fence else None), buf.value.decode("ascii")

    def release(self) -> None:
        """Releases the lock.

        Raises :class:`LockLost` if it had been lost before (the lease ran
        out or the key was taken or deleted): the work done under it was
        not exclusive. Raises :class:`InvalidArgument` if this Lock object
        does not hold it (never acquired, or already released).
        """
        with self._mutex:
            guard, self._guard = self._guard, None
        if guard is None:
            raise InvalidArgument(f"release of lock {self.name!r}, which this Lock object does not hold")
        error: Optional[DistlockError] = None
        try:
            ptr = guard.pin()
        except HandleClosed:
            error = LockLost(f"release {self.name!r}: the client was closed")
        else:
            try:
                status = n.lib.distlock_guard_release(ptr)
                if status != st.OK:
                    error = n.failure(status, f"release {self.name!r}")
            finally:
                guard.unpin()
        # Kept for its fence and token; freed by the next acquisition.
        with self._mutex:
            spent, self._spent = self._spent, guard
        if spent is not None:
            spent.close()
        if error is not None:
            raise error

    def _drop_guard(self) -> None:
        """Frees the guards, releasing the lock if still held (client
        close); the token is read first, to stay readable (and the fence,
        if it was read before)."""
        self._identity(with_fence=False)
        with self._mutex:
            guard, self._guard = self._guard, None
            spent, self._spent = self._spent, None
        for g in (guard, spent):
            if g is not None:
                g.close()

    def __enter__(self) -> "Lock":
        if not self.acquire():
            status = st.NOT_ACQUIRED if not self._blocking or self._timeout == 0 else st.TIMEOUT
            within = "on a single try" if status == st.NOT_ACQUIRED else f"within {self._timeout} s"
            raise LockTimeout(f"could not acquire lock {self.name!r} {within}", status)
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            self.release()
            return
        # The block already failed: release, but never hide its exception
        # behind a release error.
        try:
            self.release()
        except DistlockError:
            pass

    # -- state ------------------------------------------------------------

    def owned(self) -> bool:
        """Whether this Lock object holds the lock right now (acquired, not
        released, and its lease not lost). Answered locally: no round trip.

        (This used to be :meth:`locked`'s meaning; :meth:`locked` now asks
        the server whether anyone holds the lock.)
        """
        guard = self._guard
        if guard is None:
            return False
        held = ctypes.c_bool()
        try:
            with guard.use() as ptr:
                status = n.lib.distlock_guard_is_held(ptr, ctypes.byref(held))
                if status != st.OK:
                    raise n.failure(status, f"is_held {self.name!r}")
        except HandleClosed:
            return False
        return bool(held.value)

    def locked(self) -> bool:
        """Whether anyone (this object, another Lock, another process) holds
        the lock right now, as the server says; like redis-py's
        ``Lock.locked()``. One round trip, nothing written; the answer may
        be stale as soon as it arrives, so use it for display and tools,
        and :meth:`acquire` to take the lock. :meth:`owned` says whether
        this Lock object holds it.

        Raises :class:`NotImplementedError` if the loaded native library is
        older than ``distlock_client_inspect``; :class:`ConnectionFailed`
        and the like when the server cannot answer.
        """
        return self._client._is_locked(self._key)

    @property
    def held(self) -> bool:
        """Same as :meth:`owned`."""
        return self.owned()

    @property
    def fence(self) -> Optional[int]:
        """The fencing token of the latest acquisition through this Lock
        object (None before the first). Fences of one lock name strictly
        increase across all holders: pass it to the storage you write to so
        it can reject a writer whose lock has since been lost.

        A lock taken from Redis 7 or later may be granted without its
        fence: the first read then asks the server for it (one round trip,
        while the lock is held), and the client's later locks of the name
        take it at once. Once read it stays readable after release. Raises
        :class:`LockLost` if the lock was lost or released before its fence
        was first read, or a connection error if the server could not be
        asked (read it again)."""
        return self._identity()[0]

    @property
    def token(self) -> Optional[str]:
        """The latest acquisition's token (36-character uuid text), the value
        stored in Redis under the lock's key while it is held; None before
        the first acquisition."""
        return self._identity(with_fence=False)[1]

    @property
    def remaining(self) -> float:
        """Seconds left on the current lease, as this process knows it (0.0
        when not held). Renewal pushes it back up while the lock is held."""
        guard = self._guard
        if guard is None:
            return 0.0
        ms = ctypes.c_uint64()
        try:
            with guard.use() as ptr:
                status = n.lib.distlock_guard_remaining_ms(ptr, ctypes.byref(ms))
                if status == st.LOST:
                    return 0.0
                if status != st.OK:
                    raise n.failure(status, f"remaining {self.name!r}")
        except HandleClosed:
            return 0.0
        return ms.value / 1000.0

    def extend(self) -> None:
        """Renews the lease now, for a full TTL from now.

        Raises :class:`LockLost` if the lock was lost, and
        :class:`InvalidArgument` if this Lock object does not hold it.
        """
        guard = self._guard
        if guard is None:
            raise InvalidArgument(f"extend of lock {self.name!r}, which this Lock object does not hold")
        try:
            with guard.use() as ptr:
                status = n.lib.distlock_guard_extend(ptr)
                if status != st.OK:
                    raise n.failure(status, f"extend {self.name!r}")
        except HandleClosed:
            raise LockLost(f"extend {self.name!r}: released meanwhile") from None

    def wait_lost(self, timeout: Optional[float] = None) -> bool:
        """Waits until the lock is lost or released; True if it is (or was
        never held), False if still held after ``timeout`` seconds (None or
        negative: wait as long as it takes; 0: just check).

        In the main thread the wait is cut into short slices, so Ctrl-C
        interrupts it.
        """
        guard = self._guard
        if guard is None:
            return True
        ms = _wait_ms(timeout)
        if ms == 0 or not _in_main_thread():
            return self._wait_lost_once(guard, ms)
        deadline = None if ms < 0 else time.monotonic() + ms / 1000.0
        slice_ms = int(_MAIN_WAIT_SLICE * 1000)
        while True:
            if deadline is None:
                step = slice_ms
            else:
                step = min(slice_ms, max(1, math.ceil((deadline - time.monotonic()) * 1000)))
            if self._wait_lost_once(guard, step):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _wait_lost_once(self, guard: Handle, ms: int) -> bool:
        try:
            with guard.use() as ptr:
                status = n.lib.distlock_guard_wait_lost(ptr, ms)
                if status == st.LOST:
                    return True
                if status == st.TIMEOUT:
                    return False
                raise n.failure(status, f"wait_lost {self.name!r}")
        except HandleClosed:
            return True  # released by another thread meanwhile

    def __repr__(self) -> str:
        state = "held" if self._guard is not None else "not held"
        kind = "" if self._kind == _PLAIN else f" {self.kind}"
        return f"<distlock.Lock{kind} {self.name!r} {state} fence={self.fence}>"


class RwLock:
    """A named read-write lock: many readers at once, or one writer, across
    every client. Made by :meth:`Client.rw_lock`; it sends nothing itself.

    :meth:`read` and :meth:`write` give :class:`Lock` objects, used like
    any other (``acquire()`` / ``release()``, ``with``, ``fence``,
    ``extend()``, ``wait_lost()``); each acquisition has its own token,
    lease, renewal and fence.

    - Readers share the lock with each other, never with a writer.
    - Writers are preferred: once a writer waits, new readers wait behind
      it; a writer that gives up lets them in.
    - A reader that crashes frees only its own share, after its lease.
    - Not re-entrant and not upgradable: asking for the write lock while
      holding the read lock waits on yourself.

    Redis only: memcached, etcd, ZooKeeper and Redlock clients refuse it when a side
    is acquired (:class:`InvalidArgument`), as does a name in use by a
    plain lock or a semaphore.
    """

    def __init__(self, client: Client, key: Key) -> None:
        self._client = client
        self._key = _key_bytes(key)

    @property
    def name(self) -> str:
        """The lock's name (the key passed to :meth:`Client.rw_lock`)."""
        return self._key.decode("utf-8", "replace")

    def read(
        self,
        ttl: Optional[float] = None,
        timeout: Optional[float] = None,
        blocking: bool = True,
        *,
        cancel: Optional[CancelToken] = None,
    ) -> Lock:
        """A :class:`Lock` whose acquisitions are read shares: they wait
        while a writer holds the lock or waits for it. The arguments are
        those of :meth:`Client.lock`. Give each reader its own."""
        return Lock(
            self._client,
            self._key,
            ttl=ttl,
            timeout=timeout,
            blocking=blocking,
            cancel=cancel,
            _kind=_Kind(n.KIND_READ),
        )

    def write(
        self,
        ttl: Optional[float] = None,
        timeout: Optional[float] = None,
        blocking: bool = True,
        *,
        cancel: Optional[CancelToken] = None,
    ) -> Lock:
        """A :class:`Lock` whose acquisitions hold the lock alone: they
        wait until no reader or writer holds it (and, while waiting, hold
        new readers back). The arguments are those of :meth:`Client.lock`."""
        return Lock(
            self._client,
            self._key,
            ttl=ttl,
            timeout=timeout,
            blocking=blocking,
            cancel=cancel,
            _kind=_Kind(n.KIND_WRITE),
        )

    def __repr__(self) -> str:
        return f"<distlock.RwLock {self.name!r}>"
