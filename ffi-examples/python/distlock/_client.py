"""Client, Lock and CancelToken: the Python face of the C API."""

from __future__ import annotations

import atexit
import ctypes
import inspect
import math
import numbers
import re
import threading
import time
import weakref
from typing import Any, Callable, List, Optional, Sequence, Set, Tuple, Type, Union
from types import TracebackType

from . import _native as n
from . import _status as st
from ._errors import Cancelled, DistlockError, InvalidArgument, LockLost, LockTimeout, error_for
from ._handle import Handle, HandleClosed

__all__ = ["Client", "Lock", "CancelToken"]

#: How long the main thread sleeps at most between checks for Ctrl-C while
#: it waits for a helper thread's acquire or for a lock to be lost. A real
#: SIGINT wakes it at once; this only bounds the delay of a signal that
#: arrives without interrupting the wait (such as _thread.interrupt_main()).
_MAIN_WAIT_SLICE = 0.1

_MAX_I64 = 2**63 - 1
_MAX_U64 = 2**64 - 1

Key = Union[str, bytes]


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    f = float(value)
    if math.isnan(f):
        raise InvalidArgument(f"{what} must be a number of seconds, not NaN")
    return f


def _positive_ms(value: object, what: str, limit: int = _MAX_U64) -> int:
    """Seconds to whole milliseconds, rounded up, for settings where zero
    would mean "the default" to the C API and so must not slip through."""
    f = _seconds(value, what)
    if not f > 0 or math.isinf(f):
        raise InvalidArgument(f"{what} must be a positive, finite number of seconds, got {value!r}")
    ms = math.ceil(f * 1000)
    if ms > limit:
        raise InvalidArgument(f"{what} is too large: {value!r} s")
    return ms


def _wait_ms(timeout: Optional[float], what: str = "timeout") -> int:
    """A wait in seconds to the C convention: -1 forever (None, negative or
    infinite), 0 a single try, else milliseconds rounded up."""
    if timeout is None:
        return -1
    f = _seconds(timeout, what)
    if f < 0 or math.isinf(f):
        return -1
    if f == 0:
        return 0
    return min(math.ceil(f * 1000), _MAX_I64)


def _key_bytes(key: Key) -> bytes:
    if isinstance(key, str):
        raw = key.encode("utf-8")
    elif isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
    else:
        raise TypeError(f"lock key must be str or bytes, not {type(key).__name__}")
    if b"\0" in raw:
        raise InvalidArgument("lock key must not contain NUL characters")
    return raw


def _redact(url: str) -> str:
    """The URL with any password replaced, for repr() and messages."""
    return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)


def _text(value: object, what: str) -> bytes:
    """A str argument as UTF-8 bytes without NUL, for the C API."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    raw = value.encode("utf-8")
    if b"\0" in raw:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    return raw


def _texts(values: object, what: str) -> List[bytes]:
    """A sequence of str (a lone str is refused: it is a common slip for a
    one-element list) as a list of UTF-8 bytes."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what} must be a list of str, not {type(values).__name__}")
    return [_text(v, what) for v in values]


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= 0xFFFFFFFF:
        raise InvalidArgument(f"{what} is out of range: {value}")
    return value


def _nonnegative_ms(value: object, what: str) -> int:
    f = _seconds(value, what)
    if f < 0 or math.isinf(f):
        raise InvalidArgument(f"{what} must be a finite number of seconds, not negative: {value!r}")
    return min(math.ceil(f * 1000), _MAX_U64)


#: One step of filling a distlock_config: the setter, its arguments after
#: the config handle, and what to call it in an error message.
_ConfigCall = Tuple[Callable[..., int], Tuple[Any, ...], str]


def _with_config(calls: List[_ConfigCall], what: str, finish: Callable[[int], int]) -> int:
    """Makes a distlock_config, applies ``calls``, hands it to ``finish``
    (which returns a status and may keep a result) and frees it. All on this
    thread, so each failure's message is the one its call left."""
    cfg = n.lib.distlock_config_new()
    if not cfg:
        raise n.failure(st.INTERNAL, "distlock_config_new")
    try:
        for setter, args, name in calls:
            status = setter(cfg, *args)
            if status != st.OK:
                raise n.failure(status, f"{what}: {name}")
        status = finish(cfg)
        if status != st.OK:
            raise n.failure(status, what)
        return status
    finally:
        n.lib.distlock_config_free(cfg)


def _open_with_config(calls: List[_ConfigCall], what: str) -> int:
    """Opens a client with the config ``calls`` make; the client pointer."""
    out = ctypes.c_void_p()
    _with_config(calls, what, lambda cfg: n.lib.distlock_client_open_config(cfg, ctypes.byref(out)))
    return out.value


