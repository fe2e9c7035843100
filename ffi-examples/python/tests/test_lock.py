"""Acquiring, holding and releasing: what Redis holds at each step."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time

import pytest

import distlock
from support import lock_token, redis_key


def test_context_manager_holds_the_key_during_and_removes_it_after(client, resp, key):
    with client.lock(key, ttl=5) as lock:
        assert lock.held and lock.owned()
        assert len(lock.token) == 36
        assert lock_token(resp, redis_key(key)) == lock.token.encode()
        pttl = resp.command("PTTL", redis_key(key))
        assert 0 < pttl <= 5000
        assert 0 < lock.remaining <= 5.0
    assert resp.command("EXISTS", redis_key(key)) == 0
    assert not lock.held
    assert lock.remaining == 0.0


def test_an_exception_in_the_block_still_releases(client, resp, key):
    with pytest.raises(ZeroDivisionError):
        with client.lock(key):
            assert resp.command("EXISTS", redis_key(key)) == 1
            1 / 0
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_acquire_and_release_like_threading_lock(client, resp, key):
    lock = client.lock(key)
    assert not lock.held and lock.fence is None and lock.token is None
    assert lock.acquire() is True
    assert lock_token(resp, redis_key(key)) == lock.token.encode()
    lock.release()
    assert resp.command("EXISTS", redis_key(key)) == 0
    # The same Lock object can be acquired again afterwards.
    assert lock.acquire(blocking=False) is True
    lock.release()


def test_prefix_option_changes_the_key(redis_server, resp, key):
    with distlock.Client(redis_server.url, prefix="pyapp") as c:
        with c.lock(key) as lock:
            assert lock_token(resp, redis_key(key, "pyapp")) == lock.token.encode()
            assert resp.command("EXISTS", redis_key(key)) == 0


def test_try_lock_conflict_returns_false(client, other_client, resp, key):
    holder = other_client.lock(key)
    assert holder.acquire()
    contender = client.lock(key)
    assert contender.acquire(blocking=False) is False
    assert contender.acquire(timeout=0) is False
    # Another Lock object of the holder's own client does not get it either.
    assert other_client.lock(key).acquire(blocking=False) is False
    with pytest.raises(distlock.LockTimeout) as err:
        with client.lock(key, blocking=False):
            pass
    assert err.value.status == 1  # DISTLOCK_NOT_ACQUIRED
    assert not contender.held
    assert lock_token(resp, redis_key(key)) == holder.token.encode()
    holder.release()
    assert contender.acquire(blocking=False) is True
    contender.release()


def test_timeout_gives_up_after_about_the_timeout(client, other_client, resp, key):
    holder = other_client.lock(key)
    assert holder.acquire()
    contender = client.lock(key)
    start = time.monotonic()
    assert contender.acquire(timeout=0.3) is False
    elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 3.0, elapsed
    start = time.monotonic()
    with pytest.raises(distlock.LockTimeout) as err:
        with client.lock(key, timeout=0.2):
            pytest.fail("acquired a lock that is held elsewhere")
    assert err.value.status == 2  # DISTLOCK_TIMEOUT
    assert 0.2 <= time.monotonic() - start < 3.0
    assert lock_token(resp, redis_key(key)) == holder.token.encode()
    holder.release()


def test_a_waiter_gets_the_lock_once_it_is_released(client, other_client, key):
    holder = other_client.lock(key)
    assert holder.acquire()
    # Read now: once released (in the other thread, racing the assertions
    # below), a Lock has no fence.
    first = holder.fence
    contender = client.lock(key)
    # Released from another thread once the main thread really waits.
    t = threading.Thread(target=lambda: (contender._wait_started.wait(10), holder.release()))
    t.start()
    try:
        assert contender.acquire(timeout=10) is True
        assert contender.held
        assert contender.fence > first
    finally:
        t.join(10)
    contender.release()


def test_fences_strictly_increase_across_clients(client, other_client, key):
    fences = []
    for i in range(20):
        c = client if i % 3 else other_client
        with c.lock(key) as lock:
            fences.append(lock.fence)
    assert all(a < b for a, b in zip(fences, fences[1:])), fences


def test_a_fence_asked_for_after_the_lock_was_lost_raises(client, other_client, resp, key):
    # The first lock of a name comes without its fence (given when read):
    # once the lock is gone, no fence is given, and the new holder's stands.
    stale = client.lock(key)
    assert stale.acquire()
    assert resp.command("DEL", redis_key(key)) == 1
    with other_client.lock(key) as newer:
        fence = newer.fence
        assert fence > 0
        with pytest.raises(distlock.LockLost):
            stale.fence
        assert not stale.held
        assert newer.fence == fence
    with pytest.raises(distlock.LockLost):
        stale.release()


def test_wait_lost_after_an_external_delete(client, resp, key):
    lock = client.lock(key, ttl=1)  # renewed, so the loss is seen, every ~0.33 s
    assert lock.acquire()
    assert lock.wait_lost(0) is False
    assert lock.wait_lost(0.05) is False
    assert resp.command("DEL", redis_key(key)) == 1
    start = time.monotonic()
    assert lock.wait_lost(5) is True
    assert time.monotonic() - start < 3.0
    assert not lock.held
    with pytest.raises(distlock.LockLost) as err:
        lock.release()
    assert err.value.status == 3
    # The lost guard was freed anyway: a second release is a usage error.
    with pytest.raises(distlock.InvalidArgument):
        lock.release()


def test_wait_lost_is_true_once_released(client, key):
    lock = client.lock(key)
    assert lock.wait_lost(0) is True  # never held
    lock.acquire()
    lock.release()
    assert lock.wait_lost(0) is True
    assert lock.wait_lost() is True


def test_lease_is_renewed_past_its_ttl(client, resp, key):
    with client.lock(key, ttl=0.6) as lock:
        # Outlive the TTL three times over; the renewal thread keeps it.
        assert lock.wait_lost(1.8) is False
        assert lock.held
        assert lock_token(resp, redis_key(key)) == lock.token.encode()


def test_extend_and_remaining(client, key):
    with client.lock(key, ttl=2) as lock:
        assert 0 < lock.remaining <= 2.0
        lock.extend()
        assert 1.0 < lock.remaining <= 2.0


def test_double_release_raises(client, key):
    lock = client.lock(key)
    with pytest.raises(distlock.InvalidArgument):
        lock.release()  # never acquired
    lock.acquire()
    lock.release()
    with pytest.raises(distlock.InvalidArgument) as err:
        lock.release()
    assert err.value.status == 5
    with pytest.raises(distlock.InvalidArgument):
        lock.extend()


def test_acquiring_twice_through_one_lock_object_raises(client, resp, key):
    lock = client.lock(key)
    lock.acquire()
    token = lock.token
    with pytest.raises(distlock.InvalidArgument):
        lock.acquire(timeout=0.1)
    assert lock.held and lock.token == token
    lock.release()
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_an_unreleased_lock_is_released_when_garbage_collected(client, resp, key):
    lock = client.lock(key)
    lock.acquire()
    assert resp.command("EXISTS", redis_key(key)) == 1
    del lock
    gc.collect()
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_closing_the_client_releases_its_locks(redis_server, resp, key):
    c = distlock.Client(redis_server.url)
    a, b = c.lock(key + ":a"), c.lock(key + ":b")
    a.acquire()
    b.acquire()
    b.release()
    c.close()
    assert c.closed
    assert resp.command("EXISTS", redis_key(key + ":a")) == 0
    assert not a.held
    with pytest.raises(distlock.InvalidArgument):
        c.lock(key).acquire()
    c.close()  # twice is fine


def test_client_repr_hides_the_password(redis_server):
    url = f"redis://user:hunter2@127.0.0.1:{redis_server.port}/0"
    try:
        c = distlock.Client(url)
    except distlock.DistlockError as e:  # auth refused: the server has no user "user"
        assert "hunter2" not in str(e)
    else:
        assert "hunter2" not in repr(c)
        c.close()


def test_version_and_status_names():
    assert distlock.native_version()
    assert distlock.status_name(3)
    assert distlock.status_name(0) != distlock.status_name(3)


def test_locks_still_held_at_interpreter_exit_are_released(redis_server, resp, key):
    # A daemon thread holds the lock when the interpreter exits: its frame,
    # and so the Lock, is never freed, so only closing the client at exit
    # releases it.
    script = (
        "import sys, threading, distlock\n"
        "client = distlock.Client(sys.argv[1])\n"
        "holding = threading.Event()\n"
        "def hold():\n"
        "    lock = client.lock(sys.argv[2], ttl=60)\n"
        "    assert lock.acquire(blocking=False)\n"
        "    print(lock.token, flush=True)\n"
        "    holding.set()\n"
        "    threading.Event().wait()\n"
        "threading.Thread(target=hold, daemon=True).start()\n"
        "assert holding.wait(30)\n"
    )
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=package_dir)
    done = subprocess.run(
        [sys.executable, "-c", script, redis_server.url, key],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) == 36  # it did hold the lock
    # Released at exit, not left to its 60 s lease.
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_owned_says_whether_this_lock_object_holds_it(client, other_client, key):
    mine = client.lock(key)
    theirs = other_client.lock(key)
    assert not mine.owned()
    assert mine.acquire(blocking=False)
    assert mine.owned() and mine.held
    # Held, but not through this object.
    assert not theirs.owned()
    mine.release()
    assert not mine.owned() and not mine.held


needs_inspect = pytest.mark.skipif(
    not distlock._native.HAS_INSPECT,
    reason="the loaded libdistlock has no distlock_client_inspect yet",
)


@needs_inspect
def test_locked_asks_the_server_whether_anyone_holds_it(client, other_client, resp, key):
    mine = client.lock(key)
    theirs = other_client.lock(key)
    assert not mine.locked() and not theirs.locked()
    assert mine.acquire(blocking=False)
    # Every Lock on the name sees it held, through either client.
    assert mine.locked() and theirs.locked() and client.lock(key).locked()
    assert not theirs.owned()
    mine.release()
    assert not mine.locked() and not theirs.locked()
    # Held by something that is not distlock at all: still held.
    resp.command("SET", redis_key(key), "someone-else", "PX", 5000)
    assert theirs.locked() and not theirs.owned()
    resp.command("DEL", redis_key(key))
    assert not theirs.locked()


@needs_inspect
def test_locked_on_a_closed_client_is_refused(redis_server, key):
    c = distlock.Client(redis_server.url)
    lock = c.lock(key)
    c.close()
    with pytest.raises(distlock.InvalidArgument, match="closed"):
        lock.locked()


@pytest.mark.skipif(distlock._native.HAS_INSPECT, reason="the loaded libdistlock has distlock_client_inspect")
def test_locked_without_inspect_says_what_is_missing(client, key):
    with pytest.raises(NotImplementedError, match="distlock_client_inspect.*owned"):
        client.lock(key).locked()
