"""Where the native library is loaded from: the package's own directory,
unless DISTLOCK_LIB names a file, which is then the only place tried."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import distlock

PACKAGE = Path(distlock.__file__).resolve().parent


def import_in_child(**env: str) -> subprocess.CompletedProcess:
    """Imports this same distlock in a fresh interpreter with ``env`` added
    to the environment (DISTLOCK_LIB removed first). Exit status 3 and the
    message on stderr when the import raises ImportError."""
    child_env = {k: v for k, v in os.environ.items() if k != "DISTLOCK_LIB"}
    child_env.update(PYTHONPATH=str(PACKAGE.parent), **env)
    script = (
        "import sys\n"
        "try:\n"
        "    import distlock\n"
        "except ImportError as e:\n"
        "    print(e, file=sys.stderr)\n"
        "    sys.exit(3)\n"
        "print(distlock.library_path)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], env=child_env, capture_output=True, text=True, timeout=60
    )


def test_the_library_comes_from_the_package_or_distlock_lib():
    loaded = Path(distlock.library_path).resolve()
    override = os.environ.get("DISTLOCK_LIB")
    if override:
        assert loaded == Path(override).resolve()
    else:
        assert loaded.parent == PACKAGE
        assert loaded.name.startswith("libdistlock")


def test_distlock_lib_is_the_only_place_tried(tmp_path):
    missing = tmp_path / "no-such-libdistlock.so"
    done = import_in_child(DISTLOCK_LIB=str(missing))
    assert done.returncode == 3, done.stderr
    assert f"Tried: {missing} (no such file)" in done.stderr
    assert "libdistlock.abi3" not in done.stderr  # no fallback to the package's


def test_distlock_lib_that_is_not_a_library_is_refused(tmp_path):
    bogus = tmp_path / "libdistlock.so"
    bogus.write_text("not a shared library")
    done = import_in_child(DISTLOCK_LIB=str(bogus))
    assert done.returncode == 3, done.stderr
    assert str(bogus) in done.stderr and "DISTLOCK_LIB" in done.stderr


def test_distlock_lib_overrides_the_packaged_library():
    # The library already loaded, named explicitly: the child uses it.
    done = import_in_child(DISTLOCK_LIB=distlock.library_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == distlock.library_path