def check(url: Optional[str] = None, **settings: Any) -> None:
    """Checks the settings :class:`Client` takes (the same arguments), as
    opening a client checks them before it connects, without connecting
    anywhere: for validating a configuration at start-up or offline.

    Raises :class:`InvalidArgument` (with the message :class:`Client` would
    give) or :class:`TypeError` (also for a keyword :class:`Client` does not
    take); returns ``None`` when :class:`Client` would go on to connect.
    Whether the servers answer is not checked.
    """
    unknown = sorted(set(settings) - _SETTINGS)
    if unknown:
        raise TypeError(f"check() got unexpected keyword arguments: {', '.join(unknown)}")
    calls, shown = _config_calls(url, **settings)
    _with_config(calls, f"invalid settings for {shown}", n.lib.distlock_config_check)


def _config_calls(
    url: Optional[str],
    *,
    prefix: Optional[str] = None,
    ttl: Optional[float] = None,
    pool_size: Optional[int] = None,
    connect_timeout: Optional[float] = None,
    command_timeout: Optional[float] = None,
    nodes: Optional[Sequence[str]] = None,
    cluster: Optional[Sequence[str]] = None,
    sentinel: Optional[Tuple[Sequence[str], str]] = None,
    replicas: Optional[Tuple[int, float]] = None,
    fast_path: Optional[bool] = None,
    handoff_limit: Optional[int] = None,
    handoff_budget: Optional[float] = None,
    max_retry_interval: Optional[float] = None,
    max_hold: Optional[float] = None,
) -> Tuple[List[_ConfigCall], str]:
    """The distlock_config calls for these settings (checked for type and
    sign here, for range by the C side), and how to name the servers in
    messages."""
    lib = n.lib
    calls: List[_ConfigCall] = []
    shown: List[str] = []
    if url is not None:
        calls.append((lib.distlock_config_set_url, (_text(url, "url"),), "url"))
        shown.append(_redact(url))
    if nodes is not None:
        raw = _texts(nodes, "nodes")
        calls += [(lib.distlock_config_add_node, (u,), f"node {i + 1}") for i, u in enumerate(raw)]
        shown.append(f"redlock over {len(raw)} nodes")
    if cluster is not None:
        raw = _texts(cluster, "cluster")
        calls += [(lib.distlock_config_add_cluster_url, (u,), f"cluster seed {i + 1}") for i, u in enumerate(raw)]
        shown.append(f"cluster with {len(raw)} seeds")
    if sentinel is not None:
        if isinstance(sentinel, (str, bytes)) or not isinstance(sentinel, Sequence) or len(sentinel) != 2:
            raise TypeError("sentinel must be a pair (list of sentinel addresses, master name)")
        addrs, master = sentinel
        master_b = _text(master, "sentinel master name")
        raw = _texts(addrs, "sentinel addresses")
        calls.append((lib.distlock_config_set_sentinel, (master_b,), "sentinel master name"))
        calls += [(lib.distlock_config_add_sentinel, (a,), f"sentinel {i + 1}") for i, a in enumerate(raw)]
        shown.append(f"sentinel master {master!r} via {len(raw)} sentinels")
    if prefix is not None:
        calls.append((lib.distlock_config_set_prefix, (_text(prefix, "prefix"),), "prefix"))
    if ttl is not None:
        calls.append((lib.distlock_config_set_ttl_ms, (_positive_ms(ttl, "ttl"),), "ttl"))
    if pool_size is not None:
        calls.append((lib.distlock_config_set_pool_size, (_count(pool_size, "pool_size"),), "pool_size"))
    for value, setter, name in (
        (connect_timeout, lib.distlock_config_set_connect_timeout_ms, "connect_timeout"),
        (command_timeout, lib.distlock_config_set_command_timeout_ms, "command_timeout"),
        (max_retry_interval, lib.distlock_config_set_max_retry_interval_ms, "max_retry_interval"),
        (max_hold, lib.distlock_config_set_max_hold_ms, "max_hold"),
    ):
        if value is not None:
            calls.append((setter, (_positive_ms(value, name),), name))
    if replicas is not None:
        if isinstance(replicas, (str, bytes)) or not isinstance(replicas, Sequence) or len(replicas) != 2:
            raise TypeError("replicas must be a pair (count, timeout in seconds)")
        count = _count(replicas[0], "replica count")
        wait = _nonnegative_ms(replicas[1], "replica timeout")
        calls.append((lib.distlock_config_set_replicas, (count, wait), "replicas"))
    if fast_path is not None:
        if not isinstance(fast_path, bool):
            raise TypeError(f"fast_path must be a bool, not {type(fast_path).__name__}")
        calls.append((lib.distlock_config_set_fast_path, (fast_path,), "fast_path"))
    if handoff_limit is not None:
        calls.append(
            (lib.distlock_config_set_handoff_limit, (_count(handoff_limit, "handoff_limit"),), "handoff_limit")
        )
    if handoff_budget is not None:
        budget = _nonnegative_ms(handoff_budget, "handoff_budget")
        calls.append((lib.distlock_config_set_handoff_budget_ms, (budget,), "handoff_budget"))
    return calls, ", ".join(shown) or "no server"


