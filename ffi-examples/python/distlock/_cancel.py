"""Interrupting waits: CancelToken, the native cancel handle behind each
cancellable acquire, and how long the main thread waits at a time so that
Ctrl-C gets through."""

from __future__ import annotations

import threading
from typing import Set

from . import _native as n
from . import _status as st
from ._handle import Handle, HandleClosed

__all__ = ["CancelToken"]

#: How long the main thread sleeps at most between checks for Ctrl-C while
#: it waits for a helper thread's acquire or for a lock to be lost. A real
#: SIGINT wakes it at once; this only bounds the delay of a signal that
#: arrives without interrupting the wait (such as _thread.interrupt_main()).
_MAIN_WAIT_SLICE = 0.1


def _in_main_thread() -> bool:
    """Whether this is the main thread, the one Ctrl-C interrupts."""
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
