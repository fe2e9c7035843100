"""Settings to the C API: the keywords of Client and check() become the
calls that fill a distlock_config, made and freed on one thread."""

from __future__ import annotations

import ctypes
import inspect
import os
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from . import _native as n
from . import _status as st
from ._convert import _count, _nonnegative_ms, _positive_ms, _redact, _text, _texts
from ._errors import InvalidArgument

__all__ = ["check", "open_client"]


#: One step of filling a distlock_config: the setter, its arguments after
#: the config handle, and what to call it in an error message.
_ConfigCall = Tuple[Callable[..., int], Tuple[Any, ...], str]

#: A PEM input of the TLS keywords: a file (str or os.PathLike) or the PEM
#: itself (bytes, bytearray or memoryview).
PemSource = Union[str, "os.PathLike[str]", "os.PathLike[bytes]", bytes, bytearray, memoryview]


def _pem_source(value: object, what: str) -> Tuple[bool, bytes]:
    """A TLS keyword's PEM input as (is_file, bytes): a path (str or
    os.PathLike) becomes its file-system bytes, for the C side to check
    (empty, non-UTF-8 or too long paths are the library's to refuse);
    bytes-like values are the PEM itself. Anything else is a TypeError.
    The message never shows the value: it may be a key."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return False, bytes(value)
    if isinstance(value, (str, os.PathLike)):
        path = os.fsencode(value)
        if b"\0" in path:
            raise InvalidArgument(f"{what} path must not contain NUL characters")
        return True, path
    raise TypeError(
        f"{what} must be a file path (str or os.PathLike) or PEM bytes, not {type(value).__name__}"
    )


def _require_tls(name: str) -> None:
    if not n.HAS_TLS:
        raise NotImplementedError(
            f"{name}= needs the C function distlock_config_set_tls_ca_file and its siblings, "
            f"which the loaded library ({n.LIBRARY_PATH}) does not have: install a newer distlock"
        )


def _tls_calls(tls_ca: Optional[PemSource], tls_client_cert: Optional[Tuple[PemSource, PemSource]]) -> List[_ConfigCall]:
    """The distlock_config calls for the TLS keywords. Python checks only
    types and shapes; whether a file can be read and holds usable PEM (and
    a key that fits the certificate) is the library's to say."""
    lib = n.lib
    calls: List[_ConfigCall] = []
    if tls_ca is not None:
        _require_tls("tls_ca")
        is_file, raw = _pem_source(tls_ca, "tls_ca")
        if is_file:
            calls.append((lib.distlock_config_set_tls_ca_file, (raw,), "tls_ca"))
        else:
            calls.append((lib.distlock_config_set_tls_ca_pem, (raw, len(raw)), "tls_ca"))
    if tls_client_cert is not None:
        if isinstance(tls_client_cert, (str, bytes, bytearray, memoryview)) or not isinstance(
            tls_client_cert, Sequence
        ) or len(tls_client_cert) != 2:
            raise TypeError(
                "tls_client_cert must be a pair (certificate, key): two file paths or two PEM bytes, "
                f"not {type(tls_client_cert).__name__}"
            )
        _require_tls("tls_client_cert")
        cert_file, cert = _pem_source(tls_client_cert[0], "tls_client_cert certificate")
        key_file, key = _pem_source(tls_client_cert[1], "tls_client_cert key")
        if cert_file != key_file:
            raise TypeError(
                "tls_client_cert must be two file paths or two PEM bytes, not one of each "
                f"(got a {'path' if cert_file else 'PEM'} certificate and a {'path' if key_file else 'PEM'} key)"
            )
        if cert_file:
            calls.append((lib.distlock_config_set_tls_client_cert_files, (cert, key), "tls_client_cert"))
        else:
            calls.append(
                (lib.distlock_config_set_tls_client_cert_pem, (cert, len(cert), key, len(key)), "tls_client_cert")
            )
    return calls


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



#: The server the library uses when none is given.
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _check_server_keywords(
    url: Optional[str],
    nodes: Optional[Sequence[str]],
    cluster: Optional[Sequence[str]],
    sentinel: Optional[Tuple[Sequence[str], Optional[str]]],
) -> None:
    """Python's one rule about the server keywords, which (unlike the C
    setters) are not calls in an order: at most one of ``nodes=``,
    ``cluster=`` and ``sentinel=``, and ``url`` alone or with ``sentinel=``
    (it then gives the master's scheme, credentials and db). Everything else
    about the servers is the library's to check."""
    given = [name for name, value in (("nodes", nodes), ("cluster", cluster), ("sentinel", sentinel)) if value is not None]
    if len(given) > 1:
        raise InvalidArgument(
            f"give at most one of nodes=, cluster= and sentinel= (got {'= and '.join(given)}=)"
        )
    if url is not None and given and given[0] != "sentinel":
        raise InvalidArgument(
            f"url cannot be combined with {given[0]}=: give url alone (one server), or with "
            "sentinel= (then it gives the master's credentials and db)"
        )


