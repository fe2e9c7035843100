"""What operators see: the library's log lines in ``logging`` (the
``distlock`` logger), Client.held() listings, and the holder description
in inspect() and held(), against a real server."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from typing import Iterator, List, Optional

import pytest

import distlock
from distlock import _log, aio
from support import RedisServer

needs_log = pytest.mark.skipif(
    not distlock._native.HAS_LOG, reason="the loaded libdistlock has no distlock_set_log_callback"
)
needs_held = pytest.mark.skipif(
    not distlock._native.HAS_HELD, reason="the loaded libdistlock has no distlock_client_held"
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Whatever a test does to the distlock logger's level, the native
    level follows the restored one afterwards."""
    yield
    distlock.refresh_logging()


class _Await(logging.Handler):
    """A handler that keeps the first record at ``level`` whose message
    contains ``text`` and signals its arrival (from whichever thread logs
    it; handlers further up, caplog's, may see it a moment later)."""

    def __init__(self, level: int, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.want = (level, text)
        self.record: Optional[logging.LogRecord] = None
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.record is None and record.levelno == self.want[0] and self.want[1] in record.getMessage():
            self.record = record
            self.seen.set()


def _about(records: List[logging.LogRecord], level: int, text: str) -> List[logging.LogRecord]:
    return [r for r in records if r.name == "distlock" and r.levelno == level and text in r.getMessage()]


@needs_log
def test_the_logger_has_a_null_handler_and_follows_its_level(restore_logging: None) -> None:
    assert any(isinstance(h, logging.NullHandler) for h in _log.LOGGER.handlers)
    levels = {logging.ERROR: 1, logging.WARNING: 2, logging.INFO: 3, logging.DEBUG: 4, distlock.TRACE: 5}
    old = _log.LOGGER.level
    try:
        for level, native in levels.items():
            _log.LOGGER.setLevel(level)
            distlock.refresh_logging()
            assert _log._installed == native
        _log.LOGGER.setLevel(logging.CRITICAL + 1)
        distlock.refresh_logging()
        assert _log._installed == 0  # no callback: the library logs nothing
        _log.LOGGER.setLevel(logging.DEBUG)
        logging.disable(logging.CRITICAL)
        try:
            distlock.refresh_logging()
            assert _log._installed == 0
        finally:
            logging.disable(logging.NOTSET)
    finally:
        _log.LOGGER.setLevel(old)


@needs_log
def test_log_lines_reach_logging_at_their_level(
    caplog: pytest.LogCaptureFixture, redis_server: RedisServer, other_client: distlock.Client, key: str,
    restore_logging: None,
) -> None:
    caplog.set_level(logging.DEBUG, logger="distlock")
    # A new client reads the level.
    # A lease long enough not to run out on a loaded machine before the
    # token is released; the loss is noticed at the next renewal (a third).
    with distlock.Client(redis_server.url, ttl=1.5) as client:
        assert _log._installed == 4
        lock = client.lock(key)
        assert lock.acquire(blocking=False)
        acquired = _about(caplog.records, logging.DEBUG, f'acquired "{key}"')
        assert len(acquired) == 1, caplog.records
        assert acquired[0].distlock_target.startswith("distlock")  # type: ignore[attr-defined]

        # A loss is a warning, logged by the renewal thread.
        waiter = _Await(logging.WARNING, f'lost the lock "{key}"')
        _log.LOGGER.addHandler(waiter)
        try:
            assert other_client.release_token(key, lock.token)
            assert lock.wait_lost(timeout=5)
            assert waiter.seen.wait(5), caplog.records
        finally:
            _log.LOGGER.removeHandler(waiter)
        assert waiter.record is not None and waiter.record.name == "distlock"
        assert waiter.record.distlock_target.startswith("distlock")  # type: ignore[attr-defined]
        with pytest.raises(distlock.LockLost):
            lock.release()

        # At WARNING, debug lines are not even made.
        caplog.set_level(logging.WARNING, logger="distlock")
        distlock.refresh_logging()
        assert _log._installed == 2
        quiet = key + ":quiet"
        with client.lock(quiet, blocking=False):
            pass
        assert not [r for r in caplog.records if f'"{quiet}"' in r.getMessage()]


@needs_held
def test_held_lists_the_locks_under_the_prefix(redis_server: RedisServer) -> None:
    prefix = f"pyheld{uuid.uuid4().hex[:8]}"
    with distlock.Client(redis_server.url, prefix=prefix, holder_label="py-test") as client:
        locks = {}
        for name in ("jobs:a", "jobs:b", "other"):
            lock = client.lock(name, ttl=5)
            assert lock.acquire(blocking=False)
            assert lock.fence > 0  # given on first read: the counter held() shows
            locks[name] = lock

        found = client.held()
        assert len(found) == 3 and not found.more
        assert sorted(h.name for h in found) == sorted(locks)
        for h in found:
            assert h.token == locks[h.name].token
            assert h.fence is not None and h.fence >= locks[h.name].fence
            assert h.remaining is not None and 0 < h.remaining <= 5
            assert h.holder is not None
            assert h.holder.pid == os.getpid() and h.holder.host and h.holder.label == "py-test"
        info = client.inspect("jobs:a")
        assert info.holder is not None
        assert info.holder == distlock.Holder(host=info.holder.host, pid=os.getpid(), label="py-test")

        jobs = client.held("jobs:*")
        assert sorted(h.name for h in jobs) == ["jobs:a", "jobs:b"] and not jobs.more
        one = client.held(limit=1)
        assert len(one.locks) == 1 and one.more

        with pytest.raises(distlock.InvalidArgument):
            client.held(limit=0)
        with pytest.raises(distlock.InvalidArgument):
            client.held("")
        with pytest.raises(distlock.InvalidArgument):
            client.held("a\0b")
        with pytest.raises(TypeError):
            client.held(limit="3")  # type: ignore[arg-type]

        async def listed() -> int:
            async with aio.Client(redis_server.url, prefix=prefix) as a:
                return len(await a.held("jobs:*"))

        assert asyncio.run(listed()) == 2

        for lock in locks.values():
            lock.release()
        assert len(client.held()) == 0
    with pytest.raises(distlock.InvalidArgument):
        client.held()


def test_holder_label_is_checked(redis_server: RedisServer) -> None:
    with pytest.raises(TypeError):
        distlock.check(redis_server.url, holder_label=5)
    with pytest.raises(distlock.InvalidArgument):
        distlock.check(redis_server.url, holder_label="a\0b")
    distlock.check(redis_server.url, holder_label="fine")
