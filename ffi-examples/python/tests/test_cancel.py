"""Stopping a blocked acquire: CancelToken from another thread, closing the
client, and Ctrl-C in the main thread."""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time

import pytest

import distlock
from support import lock_token, redis_key


def _helper_threads():
    return [t for t in threading.enumerate() if t.name == "distlock-acquire"]


def test_cancel_from_another_thread(client, other_client, resp, key):
    holder = other_client.lock(key)
    assert holder.acquire()
    token = distlock.CancelToken()
    waiter = client.lock(key)
    outcome = {}

    def wait():
        start = time.monotonic()
        try:
            outcome["acquired"] = waiter.acquire(cancel=token)
        except BaseException as e:
            outcome["error"] = e
        outcome["elapsed"] = time.monotonic() - start

    t = threading.Thread(target=wait)
    t.start()
    assert waiter._wait_started.wait(10), "the waiter never started waiting"
    token.cancel()
    t.join(10)
    assert not t.is_alive()
    assert isinstance(outcome.get("error"), distlock.Cancelled), outcome
    assert outcome["error"].status == 4
    assert outcome["elapsed"] < 5
    assert not waiter.held
    assert lock_token(resp, redis_key(key)) == holder.token.encode()
    holder.release()
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_a_cancelled_token_stops_later_waits_at_once(client, key):
    token = distlock.CancelToken()
    token.cancel()
    assert token.cancelled
    # Even on a free lock: the token says stop.
    with pytest.raises(distlock.Cancelled):
        client.lock(key).acquire(cancel=token)
    with pytest.raises(distlock.Cancelled):
        with client.lock(key, cancel=token):
            pass


def test_one_token_cancels_several_waiters(client, other_client, key):
    holder = other_client.lock(key)
    assert holder.acquire()
    token = distlock.CancelToken()
    waiters = [client.lock(key) for _ in range(3)]
    errors = []

    def wait(lock):
        try:
            lock.acquire(cancel=token)
        except distlock.Cancelled as e:
            errors.append(e)

    threads = [threading.Thread(target=wait, args=(w,)) for w in waiters]
    for t in threads:
        t.start()
    for w in waiters:
        assert w._wait_started.wait(10)
    token.cancel()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert len(errors) == 3
    holder.release()


def test_closing_the_client_cancels_its_waiters(redis_server, other_client, resp, key):
    holder = other_client.lock(key)
    assert holder.acquire()
    c = distlock.Client(redis_server.url)
    waiter = c.lock(key)
    outcome = {}

    def wait():
        try:
            outcome["acquired"] = waiter.acquire()
        except BaseException as e:
            outcome["error"] = e

    t = threading.Thread(target=wait)
    t.start()
    assert waiter._wait_started.wait(10)
    c.close()
    t.join(10)
    assert not t.is_alive()
    assert isinstance(outcome.get("error"), distlock.Cancelled), outcome
    holder.release()
    assert resp.command("EXISTS", redis_key(key)) == 0


def _interrupt_main_with_sigint():
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _sigint_to_the_process():
    # Process-directed: the kernel may deliver it to any thread; the main
    # thread then notices within one wait slice.
    os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(
    "interrupt",
    [_interrupt_main_with_sigint, _sigint_to_the_process, _thread.interrupt_main],
    ids=["sigint-main-thread", "sigint-process", "interrupt_main"],
)
def test_ctrl_c_stops_a_blocked_acquire_and_leaves_no_lock(client, other_client, resp, key, interrupt):
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    holder = other_client.lock(key)
    assert holder.acquire()
    waiter = client.lock(key)

    def press_ctrl_c():
        if waiter._wait_started.wait(10):
            interrupt()

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            waiter.acquire()  # would wait forever: the holder keeps renewing
    finally:
        presser.join(10)
    assert time.monotonic() - start < 3.0
    assert not waiter.held
    assert _helper_threads() == []  # the helper was joined, not left behind
    assert lock_token(resp, redis_key(key)) == holder.token.encode()
    holder.release()
    # Nothing took the lock after the interrupted wait was abandoned.
    assert resp.command("EXISTS", redis_key(key)) == 0
    # The Lock object is still usable.
    assert waiter.acquire(blocking=False) is True
    waiter.release()


def test_ctrl_c_stops_wait_lost_in_the_main_thread(client, key, monkeypatch):
    lock = client.lock(key)
    assert lock.acquire()
    waiting = threading.Event()
    original = lock._wait_lost_once

    def instrumented(guard, ms):
        waiting.set()  # the main thread is about to block in the library
        return original(guard, ms)

    monkeypatch.setattr(lock, "_wait_lost_once", instrumented)
    presser = threading.Thread(
        target=lambda: waiting.wait(10) and signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    )
    presser.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            lock.wait_lost()  # would wait forever: nothing takes the lock
    finally:
        presser.join(10)
    assert waiting.is_set()
    assert time.monotonic() - start < 3.0
    assert lock.held
    lock.release()


def test_a_main_thread_wait_starts_no_thread_and_survives_a_quiet_signal(client, other_client, key):
    """The main thread waits inside the library itself (no helper thread
    per acquire); a signal whose handler raises nothing stops nothing."""
    assert threading.current_thread() is threading.main_thread()
    heard = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: heard.append(signum))
    holder = other_client.lock(key)
    assert holder.acquire()
    waiter = client.lock(key)
    seen_during_wait = {}

    def poke_then_release():
        if not waiter._wait_started.wait(10):
            return
        seen_during_wait["helpers"] = len(_helper_threads())
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            time.sleep(0.005)
        holder.release()

    t = threading.Thread(target=poke_then_release)
    t.start()
    try:
        assert waiter.acquire(timeout=10), "the wait went on after the signal"
    finally:
        t.join(10)
        signal.signal(signal.SIGUSR1, previous)
    assert heard == [signal.SIGUSR1], "the handler ran during the wait"
    assert seen_during_wait["helpers"] == 0, "no helper thread for the wait"
    assert len([x for x in threading.enumerate() if x.name == "distlock-signals"]) == 1
    waiter.release()
