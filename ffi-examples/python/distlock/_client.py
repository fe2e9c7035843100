"""Client: a connection pool to one deployment, the native acquire behind
every Lock, and the closing of clients still open at interpreter exit."""

from __future__ import annotations

import atexit
import ctypes
import threading
import time
import weakref
from typing import Optional, Sequence, Set, Tuple, Type
from types import TracebackType

from . import _native as n
from . import _status as st
from ._cancel import _MAIN_WAIT_SLICE, CancelToken, _in_main_thread, _NativeCancel
from ._config import open_client
from ._convert import Key
from ._errors import Cancelled, InvalidArgument, error_for
from ._handle import Handle, HandleClosed
from ._lock import Lock

__all__ = ["Client"]


# Every open client, so that interpreter exit can close them: their locks
# are then released at once instead of lingering until their leases run out.
_open_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()
_open_clients_mutex = threading.Lock()


@atexit.register
def _close_open_clients() -> None:
    with _open_clients_mutex:
        clients = list(_open_clients)
    for c in clients:
        try:
            c.close()
        except Exception:
            pass


# The result of one native acquire: (status, guard handle if OK, message).
_Result = Tuple[int, Optional[Handle], Optional[str]]


def _native_acquire(
    client: Handle,
    key: bytes,
    ttl_ms: int,
    timeout_ms: int,
    cancel: Optional[_NativeCancel],
) -> _Result:
    """Runs distlock_acquire on this thread. The guard handle is created
    while the client is still pinned, so it can name it as its parent; the
    failure message is read on this thread, as it is thread-local."""
    out = ctypes.c_void_p()
    try:
        cptr = client.pin()
    except HandleClosed:
        return st.CANCELLED, None, "the client was closed"
    try:
        if cancel is None:
            status = n.lib.distlock_acquire(cptr, key, ttl_ms, timeout_ms, None, ctypes.byref(out))
        else:
            with cancel.handle.use() as xptr:
                status = n.lib.distlock_acquire(cptr, key, ttl_ms, timeout_ms, xptr, ctypes.byref(out))
        if status == st.OK:
            return status, Handle(out.value, n.lib.distlock_guard_free, parent=client), None
        return status, None, n.last_error()
    except HandleClosed:
        return st.CANCELLED, None, "the client was closed"
    finally:
        client.unpin()


class _HelperAcquire:
    """A native acquire run on a helper thread so that the main thread can
    keep handling signals (Ctrl-C) while it waits.

    Whoever comes second cleans up: if the main thread gave up (abandon())
    before the result arrived, the helper frees any guard it got itself.
    """

    def __init__(self, client: Handle, key: bytes, ttl_ms: int, timeout_ms: int, cancel: _NativeCancel):
        self.done = threading.Event()
        self._mutex = threading.Lock()
        self._abandoned = False
        self._result: Optional[_Result] = None
        self._args = (client, key, ttl_ms, timeout_ms, cancel)
        self.thread = threading.Thread(target=self._run, name="distlock-acquire", daemon=True)

    def _run(self) -> None:
        try:
            result = _native_acquire(*self._args)
        except BaseException as e:  # e.g. MemoryError: report, never lose it
            result = (st.INTERNAL, None, f"acquire helper thread failed: {e!r}")
        with self._mutex:
            abandoned = self._abandoned
            if not abandoned:
                self._result = result
        if abandoned and result[1] is not None:
            result[1].close()  # distlock_guard_free releases it
        self.done.set()

    def result(self) -> _Result:
        assert self._result is not None
        return self._result

    def abandon(self) -> Optional[_Result]:
        """Gives up on the result: returns it if it already arrived (the
        caller then owns its guard), else leaves the cleanup to the helper."""
        with self._mutex:
            if self._result is not None:
                return self._result
            self._abandoned = True
            return None


