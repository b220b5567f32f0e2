#!/usr/bin/env bash
# Set up, build, and run the whole test suite. GPU tests are reported as skipped (not
# passed) when no CUDA device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake --preset default
cmake --build --preset default
ctest --preset default -j "$(nproc)"
