#!/usr/bin/env bash
# What the C ABI costs: uncontended acquire + release through Rust, C, Go
# and Python, against one redis-server, in interleaved rounds.
#
#   scripts/bench-ffi.sh [-n cycles] [-r rounds] [-w warm-up] [--pin split|same|none] [--check]
#
# Builds the release library, examples/ffi_floor.rs (the Rust floor),
# ffi-examples/c/bench.c, ffi-examples/go/cmd/bench and uses
# ffi-examples/python/bench.py; starts ONE redis-server on a free loopback
# port (stopped by pid on exit); then runs each program once per round,
# every one with the same cycles and warm-up, in an order that rotates from
# round to round so that machine noise hits all of them alike. Each program
# prints the median time of one cycle.
#
# CPU placement (taskset), because on a small VM where the scheduler puts
# each process decides most of a loopback round trip's cost, and it would
# otherwise change from run to run: `split` (the default with 2 or more
# CPUs) runs redis-server on the last CPU and the benches on the others,
# like a client and a server on separate machines; `same` puts all on the
# last CPU (every microsecond of CPU work then shows); `none` leaves it to
# the scheduler.
#
# Prints one line per language, `name value unit ratio_to_rust`: value is
# the median over the rounds of that program's median, ratio_to_rust the
# median over the rounds of (its median / Rust's median in the same
# round). Lines starting with '#' give each round. The targets are C and Go
# within 1.05x of Rust and Python within 1.3x; with --check the script
# exits 1 when one is missed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cycles=2000
rounds=5
warmup=200
check=0
cpus=$(nproc 2>/dev/null || echo 1)
pin=none
if command -v taskset >/dev/null && [ "$cpus" -ge 2 ]; then
  pin=split
fi
usage() {
  echo "usage: $0 [-n cycles] [-r rounds] [-w warm-up cycles] [--pin split|same|none] [--check]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    -n) [ $# -ge 2 ] || usage; cycles=$2; shift 2 ;;
    -r) [ $# -ge 2 ] || usage; rounds=$2; shift 2 ;;
    -w) [ $# -ge 2 ] || usage; warmup=$2; shift 2 ;;
    --pin) [ $# -ge 2 ] || usage; pin=$2; shift 2 ;;
    --check) check=1; shift ;;
    *) usage ;;
  esac
done
for v in "$cycles" "$rounds" "$warmup"; do
  case $v in '' | *[!0-9]*) usage ;; esac
done
[ "$cycles" -ge 1 ] && [ "$rounds" -ge 1 ] || usage
server_run=()
client_run=()
case $pin in
  none) ;;
  same)
    server_run=(taskset -c "$((cpus - 1))")
    client_run=(taskset -c "$((cpus - 1))")
    ;;
  split)
    [ "$cpus" -ge 2 ] || { echo "bench-ffi.sh: --pin split needs 2 or more CPUs" >&2; exit 2; }
    server_run=(taskset -c "$((cpus - 1))")
    client_run=(taskset -c "0-$((cpus - 2))")
    ;;
  *) usage ;;
esac
[ "$pin" = none ] || command -v taskset >/dev/null || { echo "bench-ffi.sh: --pin $pin needs taskset" >&2; exit 1; }
for tool in cargo redis-server make cc go python3; do
  command -v "$tool" >/dev/null || { echo "bench-ffi.sh: missing required tool: $tool" >&2; exit 1; }
done

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
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "== build" >&2
cd "$root"
cargo build --release --quiet
cargo build --release --quiet --example ffi_floor
make -s -C ffi-examples/c build/bench build/free_port >&2
(
  cd ffi-examples/go
  # The module links libdistlock.a from inside itself: put this build's there.
  GOTOOLCHAIN=local GOPROXY=off go run ./internal/buildnative -archive "$root/target/release/libdistlock.a"
  GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=1 go build -o "$scratch/go-bench" ./cmd/bench
)

