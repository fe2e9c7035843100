"""The peer comparison's Python side (see scripts/bench-peers.sh): the same
three scenarios through distlock's Python binding, python-redis-lock and
redis-py's Lock, each printing one JSON line.

    python peers.py URL LIB SCENARIO   LIB: distlock | python-redis-lock | redis-py

a: one client, 200 warm-up cycles, then 2,000 of acquire + release on one
key (us_per_cycle). b: 4 processes of this program, started together, 200
cycles each of acquire, GET/SET of a counter, release, on one key
(cycles_per_s over the slowest's wall time, max_wait_ms, counter_ok, and
cpu_us_per_cycle: the workers' CPU time in their loops, every thread of
each, over all their cycles).
c: 100 threads in one process, one acquisition + release each (wall_ms).

Waiting is each library's own blocking acquire: distlock's; python-redis-
lock's (woken through a list it pushes to on release); redis-py's (polls
every 0.1 s by default).
"""

import json
import os
import subprocess
import sys
import threading
import time

TTL = 10
WARMUP, CYCLES_A, PROCESSES_B, CYCLES_B, THREADS_C = 200, 2000, 4, 200, 100


def fail(msg):
    print("peers:", msg, file=sys.stderr)
    sys.exit(2)


def opener(lib, url):
    """A function that returns a new, unacquired lock object on a key."""
    if lib == "distlock":
        import distlock

        client = distlock.Client(url)
        return lambda key: client.lock(key, ttl=TTL)
    import redis

    conn = redis.Redis.from_url(url)
    if lib == "python-redis-lock":
        import redis_lock

        return lambda key: redis_lock.Lock(conn, key, expire=TTL)
    if lib == "redis-py":
        return lambda key: conn.lock(key, timeout=TTL)
    fail("unknown library " + lib)


def cycle(make, key):
    lock = make(key)
    lock.acquire(blocking=True)
    lock.release()


def scenario_a(url, lib, key):
    make = opener(lib, url)
    for _ in range(WARMUP):
        cycle(make, key)
    start = time.perf_counter()
    for _ in range(CYCLES_A):
        cycle(make, key)
    us = (time.perf_counter() - start) * 1e6 / CYCLES_A
    print(json.dumps({"lang": "python", "lib": lib, "scenario": "a", "us_per_cycle": round(us, 1)}))


def worker_b(url, lib, key, start_ms):
    import redis

    make = opener(lib, url)
    conn = redis.Redis.from_url(url)
    counter = key + ":counter"
    while time.time() * 1000 < start_ms:
        time.sleep(0.001)
    max_wait = 0.0
    cpu = time.process_time()
    for _ in range(CYCLES_B):
        asked = time.perf_counter()
        lock = make(key)
        lock.acquire(blocking=True)
        max_wait = max(max_wait, time.perf_counter() - asked)
        n = int(conn.get(counter) or 0)
        conn.set(counter, n + 1)
        lock.release()
    cpu = time.process_time() - cpu
    print(int(time.time() * 1000), round(max_wait * 1e3, 3), round(cpu * 1e6))


def scenario_b(url, lib, key):
    import redis

    conn = redis.Redis.from_url(url)
    counter = key + ":counter"
    conn.delete(counter)
    start_ms = int(time.time() * 1000) + 500
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, url, lib, "b-worker", key, str(start_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES_B)
    ]
    end, max_wait, cpu_us = 0, 0.0, 0
    for w in workers:
        out, _ = w.communicate()
        if w.returncode != 0:
            fail("a worker failed")
        e, m, c = out.split()
        end, max_wait, cpu_us = max(end, int(e)), max(max_wait, float(m)), cpu_us + int(c)
    wall = max(end - start_ms, 1) / 1e3
    total = PROCESSES_B * CYCLES_B
    print(
        json.dumps(
            {
                "lang": "python",
                "lib": lib,
                "scenario": "b",
                "cycles_per_s": round(total / wall),
                "max_wait_ms": round(max_wait, 1),
                "counter_ok": int(conn.get(counter) or 0) == total,
                "cpu_us_per_cycle": round(cpu_us / total, 1),
            }
        )
    )


def scenario_c(url, lib, key):
    make = opener(lib, url)
    ready = threading.Barrier(THREADS_C + 1)

    def one():
        ready.wait()
        cycle(make, key)

    threads = [threading.Thread(target=one) for _ in range(THREADS_C)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = (time.perf_counter() - start) * 1e3
    print(json.dumps({"lang": "python", "lib": lib, "scenario": "c", "wall_ms": round(wall, 1)}))


def main():
    args = sys.argv[1:]
    if len(args) < 3 or not args[0].startswith("redis://127."):
        fail("usage: peers.py redis://127.0.0.1:PORT LIB a|b|c (loopback only)")
    url, lib, scenario = args[:3]
    key = f"peers:python:{lib}:{scenario}:{os.getpid()}"
    if scenario == "a":
        scenario_a(url, lib, key)
    elif scenario == "b":
        scenario_b(url, lib, key)
    elif scenario == "b-worker":
        worker_b(url, lib, args[3], int(args[4]))
    elif scenario == "c":
        scenario_c(url, lib, key)
    else:
        fail("unknown scenario " + scenario)


if __name__ == "__main__":
    main()
