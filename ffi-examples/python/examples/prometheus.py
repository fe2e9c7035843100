#!/usr/bin/env python3
"""A client's counters in Prometheus' text exposition format.

Takes and gives back a lock a few times (with a second thread contending
for it, so that some acquisitions wait), then prints ``Client.stats()``
as Prometheus metrics: a counter per count and gauges for the
acquire-wait percentiles. In a service, serve ``exposition(client.stats())``
on your metrics endpoint instead (the standard library's http.server is
enough); no Prometheus package is needed.

    python3 examples/prometheus.py                     # starts its own redis-server
    python3 examples/prometheus.py --url redis://127.0.0.1:6379/0 --cycles 10

Needs a libdistlock with distlock_client_stats (exits 2 without it).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

try:
    import distlock
except ImportError:
    # Run from a source checkout without installing the package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import distlock

#: (field of distlock.Stats, metric name, help text) of each counter.
COUNTERS = [
    ("acquired", "distlock_acquired_total", "Acquisitions that returned a lock."),
    ("contended", "distlock_contended_total", "Acquisitions that had to wait for the lock."),
    ("timed_out", "distlock_timed_out_total", "Acquisitions given up at their timeout."),
    ("cancelled", "distlock_cancelled_total", "Acquisitions given up because they were cancelled."),
    ("lost", "distlock_lost_total", "Locks lost while held."),
    ("renewals", "distlock_renewals_total", "Leases extended by the background renewal."),
    ("renewal_failures", "distlock_renewal_failures_total", "Renewals that failed to reach the server."),
    ("local_handoffs", "distlock_local_handoffs_total", "Leases handed between threads of one client."),
    ("feed_reconnects", "distlock_feed_reconnects_total", "Reconnections of the release-notification feed."),
    ("lingered", "distlock_lingered_total", "Acquisitions granted from a lock the client lingered on."),
]

#: (field, metric name, help text) of each gauge, in seconds.
GAUGES = [
    ("wait_p50", "distlock_acquire_wait_p50_seconds", "Median acquire wait."),
    ("wait_p99", "distlock_acquire_wait_p99_seconds", "99th percentile of the acquire wait."),
    ("wait_max", "distlock_acquire_wait_max_seconds", "Longest acquire wait."),
]


def exposition(stats: distlock.Stats, labels: str = "") -> str:
    """``stats`` as Prometheus text exposition (format 0.0.4). ``labels``
    is put on every sample as is, e.g. ``'client="orders"'``."""
    braces = "{" + labels + "}" if labels else ""
    lines: List[str] = []
    for kind, table in (("counter", COUNTERS), ("gauge", GAUGES)):
        for field, name, help_text in table:
            value = getattr(stats, field)
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.append(f"{name}{braces} {value!r}" if kind == "gauge" else f"{name}{braces} {value}")
    return "\n".join(lines) + "\n"


def workload(client: distlock.Client, name: str, cycles: int) -> None:
    """``cycles`` lock cycles on this thread while a second thread holds
    the lock in between, so that some of them wait."""
    go = threading.Event()

    def rival() -> None:
        lock = client.lock(name, ttl=5)
        for _ in range(cycles):
            with lock:
                go.set()
                time.sleep(0.01)  # hold it briefly

    t = threading.Thread(target=rival)
    t.start()
    go.wait(10)
    for _ in range(cycles):
        with client.lock(name, ttl=5, timeout=10):
            pass
    t.join()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Redis URL (default: start a throwaway redis-server)")
    parser.add_argument("--cycles", type=int, default=5, help="lock cycles per thread (default 5)")
    parser.add_argument("--name", default="example:prometheus", help="lock name")
    args = parser.parse_args(argv)
    if not distlock._native.HAS_STATS:
        print(f"{distlock.library_path} has no distlock_client_stats: install a newer distlock", file=sys.stderr)
        return 2
    server = None
    url = args.url
    if url is None:
        # The throwaway redis-server helper lives with the tests.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from support import RedisServer

        server = RedisServer().start()
        url = server.url
    try:
        with distlock.Client(url) as client:
            workload(client, args.name, args.cycles)
            sys.stdout.write(exposition(client.stats(), 'client="example"'))
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
