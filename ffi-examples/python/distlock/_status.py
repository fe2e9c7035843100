"""The status codes of the C API (``enum distlock_status`` in distlock.h).

The one table of them in this package: the loader, the exceptions and the
client all take their numbers from here. ``NAMES`` maps each code to the
name the C header gives it; the test suite checks it against the loaded
library's ``distlock_status_name``.
"""

from __future__ import annotations

from typing import Dict

OK = 0
NOT_ACQUIRED = 1
TIMEOUT = 2
LOST = 3
CANCELLED = 4
INVALID_ARGUMENT = 5
CONNECTION = 6
AUTH = 7
REDIS = 8
INTERNAL = 9

#: Every status code, by number, with its C name.
NAMES: Dict[int, str] = {
    OK: "DISTLOCK_OK",
    NOT_ACQUIRED: "DISTLOCK_NOT_ACQUIRED",
    TIMEOUT: "DISTLOCK_TIMEOUT",
    LOST: "DISTLOCK_LOST",
    CANCELLED: "DISTLOCK_CANCELLED",
    INVALID_ARGUMENT: "DISTLOCK_INVALID_ARGUMENT",
    CONNECTION: "DISTLOCK_CONNECTION",
    AUTH: "DISTLOCK_AUTH",
    REDIS: "DISTLOCK_REDIS",
    INTERNAL: "DISTLOCK_INTERNAL",
}
