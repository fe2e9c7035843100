"""Bad input and unusable servers map to the right exception classes."""

from __future__ import annotations

import pytest

import distlock
from support import RedisServer, free_port, lock_token


def test_empty_key_is_invalid(client):
    with pytest.raises(distlock.InvalidArgument) as err:
        client.lock("").acquire()
    assert err.value.status == 5
    assert str(err.value)  # carries the library's message
    with pytest.raises(ValueError):  # InvalidArgument is a ValueError too
        with client.lock(""):
            pass


def test_key_with_nul_is_invalid(client):
    with pytest.raises(distlock.InvalidArgument):
        client.lock("a\0b")


def test_overlong_key_is_invalid(client):
    with pytest.raises(distlock.InvalidArgument):
        client.lock("k" * 5000).acquire(blocking=False)


@pytest.mark.parametrize("url", ["not a url", "http://127.0.0.1:6379/0", ""])
def test_bad_url_is_invalid(url):
    with pytest.raises(distlock.InvalidArgument) as err:
        distlock.Client(url)
    assert err.value.status == 5


@pytest.mark.parametrize(
    "kwargs",
    [{"ttl": 0}, {"ttl": -1}, {"ttl": float("nan")}, {"pool_size": 0}, {"connect_timeout": 0}],
)
def test_bad_settings_are_invalid(redis_server, kwargs):
    with pytest.raises(distlock.InvalidArgument):
        distlock.Client(redis_server.url, **kwargs)


def test_ttl_below_the_library_minimum_is_invalid(client, key):
    with pytest.raises(distlock.InvalidArgument):
        client.lock(key, ttl=0.001).acquire()


def test_timeout_with_non_blocking_is_invalid(client, key):
    with pytest.raises(distlock.InvalidArgument):
        client.lock(key).acquire(blocking=False, timeout=1)
    with pytest.raises(distlock.InvalidArgument):
        client.lock(key, timeout=1, blocking=False)


def test_wrong_types_raise_type_error(client):
    with pytest.raises(TypeError):
        client.lock(42)
    with pytest.raises(TypeError):
        client.lock("k", ttl="5")


def test_unreachable_port_is_a_connection_failure(key):
    port = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{port}/0"
    with pytest.raises(distlock.ConnectionFailed) as err:
        with distlock.Client(url, connect_timeout=1, command_timeout=1) as c:
            c.lock(key).acquire(timeout=1)
    assert err.value.status == 6


@pytest.fixture(scope="module")
def password_server():
    with RedisServer(password="s3cret") as server:
        yield server


def test_wrong_password_is_an_auth_failure(password_server, key):
    url = f"redis://:xyzzy-pw-77@127.0.0.1:{password_server.port}/0"
    with pytest.raises(distlock.AuthFailed) as err:
        with distlock.Client(url, connect_timeout=2) as c:
            c.lock(key).acquire(timeout=2)
    assert err.value.status == 7
    assert "xyzzy-pw-77" not in str(err.value)


def test_right_password_works(password_server, key):
    with distlock.Client(password_server.url) as c:
        with c.lock(key) as lock:
            with password_server.connect() as conn:
                assert lock_token(conn, f"distlock:{key}") == lock.token.encode()
