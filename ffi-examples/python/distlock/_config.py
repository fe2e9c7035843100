"""Settings to the C API: the keywords of Client and check() become the
calls that fill a distlock_config (or, for a plain URL, a struct
distlock_options), made and freed on one thread."""

from __future__ import annotations

import ctypes
import inspect
from typing import Any, Callable, List, Optional, Sequence, Tuple

from . import _native as n
from . import _status as st
from ._convert import _count, _nonnegative_ms, _positive_ms, _redact, _text, _texts
from ._errors import InvalidArgument

__all__ = ["check", "open_client"]


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


# The keywords that only a distlock_config can carry, not struct
# distlock_options.
_CONFIG_ONLY = _SETTINGS - {"prefix", "ttl", "pool_size", "connect_timeout", "command_timeout"}


def open_client(url: Optional[str], **settings: Any) -> Tuple[int, str]:
    """Opens a native client for the keywords of :class:`Client`; returns
    its pointer and how to name its servers in messages (the URL with any
    password hidden). A plain URL goes through distlock_client_open and a
    struct distlock_options; anything more through a distlock_config."""
    if url is None or any(settings.get(k) is not None for k in _CONFIG_ONLY):
        calls, shown = _config_calls(url, **settings)
        return _open_with_config(calls, f"cannot open a client for {shown}"), shown
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")
    shown = _redact(url)
    opts = _options(**settings)
    if "\0" in url:
        raise InvalidArgument("url must not contain NUL characters")
    out = ctypes.c_void_p()
    status = n.lib.distlock_client_open(url.encode("utf-8"), ctypes.byref(opts), ctypes.byref(out))
    if status != st.OK:
        raise n.failure(status, f"cannot open a client for {shown}")
    return out.value, shown


def _options(
    *,
    prefix: Optional[str] = None,
    ttl: Optional[float] = None,
    pool_size: Optional[int] = None,
    connect_timeout: Optional[float] = None,
    command_timeout: Optional[float] = None,
    **unset: None,
) -> n.Options:
    """The struct distlock_options for the settings it can carry (``unset``
    holds the others, all None here). The bytes of ``prefix`` stay alive
    as long as the struct does: ctypes keeps them in its ``_objects``."""
    ttl_ms = 0 if ttl is None else _positive_ms(ttl, "ttl")
    opts = n.Options()
    if prefix is not None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, not {type(prefix).__name__}")
        prefix_b = prefix.encode("utf-8")
        if b"\0" in prefix_b:
            raise InvalidArgument("prefix must not contain NUL characters")
        opts.prefix = prefix_b
    opts.ttl_ms = ttl_ms
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
    return opts
