"""Helpers shared by the tests, and the code run in the spawned worker
processes of test_mutex.py (kept apart from the test modules so that a
spawned child imports no pytest)."""

from __future__ import annotations

from typing import Any

import distlock
from distlock.testing import RespConnection


def redis_key(name: str, prefix: str = "distlock") -> str:
    """The Redis key that holds the token of the lock called ``name``."""
    return f"{prefix}:{name}"


def increment(url: str, port: int, lock_name: str, counter_key: str, cycles: int, start: Any, results: Any) -> None:
    """``cycles`` times: under the lock, GET the counter, then SET it one
    higher (not atomic on purpose). Puts (written value, fence) pairs on
    ``results`` at the end."""
    seen = []
    with distlock.Client(url) as client, RespConnection("127.0.0.1", port) as conn:
        start.wait(60)
        for _ in range(cycles):
            with client.lock(lock_name, ttl=10) as lock:
                value = int(conn.command("GET", counter_key) or 0) + 1
                conn.command("SET", counter_key, value)
                seen.append((value, lock.fence))
    results.put(seen)
