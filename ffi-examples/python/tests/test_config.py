"""Clients opened through distlock_config: Redlock nodes, cluster seeds,
sentinel, replica acknowledgement and the fast-path settings."""

from __future__ import annotations

import time
from typing import Iterator, List, Tuple, Union

import pytest

import distlock
from support import RedisServer, RespConnection, free_port, lock_token

from support import redis_key

DEAD = "redis://127.0.0.1:1/0"  # nothing listens on port 1 (it needs privileges)
THREE_DEAD = ["redis://127.0.0.1:1/0", "redis://127.0.0.1:1/1", "redis://127.0.0.1:1/2"]


# The library's words for refused choices of servers (src/servers.rs and
# src/ffi/config.rs): the contract every language shares, so held here to
# the letter.
ONE_NODE = "invalid argument: Redlock needs at least 3 independent nodes (5 is usual); 1 given"
TWO_NODES = "invalid argument: Redlock needs at least 3 independent nodes (5 is usual); 2 given"
# A bad zk:// URL: the parser's own words (they name no URL, which may
# hold nothing secret but is not repeated either).
ZK = "invalid argument: cannot parse the ZooKeeper URL: server #2 has no host"
NO_MASTER = "invalid argument: sentinel addresses were given without a master name"


def c_refusal(calls: List[Tuple[str, bytes]]) -> str:
    """What the C API itself says of a distlock_config filled by ``calls``
    (setter name, argument): the message of the first setter that fails, or
    else of distlock_config_check. Called straight through ctypes, as a C
    program would."""
    lib = distlock._native.lib
    cfg = lib.distlock_config_new()
    assert cfg
    try:
        for name, arg in calls:
            if getattr(lib, name)(cfg, arg) != 0:
                return distlock._native.last_error()
        assert lib.distlock_config_check(cfg) == 5
        return distlock._native.last_error()
    finally:
        lib.distlock_config_free(cfg)


