"""Loading libdistlock and declaring its C functions for ctypes.

Nothing here knows about Python-level objects: this module only finds the
shared library, declares every function's argument and result types, and
turns a failed status into the exception that matches it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import List, Optional

from . import _status as st
from ._errors import DistlockError, error_for

#: Length of a guard's token text, without the terminating NUL.
TOKEN_LEN = 36


class Options(ctypes.Structure):
    """struct distlock_options: a zero or NULL field means "the default"."""

    _fields_ = [
        ("prefix", ctypes.c_char_p),
        ("ttl_ms", ctypes.c_uint64),
        ("pool_size", ctypes.c_uint32),
        ("connect_timeout_ms", ctypes.c_uint64),
        ("command_timeout_ms", ctypes.c_uint64),
    ]


class LockInfo(ctypes.Structure):
    """struct distlock_lock_info, filled by distlock_client_inspect (set
    ``struct_size`` to its size before the call)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("held", ctypes.c_bool),
        ("has_remaining", ctypes.c_bool),
        ("has_fence", ctypes.c_bool),
        ("token_len", ctypes.c_size_t),
        ("remaining_ms", ctypes.c_uint64),
        ("fence", ctypes.c_uint64),
        # Appended later: a library older than them leaves them zero.
        ("has_holder", ctypes.c_bool),
        ("holder_pid", ctypes.c_uint32),
        ("holder_host", ctypes.c_char * 65),
        ("holder_label", ctypes.c_char * 65),
        ("shares", ctypes.c_uint32),
        ("writers_waiting", ctypes.c_uint32),
    ]


class HeldLock(ctypes.Structure):
    """struct distlock_held_lock, filled by distlock_held_get (set
    ``struct_size`` to its size before the call). Its strings belong to
    the distlock_held result: copy them before distlock_held_free."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("name", ctypes.c_char_p),
        ("token", ctypes.c_char_p),
        ("has_remaining", ctypes.c_bool),
        ("has_fence", ctypes.c_bool),
        ("has_holder", ctypes.c_bool),
        ("remaining_ms", ctypes.c_uint64),
        ("fence", ctypes.c_uint64),
        ("holder_pid", ctypes.c_uint32),
        ("holder_host", ctypes.c_char_p),
        ("holder_label", ctypes.c_char_p),
    ]


#: distlock_log_fn: level, target, message, user.
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)


#: The library's base name inside the package: setuptools-rust names it
#: like an extension module, libdistlock.abi3.so for the wheel.
_PACKAGED_NAME = "libdistlock"


def _system_file_names() -> List[str]:
    if sys.platform == "darwin":
        return ["libdistlock.dylib"]
    if sys.platform == "win32":
        return ["distlock.dll"]
    return ["libdistlock.so"]


def _candidates() -> List[str]:
    """Where to look, in order: $DISTLOCK_LIB alone if it is set; else this
    package's own directory, where pip installs the library; then the
    system's library search."""
    env = os.environ.get("DISTLOCK_LIB")
    if env:
        # An explicit choice is the only candidate: silently falling back to
        # another build would hide a typo.
        return [env]
    here = Path(__file__).resolve().parent
    found = [str(here / (_PACKAGED_NAME + suffix)) for suffix in EXTENSION_SUFFIXES]
    found += [str(here / name) for name in _system_file_names()]
    system = ctypes.util.find_library("distlock")
    if system:
        found.append(system)
    return list(dict.fromkeys(found))  # without repeats, in order


class LibraryNotFound(ImportError):
    """libdistlock could not be found or loaded."""


def _load() -> ctypes.CDLL:
    tried: List[str] = []
    for path in _candidates():
        # find_library returns a bare soname that the dynamic loader
        # resolves; only real paths can be checked for existence.
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} (no such file)")
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
    if not tried:
        tried.append('ctypes.util.find_library("distlock") found nothing')
    raise LibraryNotFound(
        "distlock: cannot load the native library libdistlock. Install the package with pip "
        "(`pip install ffi-examples/python` in the distlock repository builds the library "
        "into it; that needs a Rust toolchain), or point the DISTLOCK_LIB environment "
        "variable at a libdistlock build. Tried: " + "; ".join(tried)
    )


lib = _load()
LIBRARY_PATH: str = lib._name


