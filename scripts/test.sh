#!/usr/bin/env bash
# Every test: Rust unit and integration tests, then the C, Go and Python
# bindings against the release build of the library. Installs redis-server
# when missing; every test starts its own servers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
# The committed C header must match the code: the build script leaves it
# alone and tests/ffi_header.rs fails on a stale one.
export DISTLOCK_HEADER_CHECK=1

echo "== cargo test"
cargo test --all-targets
cargo test --doc

echo "== release build (library for C, Go and Python)"
cargo build --release

for lang in c go python; do
  runner="ffi-examples/$lang/run-tests.sh"
  if [ -f "$runner" ]; then
    echo "== $lang bindings"
    bash "$runner"
  fi
done

echo "== safety suite (CI profile: faults injected while 8 processes contend)"
cargo run --quiet --release --example safety

echo "== demo and fleet example"
cargo run --quiet --release --example demo -- --workers 3 --cycles 50
cargo run --quiet --release --example fleet -- --requests 120
echo "all tests passed"