@pytest.mark.parametrize(
    "kwargs, calls, expected",
    [
        # One node used to mean one server: now it is a Redlock too small.
        ({"nodes": [DEAD]}, [("distlock_config_add_node", DEAD.encode())], ONE_NODE),
        ({"nodes": THREE_DEAD[:2]}, [("distlock_config_add_node", u.encode()) for u in THREE_DEAD[:2]], TWO_NODES),
        (
            {"url": "zk://127.0.0.1:2181,:2/chroot"},
            [("distlock_config_set_url", b"zk://127.0.0.1:2181,:2/chroot")],
            ZK,
        ),
        ({"sentinel": (["127.0.0.1:1"], None)}, [("distlock_config_add_sentinel", b"127.0.0.1:1")], NO_MASTER),
        (
            {"url": DEAD, "sentinel": (["127.0.0.1:1", "127.0.0.1:2"], "")},
            [
                ("distlock_config_set_url", DEAD.encode()),
                ("distlock_config_add_sentinel", b"127.0.0.1:1"),
                ("distlock_config_add_sentinel", b"127.0.0.1:2"),
            ],
            NO_MASTER,
        ),
    ],
)
def test_refused_server_choices_carry_the_librarys_exact_words(
    kwargs: dict, calls: List[Tuple[str, bytes]], expected: Union[str, Tuple[str, ...]]
) -> None:
    said = c_refusal(calls)
    assert said in ((expected,) if isinstance(expected, str) else expected), said
    expected = said
    start = time.monotonic()
    with pytest.raises(distlock.InvalidArgument) as opened:
        distlock.Client(**kwargs)
    assert time.monotonic() - start < 2  # refused before connecting
    with pytest.raises(distlock.InvalidArgument) as checked:
        distlock.check(**kwargs)
    for info in (opened, checked):
        assert info.value.status == 5  # DISTLOCK_INVALID_ARGUMENT
        assert info.value.detail == expected
        assert str(info.value).endswith(": " + expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"nodes": THREE_DEAD, "sentinel": (["127.0.0.1:1"], "mymaster")}, r"at most one of .*nodes= and sentinel="),
        ({"nodes": THREE_DEAD, "cluster": [DEAD]}, r"at most one of .*nodes= and cluster="),
        ({"cluster": [DEAD], "sentinel": (["127.0.0.1:1"], "m")}, r"at most one of .*cluster= and sentinel="),
        ({"url": DEAD, "nodes": THREE_DEAD}, r"url cannot be combined with nodes=.*sentinel="),
        # Checked before the library sees the URL: its scheme is not what
        # is reported.
        ({"url": "etcd://127.0.0.1:2379", "cluster": [DEAD]}, r"url cannot be combined with cluster="),
    ],
)
def test_pythons_one_rule_about_server_keywords(kwargs: dict, message: str) -> None:
    for call in (distlock.Client, distlock.check):
        with pytest.raises(distlock.InvalidArgument, match=message) as info:
            call(**kwargs)
        assert isinstance(info.value, ValueError)
        assert info.value.detail is None  # raised by Python, not the library


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sentinel": ([], "mymaster")}, "sentinel mode needs at least one sentinel address"),
        ({"sentinel": ([], "")}, "master_name is empty"),
        ({"nodes": [DEAD, "http://127.0.0.1:1/", DEAD]}, "node 2"),
        ({"nodes": [DEAD, DEAD, "zk://127.0.0.1:2181"]}, "zk:// names one ZooKeeper ensemble"),
        ({"cluster": [DEAD, "memcache://127.0.0.1:1"]}, "memcache:// names a single memcached server"),
        ({"cluster": [DEAD, "redis://127.0.0.1:1/1"]}, "different database"),
        ({"nodes": [DEAD, "redis://127.0.0.1:1/\0", DEAD]}, "NUL"),
        ({"url": DEAD, "replicas": (1, 0)}, "replica"),
        ({"url": DEAD, "replicas": (-1, 1.0)}, "replica count"),
        ({"url": DEAD, "handoff_limit": 64}, "handoff_limit"),
        ({"url": DEAD, "max_retry_interval": 0}, "max_retry_interval"),
        ({"url": DEAD, "max_hold": -1}, "max_hold"),
        ({"url": DEAD, "handoff_budget": -0.5}, "handoff_budget"),
        ({"url": DEAD, "fast_path": False, "prefix": "a{b}"}, "prefix"),
        ({"url": DEAD, "prefix": "a{b}"}, "prefix"),
    ],
)
def test_bad_settings_are_refused_before_connecting(kwargs: dict, message: str) -> None:
    start = time.monotonic()
    with pytest.raises(distlock.InvalidArgument, match=message) as info:
        distlock.Client(**kwargs)
    assert info.value.status == 5  # DISTLOCK_INVALID_ARGUMENT, from C or checked here
    assert time.monotonic() - start < 2
    # check() refuses them too, for the same reason, without connecting.
    with pytest.raises(distlock.InvalidArgument, match=message) as checked:
        distlock.check(**kwargs)
    assert checked.value.status == 5
    assert checked.value.detail == info.value.detail
    opened = str(info.value).removeprefix("cannot open a client for ")
    assert str(checked.value).removeprefix("invalid settings for ") == opened


def test_no_server_means_the_librarys_default() -> None:
    # Nothing to refuse: the library uses redis://127.0.0.1:6379/0.
    assert distlock.check() is None
    assert distlock.check(prefix="app", ttl=5) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": DEAD},
        {"nodes": THREE_DEAD, "replicas": (1, 0.05), "max_hold": 60},
        {"cluster": [DEAD]},
        {"sentinel": (["127.0.0.1:1"], "mymaster"), "url": DEAD},
        {"url": DEAD, "prefix": "app", "ttl": 5, "pool_size": 4, "fast_path": False},
    ],
)
def test_check_passes_valid_settings_without_connecting(kwargs: dict) -> None:
    start = time.monotonic()
    assert distlock.check(**kwargs) is None
    assert time.monotonic() - start < 1
    # Opening them goes on to connect, and finds nothing there.
    with pytest.raises(distlock.ConnectionFailed):
        distlock.Client(**kwargs, connect_timeout=0.2, command_timeout=0.2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nodes": DEAD},  # a str, not a list
        {"cluster": 5},
        {"sentinel": "127.0.0.1:1"},
        {"sentinel": (["127.0.0.1:1"],)},
        {"replicas": 1},
        {"url": DEAD, "fast_path": 1},
        {"url": DEAD, "handoff_limit": 1.5},
    ],
)
def test_wrong_types_raise_type_error(kwargs: dict) -> None:
    with pytest.raises(TypeError):
        distlock.Client(**kwargs)
    with pytest.raises(TypeError):
        distlock.check(**kwargs)


