#!/usr/bin/env bash
# Runs every target of every cargo-fuzz crate under fuzz/*/ for a bounded time and fails if
# any target finds a crash (panic, abort, leak, timeout, OOM).
#
#   FUZZ_SECONDS   seconds per target (default 20)
#   FUZZ_TOTAL_SECONDS  cap on the summed fuzzing time of all targets (default 180); when there
#                  are more targets than fit, each gets FUZZ_TOTAL_SECONDS / targets (min 5)
#   FUZZ_SANITIZER none|address (default none: the code is safe Rust, and `none` builds faster)
#   FUZZ_ONLY      run only crates/targets whose "crate/target" contains this string
#
# Only stable Rust exists here, so cargo-fuzz's nightly flags are unlocked with
# RUSTC_BOOTSTRAP=1. cargo-fuzz itself is installed into .tools/ on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
TOOLS="$PWD/.tools"
if [ ! -x "$TOOLS/bin/cargo-fuzz" ]; then
    echo "fuzz.sh: installing cargo-fuzz into $TOOLS"
    cargo install cargo-fuzz --root "$TOOLS" --locked --debug
fi
export PATH="$TOOLS/bin:$PATH"

# Count the targets first so the total time stays bounded as fuzz crates are added.
total=0
for dir in fuzz/*/; do
    [ -f "$dir/Cargo.toml" ] || continue
    n=$(cargo fuzz list --fuzz-dir "${dir%/}" | wc -l)
    total=$((total + n))
done
FUZZ_TOTAL_SECONDS="${FUZZ_TOTAL_SECONDS:-180}"
if [ "$total" -gt 0 ] && [ $((FUZZ_SECONDS * total)) -gt "$FUZZ_TOTAL_SECONDS" ]; then
    FUZZ_SECONDS=$((FUZZ_TOTAL_SECONDS / total))
    [ "$FUZZ_SECONDS" -ge 5 ] || FUZZ_SECONDS=5
    echo "fuzz.sh: $total targets; ${FUZZ_SECONDS}s each to stay within ${FUZZ_TOTAL_SECONDS}s"
fi

failed=()
ran=0
for dir in fuzz/*/; do
    dir="${dir%/}"
    [ -f "$dir/Cargo.toml" ] || continue
    crate="$(basename "$dir")"
    # Build all targets of the crate once, then run each.
    cargo fuzz build --fuzz-dir "$dir" --sanitizer "$FUZZ_SANITIZER" -O
    for target in $(cargo fuzz list --fuzz-dir "$dir"); do
        if [ -n "${FUZZ_ONLY:-}" ] && [[ "$crate/$target" != *"$FUZZ_ONLY"* ]]; then
            continue
        fi
        corpus="$dir/corpus/$target"
        mkdir -p "$corpus"
        extra=()
        [ -d "$dir/seeds/$target" ] && extra+=("$dir/seeds/$target")
        dict=()
        [ -f "$dir/seeds/$target.dict" ] && dict+=("-dict=$dir/seeds/$target.dict")
        echo "fuzz.sh: $crate/$target for ${FUZZ_SECONDS}s"
        if ! cargo fuzz run --fuzz-dir "$dir" --sanitizer "$FUZZ_SANITIZER" -O "$target" \
            "$corpus" "${extra[@]}" -- \
            -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
            >"$dir/last-$target.log" 2>&1; then
            echo "fuzz.sh: CRASH in $crate/$target; artifacts in $dir/artifacts/$target/:"
            tail -n 40 "$dir/last-$target.log"
            failed+=("$crate/$target")
        else
            grep -E '^(stat::number_of_executed_runs|Done )' "$dir/last-$target.log" || true
        fi
        ran=$((ran + 1))
    done
done

if [ "$ran" -eq 0 ]; then
    echo "fuzz.sh: no fuzz targets found under fuzz/*/" >&2
    exit 1
fi
if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz.sh: ${#failed[@]} target(s) crashed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: $ran target(s), no crash"
