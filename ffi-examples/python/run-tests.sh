#!/usr/bin/env bash
# Tests the Python bindings against the release build of libdistlock:
# the pytest suite, an install of the package into a scratch directory, and
# the counter example. Build the library first (cargo build --release in
# the repository root). Every redis-server it needs is started on a free
# loopback port and stopped again. Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

lib="${DISTLOCK_LIB:-$root/target/release/libdistlock.so}"
if [ ! -f "$lib" ]; then
  echo "run-tests.sh: $lib is missing: build it first with 'cargo build --release' in $root" >&2
  exit 1
fi
export DISTLOCK_LIB="$lib"
command -v redis-server >/dev/null 2>&1 || {
  echo "run-tests.sh: redis-server is not on PATH (Debian: apt-get install redis-server)" >&2
  exit 1
}
py="${PYTHON:-python3}"

if ! "$py" -c 'import pytest' 2>/dev/null; then
  echo "== installing pytest"
  "$py" -m pip install -q pytest
fi

# Bound every step: a hang must fail the run, not stall it.
limit() { if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi; }

echo "== python: pytest"
limit 900 "$py" -m pytest -q

echo "== python: pip install into a scratch directory"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Build from a copy so that no build/ or egg-info is left in the tree.
mkdir "$scratch/src"
cp -r pyproject.toml README.md distlock "$scratch/src/"
isolation=()
# With a recent enough setuptools (and wheel) already installed, build
# with them; otherwise pip fetches them into an isolated build env.
if "$py" - 2>/dev/null <<'PY'
import sys, setuptools
major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
try:
    import wheel  # noqa: F401  (setuptools < 70.1 needs it for bdist_wheel)
    has_wheel = True
except ImportError:
    has_wheel = (major, minor) >= (70, 1)
sys.exit(0 if major >= 61 and has_wheel else 1)
PY
then
  isolation=(--no-build-isolation)
fi
limit 300 "$py" -m pip install -q --no-deps "${isolation[@]}" --target "$scratch/site" "$scratch/src"
(
  cd "$scratch"
  PYTHONPATH="$scratch/site" limit 60 "$py" - <<'EOF'
import os, distlock
site = os.path.join(os.environ["PYTHONPATH"], "distlock")
assert os.path.dirname(distlock.__file__) == site, distlock.__file__
assert os.path.exists(os.path.join(site, "py.typed")), "py.typed not installed"
print("installed", distlock.__version__, "using", distlock.library_path, "native", distlock.native_version())
EOF
)

echo "== python: example (100 threads, one lock, one counter)"
limit 120 "$py" examples/counter.py
echo "python bindings: all passed"