# The keywords of Client (and check) that _config_calls takes.
_SETTINGS = frozenset(inspect.signature(_config_calls).parameters) - {"url"}


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


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _NativeCancel:
    """One distlock_cancel handle, used by a single acquire call."""

    __slots__ = ("handle", "__weakref__")

    def __init__(self) -> None:
        ptr = n.lib.distlock_cancel_new()
        if not ptr:
            raise n.failure(st.INTERNAL, "distlock_cancel_new")
        self.handle = Handle(ptr, n.lib.distlock_cancel_free)

    def trigger(self) -> None:
        """Makes the wait using this handle return CANCELLED. Safe from any
        thread, any number of times, also after the wait ended."""
        try:
            with self.handle.use() as ptr:
                n.lib.distlock_cancel_trigger(ptr)
        except HandleClosed:
            pass

    def close(self) -> None:
        self.handle.close()


class CancelToken:
    """Cancels waits from another thread.

    Pass it to :meth:`Lock.acquire` (``cancel=token``), or to
    :meth:`Client.lock`; :meth:`cancel` then makes every wait using it stop
    with :class:`Cancelled`, including waits that start later: a token
    stays cancelled. One token may serve many waits at once.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cancelled = False
        self._waits: Set[_NativeCancel] = set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Cancels all current and future waits that use this token."""
        with self._mutex:
            self._cancelled = True
            waits = list(self._waits)
        for w in waits:
            w.trigger()

    def _register(self, wait: _NativeCancel) -> bool:
        with self._mutex:
            if self._cancelled:
                return False
            self._waits.add(wait)
            return True

    def _unregister(self, wait: _NativeCancel) -> None:
        with self._mutex:
            self._waits.discard(wait)

    def __repr__(self) -> str:
        return f"<distlock.CancelToken cancelled={self._cancelled}>"


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
    for TLS). Durations are in seconds (floats); ``None`` keeps the
    library's default: ``prefix`` "distlock", ``ttl`` 30 s (the lease of
    each lock, renewed automatically while held), ``pool_size`` 16,
    ``connect_timeout`` 3 s, ``command_timeout`` 2 s.

    Instead of ``url``, give the servers in one of these ways:

    - ``nodes=[url, url, url]``: Redlock over 3 or more independent nodes;
      a lock is owned only while a majority of them grant it.
    - ``cluster=[url, ...]``: some nodes (seeds) of a Redis Cluster.
    - ``sentinel=([addr, ...], master)``: the sentinels (``host:port``, or
      ``redis://[user:password@]host:port``) that watch the master called
      ``master``. ``url``, if given too, supplies the master's scheme,
      credentials and db.

    More settings: ``replicas=(count, seconds)`` makes each lock write and
    renewal wait (Redis ``WAIT``) until ``count`` replicas confirm it, at
    most ``seconds`` (a lock fewer confirm is given back and raises
    :class:`ConnectionFailed`); ``fast_path`` (default True: threads of
    this client queue locally and pass the lease among themselves),
    ``handoff_limit`` (16, at most 63) and ``handoff_budget`` (0.02 s)
    bound such local hand-offs; ``max_retry_interval`` (0.5 s) bounds how
    long a waiter goes without looking at the lock; ``max_hold`` caps how
    long a lock stays renewed (default: no cap). Bad combinations (two
    deployments, fewer than 3 nodes, half a sentinel setting) raise
    :class:`InvalidArgument` before anything connects.

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
        sentinel: Optional[Tuple[Sequence[str], str]] = None,
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
        extended = {
            "nodes": nodes,
            "cluster": cluster,
            "sentinel": sentinel,
            "replicas": replicas,
            "fast_path": fast_path,
            "handoff_limit": handoff_limit,
            "handoff_budget": handoff_budget,
            "max_retry_interval": max_retry_interval,
            "max_hold": max_hold,
        }
        if url is None or any(v is not None for v in extended.values()):
            # Settings that struct distlock_options cannot carry: through a
            # distlock_config instead.
            self._open_configured(
                url,
                prefix=prefix,
                ttl=ttl,
                pool_size=pool_size,
                connect_timeout=connect_timeout,
                command_timeout=command_timeout,
                **extended,
            )
            return
        if not isinstance(url, str):
            raise TypeError(f"url must be str, not {type(url).__name__}")
        self._url = _redact(url)
        self._ttl_ms = 0 if ttl is None else _positive_ms(ttl, "ttl")

        opts = n.Options()
        prefix_b = None
        if prefix is not None:
            if not isinstance(prefix, str):
                raise TypeError(f"prefix must be str, not {type(prefix).__name__}")
            prefix_b = prefix.encode("utf-8")
            if b"\0" in prefix_b:
                raise InvalidArgument("prefix must not contain NUL characters")
            opts.prefix = prefix_b
        opts.ttl_ms = self._ttl_ms
        if pool_size is not None:
            if isinstance(pool_size, bool) or not isinstance(pool_size, int):
                raise TypeError("pool_size must be an int")
            if not 0 < pool_size <= 0xFFFFFFFF:
                raise InvalidArgument(f"pool_size must be at least 1, got {pool_size}")
            opts.pool_size = pool_size
        if connect_timeout is not None:
            opts.connect_timeout_ms = _positive_ms(connect_timeout, "connect_timeout")
        if command_timeout is not None:
            opts.command_timeout_ms = _positive_ms(command_timeout, "command_timeout")
        if "\0" in url:
            raise InvalidArgument("url must not contain NUL characters")

        out = ctypes.c_void_p()
        status = n.lib.distlock_client_open(url.encode("utf-8"), ctypes.byref(opts), ctypes.byref(out))
        if status != st.OK:
            raise n.failure(status, f"cannot open a client for {self._url}")
        self._handle = Handle(out.value, n.lib.distlock_client_close)
        with _open_clients_mutex:
            _open_clients.add(self)

    def _open_configured(self, url: Optional[str], **settings: Any) -> None:
        """Opens through a distlock_config; ``settings`` are the keywords of
        :meth:`__init__`."""
        calls, self._url = _config_calls(url, **settings)
        ttl = settings.get("ttl")
        self._ttl_ms = 0 if ttl is None else _positive_ms(ttl, "ttl")
        ptr = _open_with_config(calls, f"cannot open a client for {self._url}")
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
                raise error_for(status, f"acquire {key!r}: {message}")
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
        raise error_for(status, f"acquire {key!r}: {message}")

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


class Lock:
    """A named distributed lock, owned by one holder at a time.

    Create it with :meth:`Client.lock`. It works like
    :class:`threading.Lock`: ``acquire()`` / ``release()``, or ``with``.
    A Lock object holds at most one acquisition: to contend from several
    threads, give each its own Lock from ``client.lock(key)`` (that is
    cheap and sends nothing). Acquiring through a Lock object that already
    holds the lock, or while another thread is acquiring through it,
    raises :class:`InvalidArgument` instead of deadlocking.

    While held, the lease is renewed in the background; :attr:`held`
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
    ) -> None:
        self._guard: Optional[Handle] = None
        self._client = client
        self._key = _key_bytes(key)
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
            guard = self._client._acquire(self._key, self._ttl_ms, timeout_ms, token, self._wait_started)
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

    def _identity(self) -> Tuple[Optional[int], Optional[str]]:
        """The latest acquisition's (fence, token), read from its guard on
        first use; (None, None) before the first acquisition."""
        with self._mutex:
            if self._fence is not None:
                return self._fence, self._token
            guard = self._guard if self._guard is not None else self._spent
        if guard is None:
            return None, None
        try:
            fence, token = self._read_identity(guard)
        except HandleClosed:
            return self._fence, self._token
        with self._mutex:
            if guard is self._guard or guard is self._spent:
                self._fence, self._token = fence, token
        return fence, token

    @staticmethod
    def _read_identity(guard: Handle) -> Tuple[int, str]:
        fence = ctypes.c_uint64()
        buf = ctypes.create_string_buffer(n.TOKEN_LEN + 1)
        ptr = guard.pin()
        try:
            n.check(n.lib.distlock_guard_fence(ptr, ctypes.byref(fence)), "fence")
            n.check(n.lib.distlock_guard_token(ptr, buf, len(buf)), "token")
        finally:
            guard.unpin()
        return fence.value, buf.value.decode("ascii")

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
        close); the fence and token are read first, to stay readable."""
        self._identity()
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

    def locked(self) -> bool:
        """Whether this Lock object holds the lock right now (acquired, not
        released, and its lease not lost)."""
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

    @property
    def held(self) -> bool:
        """Same as :meth:`locked`."""
        return self.locked()

    @property
    def fence(self) -> Optional[int]:
        """The fencing token of the latest acquisition through this Lock
        object (None before the first). Fences of one lock name strictly
        increase across all holders: pass it to the storage you write to so
        it can reject a writer whose lock has since been lost."""
        return self._identity()[0]

    @property
    def token(self) -> Optional[str]:
        """The latest acquisition's token (36-character uuid text), the value
        stored in Redis under the lock's key while it is held; None before
        the first acquisition."""
        return self._identity()[1]

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
        return f"<distlock.Lock {self.name!r} {state} fence={self.fence}>"
