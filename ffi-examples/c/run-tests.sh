#!/usr/bin/env bash
# Runs the C API tests and the counter example under valgrind, against
# redis-servers of our own on free loopback ports, then a short benchmark.
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
redis_pids=()
drain_pids=()
cleanup() {
  local pid
  for pid in "${redis_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for pid in "${drain_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$scratch"
}
trap cleanup EXIT

# Starts redis-server $1 on port $2 and waits until it logs that it is
# ready, reading its output through a fifo (no polling). Fails if it exits
# first. Its pid joins redis_pids, to be stopped on exit.
start_redis() {
  local name=$1 port=$2 line fd pid
  local fifo="$scratch/$name.out" log="$scratch/$name.log"
  rm -f "$fifo"
  mkfifo "$fifo"
  mkdir -p "$scratch/$name"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$scratch/$name" --logfile '' >"$fifo" 2>&1 &
  pid=$!
  exec {fd}<"$fifo"
  while IFS= read -r -t 30 line <&"$fd"; do
    echo "$line" >>"$log"
    case $line in
      *"Ready to accept connections"*)
        # Keep draining its output so that it never blocks on a full pipe.
        cat <&"$fd" >>"$log" &
        drain_pids+=($!)
        exec {fd}<&-
        redis_pids+=("$pid")
        return 0
        ;;
    esac
  done
  # It exited (port taken?) or never became ready.
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  exec {fd}<&-
  return 1
}

# Starts redis-server $1 on a free port, a few tries; sets started_port.
start_on_free_port() {
  local name=$1 port
  for _ in 1 2 3 4 5; do
    port=$("$here/build/free_port")
    if start_redis "$name" "$port"; then
      started_port=$port
      return 0
    fi
  done
  echo "redis-server $name did not start; its log:" >&2
  cat "$scratch/$name.log" >&2 || true
  return 1
}

start_on_free_port main
port=$started_port
export DISTLOCK_REDIS_PORT=$port
# Three more, independent, for the Redlock checks of test_distlock.
redlock_ports=()
for i in 1 2 3; do
  start_on_free_port "node$i"
  redlock_ports+=("$started_port")
done
export DISTLOCK_REDLOCK_PORTS="${redlock_ports[*]}"
echo "== redis-server pids ${redis_pids[*]} on 127.0.0.1:$port (Redlock nodes: $DISTLOCK_REDLOCK_PORTS)"

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