class Client:
    """A connection pool to one Redis server (or a Redlock, cluster or
    sentinel deployment), and the locks taken through it.

    ``url`` is ``redis://[user:password@]host:port/db`` (or ``rediss://``
    for TLS); with no server given at all, the library's default
    ``redis://127.0.0.1:6379/0`` is used. Durations are in seconds
    (floats); ``None`` keeps the library's default: ``prefix``
    "distlock", ``ttl`` 30 s (the lease of each lock, renewed
    automatically while held), ``pool_size`` 16, ``connect_timeout`` 3 s,
    ``command_timeout`` 2 s.

    Instead of ``url``, give the servers in one of these ways (at most one
    of the three; ``url`` goes only with ``sentinel=``, otherwise
    :class:`InvalidArgument` is raised before the library is called):

    - ``nodes=[url, url, url]``: Redlock over 3 or more independent nodes;
      a lock is owned only while a majority of them grant it.
    - ``cluster=[url, ...]``: some nodes (seeds) of a Redis Cluster.
    - ``sentinel=([addr, ...], master)``: the sentinels (``host:port``, or
      ``redis://[user:password@]host:port``) that watch the master called
      ``master``. ``url``, if given too, supplies the master's scheme,
      credentials and db (its host and port are not used). An empty or
      ``None`` master name counts as not given: the library then refuses
      the addresses for lacking it.

    More settings: ``replicas=(count, seconds)`` makes each lock write and
    renewal wait (Redis ``WAIT``) until ``count`` replicas confirm it, at
    most ``seconds`` (a lock fewer confirm is given back and raises
    :class:`ConnectionFailed`); ``fast_path`` (default True: threads of
    this client queue locally and pass the lease among themselves),
    ``handoff_limit`` (16, at most 63) and ``handoff_budget`` (0.02 s)
    bound such local hand-offs; ``max_retry_interval`` (0.5 s) bounds how
    long a waiter goes without looking at the lock; ``max_hold`` caps how
    long a lock stays renewed (default: no cap). A choice of servers the
    library refuses (fewer than 3 nodes, a sentinel without a master name,
    a scheme such as ``etcd://`` reserved for a backend still to come)
    raises :class:`InvalidArgument` before anything connects; its
    ``detail`` is the library's message, the same in every language.

    Thread-safe: share one client between threads, and create one
    :class:`Lock` per holder with :meth:`lock`. Close it with
    :meth:`close` or a ``with`` block; closing releases every lock still
    held through it and cancels its waiting acquires. Clients still open
    when the interpreter exits are closed then.

    Raises :class:`InvalidArgument` for a malformed URL or setting and
    :class:`ConnectionFailed` or :class:`AuthFailed` when the server cannot
    be used.
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
        max_hold: Optional[float] = None,
    ) -> None:
        self._handle: Optional[Handle] = None
        self._mutex = threading.Lock()
        self._closed = False
        self._held: "weakref.WeakSet[Lock]" = weakref.WeakSet()
        self._pending: Set[_NativeCancel] = set()
        ptr, self._url = open_client(
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
            max_hold=max_hold,
        )
        self._handle = Handle(ptr, n.lib.distlock_client_close)
        with _open_clients_mutex:
            _open_clients.add(self)

    # -- locks -------------------------------------------------------------

    def lock(
        self,
        key: Key,
        ttl: Optional[float] = None,
        timeout: Optional[float] = None,
        blocking: bool = True,
        *,
        cancel: Optional[CancelToken] = None,
    ) -> "Lock":
        """A :class:`Lock` on the name ``key`` (stored in Redis as
        ``<prefix>:<key>``). Nothing is sent until it is acquired.

        ``ttl`` overrides the client's lease length for this lock.
        ``timeout``, ``blocking`` and ``cancel`` are the defaults of
        :meth:`Lock.acquire` and so of ``with lock:``, which raises
        :class:`LockTimeout` when the lock is not acquired.
        """
        return Lock(self, key, ttl=ttl, timeout=timeout, blocking=blocking, cancel=cancel)

    def _acquire(
        self,
        key: bytes,
        ttl_ms: int,
        timeout_ms: int,
        token: Optional[CancelToken],
        started: threading.Event,
    ) -> Optional[Handle]:
        """The guard handle, or None when not acquired in time; raises on
        errors and on cancellation."""
        if token is not None and token.cancelled:
            raise Cancelled("acquire: the CancelToken was cancelled")
        handle = self._handle
        if self._closed or handle is None:
            raise InvalidArgument("the client is closed")
        main = timeout_ms != 0 and _in_main_thread()
        start = time.monotonic() if timeout_ms > 0 else 0.0
        if main or timeout_ms == 0:
            # One try without waiting: no helper thread and no cancel handle
            # when the lock is free, which is the common case.
            status, guard, message = _native_acquire(handle, key, ttl_ms, 0, None)
            if status == st.OK:
                return guard
            if status != st.NOT_ACQUIRED:
                raise error_for(status, f"acquire {key!r}: {message}", message)
            if timeout_ms == 0:
                return None
            if timeout_ms > 0:
                timeout_ms -= int((time.monotonic() - start) * 1000)
                if timeout_ms <= 0:
                    return None

        cancel = _NativeCancel()
        try:
            with self._mutex:
                if self._closed:
                    raise InvalidArgument("the client is closed")
                self._pending.add(cancel)
            if token is not None and not token._register(cancel):
                raise Cancelled("acquire: the CancelToken was cancelled")
            if main:
                status, guard, message = self._wait_in_helper(
                    handle, key, ttl_ms, timeout_ms, cancel, started
                )
            else:
                started.set()
                status, guard, message = _native_acquire(handle, key, ttl_ms, timeout_ms, cancel)
        finally:
            with self._mutex:
                self._pending.discard(cancel)
            if token is not None:
                token._unregister(cancel)
            cancel.close()
        if status == st.OK:
            return guard
        if status in (st.TIMEOUT, st.NOT_ACQUIRED):
            return None
        raise error_for(status, f"acquire {key!r}: {message}", message)

    @staticmethod
    def _wait_in_helper(
        handle: Handle,
        key: bytes,
        ttl_ms: int,
        timeout_ms: int,
        cancel: _NativeCancel,
        started: threading.Event,
    ) -> _Result:
        helper = _HelperAcquire(handle, key, ttl_ms, timeout_ms, cancel)
        try:
            helper.thread.start()
            started.set()
            while not helper.done.wait(_MAIN_WAIT_SLICE):
                pass
        except BaseException:
            # Ctrl-C (or another exception raised into this thread): stop
            # the wait, make sure no lock it may just have won is kept, and
            # let the exception go on.
            cancel.trigger()
            early = helper.abandon()
            if early is not None and early[1] is not None:
                early[1].close()
            if helper.thread.ident is not None:  # it did start
                helper.thread.join()
            raise
        return helper.result()

    def _install(self, lock: "Lock", guard: Handle) -> bool:
        """Records ``lock`` as holding ``guard``; False if the client was
        closed meanwhile (the caller then frees the guard). The lock stays
        recorded as long as it owns a native guard, held or spent, so that
        close() can free it."""
        with self._mutex:
            if self._closed:
                return False
            self._held.add(lock)
            with lock._mutex:
                lock._guard = guard
            return True

    def _is_locked(self, key: bytes) -> bool:
        """Whether the server says anyone holds the lock ``key``
        (distlock_client_inspect, asked on this thread)."""
        if not n.HAS_INSPECT:
            raise NotImplementedError(
                "Lock.locked() asks the server whether anyone holds the lock, through the C "
                f"function distlock_client_inspect, which the loaded library ({n.LIBRARY_PATH}) "
                "does not have: install a newer distlock. Lock.owned() says whether this "
                "Lock object holds the lock."
            )
        handle = self._handle
        if self._closed or handle is None:
            raise InvalidArgument("the client is closed")
        info = n.LockInfo()
        info.struct_size = ctypes.sizeof(n.LockInfo)
        try:
            with handle.use() as cptr:
                status = n.lib.distlock_client_inspect(cptr, key, None, 0, ctypes.byref(info))
                if status != st.OK:
                    raise n.failure(status, f"inspect {key!r}")
        except HandleClosed:
            raise InvalidArgument("the client is closed") from None
        return bool(info.held)

    # -- lifetime ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Releases every lock still held through this client, cancels its
        waiting acquires and frees it. Calling it again does nothing."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            held = list(self._held)
            self._held.clear()
            pending = list(self._pending)
        with _open_clients_mutex:
            _open_clients.discard(self)
        for cancel in pending:
            cancel.trigger()
        for lock in held:
            lock._drop_guard()
        if self._handle is not None:
            # Freed now, or when the last guard or call using it ends.
            self._handle.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<distlock.Client {self._url} {state}>"
