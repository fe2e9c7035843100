"""The exceptions distlock raises, one per failure status of the C API."""

from __future__ import annotations

from typing import Dict, Optional, Type

from . import _status as st

__all__ = [
    "DistlockError",
    "LockTimeout",
    "LockLost",
    "Cancelled",
    "InvalidArgument",
    "ConnectionFailed",
    "AuthFailed",
    "RedisError",
]


class DistlockError(Exception):
    """Base class of every distlock error.

    ``status`` is the C API's status code (``distlock_status``) that caused
    it; the message includes the library's own explanation when it gave one,
    and ``detail`` is that explanation alone, word for word as the C API's
    ``distlock_last_error`` (and so Go, and Rust's ``Error`` display) gives
    it; ``None`` for errors raised by the Python side itself.
    """

    #: The status used when none is given to the constructor.
    default_status: int = st.INTERNAL

    def __init__(self, message: str, status: Optional[int] = None, detail: Optional[str] = None) -> None:
        super().__init__(message)
        self.status: int = self.default_status if status is None else status
        self.detail: Optional[str] = detail


class LockTimeout(DistlockError):
    """The lock was not acquired in time.

    ``status`` is ``DISTLOCK_TIMEOUT`` (waited and gave up) or
    ``DISTLOCK_NOT_ACQUIRED`` (a single try found it held).
    """

    default_status = st.TIMEOUT


class LockLost(DistlockError):
    """The lock is no longer held: its lease ran out, another owner took it,
    or its key was deleted. Work done since then was not exclusive."""

    default_status = st.LOST


class Cancelled(DistlockError):
    """A wait was cancelled (a :class:`~distlock.CancelToken`, Ctrl-C
    handling, or the client being closed)."""

    default_status = st.CANCELLED


class InvalidArgument(DistlockError, ValueError):
    """A bad argument: an empty or too long key, a malformed URL, a value out
    of range, or a call that does not fit the lock's state (such as
    releasing a lock that is not held). Also a :class:`ValueError`."""

    default_status = st.INVALID_ARGUMENT


class ConnectionFailed(DistlockError):
    """Redis could not be reached, or did not answer in time."""

    default_status = st.CONNECTION


class AuthFailed(DistlockError):
    """Redis refused the credentials."""

    default_status = st.AUTH


class RedisError(DistlockError):
    """Redis answered with an error."""

    default_status = st.REDIS


_BY_STATUS: Dict[int, Type[DistlockError]] = {
    st.NOT_ACQUIRED: LockTimeout,
    st.TIMEOUT: LockTimeout,
    st.LOST: LockLost,
    st.CANCELLED: Cancelled,
    st.INVALID_ARGUMENT: InvalidArgument,
    st.CONNECTION: ConnectionFailed,
    st.AUTH: AuthFailed,
    st.REDIS: RedisError,
}


def error_for(status: int, message: str, detail: Optional[str] = None) -> DistlockError:
    """The exception instance for a failure ``status``; ``detail`` is the
    library's own message, if it gave one."""
    return _BY_STATUS.get(status, DistlockError)(message, status, detail)
