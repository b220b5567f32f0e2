#!/usr/bin/env bash
# The GPU check's "tuning" step: on the GPU present, time every op's candidates (cuBLASLt's
# algorithms, cuDNN's fused FFN input and attention, ember's kernels) for a few shapes and
# print which won where, with each candidate's median time (ember_bench --tuning-report).
# On compute capability 9.0+ the report also has a "pdl" line per graphed shape: the whole
# forward's graph timed with programmatic dependent launch off and on (ember.h,
# EMBER_TUNE_PDL); padding removal runs without graphs and has none.
# Needs a CUDA device and a build (the GPU check's); prints nothing meaningful without one.
#
#   bash tools/gpu-tuning.sh BUILD_DIR OUTDIR
#
# Each shape's full report goes to OUTDIR/tuning-<n>.log; the choices of bert-base f16
# B32 S128 are saved as OUTDIR/tuning-bert-base-f16.txt (ember_model_tuning_save's format, to
# load on machines with the same GPU and libraries). A summary, one line per op and shape with
# its winner, is printed last. Each run is bounded by TUNING_TIMEOUT seconds (default 300);
# TUNING_QUICK=1 runs three shapes only (what tools/gpu-check.sh's time-boxed step does).
set -uo pipefail
B=${1:?usage: gpu-tuning.sh BUILD_DIR OUTDIR}
OUT=${2:?usage: gpu-tuning.sh BUILD_DIR OUTDIR}
BENCH="$B/ember_bench"
[ -x "$BENCH" ] || { echo "gpu-tuning: no $BENCH" >&2; exit 2; }
mkdir -p "$OUT" || exit 2
# preset dtype batch seq lengths [extra ember_bench options]
RUNS=(
    "bert-base f16 1 128 full"
    "bert-base f16 32 128 full --tuning-save $OUT/tuning-bert-base-f16.txt"
    "bert-base bf16 32 128 full"
    "bert-base f16 32 128 uniform:0.25:1"
    "bert-base f16 32 128 uniform:0.25:1 --skip-masked --valid-tokens"
    "minilm f16 8 97 uniform:0.5:1"
)
ITERS=20
if [ "${TUNING_QUICK:-0}" = 1 ]; then # the time-boxed GPU check: the three kinds of attention
    RUNS=(
        "bert-base f16 1 128 full --tuning-save $OUT/tuning-bert-base-f16.txt"
        "bert-base f16 32 128 uniform:0.25:1"
        "bert-base f16 32 128 uniform:0.25:1 --skip-masked --valid-tokens"
    )
    ITERS=10
fi
rc=0
summary=()
for i in "${!RUNS[@]}"; do
    read -r preset dtype batch seq lengths extra <<<"${RUNS[$i]}"
    log="$OUT/tuning-$i.log"
    echo "gpu-tuning: [$i] $preset $dtype B$batch S$seq $lengths $extra"
    # shellcheck disable=SC2086  # extra holds several options
    if timeout "${TUNING_TIMEOUT:-300}" "$BENCH" --backend cuda --preset "$preset" --dtype "$dtype" \
        --batch "$batch" --seq "$seq" --lengths "$lengths" --warmup 3 --iters "$ITERS" --tuning on \
        --tuning-report $extra >"$log" 2>&1; then
        summary+=("[$i] $preset $dtype B$batch S$seq $lengths $extra")
        while IFS= read -r line; do summary+=("$line"); done < <(grep -E '^tuning:|^  [a-z_]+ +(f16|bf16|f32) .*->|^      [* ] (off|on) ' "$log")
        summary+=("$(grep -m1 -E '^time per forward' "$log" || true)")
    else
        rc=1
        summary+=("[$i] FAILED (exit status, see $log): $(tail -n 1 "$log")")
    fi
done
echo
echo "tuning summary (per op and shape: the winner, and PDL off/on times per graphed shape; $OUT/tuning-*.log have every candidate's time)"
printf '%s\n' "${summary[@]}"
exit $rc
