"""Mutual exclusion under load: a counter in Redis that is read and then
written back one higher (not atomic) only ever under the lock must end
exact, and the fences must rise with it."""

from __future__ import annotations

import multiprocessing
import queue
import threading

import distlock
import support


def _check_history(history, total):
    """Every value 1..total was written exactly once, and the fence seen
    with each write is larger than the fence of the write before it."""
    history = sorted(history)
    assert [v for v, _ in history] == list(range(1, total + 1))
    fences = [f for _, f in history]
    assert all(a < b for a, b in zip(fences, fences[1:]))


def test_threads_of_one_process(redis_server, client, resp, key):
    threads_n, cycles = 8, 100
    counter = key + ":counter"
    start = threading.Barrier(threads_n)
    history = []
    history_mutex = threading.Lock()
    errors = []

    def work():
        try:
            with redis_server.connect() as conn:
                start.wait(30)
                for _ in range(cycles):
                    with client.lock(key, ttl=10) as lock:
                        value = int(conn.command("GET", counter) or 0) + 1
                        conn.command("SET", counter, value)
                        fence = lock.fence
                    with history_mutex:
                        history.append((value, fence))
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert not any(t.is_alive() for t in workers), "workers did not finish in 120 s"
    assert errors == []
    assert int(resp.command("GET", counter)) == threads_n * cycles
    _check_history(history, threads_n * cycles)
    assert resp.command("EXISTS", support.redis_key(key)) == 0


def test_spawned_processes(redis_server, resp, key):
    procs_n, cycles = 4, 50
    counter = key + ":counter"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(procs_n)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=support.increment,
            args=(redis_server.url, redis_server.port, key, counter, cycles, start, results),
        )
        for _ in range(procs_n)
    ]
    for p in procs:
        p.start()
    history = []
    try:
        for _ in range(procs_n):
            history.extend(results.get(timeout=120))
    except queue.Empty:
        pass
    for p in procs:
        p.join(30)
    stuck = [p.pid for p in procs if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(10)
    assert stuck == [], f"worker processes did not finish: {stuck}"
    assert [p.exitcode for p in procs] == [0] * procs_n
    assert int(resp.command("GET", counter)) == procs_n * cycles
    _check_history(history, procs_n * cycles)
    assert resp.command("EXISTS", support.redis_key(key)) == 0
