"""Ownership of native handles: each is freed exactly once, and never while
a call that uses it is still running on another thread."""

from __future__ import annotations

import threading
from typing import Callable, Iterator, Optional
from contextlib import contextmanager


class HandleClosed(Exception):
    """Internal: the handle was closed before this use could start."""


class Handle:
    """Owns one native pointer.

    ``use()`` pins the pointer for the length of a native call. ``close()``
    asks for it to be freed: at once when no call is using it, otherwise
    by the last such call as it finishes, so ``close()`` never blocks and a
    pointer is never freed under a running call. A handle may name a
    ``parent`` (a guard names its client): the parent then counts as in use
    until this handle is freed, so a client is never freed before its
    guards. ``__del__`` closes as a safety net; closing twice does nothing.
    """

    __slots__ = ("_ptr", "_free", "_parent", "_users", "_closing", "_mutex", "__weakref__")

    def __init__(
        self,
        ptr: int,
        free: Callable[[int], None],
        parent: Optional["Handle"] = None,
    ) -> None:
        if not ptr:
            raise ValueError("a native handle cannot be NULL")
        self._mutex = threading.Lock()
        self._users = 0
        self._closing = False
        self._free = free
        self._parent = parent
        if parent is not None:
            parent._pin_for_child()
        # Set last, so that __del__ of a half-built handle frees nothing.
        self._ptr: Optional[int] = ptr

    def _pin_for_child(self) -> None:
        # A child is only ever created from a call that itself uses this
        # handle, so the pointer is still live here even if closing.
        with self._mutex:
            if self._ptr is None:
                raise HandleClosed()
            self._users += 1

    def _unpin(self) -> None:
        with self._mutex:
            self._users -= 1
            ptr = self._take_if_done()
        self._release(ptr)

    def _take_if_done(self) -> Optional[int]:
        # Caller holds _mutex.
        if self._closing and self._users == 0 and self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            return ptr
        return None

    def _release(self, ptr: Optional[int]) -> None:
        if ptr is None:
            return
        try:
            self._free(ptr)
        finally:
            parent, self._parent = self._parent, None
            if parent is not None:
                parent._unpin()

    def pin(self) -> int:
        """Pins the pointer for a native call and returns it; every pin()
        must be followed by one unpin(), in a ``finally``. Raises
        HandleClosed when the handle was already closed. (The same as
        ``use()``, without the cost of a generator, for the lock cycle.)"""
        with self._mutex:
            ptr = self._ptr
            if self._closing or ptr is None:
                raise HandleClosed()
            self._users += 1
        return ptr

    def unpin(self) -> None:
        """Ends a pin(); frees the pointer if close() came meanwhile."""
        with self._mutex:
            self._users -= 1
            if not self._closing or self._users != 0 or self._ptr is None:
                return
            ptr, self._ptr = self._ptr, None
        self._release(ptr)

    @contextmanager
    def use(self) -> Iterator[int]:
        """Pins the pointer for a native call; raises HandleClosed when the
        handle was already closed."""
        ptr = self.pin()
        try:
            yield ptr
        finally:
            self.unpin()

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closing

    def close(self) -> None:
        """Frees the pointer now, or as soon as the last call using it ends."""
        with self._mutex:
            self._closing = True
            ptr = self._take_if_done()
        self._release(ptr)

    def __del__(self) -> None:
        # Nothing can be using the handle once it is garbage, so this frees
        # at once unless close() already did. Never raise from here (at
        # interpreter exit, say).
        try:
            if getattr(self, "_ptr", None) is not None:
                self.close()
        except Exception:
            pass
