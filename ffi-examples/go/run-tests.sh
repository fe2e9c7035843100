#!/usr/bin/env bash
# Tests the Go binding: vet, the test suite and examples, the counter
# example built statically (and once dynamically), and an install the way a
# user does it: the module copied out of the repository, a consumer module
# elsewhere that requires and replaces it, its binary moved to a third
# directory and run against a throwaway redis-server.
#
# Needs the Rust library built first, at the repository root:
#     cargo build --release
# (its target/release/libdistlock.a is what the module's build step copies
# in; CARGO_TARGET_DIR is honoured), go, gcc, readelf and redis-server on
# PATH, and openssl (installed from Debian's packages when missing, as
# root), with which the TLS tests make a throwaway CA; etcd, and java with
# Debian's libzookeeper-java, for the etcd:// and zk:// lock cycles. Every
# server is started on a free loopback port and stopped by pid. Uses only the Go
# standard library: no module downloads.
#
#   DISTLOCK_GO_RACE=1    also run the tests under the race detector
#   DISTLOCK_GO_CARGO=1   run the build step as a user does (go generate:
#                         cargo build --release -p distlock) instead of
#                         copying the archive the workspace build made
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
archive="$target_dir/release/libdistlock.a"
sharedlib="$target_dir/release/libdistlock.so"
header="$root/include/distlock.h"
module=github.com/distlock/distlock/ffi-examples/go
start_time=$SECONDS

fail() { echo "run-tests.sh: $*" >&2; exit 1; }
step() { echo "== $* ($((SECONDS - start_time))s)"; }

[[ -f "$archive" ]] || fail "$archive is missing: run 'cargo build --release' in $root first"
[[ -f "$header" ]] || fail "$header is missing"
for tool in go gcc readelf redis-server; do
    command -v "$tool" >/dev/null || fail "$tool is not on PATH"
