#!/usr/bin/env bash
# CPU emulation of ember's CUDA tests (NOT a GPU run; see tools/emu/README.md).
#
#   bash tools/emu/run.sh [BUILD_DIR] [gtest args...]     BUILD_DIR defaults to build-emu/
#
# Builds, from the repository's current sources only, one test binary:
#   kernels/*.cu                     -> prep.py -> g++ against fake/cuda_runtime.h (fibers)
#   host/*.c weights/*.c kernels/*.c -> gcc -DEMBER_WITH_CUDA, real CUDA runtime *headers*
#   tests/test_cuda.cc test_perf_paths.cc test_attention.cc test_pooling.cc test_io_dtype.cc
#   mock.cc mockx.cc mocklt.cc       -> CUDA runtime, graphs, a host model of cuBLASLt
# then runs it. Exits non-zero if any step of the build or any test fails.
# Needs: gcc/g++ (C++20), python3, CUDA toolkit headers (CUDA_INC, default
# /usr/local/cuda/include), GoogleTest, Jansson and OpenBLAS (apt: libgtest-dev libjansson-dev
# libopenblas-dev; the CPU backends in host/backend_cpu.c call OpenBLAS's cblas_sgemm).
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
    python3 "$EMU/prep.py" "$f" "$B/src/$n.cc"
done

# -w: the emulated sources and the fakes are not held to the project's warning flags.
CXXEMU=(g++ -std=c++20 -O2 -g -pthread -fno-strict-aliasing -w -DEMBER_WITH_CUDA
        -I"$EMU/fake" -I"$ROOT" -I"$ROOT/include" -I"$ROOT/host" -isystem "$CUDA_INC")
CC=(gcc -std=c11 -O2 -g -fopenmp -DEMBER_WITH_CUDA -I"$ROOT/include" -I"$ROOT"
    -isystem "$CUDA_INC" -isystem /usr/include/jansson)
CXXTEST=(g++ -std=c++17 -O2 -g -pthread -DEMBER_WITH_CUDA -I"$ROOT" -I"$ROOT/include"
         -isystem "$CUDA_INC" -DEMBER_SOURCE_FROM_BIN="\"$(realpath --relative-to="$B" "$ROOT")\"")

# EMU_SANITIZE=1: everything built with ASan+UBSan. cudaMalloc is an exact-size host
# allocation, so a kernel reading or writing past a device buffer is reported (the part of
# compute-sanitizer's memcheck the emulation can give), and so is dynamic shared memory.
LINK=(g++ -pthread -rdynamic)  # -rdynamic: the cuDNN model (a shared library) calls into it
if [ "${EMU_SANITIZE:-0}" = 1 ]; then
    SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    CXXEMU+=("${SAN[@]}"); CC+=("${SAN[@]}"); CXXTEST+=("${SAN[@]}"); LINK+=("${SAN[@]}")
fi

# cuDNN's candidates: compiled in when its headers are there, and run against a host model of
# the backend API (mockdnn.cc) that ember loads like the real library (EMBER_CUDNN_LIB)
DNN_SO=""
if [ -f "$CUDA_INC/cudnn_graph.h" ]; then
    CC+=(-DEMBER_WITH_CUDNN)
    DNN_SO="$B/libemucudnn.so"
fi

cmds=()
if [ -n "$DNN_SO" ]; then
    cmds+=("$(printf '%q ' "${CXXEMU[@]}" -fPIC -shared "$EMU/mockdnn.cc" -o "$DNN_SO")")
