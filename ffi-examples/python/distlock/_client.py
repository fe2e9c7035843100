"""Client: a connection pool to one deployment, the native acquire behind
every Lock, and the closing of clients still open at interpreter exit."""

from __future__ import annotations

import atexit
import ctypes
import threading
import time
import weakref
from typing import Callable, Optional, Sequence, Set, Tuple, Type, TypeVar, Union
from types import TracebackType

from . import _native as n
from . import _status as st
from ._cancel import _MAIN_WAIT_SLICE, CancelToken, _in_main_thread, _NativeCancel, _signals
from ._config import PemSource, open_client
from ._convert import Key, _key_bytes
from ._errors import Cancelled, InvalidArgument, error_for
from ._handle import Handle, HandleClosed
from ._info import Holder, HeldLock, HeldLocks, LockInfo, Stats
from ._lock import _PLAIN, Lock, RwLock, _Kind
from ._log import _refresh_quietly

_T = TypeVar("_T")

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


def _call_acquire(
    cptr: int, key: bytes, kind: _Kind, ttl_ms: int, timeout_ms: int, xptr: Optional[int], out: ctypes.c_void_p
) -> int:
    """distlock_acquire for a plain lock (which every library has), else
    distlock_acquire_kind."""
    if kind == _PLAIN:
        return n.lib.distlock_acquire(cptr, key, ttl_ms, timeout_ms, xptr, ctypes.byref(out))
    return n.lib.distlock_acquire_kind(
        cptr, key, kind.kind, kind.permits, ttl_ms, timeout_ms, xptr, ctypes.byref(out)
    )