done
# pkg-config only for the distlock_dynamic build (Debian's pkgconf);
# openssl for the TLS tests' certificates.
packages=()
command -v pkg-config >/dev/null || packages+=(pkgconf)
command -v openssl >/dev/null || packages+=(openssl)
if [[ ${#packages[@]} -gt 0 ]]; then
    [[ "$(id -u)" == 0 ]] || fail "missing ${packages[*]} (Debian: apt-get install ${packages[*]})"
    echo "installing ${packages[*]} from Debian's packages..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

# The installed toolchain and no module downloads: the module needs none,
# and a download attempt fails instead of going unnoticed.
export GOTOOLCHAIN=local GOPROXY=off
unset GOFLAGS CGO_CFLAGS CGO_CPPFLAGS CGO_LDFLAGS PKG_CONFIG_PATH

redis_pids=()
scratch_dirs=()
cleanup() {
    local pid
    for pid in "${redis_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # A module cache is read-only; make it removable.
    chmod -R u+w "${scratch_dirs[@]}" 2>/dev/null || true
    rm -rf "${scratch_dirs[@]}"
}
trap cleanup EXIT
# new_scratch VAR: a new directory from mktemp -d, removed on exit.
new_scratch() {
    local dir
    dir="$(mktemp -d)"
    scratch_dirs+=("$dir")
    printf -v "$1" %s "$dir"
}
new_scratch scratch

# start_redis NAME: starts a redis-server on a free loopback port, waits
# (reading its log through a fifo, no polling) until it accepts
# connections, and sets redis_port. A port taken meanwhile (the server
# exits) is retried with another.
start_redis() {
    local name=$1 attempt port pid fifo fd line
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        fifo="$scratch/$name-$attempt.fifo"
        mkfifo "$fifo"
        mkdir -p "$scratch/$name-$attempt"
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --daemonize no --dir "$scratch/$name-$attempt" --logfile '' >"$fifo" 2>&1 &
        pid=$!
        exec {fd}<"$fifo"
        while IFS= read -r -t 30 line <&"$fd"; do
            echo "$line" >>"$scratch/$name.log"
            if [[ "$line" == *"Ready to accept connections"* ]]; then
                # Keep draining its output so it never blocks on a full pipe.
                cat <&"$fd" >>"$scratch/$name.log" &
                exec {fd}<&-
                redis_pids+=("$pid")
                redis_port=$port
                return 0
            fi
        done
        exec {fd}<&-
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    cat "$scratch/$name.log" >&2
    fail "could not start redis-server ($name)"
}

# check_static BINARY: no libdistlock among its needed libraries and no
# run-time search path at all, so nothing ties it to a build tree.
check_static() {
    local dyn
    dyn="$(readelf -d "$1")"
    echo "$dyn" | grep -E 'NEEDED|RPATH|RUNPATH' | sed 's/^/    /' || true
    if grep -q 'libdistlock' <<<"$dyn"; then fail "$1 needs libdistlock dynamically"; fi
    if grep -qE 'RPATH|RUNPATH' <<<"$dyn"; then fail "$1 has a run-time search path"; fi
}

cd "$here"
step "header copy"
cmp -s include/distlock.h "$header" ||
    fail "include/distlock.h differs from $header: cp $header $here/include/distlock.h, and commit it"

step "build step: lib/$(go env GOOS)_$(go env GOARCH)/libdistlock.a"
if [[ "${DISTLOCK_GO_CARGO:-0}" == 1 ]]; then
    go generate .
else
    # The archive the workspace build just made. `go generate` would run
    # cargo build -p distlock, which compiles distlock again: building the
    # package alone unifies its dependencies' features differently from
    # the workspace build (same code, another fingerprint).
    go run ./internal/buildnative -archive "$archive"
fi

step "go vet"
go vet ./...

step "go vet -tags distlock_dynamic (pkg-config file for target/release)"
pcdir="$scratch/pkgconfig"
mkdir -p "$pcdir/lib"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
cat >"$pcdir/distlock.pc" <<EOF
Name: distlock
Description: distributed lock on Redis (the build tree's library, for tests)
Version: $version
Cflags: -I$root/include
Libs: -L$target_dir/release -ldistlock
EOF
PKG_CONFIG_PATH="$pcdir" go vet -tags distlock_dynamic ./...

step "go test"
go test -count=1 ./...
if [[ "${DISTLOCK_GO_RACE:-0}" == 1 ]]; then
    step "go test -race"
    go test -race -count=1 ./...
fi

step "counter example, static, moved out of the build tree"
mkdir -p "$scratch/counter-build" "$scratch/counter-run"
go build -o "$scratch/counter-build/counter" ./cmd/counter
check_static "$scratch/counter-build/counter"
mv "$scratch/counter-build/counter" "$scratch/counter-run/"
(cd "$scratch/counter-run" && env -u LD_LIBRARY_PATH ./counter)

step "prometheus example: the counters in the text exposition format"
metrics=$(go run ./cmd/prometheus -once -cycles 3)
for line in 'distlock_acquired_total 3' 'distlock_contended_total 0' 'distlock_lost_total 0' \
    '# TYPE distlock_acquired_total counter' 'distlock_acquire_wait_seconds{quantile="0.99"} '; do
    grep -qF -- "$line" <<<"$metrics" || fail "cmd/prometheus printed no '$line':"$'\n'"$metrics"
done

if [[ -f "$sharedlib" ]]; then
    step "counter example, -tags distlock_dynamic"
    PKG_CONFIG_PATH="$pcdir" go build -tags distlock_dynamic -o "$scratch/counter-dynamic" ./cmd/counter
    readelf -d "$scratch/counter-dynamic" | grep -q 'NEEDED.*\[libdistlock\.so\.0\]' ||
        fail "the distlock_dynamic build does not need libdistlock.so.0"
    # The loader asks for the soname; an install provides that name.
    ln -s "$sharedlib" "$pcdir/lib/libdistlock.so.0"
    LD_LIBRARY_PATH="$pcdir/lib" "$scratch/counter-dynamic" -goroutines 20
fi

step "install: consumer module outside the repository"
# Three places, none inside the repository: the module as a release
# tarball would unpack it (with its build product), the consumer, and
# where its binary ends up.
new_scratch mod
new_scratch app
new_scratch bin
cp -R "$here/." "$mod/"
cat >"$app/main.go" <<'EOF'
// Command lockdemo takes a lock, writes its fence, fails to take it from a
// second client, and releases it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	distlock "github.com/distlock/distlock/ffi-examples/go"
)

func main() {
	url := os.Args[1]
	a, err := distlock.Open(url)
	check(err)
	defer a.Close()
	b, err := distlock.Open(url)
	check(err)
	defer b.Close()

	lock, err := a.Lock(context.Background(), "lockdemo:job", distlock.WithTTL(5*time.Second))
	check(err)
	fmt.Println("locked", lock.Key(), "fence>0:", lock.Fence() > 0)

	_, err = b.TryLock("lockdemo:job")
	fmt.Println("other client: ErrNotAcquired:", errors.Is(err, distlock.ErrNotAcquired))

	check(lock.Unlock())
	err = lock.Unlock()
	fmt.Println("second unlock: ErrInvalidArgument:", errors.Is(err, distlock.ErrInvalidArgument))

	next, err := b.TryLock("lockdemo:job")
	check(err)
	fmt.Println("next fence greater:", next.Fence() > lock.Fence())
	check(next.Unlock())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockdemo:", err)
		os.Exit(1)
	}
}
EOF
# What a user types, with no environment variable of ours: only
# GOTOOLCHAIN=local and GOPROXY=off (exported above) stay set, which make a
# download attempt fail instead of happening, and a fresh module cache.
(
    cd "$app"
    export GOMODCACHE="$scratch/modcache"
    go mod init example.com/lockdemo
    go mod edit -replace="$module=$mod"
    go mod tidy
    go build -o lockdemo .
)
grep -q "^require $module v0.0.0-00010101000000-000000000000" "$app/go.mod" ||
    fail "go mod tidy did not require $module: $(cat "$app/go.mod")"
mv "$app/lockdemo" "$bin/"
check_static "$bin/lockdemo"
# Nothing of the module is needed any more.
rm -rf "$mod"
start_redis consumer
out="$(cd "$bin" && env -u LD_LIBRARY_PATH ./lockdemo "redis://127.0.0.1:$redis_port")"
echo "$out" | sed 's/^/    /'
want='locked lockdemo:job fence>0: true
other client: ErrNotAcquired: true
second unlock: ErrInvalidArgument: true
next fence greater: true'
[[ "$out" == "$want" ]] || fail "lockdemo printed something else; want:
$want"

echo "run-tests.sh: all passed in $((SECONDS - start_time))s"