fi
for f in "$B"/src/*.cc "$EMU/mock.cc" "$EMU/mockx.cc" "$EMU/mocklt.cc"; do
    cmds+=("$(printf '%q ' "${CXXEMU[@]}" -c "$f" -o "$B/obj/emu_$(basename "$f" .cc).o")")
done
for f in host/*.c weights/*.c kernels/*.c; do
    case "$f" in host/cli*.c) continue;; esac  # the CLI (main() and its subcommands)
    d=$(dirname "$f")
    cmds+=("$(printf '%q ' "${CC[@]}" -c "$f" -o "$B/obj/${d}_$(basename "$f" .c).o")")
done
for t in test_cuda test_perf_paths test_attention test_pooling test_io_dtype test_tuning; do
    cmds+=("$(printf '%q ' "${CXXTEST[@]}" -c "tests/$t.cc" -o "$B/obj/tests_$t.o")")
done
echo "emu: compiling ${#cmds[@]} files in $B ($JOBS jobs)"
printf '%s\0' "${cmds[@]}" | xargs -0 -P "$JOBS" -I{} bash -c '{}' \
    || { echo "emu: build failed" >&2; exit 1; }

"${LINK[@]}" -o "$B/ember_emu_tests" "$B"/obj/*.o -lgtest_main -lgtest -ljansson -lutf8proc -lopenblas \
    -lgomp -lm -ldl \
    || { echo "emu: link failed" >&2; exit 1; }
echo "emu: built $B/ember_emu_tests; running (CPU emulation, not a GPU)"
# Tuning times every candidate of every op at each shape's first call: in the emulation that
# multiplies the GEMM time, so it is off except in the tests that ask for it (options.tuning).
export EMBER_TUNE=off
[ -z "$DNN_SO" ] || export EMBER_CUDNN_LIB="$DNN_SO"
"$B/ember_emu_tests" "$@"
[ $# -eq 0 ] || exit 0
# Without gtest arguments, also the GEMM paths again under the cuBLASLt model's knobs
# (mocklt.cc): no epilogue algorithms, BIAS only, and a GELU epilogue that computes erf GELU,
# which the library's probe must reject. Each falls back to ember's own bias/activation kernel.
LT_TESTS='CudaOps.Linear*:CudaOps.Pooler*:CudaLinearAct.*:Random/CudaModel.MatchesCpuBackend/*'
for knob in EMU_LT_EPILOGUES=none EMU_LT_EPILOGUES=bias EMU_LT_GELU=erf; do
    echo "emu: GEMM paths again with $knob"
    env "$knob" "$B/ember_emu_tests" --gtest_filter="$LT_TESTS" --gtest_brief=1 \
        || { echo "emu: failed with $knob" >&2; exit 1; }
done
# the kernels with barriers, warp collectives and cp.async again with warps drifting apart
# between barriers and cp.async copies landing only at the wait (a missing __syncthreads or
# a read before cp.async.wait shows up as a wrong result or NaN)
echo "emu: attention, packing and pooling kernels again with EMU_SCHED=drift EMU_CPASYNC=late"
EMU_SCHED=drift EMU_CPASYNC=late "$B/ember_emu_tests" \
    --gtest_filter='*Attention*:*Packing*:*SkipMasked*:*Pool*' --gtest_brief=1 \
    || { echo "emu: failed with EMU_SCHED=drift EMU_CPASYNC=late" >&2; exit 1; }
# the family models (RoBERTa's positions, the heads' dense kernels, graphs with logits) again
# with every launch of the forward carrying the PDL attribute: each kernel must wait first
echo "emu: family models again with EMBER_PDL=on (programmatic dependent launch forced)"
EMBER_PDL=on "$B/ember_emu_tests" --gtest_filter='Random/CudaFamily.*' --gtest_brief=1 \
    || { echo "emu: failed with EMBER_PDL=on" >&2; exit 1; }
# the tuning tests again without cuDNN: its candidates unavailable, the defaults running
echo "emu: tuning tests again without cuDNN (EMBER_CUDNN_LIB pointing nowhere)"
EMBER_CUDNN_LIB=/nonexistent/libcudnn.so.9 "$B/ember_emu_tests" --gtest_filter='CudaTuning*' \
    --gtest_brief=1 || { echo "emu: failed without cuDNN" >&2; exit 1; }
# the one test the full run skips: it needs a machine that reports no CUDA device
echo "emu: CudaNoDevice with EMU_NO_DEVICE=1 (the runtime reports 0 devices)"
EMU_NO_DEVICE=1 "$B/ember_emu_tests" --gtest_filter='CudaNoDevice.*' --gtest_brief=1 \
    || { echo "emu: failed with EMU_NO_DEVICE=1" >&2; exit 1; }
echo "emu: all passed (CPU emulation, not a GPU)"
