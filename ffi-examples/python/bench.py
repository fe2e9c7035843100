#!/usr/bin/env python3
"""Uncontended acquire + release through the Python bindings.

Prints ``python_acquire_release_us <median>``: the median wall time of one
acquire and release of a free lock from the main thread, in microseconds,
over ``--cycles`` cycles after ``--warmup`` unmeasured ones. It also prints
the same for a raw ``SET NX PX`` + ``EVAL`` release over one socket, the
floor that any Redis lock needs, as ``python_raw_setnx_release_us``
(``--no-raw`` leaves it out). ``scripts/bench-ffi.sh`` compares the first
with the Rust floor, ``examples/ffi_floor.rs``.

    python3 bench.py                    # starts its own redis-server
    python3 bench.py --url redis://127.0.0.1:6379/0 --cycles 5000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

try:
    import distlock
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import distlock
# The redis-server and raw RESP helpers live with the tests
# (tests/support.py); they are not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
from support import RedisServer, RespConnection  # noqa: E402

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def bench_distlock(url: str, cycles: int, warmup: int) -> float:
    with distlock.Client(url) as client:
        lock = client.lock("bench:python")
        for _ in range(warmup):
            lock.acquire()
            lock.release()
        samples = []
        clock = time.perf_counter
        for _ in range(cycles):
            start = clock()
            lock.acquire()
            lock.release()
            samples.append(clock() - start)
        return statistics.median(samples) * 1e6


def bench_raw(url: str, cycles: int, warmup: int) -> float:
    u = urlparse(url)
    with RespConnection(u.hostname or "127.0.0.1", u.port or 6379, password=u.password) as conn:
        def cycle() -> None:
            token = str(uuid.uuid4())
            if conn.command("SET", "bench:python-raw", token, "NX", "PX", 30000) != "OK":
                raise RuntimeError("raw SET NX found the key held")
            conn.command("EVAL", _RELEASE, 1, "bench:python-raw", token)

        for _ in range(warmup):
            cycle()
        samples = []
        for _ in range(cycles):
            start = time.perf_counter()
            cycle()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="redis URL; default: start a throwaway redis-server on a free loopback port")
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--no-raw", action="store_true", help="leave out the raw SET NX PX floor")
    args = parser.parse_args()
    if args.cycles < 1 or args.warmup < 0:
        parser.error("--cycles must be at least 1 and --warmup not negative")

    def run(url: str) -> None:
        median = bench_distlock(url, args.cycles, args.warmup)
        print(f"python_acquire_release_us {median:.2f}")
        if not args.no_raw:
            print(f"python_raw_setnx_release_us {bench_raw(url, args.cycles, args.warmup):.2f}")

    if args.url:
        run(args.url)
    else:
        with RedisServer() as server:
            run(server.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