def _native_acquire(
    client: Handle,
    key: bytes,
    kind: _Kind,
    ttl_ms: int,
    timeout_ms: int,
    cancel: Optional[_NativeCancel],
) -> _Result:
    """Runs distlock_acquire (or distlock_acquire_kind) on this thread. The
    guard handle is created while the client is still pinned, so it can
    name it as its parent; the failure message is read on this thread, as
    it is thread-local."""
    out = ctypes.c_void_p()
    try:
        cptr = client.pin()
    except HandleClosed:
        return st.CANCELLED, None, "the client was closed"
    try:
        if cancel is None:
            status = _call_acquire(cptr, key, kind, ttl_ms, timeout_ms, None, out)
        else:
            with cancel.handle.use() as xptr:
                status = _call_acquire(cptr, key, kind, ttl_ms, timeout_ms, xptr, out)
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

    def __init__(
        self, client: Handle, key: bytes, kind: _Kind, ttl_ms: int, timeout_ms: int, cancel: _NativeCancel
    ):
        self.done = threading.Event()
        self._mutex = threading.Lock()
        self._abandoned = False
        self._result: Optional[_Result] = None
        self._args = (client, key, kind, ttl_ms, timeout_ms, cancel)
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
    long a waiter goes without looking at the lock; ``poll_interval`` (0.02
    s) how often a memcached client's release feed looks for releases;
    ``max_hold`` caps how
    long a lock stays renewed (default: no cap). ``linger`` (seconds;
    ``None`` or 0: off, the default; at most 3600) turns on lease caching:
    a plain lock released while no thread of this client waits for it
    stays held on the server for up to that long, and this client's next
    acquisition of it is granted at once, without a round trip (counted in
    :attr:`Stats.lingered`); another client that wants it announces itself
    and gets it at once, and :meth:`close` releases what is left (the
    client lingers only while it hears those announcements: its first
    release of a name goes to the server and starts hearing them). Redis
    only (one server, Sentinel or Cluster), with ``fast_path`` on and
    shorter than ``max_hold``: otherwise :class:`InvalidArgument`. A
    choice of servers the library refuses (fewer than 3 nodes, a sentinel without a master name,
    an ``etcd://`` or ``zk://`` URL among Redlock nodes or cluster seeds)
    raises :class:`InvalidArgument` before anything connects; its
    ``detail`` is the library's message, the same in every language.

    TLS (``rediss://`` URLs, one server or Redlock nodes): ``tls_ca`` is
    the CA certificate(s) to trust instead of the system's trust store (for
    a private CA or a self-signed server): a PEM file's path (str or
    :class:`os.PathLike`) or the PEM itself as bytes. ``tls_client_cert=
    (cert, key)`` presents a client certificate (chain) and its private
    key to servers that require one (Redis ``tls-auth-clients yes``):
    two paths or two PEM bytes. Files are read and checked when the client
    is opened (later changes to them are not seen); bytes are copied. A
    wrong type or shape raises :class:`TypeError`; a file that cannot be
    read (the message names it), PEM without a usable certificate or key,
    or a key that is not the certificate's raises :class:`InvalidArgument`
    with the library's words, which never show what a key file holds. A
    server the CA does not vouch for fails the connection:
    :class:`ConnectionFailed`.

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
        poll_interval: Optional[float] = None,
        linger: Optional[float] = None,
        max_hold: Optional[float] = None,
        tls_ca: Optional[PemSource] = None,
        tls_client_cert: Optional[Tuple[PemSource, PemSource]] = None,
        holder_label: Optional[str] = None,
    ) -> None:
        _refresh_quietly()
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
            poll_interval=poll_interval,
            linger=linger,
            max_hold=max_hold,
            tls_ca=tls_ca,
            tls_client_cert=tls_client_cert,
            holder_label=holder_label,
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
        fair: bool = False,
    ) -> "Lock":
        """A :class:`Lock` on the name ``key`` (stored in Redis as
        ``<prefix>:<key>``). Nothing is sent until it is acquired.

        ``ttl`` overrides the client's lease length for this lock.
        ``timeout``, ``blocking`` and ``cancel`` are the defaults of
        :meth:`Lock.acquire` and so of ``with lock:``, which raises
        :class:`LockTimeout` when the lock is not acquired.

        ``fair=True`` makes it FIFO-fair: waiters of every client that ask
        for ``key`` with ``fair=True`` get it in the order they first
        asked, instead of whoever asks first after a release. A dead
        waiter's place runs out (after the wait ahead plus two leases); a
        plain lock of the same name does not queue and may barge in. Redis
        only: other servers refuse it when it is acquired
        (:class:`InvalidArgument`).
        """
        kind = _Kind(n.KIND_FAIR) if fair else _PLAIN
        return Lock(self, key, ttl=ttl, timeout=timeout, blocking=blocking, cancel=cancel, _kind=kind)

    def rw_lock(self, key: Key) -> "RwLock":
        """The read-write lock named ``key``: many readers at once, or one
        writer (see :class:`RwLock`). Nothing is sent until a side is
        acquired."""
        return RwLock(self, key)

    def semaphore(
        self,
        key: Key,
        permits: int,
        ttl: Optional[float] = None,
        timeout: Optional[float] = None,
        blocking: bool = True,
        *,
        cancel: Optional[CancelToken] = None,
    ) -> "Lock":
        """A :class:`Lock` whose acquisitions are permits of the counting
        semaphore ``key`` of ``permits`` permits: at most ``permits``
        holders at once, across every client. Each permit has its own
        lease, renewal and fence, so a crashed holder's permit comes back
        after its lease. As with :meth:`lock`, one Lock object holds one
        permit at a time: give each holder its own (this is cheap and sends
        nothing).

        The count travels with each acquisition: a semaphore made with
        another count applies it to its own acquisitions at once, and
        holders keep their permits. Counts from 1 to
        :data:`MAX_PERMITS` (10000) are accepted; the library refuses
        others when a permit is acquired (:class:`InvalidArgument`, with
        its message). Redis only, as for :meth:`rw_lock`. ``ttl``,
        ``timeout``, ``blocking`` and ``cancel`` are as for :meth:`lock`.
        """
        if isinstance(permits, bool) or not isinstance(permits, int):
            raise TypeError(f"permits must be an int, not {type(permits).__name__}")
        if not 0 <= permits <= 0xFFFF_FFFF:
            raise InvalidArgument(f"permit count {permits} out of range")
        return Lock(
            self,
            key,
            ttl=ttl,
            timeout=timeout,
            blocking=blocking,
            cancel=cancel,
            _kind=_Kind(n.KIND_PERMIT, permits),
        )

    def _acquire(
        self,
        key: bytes,
        kind: _Kind,
        ttl_ms: int,
        timeout_ms: int,
        token: Optional[CancelToken],
        started: threading.Event,
    ) -> Optional[Handle]:
        """The guard handle, or None when not acquired in time; raises on
        errors and on cancellation."""
        if token is not None and token.cancelled:
            raise Cancelled("acquire: the CancelToken was cancelled")
        if kind != _PLAIN and not n.HAS_KINDS:
            raise self._missing("distlock_acquire_kind", "read-write locks, semaphores and fair locks")
        handle = self._handle
        if self._closed or handle is None:
            raise InvalidArgument("the client is closed")
        main = timeout_ms != 0 and _in_main_thread()
        start = time.monotonic() if timeout_ms > 0 else 0.0
        if main or timeout_ms == 0:
            # One try without waiting: no helper thread and no cancel handle
            # when the lock is free, which is the common case.
            status, guard, message = _native_acquire(handle, key, kind, ttl_ms, 0, None)
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

        deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms > 0 else None
        while True:
            cancel = _NativeCancel()
            signalled = False
            try:
                with self._mutex:
                    if self._closed:
                        raise InvalidArgument("the client is closed")
                    self._pending.add(cancel)
                if token is not None and not token._register(cancel):
                    raise Cancelled("acquire: the CancelToken was cancelled")
                if main and _signals.arm(cancel):
                    # The wait runs in this thread; a signal cancels it (see
                    # _SignalWatch) and its handler runs below.
                    try:
                        started.set()
                        status, guard, message = _native_acquire(handle, key, kind, ttl_ms, timeout_ms, cancel)
                    finally:
                        signalled = _signals.interrupted
                        _signals.disarm()
                elif main:
                    status, guard, message = self._wait_in_helper(
                        handle, key, kind, ttl_ms, timeout_ms, cancel, started
                    )
                else:
                    started.set()
                    status, guard, message = _native_acquire(handle, key, kind, ttl_ms, timeout_ms, cancel)
            finally:
                with self._mutex:
                    self._pending.discard(cancel)
                if token is not None:
                    token._unregister(cancel)
                cancel.close()
            if status != st.CANCELLED or not signalled or self._closed or (token is not None and token.cancelled):
                break
            # A signal stopped the wait. Going round the loop runs its
            # handler: KeyboardInterrupt leaves here, having taken nothing;
            # a handler that raises nothing lets the wait go on.
            if deadline is not None:
                timeout_ms = int((deadline - time.monotonic()) * 1000)
                if timeout_ms <= 0:
                    return None
        if status == st.OK:
            return guard
        if status in (st.TIMEOUT, st.NOT_ACQUIRED):
            return None
        raise error_for(status, f"acquire {key!r}: {message}", message)

    @staticmethod
    def _wait_in_helper(
        handle: Handle,
        key: bytes,
        kind: _Kind,
        ttl_ms: int,
        timeout_ms: int,
        cancel: _NativeCancel,
        started: threading.Event,
    ) -> _Result:
        helper = _HelperAcquire(handle, key, kind, ttl_ms, timeout_ms, cancel)
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

    def _with_client(self, fn: Callable[[int], _T]) -> _T:
        """Runs ``fn`` with the native client pointer, pinned for the call;
        InvalidArgument once the client is closed."""
        handle = self._handle
        if self._closed or handle is None:
            raise InvalidArgument("the client is closed")
        try:
            with handle.use() as cptr:
                return fn(cptr)
        except HandleClosed:
            raise InvalidArgument("the client is closed") from None

    @staticmethod
    def _missing(function: str, method: str, instead: str = "") -> NotImplementedError:
        return NotImplementedError(
            f"{method}: the C function {function} is missing from the loaded library "
            f"({n.LIBRARY_PATH}): install a newer distlock.{instead}"
        )

    def _inspect(self, key: bytes, want_token: bool) -> Tuple[n.LockInfo, Optional[bytes]]:
        """distlock_client_inspect on this thread: the filled struct and,
        if ``want_token``, the holder's token bytes (b"" when free). The
        buffer starts large enough for any token distlock writes and grows
        to the size the library asks for when the key holds a longer value
        (written by something else, or rewritten between two tries)."""
        if not n.HAS_INSPECT:
            raise self._missing(
                "distlock_client_inspect",
                "Lock.locked() and Client.inspect()",
                " Lock.owned() says whether a Lock object holds its lock.",
            )
        info = n.LockInfo()
        size = n.TOKEN_LEN + 1 if want_token else 0

        def call(cptr: int) -> Tuple[n.LockInfo, Optional[bytes]]:
            nonlocal size
            for _ in range(8):
                ctypes.memset(ctypes.byref(info), 0, ctypes.sizeof(info))
                info.struct_size = ctypes.sizeof(n.LockInfo)
                buf = ctypes.create_string_buffer(size) if size else None
                status = n.lib.distlock_client_inspect(cptr, key, buf, size, ctypes.byref(info))
                if status == st.OK:
                    if buf is None:
                        return info, None
                    return info, buf.raw[: min(info.token_len, size - 1)]
                if want_token and status == st.INVALID_ARGUMENT and info.token_len + 1 > size:
                    size = info.token_len + 1
                    continue
                raise n.failure(status, f"inspect {key!r}")
            raise n.failure(st.INVALID_ARGUMENT, f"inspect {key!r}: the token kept growing")

        return self._with_client(call)

    def _is_locked(self, key: bytes) -> bool:
        """Whether the server says anyone holds the lock ``key``
        (distlock_client_inspect, asked on this thread)."""
        info, _ = self._inspect(key, want_token=False)
        return bool(info.held)

    # -- operators' tools ---------------------------------------------------

    def inspect(self, key: Key) -> LockInfo:
        """What the server holds for the lock ``key`` right now: whether it
        is held, the holder's token and remaining lease, and the highest
        fencing token handed out. One round trip (bounded by
        ``command_timeout``); nothing is written. For operators and tools:
        only a held :class:`Lock` proves ownership, and the answer may be
        stale as soon as it arrives.

        Raises :class:`InvalidArgument` for a bad key or a closed client,
        :class:`ConnectionFailed` and the like when the server cannot
        answer, and :class:`NotImplementedError` if the loaded native
        library is older than ``distlock_client_inspect``.
        """
        raw = _key_bytes(key)
        info, token = self._inspect(raw, want_token=True)
        held = bool(info.held)
        holder = None
        if info.has_holder:
            label = info.holder_label.decode("utf-8", "replace")
            holder = Holder(
                host=info.holder_host.decode("utf-8", "replace"),
                pid=int(info.holder_pid),
                label=label or None,
            )
        return LockInfo(
            key=raw.decode("utf-8", "replace"),
            held=held,
            token=token.decode("utf-8", "replace") if held and token and not info.shares else None,
            remaining=info.remaining_ms / 1000.0 if info.has_remaining else None,
            fence=int(info.fence) if info.has_fence else None,
            holder=holder,
            shares=int(info.shares),
            writers_waiting=int(info.writers_waiting),
        )

    def held(self, pattern: Key = "*", limit: int = 100) -> HeldLocks:
        """The locks held now under this client's prefix whose names match
        the glob ``pattern`` (``"*"`` for all; ``?``, ``[abc]`` and ``\\``
        escapes as in Redis ``SCAN MATCH``), at most ``limit`` of them, in
        no particular order; ``more`` on the result says the listing
        stopped at ``limit`` and there may be others. For operators and
        tools: found with ``SCAN``, a bounded number of keys per step, so
        it is safe on a busy server, and a snapshot that may miss locks
        taken or include locks freed while it runs. Not available with
        ``cluster=`` or on memcached (:class:`InvalidArgument`); with
        ``nodes=`` the list comes from the first node that answers.

        Raises :class:`InvalidArgument` for an empty or over-long pattern,
        a ``limit`` below 1 or a closed client, :class:`ConnectionFailed`
        and the like when the server cannot answer, and
        :class:`NotImplementedError` if the loaded native library is older
        than ``distlock_client_held``.
        """
        if isinstance(pattern, str):
            raw = pattern.encode("utf-8")
        elif isinstance(pattern, (bytes, bytearray)):
            raw = bytes(pattern)
        else:
            raise TypeError(f"pattern must be str or bytes, not {type(pattern).__name__}")
        if b"\0" in raw:
            raise InvalidArgument("pattern must not contain NUL characters")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        if limit < 1:
            raise InvalidArgument(f"limit must be at least 1, got {limit}")
        if not n.HAS_HELD:
            raise self._missing("distlock_client_held", "Client.held()")
        limit = min(limit, ctypes.c_size_t(-1).value)

        def text(p: Optional[bytes]) -> str:
            return (p or b"").decode("utf-8", "replace")

        def call(cptr: int) -> HeldLocks:
            out = ctypes.c_void_p()
            count = ctypes.c_size_t()
            more = ctypes.c_bool()
            status = n.lib.distlock_client_held(
                cptr, raw, limit, ctypes.byref(out), ctypes.byref(count), ctypes.byref(more)
            )
            if status != st.OK:
                raise n.failure(status, f"list held locks matching {raw!r}")
            try:
                locks = []
                entry = n.HeldLock()
                for i in range(count.value):
                    ctypes.memset(ctypes.byref(entry), 0, ctypes.sizeof(entry))
                    entry.struct_size = ctypes.sizeof(n.HeldLock)
                    n.check(n.lib.distlock_held_get(out, i, ctypes.byref(entry)), "read the listing")
                    holder = None
                    if entry.has_holder:
                        label = entry.holder_label
                        holder = Holder(
                            host=text(entry.holder_host),
                            pid=int(entry.holder_pid),
                            label=text(label) if label is not None else None,
                        )
                    locks.append(
                        HeldLock(
                            name=text(entry.name),
                            token=text(entry.token),
                            remaining=entry.remaining_ms / 1000.0 if entry.has_remaining else None,
                            fence=int(entry.fence) if entry.has_fence else None,
                            holder=holder,
                        )
                    )
                return HeldLocks(locks=tuple(locks), more=bool(more.value))
            finally:
                n.lib.distlock_held_free(out)

        return self._with_client(call)

    def release_token(self, key: Key, token: Union[str, bytes]) -> bool:
        """Deletes the lock ``key`` if, and only if, it is held with
        ``token``: the operator's way to free a lock whose holder is known
        to be dead (the token comes from :meth:`inspect`, or from the
        holder's ``Lock.token``). Returns True if the lock was deleted,
        False if it was not held with ``token`` (free, or held with another
        token: nothing changed). The holder's :class:`Lock` finds it lost at
        its next renewal (within a third of its TTL): ``owned()`` turns
        False, ``wait_lost()`` returns and ``release()`` raises
        :class:`LockLost`.

        Raises :class:`InvalidArgument` for a bad key or token (empty, too
        long) or a closed client; :class:`ConnectionFailed` and the like
        when it is unknown whether the lock was deleted;
        :class:`NotImplementedError` if the loaded native library is older
        than ``distlock_client_release_token``.
        """
        raw = _key_bytes(key)
        if isinstance(token, str):
            tok = token.encode("utf-8", "surrogateescape")
        elif isinstance(token, (bytes, bytearray)):
            tok = bytes(token)
        else:
            raise TypeError(f"token must be str or bytes, not {type(token).__name__}")
        if b"\0" in tok:
            raise InvalidArgument("token must not contain NUL characters")
        if not n.HAS_RELEASE_TOKEN:
            raise self._missing("distlock_client_release_token", "Client.release_token()")
        released = ctypes.c_bool()

        def call(cptr: int) -> bool:
            status = n.lib.distlock_client_release_token(cptr, raw, tok, ctypes.byref(released))
            if status != st.OK:
                raise n.failure(status, f"release token of {raw!r}")
            return bool(released.value)

        return self._with_client(call)

    def stats(self) -> Stats:
        """A snapshot of this client's counters (acquisitions, waits,
        timeouts, losses, renewals, local hand-offs) and acquire-wait
        percentiles, since it was opened. Read locally: no round trip.

        Raises :class:`NotImplementedError` if the loaded native library
        does not have ``distlock_client_stats``, and
        :class:`InvalidArgument` for a closed client.
        """
        if not n.HAS_STATS:
            raise self._missing("distlock_client_stats", "Client.stats()")
        out = n.Stats()
        out.struct_size = ctypes.sizeof(n.Stats)

        def call(cptr: int) -> None:
            n.check(n.lib.distlock_client_stats(cptr, ctypes.byref(out)), "stats")

        self._with_client(call)
        return Stats(
            acquired=out.acquired,
            contended=out.contended,
            timed_out=out.timed_out,
            cancelled=out.cancelled,
            lost=out.lost,
            renewals=out.renewals,
            renewal_failures=out.renewal_failures,
            local_handoffs=out.local_handoffs,
            feed_reconnects=out.feed_reconnects,
            wait_p50=out.wait_p50_us / 1e6,
            wait_p99=out.wait_p99_us / 1e6,
            wait_max=out.wait_max_us / 1e6,
            lingered=out.lingered,
        )

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
