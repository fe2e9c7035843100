"""Builds distlock-redis: the ``distlock`` package plus libdistlock, the
cdylib of distlock's Rust crate, which setuptools-rust builds with cargo
(``Binding.NoBinding``: the package loads it with ctypes) and installs into
the package directory.

The crate is found in one of two places:

- ``rust/`` next to this file, in a source distribution: the sdist carries
  the crate's Cargo workspace there (see ``SdistWithCrate``);
- two directories up, in the distlock repository, where this file is
  ``ffi-examples/python/setup.py``. Cargo then builds into the repository's
  ``target/``, so a ``cargo build --release`` done before is reused.

Everything else (name, version, package data) is in pyproject.toml.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, List

from setuptools import setup
from setuptools.command.sdist import sdist
from setuptools_rust import Binding, RustExtension, Strip

HERE = Path(__file__).resolve().parent
#: Where an sdist carries the crate's workspace.
BUNDLED = "rust"
#: Where the crate is in the repository, relative to this file.
REPOSITORY = "../.."


def in_repository() -> bool:
    """Whether this file sits at ffi-examples/python of a distlock checkout."""
    root = HERE / REPOSITORY
    return (root / "Cargo.toml").is_file() and (root / "ffi-examples" / "python").resolve() == HERE


def crate_dir() -> str:
    """The directory of the crate's Cargo.toml, relative to this file (the
    build's working directory)."""
    if (HERE / BUNDLED / "Cargo.toml").is_file():
        return BUNDLED
    if in_repository():
        return REPOSITORY
    raise SystemExit(
        "distlock-redis: the Rust crate is missing: expected rust/Cargo.toml (in an sdist) "
        f"or ffi-examples/python inside the distlock repository (this is {HERE}). "
        "pip older than 21.3 builds from a copy of the directory: upgrade pip."
    )


def cargo(*args: str, cwd: Path) -> str:
    """Runs cargo and returns its standard output; fails the build, with
    cargo's own message, if cargo fails."""
    try:
        done = subprocess.run(["cargo", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit("distlock-redis: cargo is not on PATH: install a Rust toolchain (https://rustup.rs)")
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"distlock-redis: cargo {' '.join(args)} failed:\n{e.stderr}")
    return done.stdout


def workspace_files(root: Path) -> Iterator[Path]:
    """The files, relative to ``root``, that building the workspace at
    ``root`` needs: for every member, the files ``cargo package --list``
    names (its own ``include`` rules decide), and the workspace's
    Cargo.lock. Files cargo would generate into a package (Cargo.toml.orig,
    .cargo_vcs_info.json, a readme copied from outside) are not on disk and
    not needed: skipped."""
    meta = json.loads(cargo("metadata", "--no-deps", "--format-version", "1", "--offline", cwd=root))
    members = set(meta["workspace_members"])
    seen = set()
    for pkg in meta["packages"]:
        if pkg["id"] not in members:
            continue
        pkg_dir = Path(pkg["manifest_path"]).parent
        listing = cargo("package", "--list", "--allow-dirty", "-p", pkg["name"], cwd=root)
        for line in listing.splitlines():
            path = pkg_dir / line.strip()
            if line.strip() and path.is_file():
                rel = path.relative_to(root)
                if rel not in seen:
                    seen.add(rel)
                    yield rel
    if Path("Cargo.lock") not in seen and (root / "Cargo.lock").is_file():
        yield Path("Cargo.lock")


class SdistWithCrate(sdist):
    """An sdist that can be built without the repository: it also carries
    the crate's Cargo workspace (the library and the members Cargo needs to
    load it) in ``rust/``, which setup.py then builds from. setuptools only
    packs files below this directory, and the crate is two levels up."""

    def make_release_tree(self, base_dir: str, files: List[str]) -> None:
        super().make_release_tree(base_dir, files)
        # From the repository, or from the rust/ of an unpacked sdist.
        root = (HERE / crate_dir()).resolve()
        for rel in workspace_files(root):
            dest = Path(base_dir, BUNDLED, rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dest)


# setuptools stages the package in build/lib and never removes what is no
# longer in the source: a module deleted since an earlier build would still
# ship. Each build stages in a directory of its own instead, removed at the
# end (this also leaves no build/ in the source tree).
BUILD_BASE = tempfile.mkdtemp(prefix="distlock-redis-build-")
atexit.register(shutil.rmtree, BUILD_BASE, ignore_errors=True)

setup(
    rust_extensions=[
        RustExtension(
            # distlock/libdistlock.abi3.so: the file name takes the suffix
            # of an abi3 extension (see py_limited_api below); the library
            # itself uses no Python API at all.
            "distlock.libdistlock",
            path=f"{crate_dir()}/Cargo.toml",
            binding=Binding.NoBinding,
            # The release profile keeps line tables (debug = 1) for Rust
            # backtraces; the wheel does not need them.
            strip=Strip.Debug,
        )
    ],
    cmdclass={"sdist": SdistWithCrate},
    # One wheel for every CPython from 3.9 on (cp39-abi3-<platform>): the
    # library is loaded with ctypes, so nothing depends on the Python
    # version, only on the platform.
    options={"bdist_wheel": {"py_limited_api": "cp39"}, "build": {"build_base": BUILD_BASE}},
    zip_safe=False,
)
