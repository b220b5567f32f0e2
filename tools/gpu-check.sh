#!/usr/bin/env bash
# The one-command GPU check (see /work/shared/GPU.md): on a GPU machine without apt or
# internet, build ember for the GPU present, run the whole test suite, run compute-sanitizer
# (memcheck, racecheck, initcheck, synccheck) on small forwards and on the CUDA tests,
# compare against HF BertModel on the same GPU, optionally run the benchmarks; full logs go to
# OUTDIR, a short summary table is printed last (and written to OUTDIR/summary.md).
#
#   bash tools/gpu-check.sh OUTDIR [options]
#     --skip STEPS      comma list of steps to skip: deps,build,test,sanitize,hf,bench
#     --only STEPS      run only these steps (the build dir of an earlier run is reused)
#     --deps-prefix DIR where .deps/*.deb are unpacked (default /opt/deps)
#     --build-dir DIR   default build-hopper on compute capability 9.0, else build-gpucheck
#     --cpu-dry-run     no GPU: build for sm_80/sm_90, run the tests (GPU tests skip) and the
#                       HF comparison on the CPU, skip the sanitizers; tests the plumbing
#   PYTHON=...          the python with torch, transformers, numpy, safetensors (python3)
#
# Dependencies: the GPU machine has no apt. On a Debian machine run tools/fetch-gpu-deps.sh,
# which downloads the .deb files into .deps/; carry .deps along; this script unpacks them
# with `dpkg -x` into the prefix (never into /) and points CMake and the loader there.
# .deps is git-ignored: name it in what travels to the GPU machine (the device tool's carry).
# Where one command may run at most ~10 minutes, split the run, e.g.
#   bash tools/gpu-check.sh OUT --only deps,build,test   then   --only deps,sanitize,hf
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

OUT=""
SKIP=""
ONLY=""
PREFIX=/opt/deps
BUILD=""
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
    --skip) SKIP="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --deps-prefix) PREFIX="$2"; shift 2 ;;
    --build-dir) BUILD="$2"; shift 2 ;;
    --cpu-dry-run) DRY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) OUT="$1"; shift ;;
    esac
done
[ -n "$OUT" ] || { usage >&2; exit 2; }
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
NPROC=$(nproc 2>/dev/null || echo 4)
PYTHON=${PYTHON:-python3}

# ---- step bookkeeping -------------------------------------------------------------------
STEPS=()
RESULTS=()
SECONDS_USED=()
DETAILS=()
LOGS=()

wanted() {
    local s=$1
    if [ -n "$ONLY" ]; then [[ ",$ONLY," == *",$s,"* ]]; return; fi
    [[ ",$SKIP," != *",$s,"* ]]
}

record() { # step result seconds details log
    STEPS+=("$1"); RESULTS+=("$2"); SECONDS_USED+=("$3"); DETAILS+=("$4"); LOGS+=("$5")
    printf 'gpu-check: %-10s %-5s %5ss  %s\n' "$1" "$2" "$3" "$4"
}

# Run a command with its output in a log; returns its exit status.
logged() { # log cmd...
    local log=$1
    shift
    echo "\$ $*" >>"$log"
    "$@" >>"$log" 2>&1
}

# ---- machine ------------------------------------------------------------------------------
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: $(uname -n) $(uname -r)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) uncommitted paths"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.sm,clocks.max.sm --format=csv
        nvidia-smi
    else
        echo "nvidia-smi: not found"
    fi
    command -v nvcc >/dev/null 2>&1 && nvcc --version
    cmake --version | head -n1
    command -v compute-sanitizer >/dev/null 2>&1 && compute-sanitizer --version | head -n2
    "$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
} >"$OUT/machine.txt" 2>&1

GPU_NAME="none"
DRIVER="none"
CC=""
if command -v nvidia-smi >/dev/null 2>&1; then
    line=$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>/dev/null | head -n1)
    GPU_NAME=$(echo "$line" | cut -d, -f1 | xargs)
    DRIVER=$(echo "$line" | cut -d, -f2 | xargs)
    CC=$(echo "$line" | cut -d, -f3 | xargs)
