"""The native library's log lines, routed to ``logging.getLogger("distlock")``.

The library logs warnings (a renewal that failed, a lock lost and why, a
release-feed reconnect, a failover) and debug lines (each acquisition with
its name, fence and wait; releases; local hand-offs). They become records of
the ``distlock`` logger, at the matching level (trace lines at level 5,
:data:`TRACE`), each with a ``distlock_target`` attribute naming the part of
the library that logged it. The logger has a :class:`logging.NullHandler`,
as libraries' loggers do: nothing is printed unless the application
configures logging.

Lines below the logger's effective level are dropped inside the native
library, before they cost anything: the level is read at import, by each new
:class:`Client`, and by :func:`refresh_logging`, which the application
calls after changing the level once clients exist. The callback may run on
the library's own threads (lease renewal, release notifications); handlers
must be thread-safe, as logging's are.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import threading
from typing import Optional

from . import _native as n
from . import _status as st

__all__ = ["LOGGER", "TRACE", "refresh_logging"]

#: The logger the native library's lines go to.
LOGGER = logging.getLogger("distlock")
LOGGER.addHandler(logging.NullHandler())

#: The logging level of the library's trace lines (below DEBUG).
TRACE = 5

#: Python levels of the C levels 1 (error) to 5 (trace).
_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG, 5: TRACE}


def _on_line(level: int, target: Optional[bytes], message: Optional[bytes], _user: object) -> None:
    # An exception must not reach ctypes (it would print it on stderr).
    try:
        pylevel = _LEVELS.get(level, TRACE)
        if not LOGGER.isEnabledFor(pylevel):
            return
        text = (message or b"").decode("utf-8", "replace")
        where = (target or b"distlock").decode("utf-8", "replace")
        LOGGER.log(pylevel, text, extra={"distlock_target": where})
    except Exception:
        pass


#: The C callback; kept here for as long as the library may call it.
_CALLBACK = n.LOG_FN(_on_line)
_CALLBACK_PTR = ctypes.cast(_CALLBACK, ctypes.c_void_p)

_mutex = threading.Lock()
#: The C level last set (0: no callback).
_installed = 0


def _native_level() -> int:
    """The most verbose C level the logger has enabled, 0 for none."""
    for native in (5, 4, 3, 2, 1):
        if LOGGER.isEnabledFor(_LEVELS[native]):
            return native
    return 0


def _set(level: int) -> None:
    global _installed
    with _mutex:
        if level == _installed:
            return
        # The GIL is released for the call (ctypes.CDLL), so a line being
        # delivered on another thread can finish while this waits for it.
        status = n.lib.distlock_set_log_callback(level, _CALLBACK_PTR if level else None, None)
        if status != st.OK:
            raise n.failure(status, "set the log callback")
        _installed = level


def refresh_logging() -> None:
    """Reads the effective level of ``logging.getLogger("distlock")`` again
    (``logging.disable`` included) and has the native library send the
    lines at that level and above; none at all when the logger is disabled.
    Every new :class:`Client` does this; call it after changing the level
    while clients exist. Does nothing if the loaded library cannot log."""
    if n.HAS_LOG:
        _set(_native_level())


def _refresh_quietly() -> None:
    """refresh_logging, for import and new clients: logging must never stop
    the library from working (the only failure is a Rust logger installed
    in-process by something else, and then the lines go there)."""
    try:
        refresh_logging()
    except Exception:
        pass


@atexit.register
def _stop_logging() -> None:
    # Registered before the client module's atexit hook, so it runs after
    # the clients are closed: no line reaches Python once it shuts down.
    try:
        if n.HAS_LOG:
            _set(0)
    except Exception:
        pass


_refresh_quietly()