def _server_calls(
    url: Optional[str],
    nodes: Optional[Sequence[str]],
    cluster: Optional[Sequence[str]],
    sentinel: Optional[Tuple[Sequence[str], Optional[str]]],
) -> Tuple[List[_ConfigCall], str]:
    """The distlock_config calls that choose the servers, in the order the
    C API reads as the Rust builder's ``url`` then ``nodes`` / ``cluster`` /
    ``sentinel``; and how to name the servers in messages."""
    _check_server_keywords(url, nodes, cluster, sentinel)
    lib = n.lib
    calls: List[_ConfigCall] = []
    if url is not None:
        calls.append((lib.distlock_config_set_url, (_text(url, "url"),), "url"))
    if nodes is not None:
        raw = _texts(nodes, "nodes")
        calls += [(lib.distlock_config_add_node, (u,), f"node {i + 1}") for i, u in enumerate(raw)]
        return calls, f"redlock over {len(raw)} nodes"
    if cluster is not None:
        raw = _texts(cluster, "cluster")
        calls += [(lib.distlock_config_add_cluster_url, (u,), f"cluster seed {i + 1}") for i, u in enumerate(raw)]
        return calls, f"cluster with {len(raw)} seeds"
    if sentinel is not None:
        if isinstance(sentinel, (str, bytes)) or not isinstance(sentinel, Sequence) or len(sentinel) != 2:
            raise TypeError("sentinel must be a pair (list of sentinel addresses, master name)")
        addrs, master = sentinel
        raw = _texts(addrs, "sentinel addresses")
        master_b = b"" if master is None else _text(master, "sentinel master name")
        # An empty name is "not given", as with the Rust builder: the
        # library then refuses the addresses for lacking it. With no
        # address either, the name setter says what is wrong.
        if master_b or not raw:
            calls.append((lib.distlock_config_set_sentinel, (master_b,), "sentinel master name"))
        calls += [(lib.distlock_config_add_sentinel, (a,), f"sentinel {i + 1}") for i, a in enumerate(raw)]
        return calls, f"sentinel master {master!r} via {len(raw)} sentinels"
    return calls, _redact(url) if url is not None else f"{DEFAULT_URL} (the default)"


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
) -> Tuple[List[_ConfigCall], str]:
    """The distlock_config calls for these settings (checked for type and
    sign here, for range by the C side), and how to name the servers in
    messages."""
    lib = n.lib
    calls, shown = _server_calls(url, nodes, cluster, sentinel)
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
        (poll_interval, lib.distlock_config_set_poll_interval_ms, "poll_interval"),
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
    if linger is not None:
        # After the servers, fast_path and max_hold, which it is checked
        # against. 0 is off: the default, so an older library may skip it.
        linger_ms = _nonnegative_ms(linger, "linger")
        if n.HAS_LINGER:
            calls.append((lib.distlock_config_set_linger_ms, (linger_ms,), "linger"))
        elif linger_ms:
            raise NotImplementedError(
                "linger= needs the C function distlock_config_set_linger_ms, which the "
                f"loaded library ({n.LIBRARY_PATH}) does not have: install a newer distlock"
            )
    calls += _tls_calls(tls_ca, tls_client_cert)
    if holder_label is not None:
        label = _text(holder_label, "holder_label")
        if not n.HAS_HOLDER_LABEL:
            raise NotImplementedError(
                "holder_label= needs the C function distlock_config_set_holder_label, which the "
                f"loaded library ({n.LIBRARY_PATH}) does not have: install a newer distlock"
            )
        calls.append((lib.distlock_config_set_holder_label, (label,), "holder_label"))
    return calls, shown


# The keywords of Client (and check) that _config_calls takes.
_SETTINGS = frozenset(inspect.signature(_config_calls).parameters) - {"url"}


def open_client(url: Optional[str], **settings: Any) -> Tuple[int, str]:
    """Opens a native client for the keywords of :class:`Client`; returns
    its pointer and how to name its servers in messages (any password
    hidden). Always through a distlock_config, made by the same calls as
    :func:`check` makes, so both refuse a setting with the same words."""
    calls, shown = _config_calls(url, **settings)
    return _open_with_config(calls, f"cannot open a client for {shown}"), shown