def _declare(name: str, restype, argtypes) -> None:
    try:
        fn = getattr(lib, name)
    except AttributeError:
        raise LibraryNotFound(
            f"distlock: {LIBRARY_PATH} has no function {name}; it is older than "
            "this Python package or not a distlock build. Reinstall the package, "
            "or rebuild the library (`cargo build --release`) that DISTLOCK_LIB names."
        ) from None
    fn.restype = restype
    fn.argtypes = argtypes


_p = ctypes.c_void_p
_i32 = ctypes.c_int32
_out_p = ctypes.POINTER(ctypes.c_void_p)

_declare("distlock_version", ctypes.c_char_p, [])
_declare("distlock_status_name", ctypes.c_char_p, [_i32])
_declare("distlock_last_error", ctypes.c_char_p, [])
_declare("distlock_client_open", _i32, [ctypes.c_char_p, ctypes.POINTER(Options), _out_p])
_declare("distlock_client_close", None, [_p])
_declare(
    "distlock_acquire",
    _i32,
    [_p, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_int64, _p, _out_p],
)
_declare("distlock_cancel_new", _p, [])
_declare("distlock_cancel_trigger", _i32, [_p])
_declare("distlock_cancel_free", None, [_p])
_declare("distlock_guard_release", _i32, [_p])
_declare("distlock_guard_free", None, [_p])
_declare("distlock_guard_is_held", _i32, [_p, ctypes.POINTER(ctypes.c_bool)])
_declare("distlock_guard_fence", _i32, [_p, ctypes.POINTER(ctypes.c_uint64)])
_declare("distlock_guard_token", _i32, [_p, ctypes.c_char_p, ctypes.c_size_t])
_declare("distlock_guard_remaining_ms", _i32, [_p, ctypes.POINTER(ctypes.c_uint64)])
_declare("distlock_guard_extend", _i32, [_p])
_declare("distlock_guard_wait_lost", _i32, [_p, ctypes.c_int64])
_declare("distlock_config_new", _p, [])
_declare("distlock_config_free", None, [_p])
for _name in (
    "distlock_config_set_url",
    "distlock_config_add_node",
    "distlock_config_add_cluster_url",
    "distlock_config_set_sentinel",
    "distlock_config_add_sentinel",
    "distlock_config_set_prefix",
):
    _declare(_name, _i32, [_p, ctypes.c_char_p])
for _name in (
    "distlock_config_set_ttl_ms",
    "distlock_config_set_connect_timeout_ms",
    "distlock_config_set_command_timeout_ms",
    "distlock_config_set_max_hold_ms",
    "distlock_config_set_max_retry_interval_ms",
    "distlock_config_set_poll_interval_ms",
    "distlock_config_set_handoff_budget_ms",
):
    _declare(_name, _i32, [_p, ctypes.c_uint64])
_declare("distlock_config_set_pool_size", _i32, [_p, ctypes.c_uint32])
_declare("distlock_config_set_handoff_limit", _i32, [_p, ctypes.c_uint32])
_declare("distlock_config_set_replicas", _i32, [_p, ctypes.c_uint32, ctypes.c_uint64])
_declare("distlock_config_set_fast_path", _i32, [_p, ctypes.c_bool])
_declare("distlock_client_open_config", _i32, [_p, _out_p])
_declare("distlock_config_check", _i32, [_p])


def _declare_optional(name: str, restype, argtypes) -> bool:
    """Declares a function newer libraries have; False if this one lacks it."""
    if not hasattr(lib, name):
        return False
    _declare(name, restype, argtypes)
    return True


#: Whether the library can look at a lock on the server
#: (distlock_client_inspect, newer than the rest).
HAS_INSPECT: bool = _declare_optional(
    "distlock_client_inspect",
    _i32,
    [_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(LockInfo)],
)

#: Whether the library can free a lock by its token
#: (distlock_client_release_token, as new as distlock_client_inspect).
HAS_RELEASE_TOKEN: bool = _declare_optional(
    "distlock_client_release_token",
    _i32,
    [_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_bool)],
)

#: Whether the library takes TLS certificates on a distlock_config (the
#: four distlock_config_set_tls_* functions, added together). The PEM
#: pointers (const uint8_t *) are declared as char pointers, which have the
#: same representation, so that bytes objects pass without a copy; their
#: length is passed beside them, so NUL bytes inside do not matter.
HAS_TLS: bool = all(
    [
        _declare_optional("distlock_config_set_tls_ca_file", _i32, [_p, ctypes.c_char_p]),
        _declare_optional("distlock_config_set_tls_ca_pem", _i32, [_p, ctypes.c_char_p, ctypes.c_size_t]),
        _declare_optional(
            "distlock_config_set_tls_client_cert_files", _i32, [_p, ctypes.c_char_p, ctypes.c_char_p]
        ),
        _declare_optional(
            "distlock_config_set_tls_client_cert_pem",
            _i32,
            [_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t],
        ),
    ]
)


