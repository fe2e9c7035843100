#!/usr/bin/env python3
"""Many threads increment one counter under one distributed lock.

The seeds' scenario: 100 threads wait at a start line, then each acquires
the lock once, reads the counter, writes it back one higher, and releases.
The read and the write are separate steps, so without the lock updates
would be lost; with it the final count is exact. Prints the wall time from
the start signal to the last release, and the final count.

    python3 examples/counter.py                       # starts its own redis-server
    python3 examples/counter.py --url redis://127.0.0.1:6379/0 --threads 50 --cycles 10

Exits 1 if the count is wrong (try --no-lock to watch that happen).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

try:
    import distlock
except ImportError:
    # Run from a source checkout without installing the package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import distlock
# The throwaway redis-server helper lives with the tests (tests/support.py);
# it is not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import RedisServer  # noqa: E402


def run(url: str, threads: int, cycles: int, name: str, use_lock: bool = True) -> int:
    counter = 0
    errors = []
    start_line = threading.Barrier(threads + 1)

    with distlock.Client(url) as client:
        # Warm up: connections and the lock's scripts, outside the timing.
        with client.lock(name):
            pass

        def increment() -> None:
            nonlocal counter
            seen = counter
            # Let other threads run between the read and the write, as real
            # work would: unprotected, their updates are then lost.
            time.sleep(0)
            counter = seen + 1

        def work() -> None:
            try:
                start_line.wait(60)
                for _ in range(cycles):
                    if use_lock:
                        with client.lock(name, ttl=10):
                            increment()
                    else:
                        increment()
            except BaseException as e:  # report, don't hang the start line
                errors.append(e)

        workers = [threading.Thread(target=work, name=f"worker-{i}") for i in range(threads)]
        for t in workers:
            t.start()
        start_line.wait(60)
        began = time.perf_counter()
        for t in workers:
            t.join()
        elapsed = time.perf_counter() - began

    expected = threads * cycles
    print(f"threads {threads} cycles {cycles} lock {'on' if use_lock else 'OFF'} elapsed_ms {elapsed * 1000:.1f}")
    print(f"final count {counter} (expected {expected})")
    for e in errors[:5]:
        print(f"error: {e!r}", file=sys.stderr)
    return 0 if counter == expected and not errors else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="redis URL; default: start a throwaway redis-server on a free loopback port")
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=1, help="acquisitions per thread")
    parser.add_argument("--name", default="example:counter", help="lock name")
    parser.add_argument("--no-lock", action="store_true", help="skip the lock, to see updates get lost")
    args = parser.parse_args()
    if args.threads < 1 or args.cycles < 1:
        parser.error("--threads and --cycles must be at least 1")
    if args.url:
        return run(args.url, args.threads, args.cycles, args.name, not args.no_lock)
    with RedisServer() as server:
        return run(server.url, args.threads, args.cycles, args.name, not args.no_lock)


if __name__ == "__main__":
    sys.exit(main())
