#!/usr/bin/env bash
# Tests the Python package as users install it. From a scratch directory
# outside the repository, without DISTLOCK_LIB:
#   1. `pip install ffi-examples/python` into a fresh virtualenv (pip builds
#      libdistlock with cargo, into the repository's target/, so a
#      `cargo build --release` done before is reused), then
#      tests/install_check.py: lock cycle, with block, typed errors;
#   2. `pip wheel` of the same directory: the wheel must carry a platform
#      tag; installed into a second fresh virtualenv, the same check;
#   3. the pytest suite, copied out of the tree, against that installed
#      wheel (its TLS tests make a throwaway CA with openssl), then the
#      counter example and, when the library has distlock_client_stats,
#      the Prometheus example.
# Needs cargo, python3 with venv, redis-server on PATH (and etcd, java and
# Debian's libzookeeper-java for the etcd:// and zk:// tests), openssl (installed
# from Debian's packages when missing, as root), and PyPI (pip fetches
# setuptools and setuptools-rust for the build, and pytest). Every
# redis-server is started on a free loopback port and stopped by pid; the
# scratch directory is removed at exit. Exits non-zero on any failure.
#
# DISTLOCK_PY_SDIST=1 also builds an sdist, unpacks it, and builds and
# checks a wheel from it alone (a full cargo build of its own: minutes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3}"

fail() { echo "run-tests.sh: $*" >&2; exit 1; }
for tool in cargo redis-server "$py"; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not on PATH"
done
# What a user would not have set.
unset DISTLOCK_LIB

# openssl for the TLS tests' certificates.
if ! command -v openssl >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "openssl is not on PATH"
  echo "== installing openssl from Debian's packages"
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

# Bound every step: a hang must fail the run, not stall it. Python steps
# get SIGINT first, so that their servers are stopped on the way out.
limit() { timeout -k 30 "$@"; }
limit_py() { timeout -s INT -k 30 "$@"; }

scratch="$(mktemp -d "${TMPDIR:-/tmp}/distlock-py-tests.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
started=$SECONDS
step() { echo "== python: $* (at $((SECONDS - started)) s)"; }

# Debian's python3 needs python3-venv for `python3 -m venv`.
new_venv() {
  "$py" -m venv "$1" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || fail "$py -m venv does not work: install venv support for $py"
  echo "== installing python3-venv from Debian's packages"
  local sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  rm -rf "$1"
  "$py" -m venv "$1" || fail "$py -m venv still does not work"
}

# The importable distlock must be the one in this environment's
# site-packages, with its own libdistlock.
check_install() {
  local venv=$1
  limit_py 120 "$venv/bin/python" "$here/tests/install_check.py"
}

step "pip install $here into a fresh virtualenv"
new_venv "$scratch/venv-dir"
limit 1200 "$scratch/venv-dir/bin/pip" install -q "$here"
check_install "$scratch/venv-dir"

step "pip wheel $here"
limit 1200 "$scratch/venv-dir/bin/pip" wheel -q --no-deps -w "$scratch/wheels" "$here"
shopt -s nullglob
wheels=("$scratch"/wheels/*.whl)
[ "${#wheels[@]}" = 1 ] || fail "expected one wheel, got: ${wheels[*]:-none}"
wheel="${wheels[0]}"
name="$(basename "$wheel")"
echo "built $name"
case "$name" in
  *-none-any.whl) fail "$name is a pure-Python wheel: it has no native library" ;;
  *-linux_*.whl | *-manylinux*.whl | *-musllinux*.whl) ;;
  *) fail "$name does not carry a Linux platform tag" ;;
esac
"$py" -m zipfile -l "$wheel" >"$scratch/wheel-files"
for member in distlock/libdistlock distlock/py.typed distlock/__init__.py; do
  grep -q "^$member" "$scratch/wheel-files" || fail "$name holds no $member"
done
# The test helpers stay out of the package.
! grep -q "^distlock/testing" "$scratch/wheel-files" || fail "$name ships distlock/testing"

step "install the wheel into a second fresh virtualenv"
new_venv "$scratch/venv-wheel"
limit 300 "$scratch/venv-wheel/bin/pip" install -q "$wheel"
check_install "$scratch/venv-wheel"

step "pytest suite against the installed wheel"
limit 300 "$scratch/venv-wheel/bin/pip" install -q pytest
# A copy of the tests, outside the source tree: `import distlock` can then
# only find the installed package.
cp -r "$here/tests" "$scratch/tests"
"$scratch/venv-wheel/bin/python" -c '
import distlock, sys
print("pytest runs against", distlock.__file__)
assert distlock.__file__.startswith(sys.prefix), distlock.__file__
'
limit_py 900 "$scratch/venv-wheel/bin/python" -m pytest -q -p no:cacheprovider \
  --basetemp "$scratch/pytest-tmp" "$scratch/tests"

step "example (100 threads, one lock, one counter)"
limit_py 120 "$scratch/venv-wheel/bin/python" "$here/examples/counter.py"

if "$scratch/venv-wheel/bin/python" -c 'import distlock, sys; sys.exit(not distlock._native.HAS_STATS)'; then
  step "example: the client's counters in Prometheus text format"
  limit_py 120 "$scratch/venv-wheel/bin/python" "$here/examples/prometheus.py" --cycles 3 >"$scratch/metrics"
  cat "$scratch/metrics"
  grep -qx 'distlock_acquired_total{client="example"} 6' "$scratch/metrics" ||
    fail "prometheus.py: expected 6 acquisitions in its output"
  grep -q '^# TYPE distlock_acquire_wait_max_seconds gauge$' "$scratch/metrics" ||
    fail "prometheus.py: no wait gauge in its output"
else
  step "example prometheus.py skipped: the library has no distlock_client_stats"
fi

if [ "${DISTLOCK_PY_SDIST:-0}" = 1 ]; then
  step "sdist, unpacked, built into a wheel on its own"
  limit 300 "$scratch/venv-dir/bin/pip" install -q build
  limit 300 "$scratch/venv-dir/bin/python" -m build -q --sdist --outdir "$scratch/sdist" "$here"
  mkdir "$scratch/unpacked"
  tar -xzf "$scratch"/sdist/*.tar.gz -C "$scratch/unpacked"
  src=("$scratch"/unpacked/*/)
  # Built in its own rust/target: nothing of the repository is used.
  limit 3600 "$scratch/venv-dir/bin/pip" wheel -q --no-deps -w "$scratch/sdist-wheels" "${src[0]}"
  new_venv "$scratch/venv-sdist"
  limit 300 "$scratch/venv-sdist/bin/pip" install -q "$scratch"/sdist-wheels/*.whl
  check_install "$scratch/venv-sdist"
fi

step "all passed"
