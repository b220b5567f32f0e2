#!/usr/bin/env bash
# The sanitizer jobs (CPU only; the GPU ones are tools/gpu-check.sh's `sanitize` step):
#   asan+ubsan  the `debug` preset (AddressSanitizer with LeakSanitizer, UBSan) over the whole
#               CPU test suite; any report fails the test that triggered it
#   tsan        the `tsan` preset (ThreadSanitizer, built without OpenMP and run with
#               OPENBLAS_NUM_THREADS=1: neither libgomp nor OpenBLAS is instrumented, and their
#               threads would give false reports) over the threading and soak tests
#               (the tsan test preset's filter); any report fails the test
# Prints one summary line per job once, at the end (a failing job's log excerpt comes first, on
# stderr); exits non-zero if a job failed.
#   bash tools/sanitize.sh [asan|tsan ...]    (default: both)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
JOBS=("$@")
[ ${#JOBS[@]} -gt 0 ] || JOBS=(asan tsan)
NPROC=$(nproc 2>/dev/null || echo 4)
LOGDIR=${SANITIZE_LOGDIR:-build-sanitize-logs}
mkdir -p "$LOGDIR"

SUMMARY=()
FAILED=0

# job NAME PRESET: configure, build and test PRESET with the sanitizer options exported.
job() {
    local name=$1 preset=$2 log="$LOGDIR/$1.log" t0=$SECONDS rc result detail
    echo "sanitize: $name: building and testing the $preset preset (log $log) ..."
    : >"$log"
    if ! cmake --preset "$preset" >>"$log" 2>&1; then
        result=FAIL detail="configure failed"
    elif ! cmake --build --preset "$preset" -j "$NPROC" >>"$log" 2>&1; then
        result=FAIL detail="build failed"
    else
        ctest --preset "$preset" -j "$NPROC" --timeout 1800 >>"$log" 2>&1
        rc=$?
        detail=$(grep -E 'tests passed|tests failed' "$log" | tail -n1)
        local reports
        reports=$(grep -cE '^(==[0-9]+==ERROR|SUMMARY: [A-Za-z]+Sanitizer|WARNING: ThreadSanitizer)|runtime error:' "$log")
        detail="${detail:-no test summary}; $reports sanitizer report lines"
        if [ $rc -eq 0 ] && [ "$reports" -eq 0 ]; then result=PASS; else result=FAIL; fi
    fi
    if [ "$result" != PASS ]; then
        FAILED=1
        echo "sanitize: $name failed; the end of $log:" >&2
        grep -E -B2 -A25 '^(==[0-9]+==ERROR|WARNING: ThreadSanitizer)|runtime error:|\[  FAILED  \]|Failed|FAILED' "$log" \
            | tail -n 120 >&2 || tail -n 60 "$log" >&2
    fi
    SUMMARY+=("$(printf 'sanitize: %-10s %-4s %5ss  %s  (log %s)' "$name" "$result" $((SECONDS - t0)) "$detail" "$log")")
}

for j in "${JOBS[@]}"; do
    case "$j" in
    asan)
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            job asan+ubsan debug
        ;;
    tsan)
        TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 job tsan tsan
        ;;
    *) echo "sanitize: unknown job $j (asan, tsan)" >&2; exit 2 ;;
    esac
done

printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
