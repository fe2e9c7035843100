#!/usr/bin/env bash
# distlock beside the lock libraries users would pick instead, in Rust
# (rslock, redlock-rs), Go (bsm/redislock, redsync) and Python
# (python-redis-lock, redis-py's Lock), on one redis-server.
#
#   scripts/bench-peers.sh [-r rounds] [--lang rust|go|python ...]
#
# A benchmark, not a test: it is not part of CI. The peers come from their
# registries (crates.io, the Go module proxy, PyPI) into a scratch
# directory; the programs are benches/peers/{rust,go,python}, the same
# three scenarios with the same counts:
#   (a) one client, acquire + release on one key: us_per_cycle;
#   (b) 4 processes x 200 cycles of acquire, GET/SET a counter, release:
#       cycles_per_s, max_wait_ms, and whether the counter is exact;
#   (c) 100 threads (goroutines, tasks) in one process, one acquisition
#       each: wall_ms.
# redis-server runs on the last CPU and every client on the others (with
# taskset, when there are 2 CPUs or more). Each round runs every library
# of every language once per scenario, the libraries' order rotating from
# round to round; the table shows the median over the rounds, the best of
# each row in bold, and distlock's ratio to the best peer of its language.
# Every JSON line is kept in $scratch/results.jsonl (printed at the end).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
langs=()
usage() {
  echo "usage: $0 [-r rounds] [--lang rust|go|python ...]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    -r) [ $# -ge 2 ] || usage; rounds=$2; shift 2 ;;
    --lang) [ $# -ge 2 ] || usage; langs+=("$2"); shift 2 ;;
    *) usage ;;
  esac
done
case $rounds in '' | *[!0-9]* | 0) usage ;; esac
[ ${#langs[@]} -gt 0 ] || langs=(rust go python)
for l in "${langs[@]}"; do
  case $l in rust | go | python) ;; *) usage ;; esac
done

command -v redis-server >/dev/null || "$root/scripts/ensure-deps.sh"
scratch=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

cpus=$(nproc 2>/dev/null || echo 1)
server_run=()
client_run=()
if command -v taskset >/dev/null && [ "$cpus" -ge 2 ]; then
  server_run=(taskset -c "$((cpus - 1))")
  client_run=(taskset -c "0-$((cpus - 2))")
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${server_run[@]}" redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
  --dir "$scratch" >"$scratch/redis.log" 2>&1 &
server_pid=$!
url="redis://127.0.0.1:$port"
for _ in $(seq 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
redis-cli -p "$port" ping >/dev/null

echo "== building (the peers from their registries, into $scratch)" >&2
cargo build --quiet --release -p distlock --manifest-path "$root/Cargo.toml"
declare -A run
for lang in "${langs[@]}"; do
  case $lang in
    rust)
      mkdir -p "$scratch/rust/src"
      cp "$root/benches/peers/rust/main.rs" "$scratch/rust/src/main.rs"
      cat >"$scratch/rust/Cargo.toml" <<TOML
[package]
name = "distlock-peers"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
distlock = { path = "$root" }
redis = "1"
redlock = "2"
rslock = { version = "0.10", features = ["tokio-comp"] }
tokio = { version = "1", features = ["rt", "rt-multi-thread", "time"] }

[workspace]
TOML
      CARGO_TARGET_DIR="$root/target" cargo build --quiet --release \
        --manifest-path "$scratch/rust/Cargo.toml"
      run[rust]="$root/target/release/distlock-peers"
      ;;
    go)
      (cd "$root/ffi-examples/go" && go generate)
      mkdir -p "$scratch/go"
      cp "$root/benches/peers/go/main.go" "$scratch/go/"
      (
        cd "$scratch/go"
        go mod init peers >/dev/null 2>&1
        go mod edit -replace "github.com/distlock/distlock/ffi-examples/go=$root/ffi-examples/go"
        go mod tidy >/dev/null 2>&1
        go build -o peers .
      )
      run[go]="$scratch/go/peers"
      ;;
    python)
      python3 -m venv "$scratch/venv"
      "$scratch/venv/bin/pip" install --quiet "$root/ffi-examples/python" python-redis-lock redis
      run[python]="$scratch/venv/bin/python $root/benches/peers/python/peers.py"
      ;;
  esac
done

declare -A libs=(
  [rust]="distlock rslock redlock"
  [go]="distlock redislock redsync"
  [python]="distlock python-redis-lock redis-py"
)
results="$scratch/results.jsonl"
: >"$results"
for round in $(seq "$rounds"); do
  for lang in "${langs[@]}"; do
    read -r -a order <<<"${libs[$lang]}"
    # Rotate the order by the round number.
    shift_by=$(((round - 1) % ${#order[@]}))
    order=("${order[@]:shift_by}" "${order[@]:0:shift_by}")
    for lib in "${order[@]}"; do
      for scenario in a b c; do
        echo "== round $round: $lang $lib ($scenario)" >&2
        # shellcheck disable=SC2086 # run[python] is a command and its script
        timeout 600 "${client_run[@]}" ${run[$lang]} "$url" "$lib" "$scenario" | tee -a "$results" >&2
      done
    done
  done
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
libs = {"rust": ["distlock", "rslock", "redlock"], "go": ["distlock", "redislock", "redsync"],
        "python": ["distlock", "python-redis-lock", "redis-py"]}
langs = [l for l in libs if any(r["lang"] == l for r in rows)]
metrics = [("a", "us_per_cycle", "(a) µs per cycle", min), ("b", "cycles_per_s", "(b) cycles/s", max),
           ("b", "max_wait_ms", "(b) max wait ms", min), ("c", "wall_ms", "(c) wall ms", min)]
def median(lang, lib, scenario, key):
    vals = [r[key] for r in rows if (r["lang"], r["lib"], r["scenario"]) == (lang, lib, scenario)]
    return statistics.median(vals) if vals else None
head = "| | " + " | ".join(f"{l}: " + " / ".join(libs[l]) for l in langs) + " |"
print(head)
print("| --- |" + " --- |" * len(langs))
ratios = []
for scenario, key, title, best in metrics:
    cells = []
    for lang in langs:
        vals = [median(lang, lib, scenario, key) for lib in libs[lang]]
        known = [v for v in vals if v is not None]
        top = best(known) if known else None
        cells.append(" / ".join("-" if v is None else (f"**{v:g}**" if v == top else f"{v:g}") for v in vals))
        peers = [v for v in vals[1:] if v is not None]
        if vals[0] is not None and peers:
            ratios.append((lang, title, vals[0] / best(peers)))
    print(f"| {title} | " + " | ".join(cells) + " |")
print()
print("distlock / the best peer of its language (below 1 is better for µs, wait and wall; above 1 for cycles/s):")
for lang, title, r in ratios:
    print(f"  {lang:7} {title:18} {r:.2f}")
bad = [r for r in rows if r.get("counter_ok") is False]
for r in bad:
    print(f"COUNTER WRONG: {r['lang']} {r['lib']} lost updates in (b)")
sys.exit(1 if bad else 0)
PY
