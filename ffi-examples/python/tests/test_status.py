"""The package's one table of status codes agrees with the loaded library,
and every exception class carries a code from it."""

from __future__ import annotations

import pytest

import distlock
from distlock import _status


def test_every_code_has_the_name_the_library_gives_it():
    for code, name in _status.NAMES.items():
        assert distlock.status_name(code) == name


def test_the_table_has_every_code_the_library_knows():
    # The codes are 0..n-1, and the library knows no code n: the table
    # stops where the C enum does.
    past = max(_status.NAMES) + 1
    assert distlock.status_name(past) == "DISTLOCK_UNKNOWN"
    assert sorted(_status.NAMES) == list(range(past))


@pytest.mark.parametrize(
    "cls, code",
    [
        (distlock.LockTimeout, _status.TIMEOUT),
        (distlock.LockLost, _status.LOST),
        (distlock.Cancelled, _status.CANCELLED),
        (distlock.InvalidArgument, _status.INVALID_ARGUMENT),
        (distlock.ConnectionFailed, _status.CONNECTION),
        (distlock.AuthFailed, _status.AUTH),
        (distlock.RedisError, _status.REDIS),
        (distlock.DistlockError, _status.INTERNAL),
    ],
)
def test_exceptions_default_to_their_status(cls, code):
    assert cls("x").status == code
