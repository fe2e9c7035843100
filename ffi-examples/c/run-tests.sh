#!/usr/bin/env bash
# Runs the C API tests and the counter example under valgrind, against a
# redis-server of our own on a free loopback port, then a short benchmark.
#
# Assumes `cargo build --release` has been run in the repository root.
# Exits non-zero on any failure. Environment:
#   LIB_DIR              directory holding libdistlock.so (default: target/release)
#   COUNTER_INCREMENTS   increments per counter thread under valgrind (default 25)
#   VALGRIND=0           run without valgrind
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
lib_dir=${LIB_DIR:-$target_dir/release}
increments=${COUNTER_INCREMENTS:-25}

if [ ! -f "$lib_dir/libdistlock.so" ]; then
  echo "$lib_dir/libdistlock.so not found: run 'cargo build --release' in $root first" >&2
  exit 1
fi
for tool in redis-server make cc; do
  command -v "$tool" >/dev/null || { echo "missing required tool: $tool" >&2; exit 1; }
done
run=()
if [ "${VALGRIND:-1}" != 0 ]; then
  command -v valgrind >/dev/null || { echo "missing required tool: valgrind (or set VALGRIND=0)" >&2; exit 1; }
  run=(valgrind --quiet --leak-check=full --error-exitcode=1
       --suppressions="$here/valgrind.supp")
fi

echo "== build"
make -C "$here" --no-print-directory LIB_DIR="$lib_dir" all static pkgconfig-check

scratch=$(mktemp -d)
redis_pid=
drain_pid=
cleanup() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  if [ -n "$drain_pid" ]; then
    wait "$drain_pid" 2>/dev/null || true
  fi
  exec 3<&- 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# Starts redis-server on $1 and waits until it logs that it is ready,
# reading its output through a fifo (no polling). Fails if it exits first.
start_redis() {
  local port=$1 line
  rm -f "$scratch/out"
  mkfifo "$scratch/out"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$scratch" --logfile '' >"$scratch/out" 2>&1 &
  redis_pid=$!
  exec 3<"$scratch/out"
  while IFS= read -r -t 30 line <&3; do
    echo "$line" >>"$scratch/redis.log"
    case $line in
      *"Ready to accept connections"*)
        # Keep draining its output so that it never blocks on a full pipe.
        cat <&3 >>"$scratch/redis.log" &
        drain_pid=$!
        return 0
        ;;
    esac
  done
  # It exited (port taken?) or never became ready.
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=
  exec 3<&-
  return 1
}

started=
for _ in 1 2 3 4 5; do
  port=$("$here/build/free_port")
  if start_redis "$port"; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  echo "redis-server did not start; its log:" >&2
  cat "$scratch/redis.log" >&2 || true
  exit 1
fi
export DISTLOCK_REDIS_PORT=$port
echo "== redis-server pid $redis_pid on 127.0.0.1:$port"

failed=0
step() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    echo "FAILED: $name" >&2
    failed=1
  fi
}

step "test_distlock" "${run[@]}" "$here/build/test_distlock"
step "counter, one client per thread" "${run[@]}" "$here/build/counter" -t 8 -n "$increments"
step "counter, one shared client" "${run[@]}" "$here/build/counter" -t 8 -n "$increments" -s
step "counter built with pkg-config flags" "$here/build/counter-pkgconfig" -t 8 -n 100
step "counter linked statically" "$here/build/counter-static" -t 8 -n 100
step "bench (short)" "$here/build/bench" -n 200

if [ "$failed" != 0 ]; then
  echo "C tests FAILED" >&2
  exit 1
fi
echo "C tests passed"
