#!/usr/bin/env bash
# Installs distlock the way a Rust user does, outside this repository: a
# scratch crate that depends on it by path. Checks that the dependency tree
# has no clap and no cbindgen (those belong to the command and to the
# header test), builds a ten-line program, and runs it against a throwaway
# redis-server on a free loopback port. Also checks that `cargo publish
# --dry-run` (which packages the library and builds the package) passes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "-- cargo publish --dry-run (library)"
# The tests and examples stay in the repository (they need its test kit),
# so cargo says it ignores them; nothing else is expected on stderr.
(cd "$root" && cargo publish -p distlock --dry-run --quiet --allow-dirty 2>&1 |
  { grep -v -e "^warning: ignoring" -e "^warning: aborting upload" || true; })

echo "-- a scratch crate depending on distlock by path"
cd "$scratch"
cargo new --quiet --bin first-lock
cd first-lock
cat >> Cargo.toml <<EOF
distlock = { path = "$root" }
EOF
cat > src/main.rs <<'EOF'
use std::time::Duration;

fn main() -> Result<(), distlock::Error> {
    let url = std::env::args().nth(1).expect("usage: first-lock REDIS_URL");
    let client = distlock::Client::open(&url)?;
    let lock = client.lock("orders:42");
    let guard = lock.acquire_timeout(Duration::from_secs(2))?;
    println!("held orders:42 with fence {}", guard.fence());
    // A second client cannot take it meanwhile.
    assert!(distlock::Client::open(&url)?.lock("orders:42").try_acquire()?.is_none());
    guard.release()?;
    println!("released");
    Ok(())
}
EOF
tree="$(cargo tree -e normal,build --prefix none)"
if grep -Eq '^(clap|cbindgen) ' <<<"$tree"; then
  echo "a dependent of distlock builds clap or cbindgen:" >&2
  grep -E '^(clap|cbindgen) ' <<<"$tree" >&2
  exit 1
fi
echo "dependency tree: $(wc -l <<<"$tree") lines, no clap, no cbindgen"
cargo build --quiet

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$scratch/redis.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
out="$(./target/debug/first-lock "redis://127.0.0.1:$port/0")"
echo "$out"
grep -q "^held orders:42 with fence [0-9]" <<<"$out"
grep -q "^released$" <<<"$out"
echo "rust install test passed"
