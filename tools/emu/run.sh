#!/usr/bin/env bash
# CPU emulation of ember's CUDA tests (NOT a GPU run; see tools/emu/README.md).
#
#   bash tools/emu/run.sh [BUILD_DIR] [gtest args...]     BUILD_DIR defaults to build-emu/
#
# Builds, from the repository's current sources only, one test binary:
#   kernels/*.cu (except linear.cu)  -> prep.py -> g++ against fake/cuda_runtime.h (fibers)
#   host/*.c weights/*.c kernels/*.c -> gcc -DEMBER_WITH_CUDA, real CUDA runtime *headers*
#   tests/test_cuda.cc test_perf_paths.cc test_attention.cc test_pooling.cc
#   mock.cc mockx.cc                 -> CUDA runtime, graphs, naive GEMM instead of cuBLASLt
# then runs it. Exits non-zero if any step of the build or any test fails.
# Needs: gcc/g++ (C++20), python3, CUDA toolkit headers (CUDA_INC, default
# /usr/local/cuda/include), GoogleTest and Jansson (apt: libgtest-dev libjansson-dev).
set -euo pipefail
EMU="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$EMU/../.." && pwd)"
cd "$ROOT"
B="${1:-build-emu}"
shift || true
CUDA_INC="${CUDA_INC:-/usr/local/cuda/include}"
JOBS="${JOBS:-$(nproc)}"
[ -f "$CUDA_INC/cuda_runtime_api.h" ] || { echo "emu: no CUDA headers at $CUDA_INC (set CUDA_INC)" >&2; exit 1; }

rm -rf "$B/src" "$B/obj"
mkdir -p "$B/src" "$B/obj"
B="$(cd "$B" && pwd)"

for f in kernels/*.cu; do
    n=$(basename "$f" .cu)
    [ "$n" = linear ] && continue  # cuBLASLt: replaced by the naive GEMM in mock.cc
    python3 "$EMU/prep.py" "$f" "$B/src/$n.cc"
done

# -w: the emulated sources and the fakes are not held to the project's warning flags.
CXXEMU=(g++ -std=c++20 -O2 -g -pthread -fno-strict-aliasing -w -DEMBER_WITH_CUDA
        -I"$EMU/fake" -I"$ROOT" -I"$ROOT/include" -I"$ROOT/host" -isystem "$CUDA_INC")
CC=(gcc -std=c11 -O2 -g -fopenmp -DEMBER_WITH_CUDA -I"$ROOT/include" -I"$ROOT"
    -isystem "$CUDA_INC" -isystem /usr/include/jansson)
CXXTEST=(g++ -std=c++17 -O2 -g -pthread -DEMBER_WITH_CUDA -I"$ROOT" -I"$ROOT/include"
         -isystem "$CUDA_INC" -DEMBER_TEST_DATA_DIR="\"$ROOT/tests/data\""
         -DEMBER_SOURCE_DIR="\"$ROOT\"")

cmds=()
for f in "$B"/src/*.cc "$EMU/mock.cc" "$EMU/mockx.cc"; do
    cmds+=("$(printf '%q ' "${CXXEMU[@]}" -c "$f" -o "$B/obj/emu_$(basename "$f" .cc).o")")
done
for f in host/*.c weights/*.c kernels/*.c; do
    case "$f" in host/cli*.c) continue;; esac  # the CLI (main() and its subcommands)
    d=$(dirname "$f")
    cmds+=("$(printf '%q ' "${CC[@]}" -c "$f" -o "$B/obj/${d}_$(basename "$f" .c).o")")
done
for t in test_cuda test_perf_paths test_attention test_pooling; do
    cmds+=("$(printf '%q ' "${CXXTEST[@]}" -c "tests/$t.cc" -o "$B/obj/tests_$t.o")")
done
echo "emu: compiling ${#cmds[@]} files in $B ($JOBS jobs)"
printf '%s\0' "${cmds[@]}" | xargs -0 -P "$JOBS" -I{} bash -c '{}' \
    || { echo "emu: build failed" >&2; exit 1; }

g++ -pthread -o "$B/ember_emu_tests" "$B"/obj/*.o -lgtest_main -lgtest -ljansson -lutf8proc -lgomp -lm \
    || { echo "emu: link failed" >&2; exit 1; }
echo "emu: built $B/ember_emu_tests; running (CPU emulation, not a GPU)"
"$B/ember_emu_tests" "$@"
