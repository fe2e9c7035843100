#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after another, each for a
# bounded time, in one process on one core. Run by hand, not in CI.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# seconds-per-target defaults to $FUZZ_SECONDS, or 60. With no targets
# named, every target in fuzz/Cargo.toml runs (`cargo fuzz list`).
# Installs cargo-fuzz if it is missing; needs a nightly toolchain (cargo
# fuzz builds with AddressSanitizer), installed with rustup if missing.
#
# The targets never connect anywhere: they only call functions that check
# settings, URLs and strings (see the comment at the top of each target).
#
# Corpora grow in fuzz/corpus/<target>/ and crash reproducers land in
# fuzz/artifacts/<target>/ (both git-ignored). Prints each target's
# executions; exits 1 if any target crashed, panicked or timed out, after
# running the rest, naming the reproducers and how to replay and minimise
# them. Extra libFuzzer flags can be given in $FUZZ_FLAGS (for example
# FUZZ_FLAGS='-max_len=8192'); -jobs/-workers are left out on purpose.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"

seconds="${1:-${FUZZ_SECONDS:-60}}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: seconds-per-target must be a positive integer, got '$seconds'" >&2
    exit 2
fi
shift $(($# > 0 ? 1 : 0))

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if ((${#targets[@]} == 0)); then
    echo "fuzz.sh: no fuzz targets found" >&2
    exit 2
fi

logs="$(mktemp -d "${TMPDIR:-/tmp}/distlock-fuzz.XXXXXX")"
failed=()
for t in "${targets[@]}"; do
    echo "== $t: ${seconds}s"
    cargo +nightly fuzz build "$t"
    log="$logs/$t.log"
    # -timeout: one input taking this long counts as a failure (a hang).
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    if cargo +nightly fuzz run "$t" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
        ${FUZZ_FLAGS:-} >"$log" 2>&1; then
        runs="$(grep -Eo '^Done [0-9]+ runs in [0-9]+ second\(s\)' "$log" | tail -1 || true)"
        echo "   ok: ${runs:-finished}"
    else
        failed+=("$t")
        echo "   FAILED (log: $log):"
        grep -E "panicked at|ERROR: |SUMMARY: |Test unit written to" "$log" | head -n 12 | sed 's/^/   /'
    fi
done

if ((${#failed[@]} > 0)); then
    echo
    echo "fuzz.sh: failing targets: ${failed[*]}"
    echo "Replay:   (cd fuzz && cargo +nightly fuzz run <target> artifacts/<target>/<file>)"
    echo "Minimise: (cd fuzz && cargo +nightly fuzz tmin <target> artifacts/<target>/<file>)"
    exit 1
fi
rm -rf "$logs"
echo "fuzz.sh: all ${#targets[@]} targets ran ${seconds}s each without a crash"
