"""Interrupting waits: CancelToken, the native cancel handle behind each
cancellable acquire, and how long the main thread waits at a time so that
Ctrl-C gets through."""

from __future__ import annotations

import os
import signal
import threading
from typing import Optional, Set

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


class _SignalWatch:
    """Lets a signal with a Python handler (Ctrl-C) stop the main thread's
    wait inside the library, with no thread per acquire.

    Python's C-level signal handler writes each signal's number to the
    wakeup fd (``signal.set_wakeup_fd``) in whichever thread receives it,
    even while the main thread is blocked in a native call. One daemon
    thread per process, started at the first wait, reads that pipe and
    cancels the main thread's wait in progress; the main thread then
    returns to Python, which runs the handler (KeyboardInterrupt). Only
    when the wakeup fd is free or already ours: a program (or event loop)
    that set its own keeps it, and waits then run on a helper thread.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._write_fd = -1
        self._current: Optional["_NativeCancel"] = None
        #: Set when a signal cancelled the wait in progress.
        self.interrupted = False

    def arm(self, cancel: "_NativeCancel") -> bool:
        """Makes ``cancel`` the main thread's wait to stop on a signal; False
        when signals cannot reach it this way (the caller then waits on a
        helper thread). Main thread only."""
        if self._write_fd < 0 and not self._start():
            return False
        try:
            theirs = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):
            return False
        if theirs not in (-1, self._write_fd):
            # Someone else's since: give it back.
            signal.set_wakeup_fd(theirs)
            return False
        with self._mutex:
            self._current = cancel
            self.interrupted = False
        return True

    def disarm(self) -> None:
        """The wait ended."""
        with self._mutex:
            self._current = None

    def _start(self) -> bool:
        try:
            current = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(current)
        except (ValueError, OSError):
            return False
        if current != -1:
            return False
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._write_fd = write_fd
        threading.Thread(target=self._run, args=(read_fd,), name="distlock-signals", daemon=True).start()
        return True

    def _run(self, read_fd: int) -> None:
        while True:
            try:
                if not os.read(read_fd, 512):
                    return
            except InterruptedError:
                continue
            except OSError:
                return
            with self._mutex:
                if self._current is not None:
                    self.interrupted = True
                    self._current.trigger()


#: The process's one _SignalWatch.
_signals = _SignalWatch()


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