fi
CUDA_VER=$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')
if [ "$DRY" -eq 0 ] && [ -z "$CC" ]; then
    echo "gpu-check: no GPU found (nvidia-smi missing or silent); use --cpu-dry-run to test the plumbing" >&2
    exit 2
fi

# Build folder and CUDA architecture for the GPU present.
PRESET=""
ARCH=""
if [ "$DRY" -eq 1 ]; then
    ARCH="80;90"
    BUILD=${BUILD:-build-gpucheck-dry}
elif [ "$CC" = "9.0" ]; then
    PRESET=hopper # sm_90a, binaryDir build-hopper
    BUILD=${BUILD:-build-hopper}
else
    ARCH=native
    BUILD=${BUILD:-build-gpucheck}
fi
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac

# ---- deps: unpack the carried .deb files --------------------------------------------------
unpack_deb() { # deb prefix
    if command -v dpkg >/dev/null 2>&1; then
        dpkg -x "$1" "$2"
        return
    fi
    # No dpkg: a .deb is an ar archive holding data.tar.{xz,zst,gz}.
    local member
    member=$(ar t "$1" | grep '^data\.tar')
    case "$member" in
    *.xz) ar p "$1" "$member" | tar -xJ -C "$2" ;;
    *.zst) ar p "$1" "$member" | zstd -dc | tar -x -C "$2" ;;
    *.gz) ar p "$1" "$member" | tar -xz -C "$2" ;;
    *) ar p "$1" "$member" | tar -x -C "$2" ;;
    esac
}

