#!/usr/bin/env bash
# Every test: Rust unit and integration tests, then the C, Go and Python
# bindings against the release build of the library. Installs redis-server
# when missing; every test starts its own servers on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh

# Each step says when it starts, in seconds since the start of this script.
step() { echo "== $* (at ${SECONDS} s)"; }

step "style: rustfmt, clippy, rustdoc"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# tests/ffi_header.rs fails if the committed C header is stale.
step "cargo test"
cargo test --workspace --all-targets
cargo test --workspace --doc

step "release build (library for C, Go and Python)"
cargo build --release

for lang in c go python; do
  runner="ffi-examples/$lang/run-tests.sh"
  if [ -f "$runner" ]; then
    step "$lang bindings"
    bash "$runner"
  fi
done

step "Rust install test (a scratch crate outside the repository)"
bash scripts/install-test-rust.sh

step "safety suite (CI profile: faults injected while 8 processes contend)"
cargo run --quiet --release --example safety

# A test build with the mutants feature (refused in optimised builds): the
# suite must fail each deliberately broken lock of src/mutant.rs.
step "mutation rounds (the safety suite must catch every broken lock)"
cargo clippy --quiet --features mutants --example safety -- -D warnings
cargo run --quiet --features mutants --example safety -- --mutants

step "demo and fleet example"
cargo run --quiet --release --example demo -- --workers 3 --cycles 50
cargo run --quiet --release --example fleet -- --requests 120
echo "all tests passed (in ${SECONDS} s)"