class Stats(ctypes.Structure):
    """struct distlock_stats, filled by distlock_client_stats (set
    ``struct_size`` to its size before the call; the library writes nothing
    past it). Counts only grow; times are microseconds."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("acquired", ctypes.c_uint64),
        ("contended", ctypes.c_uint64),
        ("timed_out", ctypes.c_uint64),
        ("cancelled", ctypes.c_uint64),
        ("lost", ctypes.c_uint64),
        ("renewals", ctypes.c_uint64),
        ("renewal_failures", ctypes.c_uint64),
        ("local_handoffs", ctypes.c_uint64),
        ("feed_reconnects", ctypes.c_uint64),
        ("wait_p50_us", ctypes.c_uint64),
        ("wait_p99_us", ctypes.c_uint64),
        ("wait_max_us", ctypes.c_uint64),
        # Appended later: an older library writes nothing here (struct_size
        # covers it, but it knows no such field), so it reads 0.
        ("lingered", ctypes.c_uint64),
    ]


#: Whether the library reports a client's counters (distlock_client_stats,
#: newer than the rest).
HAS_STATS: bool = _declare_optional("distlock_client_stats", _i32, [_p, ctypes.POINTER(Stats)])

#: Whether the library lists held locks (distlock_client_held and its
#: result's distlock_held_get and distlock_held_free, added together).
HAS_HELD: bool = all(
    [
        _declare_optional(
            "distlock_client_held",
            _i32,
            [_p, ctypes.c_char_p, ctypes.c_size_t, _out_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_bool)],
        ),
        _declare_optional("distlock_held_get", _i32, [_p, ctypes.c_size_t, ctypes.POINTER(HeldLock)]),
        _declare_optional("distlock_held_free", None, [_p]),
    ]
)

#: Whether the library sends its log lines to a callback
#: (distlock_set_log_callback). The callback is passed as a plain pointer,
#: so that NULL (None) removes it.
HAS_LOG: bool = _declare_optional("distlock_set_log_callback", _i32, [_i32, _p, _p])

#: Whether the library takes read-write locks, semaphores and fair locks
#: (distlock_acquire_kind).
HAS_KINDS: bool = _declare_optional(
    "distlock_acquire_kind",
    _i32,
    [_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64, _p, _out_p],
)

#: The kinds of lock distlock_acquire_kind takes (DISTLOCK_KIND_*).
KIND_PLAIN = 0
KIND_READ = 1
KIND_WRITE = 2
KIND_PERMIT = 3
KIND_FAIR = 4

#: Most permits a semaphore may have (DISTLOCK_MAX_PERMITS).
MAX_PERMITS = 10_000

#: Whether the library records a holder label (distlock_config_set_holder_label).
HAS_HOLDER_LABEL: bool = _declare_optional("distlock_config_set_holder_label", _i32, [_p, ctypes.c_char_p])

#: Whether the library caches released leases (distlock_config_set_linger_ms).
HAS_LINGER: bool = _declare_optional("distlock_config_set_linger_ms", _i32, [_p, ctypes.c_uint64])


def version() -> str:
    """The native library's version string."""
    raw = lib.distlock_version()
    return raw.decode("utf-8", "replace") if raw else ""


def status_name(status: int) -> str:
    """The C name of a status code, e.g. ``"DISTLOCK_LOST"``."""
    raw = lib.distlock_status_name(status)
    return raw.decode("utf-8", "replace") if raw else f"status {status}"


def last_error() -> Optional[str]:
    """This thread's message for its last failed call, if any."""
    raw = lib.distlock_last_error()
    return raw.decode("utf-8", "replace") if raw else None


def failure(status: int, what: str) -> DistlockError:
    """The exception for a failed call that just returned ``status`` on this
    thread. Must be called on the same thread, before any other call into
    the library, so that the thread-local message belongs to that call."""
    detail = last_error()
    message = f"{what}: {detail}" if detail else f"{what}: {status_name(status)}"
    return error_for(status, message, detail)


def check(status: int, what: str) -> None:
    """Raises the matching exception unless ``status`` is OK."""
    if status != st.OK:
        raise failure(status, what)
