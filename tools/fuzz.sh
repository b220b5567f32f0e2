#!/usr/bin/env bash
# Build the libFuzzer targets (the `fuzz` preset: clang, ASan + UBSan, CPU only), replay every
# file in tests/fuzz/regressions/<target>/, then fuzz each target for a bounded time on a copy
# of its committed corpus (tests/fuzz/corpus/<target>/ is never modified).
#
#   tools/fuzz.sh [--seconds N] [--jobs J] [--work DIR] [target ...]
#
# --seconds N  fuzzing time per target (default 60); 0 = only build and replay regressions
# --jobs J     targets fuzzed at once (default: the number of CPUs)
# --work DIR   where corpora copies, logs and reproducers go (default: a new temp dir)
# target       fuzz_safetensors, fuzz_config, ... (default: every target built)
#
# Exits non-zero on any crash, leak, timeout, out-of-memory or UBSan finding, and when the
# fuzzers cannot be built (missing clang or libFuzzer runtime): a CI run never passes
# without having fuzzed. The reproducer's path is printed; rerun it with `<binary> <file>`.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=60
jobs=$(nproc 2>/dev/null || echo 2)
work=""
targets=()
while (($#)); do
    case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
    esac
done

die() { echo "fuzz: FAIL: $*" >&2; exit 1; }

command -v clang >/dev/null 2>&1 || die "clang not found: run tools/setup.sh (packages clang, libclang-rt-dev)"
cmake --preset fuzz >/dev/null || die "cmake --preset fuzz failed"
cmake --build --preset fuzz >/tmp/ember-fuzz-build.$$ 2>&1 || {
    tail -n 30 /tmp/ember-fuzz-build.$$ >&2
    rm -f /tmp/ember-fuzz-build.$$
    die "building the fuzzers failed (libFuzzer runtime missing? Debian: libclang-rt-dev)"
}
rm -f /tmp/ember-fuzz-build.$$

if ((${#targets[@]} == 0)); then
    for src in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi
((${#targets[@]})) || die "no targets in tests/fuzz"
for t in "${targets[@]}"; do [ -x "build-fuzz/$t" ] || die "build-fuzz/$t was not built"; done

[ -n "$work" ] || work=$(mktemp -d "${TMPDIR:-/tmp}/ember-fuzz.XXXXXX")
mkdir -p "$work"
work=$(cd "$work" && pwd)

common=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
max_len() {
    case "$1" in
    fuzz_forward) echo 4096 ;;
    *) echo 8192 ;;
    esac
}
dict() {
    case "$1" in
    fuzz_safetensors | fuzz_config | fuzz_tokenizer | fuzz_load) echo "-dict=$root/tests/fuzz/safetensors_json.dict" ;;
    esac
}

# 1. regressions: every saved input must now pass (each one runs once)
failed=0
for t in "${targets[@]}"; do
    reg="tests/fuzz/regressions/$t"
    files=()
    [ -d "$reg" ] && while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$reg" -type f ! -name '.*' -print0 | sort -z)
    ((${#files[@]})) || continue
    if "build-fuzz/$t" "${common[@]}" "${files[@]}" >"$work/$t.regressions.log" 2>&1; then
        echo "fuzz: $t: ${#files[@]} regression inputs pass"
    else
        echo "fuzz: FAIL: $t: a regression input fails again; log: $work/$t.regressions.log" >&2
        grep -E "Running:|ERROR|FUZZ_CHECK|runtime error" "$work/$t.regressions.log" | tail -n 5 >&2
        failed=1
    fi
done
((failed == 0)) || exit 1
((seconds > 0)) || { echo "fuzz: regressions only (--seconds 0)"; exit 0; }

# 2. bounded fuzzing on copies of the committed corpora
run_one() {
    local t=$1 dir="$work/$t"
    mkdir -p "$dir/corpus"
    cp -r "tests/fuzz/corpus/$t/." "$dir/corpus/" 2>/dev/null || true
    local start=$SECONDS
    local TIMEFORMAT="%U %S"
    { time (cd "$dir" && "$root/build-fuzz/$t" "${common[@]}" -max_total_time="$seconds" \
        -max_len="$(max_len "$t")" $(dict "$t") -artifact_prefix="$dir/" corpus \
        >"$dir/log" 2>&1; echo $? >"$dir/rc"); } 2>"$dir/cpu"
    echo $((SECONDS - start)) >"$dir/wall"
}
running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if ((running >= jobs)); then wait -n; running=$((running - 1)); fi
done
wait

printf '%-18s %6s %8s %12s %7s  %s\n' target wall_s cpu_s execs corpus result
for t in "${targets[@]}"; do
    dir="$work/$t"
    rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | grep -o '[0-9]*$' || echo "?")
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$dir/cpu" 2>/dev/null || echo "?")
    ncorp=$(find "$dir/corpus" -type f | wc -l)
    repro=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' -o -name 'slow-unit-*' \) | head -n 1)
    if [ "$rc" = 0 ] && [ -z "$repro" ]; then
        result=ok
    else
        result=FAIL
        failed=1
    fi
    printf '%-18s %6s %8s %12s %7s  %s\n' "$t" "$(cat "$dir/wall")" "$cpu" "${execs:-?}" "$ncorp" "$result"
    if [ "$result" = FAIL ]; then
        grep -E "ERROR|FUZZ_CHECK|runtime error|SUMMARY" "$dir/log" | head -n 5 | sed 's/^/    /'
        echo "    log: $dir/log"
        [ -n "$repro" ] && echo "    reproducer: $repro   (replay: build-fuzz/$t $repro)"
    fi
done
if ((failed)); then echo "fuzz: FAIL (work dir $work)" >&2; exit 1; fi
echo "fuzz: all targets ran ${seconds}s without findings (work dir $work)"