def test_check_refuses_keywords_client_does_not_take() -> None:
    with pytest.raises(TypeError, match="unexpected keyword arguments: bogus"):
        distlock.check(DEAD, bogus=1)
    with pytest.raises(TypeError):
        distlock.Client(DEAD, bogus=1)


def test_new_settings_reach_a_working_client(redis_server: RedisServer, resp: RespConnection, key: str) -> None:
    with distlock.Client(
        redis_server.url,
        prefix="pycfg",
        ttl=3,
        fast_path=False,
        handoff_limit=4,
        handoff_budget=0.005,
        max_retry_interval=0.05,
        max_hold=60,
        replicas=(0, 0),
    ) as client:
        lock = client.lock(key)
        assert lock.acquire(blocking=False)
        assert lock_token(resp, redis_key(key, "pycfg")).decode() == lock.token
        assert 0 < lock.remaining <= 3
        lock.release()
        assert resp.command("EXISTS", redis_key(key, "pycfg")) == 0


def test_replicas_are_waited_for(redis_server: RedisServer, resp: RespConnection, key: str) -> None:
    # The test server has no replicas: a lock that must reach one is given back.
    with distlock.Client(redis_server.url, replicas=(1, 0.05)) as client:
        with pytest.raises(distlock.ConnectionFailed, match="replica"):
            client.lock(key).acquire(blocking=False)
    assert resp.command("EXISTS", redis_key(key)) == 0


def test_cluster_and_sentinel_are_really_used(redis_server: RedisServer) -> None:
    with pytest.raises(distlock.InvalidArgument, match="not a Redis Cluster node"):
        distlock.Client(cluster=[redis_server.url])
    nobody = f"127.0.0.1:{free_port()}"
    with pytest.raises(distlock.ConnectionFailed):
        distlock.Client(sentinel=([nobody], "mymaster"), connect_timeout=0.5)


@pytest.fixture
def three_servers() -> Iterator[List[RedisServer]]:
    servers: List[RedisServer] = []
    try:
        for _ in range(3):
            servers.append(RedisServer().start())
        yield servers
    finally:
        for s in servers:
            s.stop()


def holders(servers: List[RedisServer], rkey: str, token: str) -> int:
    """How many of the running servers hold ``rkey`` with ``token``."""
    count = 0
    for s in servers:
        if s.process is None:
            continue
        with s.connect() as conn:
            value = lock_token(conn, rkey)
        count += value is not None and value.decode() == token
    return count


def test_redlock_over_three_servers(three_servers: List[RedisServer]) -> None:
    urls = [s.url for s in three_servers]
    settings = dict(nodes=urls, prefix="pyrl", connect_timeout=0.5, command_timeout=0.5)
    rkey = redis_key("job", "pyrl")
    with distlock.Client(**settings) as a, distlock.Client(**settings) as b:
        assert "redlock over 3 nodes" in repr(a)
        first = a.lock("job")
        assert first.acquire(timeout=2)
        # Acquire returns once a majority granted it; the third may lag.
        assert holders(three_servers, rkey, first.token) >= 2
        assert not b.lock("job").acquire(blocking=False)
        # Read while held: the first lock of a name comes without its
        # fence, which the first read asks the majority for.
        first_fence = first.fence
        first.release()
        assert holders(three_servers, rkey, first.token) == 0
        assert first.fence == first_fence, "once read, readable after release"

        second = b.lock("job")
        assert second.acquire(timeout=2)
        assert second.fence > first_fence
        second.release()

        # One node down: two of three are still a majority.
        three_servers[2].stop()
        third = a.lock("job")
        assert third.acquire(timeout=5)
        assert holders(three_servers, rkey, third.token) == 2
        third.release()

        # Two down: no majority, and the error says so.
        three_servers[1].stop()
        with pytest.raises(distlock.ConnectionFailed, match="majority"):
            a.lock("job").acquire(blocking=False)
        with three_servers[0].connect() as conn:
            assert conn.command("EXISTS", rkey) == 0
    with pytest.raises(distlock.ConnectionFailed):
        distlock.Client(nodes=urls, connect_timeout=0.5)
