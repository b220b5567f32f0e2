#!/usr/bin/env bash
# The Python package's tests (python/tests, pytest).
#
#   bash tools/python-test.sh                CI: `pip install ./python` into a fresh venv
#                                            (build-python/venv; libember built CPU-only by
#                                            scikit-build-core), numpy + pytest from
#                                            python/requirements-test.txt, pytest against the
#                                            installed package
#   bash tools/python-test.sh --source DIR   no pip at all: the package from python/ with
#                                            libember.so from the CMake build DIR (every
#                                            build makes one), run by the python3 on
#                                            PATH, which must have numpy and pytest (and torch
#                                            for the torch tests): the GPU check's way
#
# Tests that need something absent (torch, a GPU, the real checkpoint) report Skipped with the
# reason (-rs); pytest's last line counts them apart from the passed ones.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --source ]; then
    lib=$(ls "$2"/libember.so* 2>/dev/null | head -n1 || true)
    [ -n "$lib" ] || { echo "python-test: no libember.so in $2 (build ember there first)" >&2; exit 1; }
    exec env EMBER_LIBRARY="$(realpath "$lib")" python3 -m pytest python/tests -q -rs -p no:cacheprovider
fi
venv=build-python/venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q -r python/requirements-test.txt
"$venv/bin/pip" install -q ./python -C cmake.define.EMBER_CUDA=OFF
# from a folder outside the source tree, so that `import ember` is the installed package
cd build-python
EMBER_TEST_INSTALLED=1 "venv/bin/python" -m pytest ../python/tests -q -rs -p no:cacheprovider
