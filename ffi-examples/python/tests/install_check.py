"""Checks an installed distlock the way a user first meets it: run with the
Python of a virtualenv it was pip-installed into, from a directory outside
the repository, without DISTLOCK_LIB. run-tests.sh runs it after each kind
of install (from the source directory, and from a built wheel).

It checks that ``distlock`` and its native library come from that
environment's site-packages, then runs a lock cycle, a ``with`` block and
the typed errors of a held lock against a throwaway redis-server on a free
loopback port, which it stops again (also when interrupted or terminated).

    python install_check.py        # exit status 0 when every check passed
"""

from __future__ import annotations

import os
import signal
import sys
import sysconfig
from pathlib import Path


def fail(message: str) -> None:
    print(f"install_check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    # A terminating signal unwinds like Ctrl-C, so the server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if "DISTLOCK_LIB" in os.environ:
        fail("DISTLOCK_LIB is set: the installed package must work without it")

    import distlock

    paths = sysconfig.get_paths()
    sites = {Path(paths[k]).resolve() for k in ("platlib", "purelib")}
    package = Path(distlock.__file__).resolve().parent
    if package.parent not in sites or package.name != "distlock":
        fail(f"distlock was imported from {package}, not from this environment's {sorted(map(str, sites))}")
    library = Path(distlock.library_path).resolve()
    if library.parent != package:
        fail(f"the native library was loaded from {library}, not from the package ({package})")
    print(f"install_check: distlock {distlock.__version__} from {package}")
    print(f"install_check: native {distlock.native_version()} from {library.name}")

    # The server helper lives with the tests, next to this file.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from support import RedisServer

    with RedisServer() as server, distlock.Client(server.url, ttl=10) as client:
        # A lock cycle: acquire, held, release; the next fence is higher.
        lock = client.lock("install-check")
        if not lock.acquire(timeout=5):
            fail("a free lock was not acquired")
        if not lock.held:
            fail("an acquired lock is not held")
        first = lock.fence
        lock.release()
        if lock.held:
            fail("a released lock is still held")

        # A with block.
        with client.lock("install-check", timeout=5) as again:
            if not again.held or not again.fence > first:
                fail(f"with block: held={again.held}, fence {again.fence} after {first}")
        if again.held:
            fail("the with block did not release the lock")

        # Typed errors on a held lock.
        holder = client.lock("install-check:held")
        holder.acquire()
        try:
            try:
                with client.lock("install-check:held", timeout=0.2):
                    fail("a held lock was acquired again")
            except distlock.LockTimeout as e:
                if e.status != 2:  # DISTLOCK_TIMEOUT
                    fail(f"LockTimeout after a wait has status {e.status}")
            try:
                with client.lock("install-check:held", blocking=False):
                    fail("a held lock was acquired again on a single try")
            except distlock.LockTimeout as e:
                if e.status != 1:  # DISTLOCK_NOT_ACQUIRED
                    fail(f"LockTimeout after a single try has status {e.status}")
            try:
                client.lock("").acquire()
                fail("an empty key was accepted")
            except distlock.InvalidArgument as e:
                if not isinstance(e, ValueError) or e.status != 5:
                    fail(f"InvalidArgument for an empty key: {e!r}, status {e.status}")
        finally:
            holder.release()
    print("install_check: lock cycle, with block and typed errors: all passed")


if __name__ == "__main__":
    main()
