#!/usr/bin/env bash
# Runs every jwtgate fuzz target for N seconds each, one after the other
# (one core), over the committed corpus and seeds. A smoke run by default.
#
#   fuzz/run.sh            # 30 s per target
#   fuzz/run.sh 900        # 15 min per target
#   fuzz/run.sh 60 token_verify request_decide
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# New coverage goes to fuzz/corpus/<target>/; minimize it afterwards with
# `cargo +nightly fuzz cmin <target> corpus/<target>` (see README.md).
# Exits non-zero, with the crashing input under fuzz/artifacts/<target>/,
# on the first target that fails.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(token_verify jwks_parse config_parse request_decide)
fi
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target: ${seconds}s"
    log="$(mktemp)"
    status=0
    cargo "+$toolchain" fuzz run --debug-assertions "$target" \
        "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|panicked|ERROR|SUMMARY|Test unit written' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
    fi
    rm -f "$log"
    if [ "$status" -ne 0 ]; then
        echo "== $target FAILED (exit $status); see artifacts/$target/" >&2
        exit "$status"
    fi
done
echo "== all targets ran ${seconds}s without a failure"