MULTIARCH=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
if wanted deps; then
    t0=$SECONDS
    log="$OUT/deps.log"
    : >"$log"
    debs=("$ROOT"/.deps/*.deb)
    if [ -e "${debs[0]}" ]; then
        mkdir -p "$PREFIX"
        ok=1
        for d in "${debs[@]}"; do
            echo "unpack $d -> $PREFIX" >>"$log"
            unpack_deb "$d" "$PREFIX" >>"$log" 2>&1 || ok=0
        done
        if [ $ok -eq 1 ]; then
            record deps PASS $((SECONDS - t0)) "${#debs[@]} .deb unpacked into $PREFIX" "$log"
        else
            record deps FAIL $((SECONDS - t0)) "unpacking failed" "$log"
        fi
    elif [ -e /usr/include/gtest/gtest.h ] && [ -e /usr/include/jansson.h ]; then
        record deps PASS $((SECONDS - t0)) "system GoogleTest and Jansson" "$log"
    else
        record deps FAIL $((SECONDS - t0)) "no .deps/*.deb: run tools/fetch-gpu-deps.sh on a Debian machine and carry .deps" "$log"
    fi
fi
if [ -d "$PREFIX/usr" ]; then
    export CMAKE_PREFIX_PATH="$PREFIX/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export LD_LIBRARY_PATH="$PREFIX/usr/lib/$MULTIARCH:$PREFIX/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# ---- build --------------------------------------------------------------------------------
BUILD_OK=1
[ -x "$BUILD/ember" ] && [ -x "$BUILD/ember_tests" ] || BUILD_OK=0
if wanted build; then
    t0=$SECONDS
    log="$OUT/build.log"
    : >"$log"
    BUILD_OK=0
    if [ -n "$PRESET" ]; then
        cfg=(cmake --preset "$PRESET" -DCMAKE_PREFIX_PATH="${CMAKE_PREFIX_PATH:-}")
    else
        cfg=(cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_CUDA=ON
             "-DCMAKE_CUDA_ARCHITECTURES=$ARCH" -DCMAKE_PREFIX_PATH="${CMAKE_PREFIX_PATH:-}")
    fi
    if logged "$log" "${cfg[@]}" && logged "$log" cmake --build "$BUILD" -j "$NPROC"; then
        BUILD_OK=1
        warn=$(grep -c 'warning' "$log")
        record build PASS $((SECONDS - t0)) "$(basename "$BUILD"), CUDA arch ${ARCH:-90a}, $warn warning lines" "$log"
    else
        record build FAIL $((SECONDS - t0)) "see the log" "$log"
    fi
    # Registers and spills of the kernels, for the GPU present (HOPPER.md: read -Xptxas -v).
    if command -v nvcc >/dev/null 2>&1; then
        if [ -n "$PRESET" ]; then gen=(-gencode "arch=compute_90a,code=sm_90a");
        elif [ "$DRY" -eq 1 ]; then gen=(-gencode "arch=compute_90,code=sm_90");
        else gen=(-arch=native); fi
        for f in "$ROOT"/kernels/*.cu; do
            echo "== $f" >>"$OUT/ptxas.txt"
            nvcc -c -std=c++17 -I"$ROOT" -I"$ROOT/include" -DEMBER_WITH_CUDA --expt-relaxed-constexpr \
                "${gen[@]}" -Xptxas -v -o /dev/null "$f" >>"$OUT/ptxas.txt" 2>&1
        done
        spills=$(grep -cE '[1-9][0-9]* bytes spill (stores|loads)' "$OUT/ptxas.txt")
        record ptxas "$([ "$spills" -eq 0 ] && echo PASS || echo WARN)" 0 "$spills kernels with spills (registers in ptxas.txt)" "$OUT/ptxas.txt"
    fi
fi

# ---- the whole test suite -------------------------------------------------------------------
if wanted test; then
    t0=$SECONDS
    log="$OUT/ctest.log"
    : >"$log"
    if [ $BUILD_OK -eq 0 ]; then
        record test SKIP 0 "no build" "$log"
    else
        jobs=$((NPROC < 8 ? NPROC : 8))
        logged "$log" ctest --test-dir "$BUILD" --output-on-failure -j "$jobs" --timeout 1200 \
            --output-junit "$OUT/ctest-junit.xml"
        rc=$?
        summary=$(grep -E 'tests passed|tests failed' "$log" | tail -n1)
        skipped=$(grep -cE '\*\*\*Skipped|Not Run' "$log")
        cuda_skipped=$(grep -E '\*\*\*Skipped' "$log" | grep -E 'Cuda|CUDA' | grep -vc 'NoDevice\|WithoutDevice')
        detail="$summary; $skipped skipped"
        if [ "$DRY" -eq 0 ] && [ "$cuda_skipped" -gt 0 ]; then
            detail="$detail, $cuda_skipped CUDA tests skipped ON A GPU MACHINE"
            rc=1
        fi
        record test "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" $((SECONDS - t0)) "$detail" "$log"
    fi
fi

# ---- compute-sanitizer ----------------------------------------------------------------------
if wanted sanitize; then
    if [ "$DRY" -eq 1 ]; then
        record sanitize SKIP 0 "--cpu-dry-run" "-"
    elif [ $BUILD_OK -eq 0 ]; then
        record sanitize SKIP 0 "no build" "-"
    elif ! command -v compute-sanitizer >/dev/null 2>&1; then
        record sanitize FAIL 0 "compute-sanitizer not found" "-"
    else
        model="$ROOT/tests/data/models/tiny-odd"
        inputs="$ROOT/tests/data/goldens/tiny-odd/right_padding.safetensors" # mask with padding
        for tool in memcheck racecheck initcheck synccheck; do
            t0=$SECONDS
            log="$OUT/sanitizer-$tool.log"
            : >"$log"
            extra=()
            [ "$tool" = memcheck ] && extra=(--leak-check full)
            [ "$tool" = racecheck ] && extra=(--racecheck-report all)
            ok=1
            for dt in f32 f16 bf16; do
                logged "$log" compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 9 \
                    "$BUILD/ember" forward --model "$model" --inputs "$inputs" \
                    --output "$OUT/sanitizer-$tool-$dt.safetensors" --backend cuda --dtype "$dt" \
                    --pooler --hidden-states || ok=0
            done
            errs=$(grep -E '========= (ERROR SUMMARY|RACECHECK SUMMARY)' "$log" | tr '\n' ' ')
            record "$tool" "$([ $ok -eq 1 ] && echo PASS || echo FAIL)" $((SECONDS - t0)) "ember forward f32/f16/bf16: $errs" "$log"
        done
        # Every op at odd shapes (attention's generic head-size path too), under memcheck.
        t0=$SECONDS
        log="$OUT/sanitizer-memcheck-ops.log"
        : >"$log"
        (cd "$BUILD" && logged "$log" timeout 1500 compute-sanitizer --tool memcheck --error-exitcode 9 \
            ./ember_tests --gtest_filter='CudaOps.*:Shapes/CudaAttention.*')
        rc=$?
        errs=$(grep -E '========= ERROR SUMMARY' "$log" | tr '\n' ' ')
        record memcheck-ops "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" $((SECONDS - t0)) "ember_tests CudaOps + attention shapes: $errs" "$log"
        # The model-level CUDA tests (graphs, ASYNC across streams, threads on one model, OOM
        # reserve, padding removal) under every tool.
        cuda_tests='CudaModel*:CudaAsync.*:CudaGraphs.*:CudaThreads.*:CudaOutOfMemory.*:*CudaSkipMasked*'
        for tool in memcheck racecheck initcheck synccheck; do
            t0=$SECONDS
            log="$OUT/sanitizer-$tool-tests.log"
            : >"$log"
            (cd "$BUILD" && logged "$log" timeout 1500 compute-sanitizer --tool "$tool" --error-exitcode 9 \
                ./ember_tests --gtest_filter="$cuda_tests")
            rc=$?
            errs=$(grep -E '========= (ERROR SUMMARY|RACECHECK SUMMARY)' "$log" | tr '\n' ' ')
            record "$tool-tests" "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" $((SECONDS - t0)) "ember_tests $cuda_tests: $errs" "$log"
        done
    fi
fi

# ---- HF BertModel on the same device ---------------------------------------------------------
if wanted hf; then
    t0=$SECONDS
    log="$OUT/hf_compare.log"
    if [ $BUILD_OK -eq 0 ]; then
        record hf SKIP 0 "no build" "$log"
    else
        dev=cuda
        [ "$DRY" -eq 1 ] && dev=cpu
        "$PYTHON" "$ROOT/tools/hf_compare.py" --ember "$BUILD/ember" --device "$dev" \
            --workdir "$OUT/hf" --log "$OUT/hf_compare-detail.log" --json "$OUT/hf_compare.json" \
            >"$log" 2>&1
        rc=$?
        detail=$(grep '^hf_compare:' "$log" | tail -n1)
        record hf "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" $((SECONDS - t0)) "${detail:-see the log}" "$log"
    fi
fi

# ---- benchmarks (long: skip with --skip bench) --------------------------------------------------
if wanted bench; then
    t0=$SECONDS
    log="$OUT/bench.log"
    if [ "$DRY" -eq 1 ] || [ $BUILD_OK -eq 0 ] || [ ! -f "$ROOT/benchmarks/compare.py" ] || [ ! -x "$BUILD/ember_bench" ]; then
        record bench SKIP 0 "dry run, no build, or no benchmarks/compare.py / ember_bench" "-"
    else
        timeout "${BENCH_TIMEOUT:-3600}" "$PYTHON" "$ROOT/benchmarks/compare.py" --bench "$BUILD/ember_bench" \
            --workdir "$OUT/bench" --out "$OUT/bench.md" >"$log" 2>&1
        rc=$?
        record bench "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" $((SECONDS - t0)) "table in bench.md" "$log"
    fi
fi

# ---- summary ----------------------------------------------------------------------------------
{
    echo "# ember GPU check"
    echo
    echo "GPU: $GPU_NAME, driver $DRIVER, compute capability ${CC:-none}, CUDA ${CUDA_VER:-none}; $(date -u '+%Y-%m-%d'); git $(git rev-parse --short HEAD 2>/dev/null)"
    [ "$DRY" -eq 1 ] && echo "(--cpu-dry-run: no GPU; GPU tests skipped, sanitizers not run)"
    echo
    echo "| step | result | seconds | details | log |"
    echo "|---|---|---|---|---|"
    for i in "${!STEPS[@]}"; do
        echo "| ${STEPS[$i]} | ${RESULTS[$i]} | ${SECONDS_USED[$i]} | ${DETAILS[$i]} | $(basename "${LOGS[$i]}") |"
    done
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
for r in "${RESULTS[@]}"; do
    [ "$r" = FAIL ] && exit 1
done
exit 0
