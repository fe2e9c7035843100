"""What a client reports: LockInfo (a lock as the server holds it, from
:meth:`Client.inspect`), HeldLocks (the locks held under a prefix, from
:meth:`Client.held`), their Holder, and Stats (a client's counters, from
:meth:`Client.stats`). Plain frozen values, made from the C structs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

__all__ = ["Holder", "HeldLock", "HeldLocks", "LockInfo", "Stats"]


@dataclass(frozen=True)
class Holder:
    """Who took a lock, as the holder recorded it with the acquisition."""

    #: The host name of the holder's machine (at most 64 bytes).
    host: str
    #: The holder's process id.
    pid: int
    #: The label the holder's client was given (``holder_label=``), or None.
    label: Optional[str]


@dataclass(frozen=True)
class LockInfo:
    """What the server holds for one lock at the moment it was asked
    (``distlock_lock_info``). For operators and tools: only a held
    :class:`Lock` proves ownership, and this may be stale as soon as it
    arrives."""

    #: The lock's name, as given to :meth:`Client.inspect`.
    key: str
    #: Whether someone holds the lock.
    held: bool
    #: The holder's token (the value of the lock's key: ``Lock.token`` of
    #: the Lock that holds it), None when the lock is free. A key set by
    #: something other than distlock may hold any text.
    token: Optional[str]
    #: The holder's remaining lease in seconds; None when the lock is free,
    #: or when its key has no expiry (set by something other than distlock).
    remaining: Optional[float]
    #: The highest fencing token handed out (or reserved) for this name so
    #: far: at least the holder's ``Lock.fence``, and less than the fence of
    #: every later acquisition. None if none was ever handed out.
    fence: Optional[int]
    #: Who holds it (host, pid, label); None when the lock is free, or was
    #: taken by an older distlock or by something else.
    holder: Optional[Holder] = None
    #: How many shares of a read-write lock or semaphore of this name are
    #: held (readers, the writer, or permits); 0 for a plain lock. While
    #: shares are held, ``held`` is True, ``token`` is None and
    #: ``remaining`` is the longest share's.
    shares: int = 0
    #: Writers waiting for a read-write lock of this name (new readers wait
    #: behind them).
    writers_waiting: int = 0


@dataclass(frozen=True)
class HeldLock:
    """One lock that :meth:`Client.held` found held."""

    #: The lock's name, as given to :meth:`Client.lock` (without the prefix).
    name: str
    #: The holder's token: what :meth:`Client.release_token` takes.
    token: str
    #: The holder's remaining lease in seconds; None when the key has no
    #: expiry (set by something other than distlock).
    remaining: Optional[float]
    #: The highest fencing token handed out for this name so far, or None.
    fence: Optional[int]
    #: Who holds it (host, pid, label), or None for a lock taken by an
    #: older distlock or set by something else.
    holder: Optional[Holder]


@dataclass(frozen=True)
class HeldLocks:
    """What :meth:`Client.held` found: the locks (iterate over it, or use
    ``locks``) and whether the listing stopped at its limit."""

    #: The held locks, in no particular order.
    locks: Tuple[HeldLock, ...]
    #: True when the listing stopped at its limit: there may be more.
    more: bool

    def __iter__(self) -> Iterator[HeldLock]:
        return iter(self.locks)

    def __len__(self) -> int:
        return len(self.locks)


@dataclass(frozen=True)
class Stats:
    """A snapshot of what one client's locks have done since the client was
    opened (``distlock_stats``; the Rust ``distlock::Stats``). Every count
    only grows: subtract two snapshots for a rate. Times are seconds."""

    #: Acquisitions that returned a lock (from the server, or handed on by
    #: another thread of the same client).
    acquired: int
    #: Of those, the ones that had to wait: the lock was held when asked.
    contended: int
    #: Acquisitions given up at their timeout (a single try that finds the
    #: lock held is not counted: it did not wait).
    timed_out: int
    #: Acquisitions given up because they were cancelled.
    cancelled: int
    #: Locks lost while held: taken over, deleted, or their lease ran out
    #: before a renewal was confirmed (also past ``max_hold``).
    lost: int
    #: Leases the background renewal extended.
    renewals: int
    #: Renewals that failed to reach the server (retried until the lease
    #: runs out).
    renewal_failures: int
    #: Leases handed from one thread of this client to the next without a
    #: round trip (the local fast path).
    local_handoffs: int
    #: Times the release-notification connection failed and was reopened.
    feed_reconnects: int
    #: Median time from an acquire call to its lock, over all ``acquired``.
    wait_p50: float
    #: 99th percentile of the same.
    wait_p99: float
    #: Longest acquire wait.
    wait_max: float
    #: Acquisitions granted from a lock this client lingered on after its
    #: release (``linger=``), without a round trip. 0 with a library too old
    #: to count them.
    lingered: int = 0
