"""distlock: a distributed lock on Redis, for Python, on the distlock C library.

>>> import distlock
>>> with distlock.Client("redis://127.0.0.1:6379/0") as client:   # doctest: +SKIP
...     with client.lock("orders:42", ttl=10, timeout=2) as lock:
...         save_order(42, fence=lock.fence)

The native library (libdistlock) comes inside the package: pip builds it
from distlock's Rust crate and installs it next to this file, and that is
where it is loaded from. The ``DISTLOCK_LIB`` environment variable (a file
path) overrides that, for trying another build; it is then the only place
looked at. Without either, the system's library path is tried
(``ctypes.util.find_library("distlock")``). Importing raises ImportError,
naming every place tried, when none works.

Log lines of the library (warnings when a lock is lost or a renewal fails,
debug lines for each acquisition) go to ``logging.getLogger("distlock")``,
at its level: see :func:`refresh_logging`. Nothing is printed unless the
application configures logging.

No third-party packages are needed. Blocking calls release the GIL, so
other Python threads run while one waits for a lock. For asyncio, the
same locks are awaitable in :mod:`distlock.aio` (``from distlock import
aio``).
"""

from __future__ import annotations

from ._errors import (
    AuthFailed,
    Cancelled,
    ConnectionFailed,
    DistlockError,
    InvalidArgument,
    LockLost,
    LockTimeout,
    RedisError,
)
from . import _native
from ._cancel import CancelToken
from ._client import Client
from ._config import check
from ._info import Holder, HeldLock, HeldLocks, LockInfo, Stats
from ._lock import Lock, RwLock
from ._log import TRACE, refresh_logging

__version__ = "0.1.0"

#: Most permits a semaphore may have (:meth:`Client.semaphore`).
MAX_PERMITS: int = _native.MAX_PERMITS

#: The file the native library was loaded from.
library_path: str = _native.LIBRARY_PATH


def native_version() -> str:
    """The version string of the loaded native library."""
    return _native.version()


def status_name(status: int) -> str:
    """The C API's name for a status code, such as ``"DISTLOCK_LOST"``."""
    return _native.status_name(status)


__all__ = [
    "Client",
    "check",
    "Lock",
    "RwLock",
    "MAX_PERMITS",
    "LockInfo",
    "Holder",
    "HeldLock",
    "HeldLocks",
    "Stats",
    "refresh_logging",
    "TRACE",
    "CancelToken",
    "DistlockError",
    "LockTimeout",
    "LockLost",
    "Cancelled",
    "InvalidArgument",
    "ConnectionFailed",
    "AuthFailed",
    "RedisError",
    "native_version",
    "status_name",
    "library_path",
]
