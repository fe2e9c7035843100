"""Fixtures: one throwaway redis-server for the whole session, a raw RESP
connection to it, a client, and a lock name unique to each test."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

import distlock
from support import RedisServer, RespConnection


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def resp(redis_server: RedisServer) -> Iterator[RespConnection]:
    conn = redis_server.connect()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[distlock.Client]:
    c = distlock.Client(redis_server.url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def other_client(redis_server: RedisServer) -> Iterator[distlock.Client]:
    """A second, independent client: a different process, as far as the
    lock is concerned."""
    c = distlock.Client(redis_server.url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    return f"py-test:{request.node.name}:{uuid.uuid4().hex[:8]}"

