#!/usr/bin/env bash
# The main job: several worker processes contend on one lock against a
# throwaway redis-server (or the one given with --url URL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
exec cargo run --quiet --release --example demo -- "$@"