# Starts redis-server on $1 and waits until it logs that it is ready,
# reading its output through a fifo (no polling). Fails if it exits first.
start_redis() {
  local port=$1 line fd
  rm -f "$scratch/out"
  mkfifo "$scratch/out"
  "${server_run[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$scratch" --logfile '' >"$scratch/out" 2>&1 &
  redis_pid=$!
  exec {fd}<"$scratch/out"
  while IFS= read -r -t 30 line <&"$fd"; do
    echo "$line" >>"$scratch/redis.log"
    case $line in
      *"Ready to accept connections"*)
        cat <&"$fd" >>"$scratch/redis.log" &
        drain_pid=$!
        exec {fd}<&-
        return 0
        ;;
    esac
  done
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=
  exec {fd}<&-
  return 1
}
port=
for _ in 1 2 3 4 5; do
  candidate=$(ffi-examples/c/build/free_port)
  if start_redis "$candidate"; then
    port=$candidate
    break
  fi
done
if [ -z "$port" ]; then
  echo "bench-ffi.sh: redis-server did not start; its log:" >&2
  cat "$scratch/redis.log" >&2 || true
  exit 1
fi
url="redis://127.0.0.1:$port/0"
echo "== redis-server pid $redis_pid on 127.0.0.1:$port; $rounds rounds of $cycles cycles (+$warmup warm-up) each; CPU placement: $pin" >&2

# Runs the bench of language $1 once; prints its median in microseconds.
run_one() {
  local out
  case $1 in
    rust) out=$("${client_run[@]}" target/release/examples/ffi_floor --url "$url" -n "$cycles" --warmup "$warmup") ;;
    c) out=$(DISTLOCK_REDIS_PORT=$port "${client_run[@]}" ffi-examples/c/build/bench -n "$cycles" -w "$warmup") ;;
    go) out=$("${client_run[@]}" "$scratch/go-bench" -url "$url" -n "$cycles" -warmup "$warmup" -raw=false) ;;
    python) out=$(DISTLOCK_LIB="$root/target/release/libdistlock.so" "${client_run[@]}" python3 ffi-examples/python/bench.py \
      --url "$url" --cycles "$cycles" --warmup "$warmup" --no-raw) ;;
  esac
  local value
  value=$(awk -v name="$1_acquire_release_us" '$1 == name { print $2 }' <<<"$out")
  if [ -z "$value" ]; then
    echo "bench-ffi.sh: the $1 bench printed no $1_acquire_release_us line:" >&2
    echo "$out" >&2
    return 1
  fi
  echo "$value"
}

langs=(rust c go python)
for ((r = 0; r < rounds; r++)); do
  line="# round $((r + 1)):"
  for ((i = 0; i < ${#langs[@]}; i++)); do
    lang=${langs[$(((i + r) % ${#langs[@]}))]}
    value=$(run_one "$lang")
    echo "$value" >>"$scratch/$lang.values"
    line+=" $lang=$value"
  done
  echo "$line"
done

# The median of the numbers on stdin (the upper one of an even count).
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int(NR / 2) + 1] }'; }

echo "name value unit ratio_to_rust"
missed=0
for lang in "${langs[@]}"; do
  value=$(median <"$scratch/$lang.values")
  ratio=$(paste "$scratch/$lang.values" "$scratch/rust.values" | awk '{ printf "%.4f\n", $1 / $2 }' | median)
  printf '%s_acquire_release_us %s us %.2f\n' "$lang" "$value" "$ratio"
  case $lang in
    c | go) target=1.05 ;;
    python) target=1.30 ;;
    *) target= ;;
  esac
  if [ -n "$target" ] && awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r > t) }'; then
    echo "# $lang: ratio $ratio is above the target $target" >&2
    missed=1
  fi
done
if [ "$check" = 1 ] && [ "$missed" = 1 ]; then
  exit 1
fi
