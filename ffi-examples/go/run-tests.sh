#!/usr/bin/env bash
# Vets and tests the Go binding, then runs the counter example.
#
# Needs the Rust library built first, at the repository root:
#     cargo build --release
# and redis-server on PATH (the tests and the example start their own on
# free loopback ports). Uses only the Go standard library: no network.
# DISTLOCK_GO_RACE=1 also runs the tests under the race detector.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lib="$root/target/release/libdistlock.so"
header="$root/include/distlock.h"

fail() { echo "run-tests.sh: $*" >&2; exit 1; }

[[ -f "$lib" ]] || fail "$lib is missing: run 'cargo build --release' in $root first"
[[ -f "$header" ]] || fail "$header is missing: run 'cargo build --release' in $root first"
command -v go >/dev/null || fail "go is not on PATH"
command -v redis-server >/dev/null || fail "redis-server is not on PATH"

# Offline and reproducible: the installed toolchain, no module downloads.
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=1

cd "$here"
echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 ./...
if [[ "${DISTLOCK_GO_RACE:-0}" == 1 ]]; then
    echo "== go test -race"
    go test -race -count=1 ./...
fi
echo "== counter example"
go run ./cmd/counter
echo "run-tests.sh: all passed"
