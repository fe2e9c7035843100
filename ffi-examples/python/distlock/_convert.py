"""Python arguments to the values the C API takes: durations in seconds to
milliseconds, keys and texts to NUL-free UTF-8, counts to 32-bit ints.

Each converter raises TypeError for a value of the wrong type and
InvalidArgument for one out of range, naming the argument.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import List, Optional, Sequence, Union

from ._errors import InvalidArgument

_MAX_I64 = 2**63 - 1
_MAX_U64 = 2**64 - 1

#: A lock name: str (sent as UTF-8) or bytes.
Key = Union[str, bytes]


def _seconds(value: object, what: str) -> float:
    """A number of seconds (int or float, not bool, not NaN) as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    f = float(value)
    if math.isnan(f):
        raise InvalidArgument(f"{what} must be a number of seconds, not NaN")
    return f


def _positive_ms(value: object, what: str, limit: int = _MAX_U64) -> int:
    """Seconds to whole milliseconds, rounded up, for settings where zero
    would mean "the default" to the C API and so must not slip through."""
    f = _seconds(value, what)
    if not f > 0 or math.isinf(f):
        raise InvalidArgument(f"{what} must be a positive, finite number of seconds, got {value!r}")
    ms = math.ceil(f * 1000)
    if ms > limit:
        raise InvalidArgument(f"{what} is too large: {value!r} s")
    return ms


def _wait_ms(timeout: Optional[float], what: str = "timeout") -> int:
    """A wait in seconds to the C convention: -1 forever (None, negative or
    infinite), 0 a single try, else milliseconds rounded up."""
    if timeout is None:
        return -1
    f = _seconds(timeout, what)
    if f < 0 or math.isinf(f):
        return -1
    if f == 0:
        return 0
    return min(math.ceil(f * 1000), _MAX_I64)


def _key_bytes(key: Key) -> bytes:
    """A lock name (str as UTF-8, or bytes) as bytes without NUL."""
    if isinstance(key, str):
        raw = key.encode("utf-8")
    elif isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
    else:
        raise TypeError(f"lock key must be str or bytes, not {type(key).__name__}")
    if b"\0" in raw:
        raise InvalidArgument("lock key must not contain NUL characters")
    return raw


def _redact(url: str) -> str:
    """The URL with any password replaced, for repr() and messages."""
    return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)


def _text(value: object, what: str) -> bytes:
    """A str argument as UTF-8 bytes without NUL, for the C API."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    raw = value.encode("utf-8")
    if b"\0" in raw:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    return raw


def _texts(values: object, what: str) -> List[bytes]:
    """A sequence of str (a lone str is refused: it is a common slip for a
    one-element list) as a list of UTF-8 bytes."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{what} must be a list of str, not {type(values).__name__}")
    return [_text(v, what) for v in values]


def _count(value: object, what: str) -> int:
    """An int that fits the C API's uint32_t."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= 0xFFFFFFFF:
        raise InvalidArgument(f"{what} is out of range: {value}")
    return value


def _nonnegative_ms(value: object, what: str) -> int:
    """Seconds, zero allowed, to whole milliseconds rounded up (capped at
    the largest uint64_t)."""
    f = _seconds(value, what)
    if f < 0 or math.isinf(f):
        raise InvalidArgument(f"{what} must be a finite number of seconds, not negative: {value!r}")
    return min(math.ceil(f * 1000), _MAX_U64)
