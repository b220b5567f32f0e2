#!/usr/bin/env bash
# The GPU check of ember (see README "On a GPU"). GPU machines are air-gapped and time-boxed
# (about 15 minutes each, one command at most 10, 64 MiB of files), so the work is split:
#
#   bash tools/gpu-check.sh prepare       here, on the CPU machine: build for sm_90a, check
#                                         the fatbin, write the ptxas/SASS report, and put all
#                                         that must travel into .gpu-carry/ (<= 24 MiB; the
#                                         big files xz-packed, unpacked by `run`)
#   bash tools/gpu-check.sh run OUT       on the GPU machine, from this tree with .gpu-carry/
#                                         beside it: no build, no network, at most 7 minutes;
#                                         OUT/summary.md always, the summary table printed last
#   bash tools/gpu-check.sh rehearse [OUT] here and in CI: copies the tree and .gpu-carry/ to
#                                         another path and runs `run` there as on the GPU
#                                         machine (GPU-only steps report NO-GPU)
#   bash tools/gpu-check.sh OUT           a GPU CI runner with apt and internet: installs the
#                                         build's packages, prepares there (for the GPU
#                                         present) and runs every step without the time box
#
# Environment: PYTHON (python3) has torch, transformers, numpy, safetensors on the GPU
# machine; GPU_CHECK_SECONDS (420) is the run's time box; GPU_CARRY (.gpu-carry) the folder.
#
# The run's steps are the table STEPS below, in order of value, each with its time budget and
# the one file it writes under OUT. To add a step: write a function step_NAME that does its
# work with `tmo CMD...` (each command then ends by the step's deadline) and ends with
# `result PASS|FAIL|SKIP|NO-GPU|TIMEOUT "one-line detail"`; add its line to STEPS. Keep the
# budgets' sum <= GPU_CHECK_SECONDS - 10 and the files under OUT <= 8 (the GPU machine sends
# back no more). A step that needs a GPU says NO-GPU without one (HAVE_GPU=0), so that
# `rehearse` (tools/test.sh runs it) proves everything else: paths, test selection, libraries.
set -uo pipefail
CALLER=$(pwd) # a relative OUT is the caller's
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
CARRY=${GPU_CARRY:-$ROOT/.gpu-carry}
PY=${PYTHON:-python3}
UTIL="$ROOT/tools/gpu_check_util.py"
CARRY_MAX_MIB=24
RUN_SECONDS=${GPU_CHECK_SECONDS:-420}

# name      budget s  file under OUT  what
STEPS="
env         15        env.txt         GPU, driver, CUDA, torch versions, clocks; the carried binaries load
tests       120       gpu-tests.log   every GPU test of ember_tests in one process
hf          70        hf.log          tools/hf_compare.py f32/f16/bf16 on the GPU; ids vs gathered inputs_embeds from a torch CUDA tensor
python      45        python.log      the Python package's pytest suite over the carried libember: torch CUDA tensors in place, CuPy
bench       75        bench.md        benchmarks/compare.py core rows: ember vs HF sdpa fp16 (torch.compile if time is left)
tuning      25        tuning.log      tools/gpu-tuning.sh: every op's candidates timed per shape (cuBLASLt algorithms, cuDNN, ember's kernels), the winners
sanitize    60        sanitize.log    compute-sanitizer memcheck/racecheck/initcheck/synccheck: a small forward and the attention tests
"

# GPU tests that may skip on the GPU machine because their data cannot travel:
# name | text their skip message holds | why
SKIP_ALLOWED="
CudaEmbed.MatchesSentenceTransformersEveryDtype | all-MiniLM-L6-v2 | needs the 90 MB all-MiniLM-L6-v2 checkpoint; a GPU call carries 64 MiB
"

# ember's own attention kernels, under every sanitizer tool (gtest filter).
SAN_TESTS='AttentionCuda.*:Cases/AttentionPadded.*:Cases/AttentionPacked.*:Shapes/CudaAttention.*'

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "gpu-check: $*" >&2; exit 2; }

# ==== prepare (the CPU machine) =================================================================

find_cuobjdump() { # sets CUOBJDUMP; cuobjdump --dump-sass also needs nvdisasm on PATH
    local nvcc_dir
    nvcc_dir=$(dirname "$(command -v nvcc)")
    for c in "$(command -v cuobjdump 2>/dev/null)" "$nvcc_dir/cuobjdump"; do
        if [ -n "$c" ] && [ -x "$c" ] && { command -v nvdisasm >/dev/null || [ -x "$(dirname "$c")/nvdisasm" ]; }; then
            CUOBJDUMP=$c
            export PATH="$(dirname "$c"):$PATH"
            return 0
        fi
    done
    # Not in this toolkit: NVIDIA's wheels on PyPI, into the (ignored) build folder.
    local dir="$BUILD/cudatools"
    if [ ! -x "$dir/nvidia/cu13/bin/nvdisasm" ]; then
        echo "prepare: no cuobjdump/nvdisasm here; installing NVIDIA's wheels into $dir"
        "$PY" -m pip install -q --no-deps --target "$dir" \
            nvidia-cuda-cuobjdump==13.2.51 nvidia-cuda-nvdisasm==13.2.51 || return 1
    fi
    CUOBJDUMP="$dir/nvidia/cu13/bin/cuobjdump"
    export PATH="$dir/nvidia/cu13/bin:$PATH"
    [ -x "$CUOBJDUMP" ]
}

prepare() {
    local t0=$SECONDS arch=${GPU_CHECK_ARCH:-90a-real}
    BUILD=${GPU_CHECK_BUILD:-$ROOT/build-gpucheck}
    for t in nvcc cmake ninja cc strip objdump ldd "$PY"; do
        command -v "$t" >/dev/null || die "prepare needs $t"
    done
    # One shared libember (one copy of the kernels; EMBER_SHARED_INTERNALS: it exports the
    # internals the tests use, and the executables link it instead of their own copy of the
    # objects), executables that look for it and the carried libraries in $ORIGIN and
    # $ORIGIN/../lib, ptxas -v for the report.
    echo "prepare: building ember for CUDA arch $arch in $(basename "$BUILD") (log $BUILD/build.log)"
    mkdir -p "$BUILD"
    [ -d "$BUILD/CMakeFiles" ] && find "$BUILD/CMakeFiles" -name '*.cu.o' -delete # ptxas -v lines again
    if ! { cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMBER_CUDA=ON \
               "-DCMAKE_CUDA_ARCHITECTURES=$arch" -DEMBER_LIBRARY_TYPE=SHARED -DEMBER_SHARED_INTERNALS=ON \
               -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN;$ORIGIN/../lib' \
               -DCMAKE_CUDA_FLAGS=-Xptxas=-v &&
           cmake --build "$BUILD" -j "${GPU_CHECK_JOBS:-2}"; } >"$BUILD/build.log" 2>&1; then
        tail -n 30 "$BUILD/build.log"
        die "build failed (log $BUILD/build.log)"
    fi
    local warnings
    warnings=$(grep -i 'warning' "$BUILD/build.log" | grep -vc '^ptxas info')
    echo "prepare: built in $((SECONDS - t0)) s, $warnings warning lines"

    rm -rf "$CARRY"
    mkdir -p "$CARRY/bin" "$CARRY/lib"
    for b in ember ember_bench ember_tests; do
        [ -x "$BUILD/$b" ] || die "$BUILD/$b was not built"
        cp "$BUILD/$b" "$CARRY/bin/$b" && strip "$CARRY/bin/$b" || die "cannot copy $b"
    done
    local so soname
    for so in "$BUILD"/lib*.so; do
        [ -e "$so" ] || continue
        soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
        cp -L "$so" "$CARRY/lib/${soname:-$(basename "$so")}" && strip --strip-unneeded "$CARRY/lib/${soname:-$(basename "$so")}"
    done
    [ -e "$CARRY/lib/libember.so" ] || ls "$CARRY"/lib/libember.so.* >/dev/null 2>&1 ||
        die "no shared libember in $BUILD (the carry needs it: one copy of the kernels)"
    # The flat C entry of tools/ids_vs_embeds.py, over the carried libember.
    cc -O2 -shared -fPIC -Wall -Wextra -Werror -I"$ROOT/include" "$ROOT/tools/ids_vs_embeds_shim.c" \
        -L"$CARRY/lib" -l:"$(basename "$(ls "$CARRY"/lib/libember.so* | head -n1)")" \
        -Wl,-rpath,'$ORIGIN' -o "$CARRY/lib/libember_ive.so" || die "cannot build the ids_vs_embeds shim"

    # Shared libraries from Debian packages (Jansson, utf8proc, libgomp, ...): extracted from
    # the .deb files without dpkg into .gpu-carry/lib, where the binaries look first.
    bash "$ROOT/tools/fetch-gpu-deps.sh" "$CARRY/lib" "$CARRY/deps.txt" "$CARRY"/bin/* "$CARRY"/lib/*.so* ||
        die "dependencies failed"

    find_cuobjdump || die "no cuobjdump (CUDA toolkit or PyPI nvidia-cuda-cuobjdump) for the SASS check"
    local elves=()
    for f in "$CARRY"/bin/* "$CARRY"/lib/*; do
        objdump -h "$f" 2>/dev/null | grep -q '\.nv_fatbin' && elves+=("$f")
    done
    [ ${#elves[@]} -gt 0 ] || die "no carried file holds device code"
    local arch_check=sm_90a
    [ "$arch" = 90a-real ] || arch_check=any
    "$PY" "$UTIL" sass-report --build-log "$BUILD/build.log" --cuobjdump "$CUOBJDUMP" \
        --arch "$arch_check" --out "$CARRY/sass-report.md" "${elves[@]}" ||
        die "the SASS check failed (see $CARRY/sass-report.md)"

    local glibc glibcxx
    glibc=$(for f in "$CARRY"/bin/* "$CARRY"/lib/*; do objdump -T "$f" 2>/dev/null; done |
        grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1)
    glibcxx=$(for f in "$CARRY"/bin/* "$CARRY"/lib/*; do objdump -T "$f" 2>/dev/null; done |
        grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -n1)
    {
        echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (with uncommitted changes)')"
        echo "built: $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n), $(nvcc --version | tail -n1), CUDA arch $arch"
        echo "needs: $glibc, $glibcxx (host glibc and libstdc++ of the GPU machine)"
        echo "files:"
        (cd "$CARRY" && find . -type f -printf '  %P %s\n' | sort)
    } >"$CARRY/manifest.txt"

    # The big files travel xz-compressed (OpenBLAS alone is 35 MiB, 4 packed): packed/ holds
    # them, and `run` unpacks them into bin/ and lib/ first (xz, or Python's lzma there).
    local big
    mkdir -p "$CARRY/packed/bin" "$CARRY/packed/lib"
    for big in $(cd "$CARRY" && find bin lib -type f -size +256k | sort); do
        if command -v xz >/dev/null; then
            xz -6 -T"${GPU_CHECK_JOBS:-2}" -c "$CARRY/$big" >"$CARRY/packed/$big.xz"
        else
            "$PY" "$UTIL" xz "$CARRY/$big" "$CARRY/packed/$big.xz"
        fi && rm "$CARRY/$big" || die "cannot compress $big"
        echo "packed: $big $(du -b "$CARRY/packed/$big.xz" | cut -f1)" >>"$CARRY/manifest.txt"
    done

    local bytes mib
    bytes=$(du -sb "$CARRY" | cut -f1)
    mib=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')
    echo "prepare: .gpu-carry is $mib MiB ($bytes bytes; limit $CARRY_MAX_MIB MiB), needs $glibc and $glibcxx"
    (cd "$CARRY" && du -ab . | sort -rn | sed -n '2,9p' | awk '{printf "  %8.1f KiB  %s\n", $1 / 1024, $2}')
    [ "$bytes" -le $((CARRY_MAX_MIB * 1048576)) ] || die ".gpu-carry is over $CARRY_MAX_MIB MiB"
    echo "prepare: done in $((SECONDS - t0)) s. On the GPU machine, from this tree with .gpu-carry beside it:"
    echo "    bash tools/gpu-check.sh run OUT"
    echo "  (the device tool: command 'bash tools/gpu-check.sh run \$OUT', carry [\".gpu-carry\"], timeout_s 480)"
}

# ==== run (the GPU machine) =====================================================================

NAMES=() RESULTS=() TIMES=() BUDGETS=() DETAILS=() LOGS=()
RESULT="" DETAIL="" STEP_END=0 DEADLINE=0 T_START=0 SUMMARY_DONE=0

result() { RESULT=$1; DETAIL=$2; }

# The result of a step from its command's exit status: rc [pass detail] [fail detail] [timeout detail]
result_by_rc() {
    case "$1" in
    124 | 137) result TIMEOUT "$4" ;;
    0) result PASS "$2" ;;
    *) result FAIL "$3" ;;
    esac
}

record() { # name result seconds budget detail log
    NAMES+=("$1"); RESULTS+=("$2"); TIMES+=("$3"); BUDGETS+=("$4"); DETAILS+=("$5"); LOGS+=("$6")
    printf 'gpu-check: %-18s %-7s %4s s  %s\n' "$1" "$2" "$3" "$5"
}

# A command bounded by the current step's deadline.
tmo() {
    local t=$((STEP_END - SECONDS))
    [ "$t" -ge 1 ] || t=1
    timeout -k 5 "$t" "$@"
}

# The prefix of our binaries' commands: `env`, plus the CUDA libraries' folder when the loader
# does not find them by itself (set by step_env; never exported: torch has its own).
LIBENV=(env)
set_cuda_libs() {
    EMBER_LD=$1
    LIBENV=(env)
    BIN="$CARRY/bin" # what the Python scripts start
    [ -n "$EMBER_LD" ] || return 0
    LIBENV+=("LD_LIBRARY_PATH=$EMBER_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    BIN="$WORK/bin"
    mkdir -p "$BIN"
    local b
    for b in ember ember_bench; do
        printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
            "$EMBER_LD" "$CARRY/bin/$b" >"$BIN/$b"
        chmod +x "$BIN/$b"
    done
}

cuda_lib_dirs() { # candidate folders of libcudart / libcublasLt on the GPU machine
    local nvcc_dir
    nvcc_dir=$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")
    for d in "$nvcc_dir/../lib64" "$nvcc_dir/../lib" "$nvcc_dir/../targets/x86_64-linux/lib" \
             /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [ -d "$d" ] && (cd "$d" && pwd)
    done
    "$PY" -c 'import glob, os, site
for s in site.getsitepackages():
    for d in sorted(glob.glob(os.path.join(s, "nvidia", "*", "lib"))):
        print(d)' 2>/dev/null
}

step_env() {
    local log=$1 gpu
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "host: $(uname -n) $(uname -r) $(uname -m)"
        echo "tree: $ROOT"
        sed 's/^/carry /' "$CARRY/manifest.txt" | head -n 3
        if [ "$HAVE_GPU" = 1 ]; then
            tmo nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,temperature.gpu,power.draw,power.limit --format=csv
            tmo nvidia-smi
        else
            echo "nvidia-smi: no GPU ($(command -v nvidia-smi || echo 'not found'))"
        fi
        for t in nvcc compute-sanitizer ncu cuobjdump cmake; do
            printf '%s: ' "$t"
            if command -v "$t" >/dev/null; then tmo "$t" --version 2>&1 | grep -m1 -iE 'release|version' ; else echo "not found"; fi
        done
        echo "glibc: $(getconf GNU_LIBC_VERSION 2>&1)"
        tmo "$PY" -c 'import sys; print("python", sys.version.split()[0])
for m in ("torch", "transformers", "sentence_transformers", "numpy", "safetensors"):
    try:
        mod = __import__(m)
        print(m, getattr(mod, "__version__", "?"))
    except Exception as e:
        print(m, "absent:", type(e).__name__)
try:
    import torch
    print("torch cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception:
    pass' 2>&1
    } >>"$log" 2>&1

    # Do the carried binaries load here, with the carried libraries?
    local bad=() f out missing dirs="" d
    set_cuda_libs ""
    out=$(for f in "$CARRY"/bin/* "$CARRY"/lib/*.so*; do ldd "$f" 2>&1; done)
    if echo "$out" | grep -qE 'lib(cudart|cublas|cublasLt)\.so[.0-9]* => not found'; then
        for d in $(cuda_lib_dirs); do
            if [ -e "$d/libcudart.so.13" ] || [ -e "$d/libcublasLt.so.13" ]; then dirs="$dirs${dirs:+:}$d"; fi
        done
        set_cuda_libs "$dirs"
        out=$(for f in "$CARRY"/bin/* "$CARRY"/lib/*.so*; do "${LIBENV[@]}" ldd "$f" 2>&1; done)
    fi
    {
        echo "== ldd of the carried files${EMBER_LD:+ (LD_LIBRARY_PATH=$EMBER_LD for the CUDA libraries)}"
        echo "$out"
    } >>"$log"
    missing=$(echo "$out" | grep -E 'not found' | sort -u)
    [ -z "$missing" ] || bad+=("$(echo "$missing" | head -n 3 | tr -s ' \t' ' ' | tr '\n' ';')")
    if echo "$missing" | grep -q "GLIBC_"; then
        bad+=("host glibc $(getconf GNU_LIBC_VERSION 2>/dev/null) is older than the carried binaries need ($(sed -n 's/^needs: //p' "$CARRY/manifest.txt")): build them on an older Debian")
    fi
    local lib="$(cd "$CARRY/lib" && pwd -P)" p
    for f in $(sed -n 's/^  \(lib[^ ]*\.so[^ ]*\) .*/\1/p' "$CARRY/deps.txt" 2>/dev/null); do
        for p in $(echo "$out" | sed -n "s/^[[:space:]]*$f => \([^ ]*\) .*/\1/p" | sort -u); do
            [ "$(cd "$(dirname "$p")" && pwd -P)" = "$lib" ] || bad+=("$f resolves to $p, not into .gpu-carry/lib")
        done
    done
    if [ "$HAVE_GPU" = 1 ]; then
        gpu=$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -n1)
        GPU_LINE="$gpu; CUDA $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
    else
        GPU_LINE="no GPU"
    fi
    if [ ${#bad[@]} -gt 0 ]; then
        result FAIL "the carried binaries do not load: ${bad[*]}"
    else
        result PASS "$GPU_LINE; $(grep -m1 '^torch ' "$log" || echo 'torch absent'); binaries load with $(grep -c '^  lib' "$CARRY/deps.txt" 2>/dev/null || echo 0) carried libraries"
    fi
}

# A gtest filter for the tests named in a file; TEST_P instances share their class, so they
# are selected as Prefix/Suite.Name/* (a filter of every name could pass the 128 KiB limit
# of one argument).
gtest_filter_of() {
    sed 's#^\([^/]*/[^.]*\.[^/]*\)/.*#\1/*#' "$1" | awk '!seen[$0]++' | paste -sd:
}

step_tests() {
    local log=$1 list="$WORK/gpu-tests.txt" allow="$WORK/skip-allowed.txt" filter n rc selected
    # The binary's own list of its GPU tests (REQUIRE_CUDA_DEVICE marks them; tests/cuda_test.h).
    if ! EMBER_GPU_TEST_LIST="$list" tmo "${LIBENV[@]}" "$CARRY/bin/ember_tests" --gtest_filter='GpuTestList.*' \
            --gtest_color=no >"$WORK/gpu-test-list.log" 2>&1; then
        cat "$WORK/gpu-test-list.log" >>"$log"
        result FAIL "GpuTestList failed: the binary cannot list its GPU tests"
        return
    fi
    n=$(grep -c . "$list")
    # ... each of which --gtest_list_tests lists.
    tmo "${LIBENV[@]}" "$CARRY/bin/ember_tests" --gtest_list_tests 2>&1 |
        awk '/^[^ ]/ {suite = $1} /^  / {print suite $1}' | sort >"$WORK/all-tests.txt"
    local unlisted
    unlisted=$(sort "$list" | comm -23 - "$WORK/all-tests.txt" | head -n 3 | paste -sd' ')
    filter=$(gtest_filter_of "$list")
    echo "$SKIP_ALLOWED" | grep . >"$allow"
    {
        echo "== $n GPU tests (the binary's GpuTestList); skips allowed on a GPU machine:"
        cat "$allow"
        echo "== ember_tests --gtest_filter=$filter"
    } >>"$log"
    tmo "${LIBENV[@]}" "$CARRY/bin/ember_tests" --gtest_filter="$filter" --gtest_color=no >>"$log" 2>&1
    rc=$?
    selected=$(sed -n 's/^\[==========\] Running \([0-9]*\) tests\{0,1\} from.*/\1/p' "$log" | head -n1)
    # A test that crashes the process (a CUDA error aborts) must not hide the ones after it:
    # go on with those not started, a few times, while the step has time.
    local rest resumes=0
    while [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ] && [ $resumes -lt 5 ] &&
        [ $((STEP_END - SECONDS)) -gt 10 ]; do
        rest=$("$PY" "$UTIL" gtest-remaining --expected "$list" --log "$log" | paste -sd:)
        [ -n "$rest" ] || break
        resumes=$((resumes + 1))
        echo "== the process ended early (exit $rc): again with the $(echo "$rest" | tr ':' '\n' | grep -c .) tests not started" >>"$log"
        tmo "${LIBENV[@]}" "$CARRY/bin/ember_tests" --gtest_filter="$rest" --gtest_color=no >>"$log" 2>&1
        rc=$?
    done
    # Each pattern of the sanitizer step's filter still selects GPU tests (names change).
    local p k san=0 san_bad=""
    for p in ${SAN_TESTS//:/ }; do
        k=$(tmo "${LIBENV[@]}" "$CARRY/bin/ember_tests" --gtest_list_tests --gtest_filter="$p" | grep -c '^  ')
        san=$((san + k))
        [ "$k" -gt 0 ] || san_bad="$san_bad $p"
    done
    local verdict vrc
    verdict=$("$PY" "$UTIL" gtest-verdict --expected "$list" --log "$log" --allow "$allow" --gpu "$HAVE_GPU")
    vrc=$?
    printf '== verdict\n%s\n' "$verdict" >>"$log"
    DETAIL=$(echo "$verdict" | tail -n1)
    # Without the time box, the rest of the suite too (on the CPU; CI runs it as well).
    local cpu_rc=0
    if [ "$RUN_SECONDS" = 0 ]; then
        echo "== the other tests: ember_tests --gtest_filter=-(the GPU tests)" >>"$log"
        tmo "${LIBENV[@]}" "$CARRY/bin/ember_tests" --gtest_filter="-$filter" --gtest_brief=1 --gtest_color=no >>"$log" 2>&1
        cpu_rc=$?
        DETAIL="$DETAIL; the other tests $([ $cpu_rc = 0 ] && echo passed || echo "FAILED (exit $cpu_rc)")"
    fi
    [ $resumes -eq 0 ] || DETAIL="$DETAIL; the process was restarted $resumes times after a crash"
    if [ -n "$unlisted" ]; then
        result FAIL "GpuTestList names tests that --gtest_list_tests does not: $unlisted"
    elif [ -n "$san_bad" ]; then
        result FAIL "the sanitizer filter's patterns$san_bad select no test; $DETAIL"
    elif [ $cpu_rc -ne 0 ]; then
        result FAIL "$DETAIL"
    elif [ "${selected:-0}" != "$n" ]; then
        result FAIL "the filter selected ${selected:-no} tests, the binary has $n GPU tests; $DETAIL"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        result TIMEOUT "stopped at the step's limit; $DETAIL"
    elif [ $vrc -eq 3 ]; then
        result NO-GPU "$DETAIL; the sanitizer step's filter selects $san"
    elif [ $vrc -eq 0 ] && [ $rc -eq 0 ]; then
        result PASS "$DETAIL"
    else
        result FAIL "$DETAIL (exit $rc)"
    fi
}

step_hf() {
    local log=$1 rc1 rc2 d1 d2
    if [ "$HAVE_GPU" != 1 ]; then
        # The seed case's plumbing (ctypes, the shim, libember) on the CPU backend.
        tmo "$PY" "$ROOT/tools/ids_vs_embeds.py" --lib "$CARRY/lib/libember_ive.so" \
            --model "$ROOT/tests/data/models/tiny-odd" --device cpu >>"$log" 2>&1
        rc1=$?
        d1=$(tail -n1 "$log")
        if [ $rc1 -eq 0 ]; then result NO-GPU "no GPU; on the CPU backend $d1"; else result FAIL "ids_vs_embeds on the CPU backend: $d1"; fi
        return
    fi
    tmo "$PY" "$ROOT/tools/hf_compare.py" --ember "$BIN/ember" --device cuda --workdir "$WORK/hf" \
        --log "$WORK/hf-detail.log" --json "$WORK/hf.json" >>"$log" 2>&1
    rc1=$?
    d1=$(grep '^hf_compare:' "$log" | tail -n1)
    [ $rc1 -eq 0 ] || d1="hf_compare failed (exit $rc1): $(tail -n1 "$log")"
    echo >>"$log"
    if [ -f "$WORK/hf/base-hd64/model.safetensors" ]; then
        EMBER_CUDA_LIB_DIRS=$EMBER_LD tmo "$PY" "$ROOT/tools/ids_vs_embeds.py" --lib "$CARRY/lib/libember_ive.so" \
            --model "$WORK/hf/base-hd64" --device cuda >>"$log" 2>&1
        rc2=$?
        d2=$(grep '^ids_vs_embeds:' "$log" | tail -n1)
        [ $rc2 -eq 0 ] || d2="ids_vs_embeds failed (exit $rc2): $(tail -n1 "$log")"
    else
        rc2=1 d2="ids_vs_embeds not run: hf_compare wrote no base-hd64 model"
    fi
    if [ $rc1 -eq 124 ] || [ $rc2 -eq 124 ]; then
        result TIMEOUT "${d1:-hf_compare stopped}; ${d2:-}"
    elif [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]; then
        result PASS "$d1; $d2"
    else
        result FAIL "${d1:-hf_compare failed (exit $rc1)}; ${d2:-ids_vs_embeds failed (exit $rc2)}"
    fi
}

# The Python package (python/) from the tree, over the carried libember: no pip, no build. torch
# is imported first, so that libember's CUDA libraries are the ones torch loaded. On a GPU every
# skip is a failure but the real checkpoint's (it cannot travel); without one the CPU tests run
# where pytest and numpy are installed.
step_python() {
    local log=$1 rc lib line skips bad
    lib=$(ls "$CARRY"/lib/libember.so* 2>/dev/null | head -n1)
    if ! "$PY" -c 'import pytest, numpy' >>"$log" 2>&1; then
        if [ "$HAVE_GPU" = 1 ]; then result FAIL "$PY has no pytest or numpy"; else result NO-GPU "no GPU; $PY has no pytest/numpy, the suite was not run"; fi
        return
    fi
    EMBER_LIBRARY="$lib" PYTHONDONTWRITEBYTECODE=1 tmo "$PY" -c 'import sys
try:
    import torch  # noqa: F401  (its CUDA libraries first)
except Exception:
    pass
import pytest
sys.exit(pytest.main(sys.argv[1:]))' "$ROOT/python/tests" -q -rs -p no:cacheprovider >>"$log" 2>&1
    rc=$?
    line=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|^=+ .*(passed|failed|error)' "$log" | tail -n1 | tr -d '=' | sed 's/^ *//')
    skips=$(grep -E '^SKIPPED \[' "$log" || true)
    # allowed: the checkpoint that cannot travel; the installed package's metadata (not installed here)
    bad=$(echo "$skips" | grep -v -e 'all-MiniLM-L6-v2' -e 'metadata exists only when it is installed' |
        grep -c 'SKIPPED' || true)
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        result TIMEOUT "stopped at the step's limit; ${line:-no summary}"
    elif [ $rc -ne 0 ]; then
        result FAIL "pytest exit $rc: ${line:-see python.log}"
    elif [ "$HAVE_GPU" = 1 ] && [ "$bad" -gt 0 ]; then
        result FAIL "$line; $bad skipped on a GPU machine (see python.log)"
    elif [ "$HAVE_GPU" = 1 ]; then
        result PASS "$line"
    else
        result NO-GPU "no GPU; on the CPU: $line"
    fi
}

step_bench() {
    local log=$1 rc cases=base-b32-s128,base-b1-s128,base-b32-s512,base-b16-s512-padded,base-b16-s512-uniform
    local peers=ember,hf-sdpa iters=(--warmup 10 --iters 50) compile=none
    if [ "$HAVE_GPU" != 1 ]; then
        result NO-GPU "no GPU"
        return
    fi
    if [ "$RUN_SECONDS" = 0 ]; then # the plain form: every case and peer
        cases=all peers=ember,hf-eager-f32,hf-sdpa,hf-compile iters=() compile=default
    fi
    tmo "$PY" "$ROOT/benchmarks/compare.py" --bench "$BIN/ember_bench" --cases "$cases" --peers "$peers" \
        --compile-mode "$compile" "${iters[@]}" --workdir "$WORK/bench" --out "$WORK/bench.md" \
        >"$WORK/bench-console.log" 2>&1
    rc=$?
    [ -f "$WORK/bench.md" ] && cat "$WORK/bench.md" >>"$log"
    # torch.compile of the B32/S128 case only when the step has time for its compilation.
    if [ $rc -eq 0 ] && [ "$RUN_SECONDS" != 0 ] && [ $((STEP_END - SECONDS)) -ge 90 ]; then
        tmo "$PY" "$ROOT/benchmarks/compare.py" --bench "$BIN/ember_bench" --cases base-b32-s128 \
            --peers ember,hf-compile "${iters[@]}" --workdir "$WORK/bench" --out "$WORK/compile.md" \
            >>"$WORK/bench-console.log" 2>&1 &&
            { printf '\n# torch.compile (a second run, same machine)\n\n'; cat "$WORK/compile.md"; } >>"$log"
    elif [ $rc -eq 0 ] && [ "$RUN_SECONDS" != 0 ]; then
        printf '\n(torch.compile not timed: %s s left in the step, 90 needed)\n' $((STEP_END - SECONDS)) >>"$log"
    fi
    { printf '\n# compare.py console\n\n```\n'; cat "$WORK/bench-console.log"; printf '```\n'; } >>"$log"
    local short
    short=$("$PY" - "$WORK/bench.json" <<'EOF' 2>/dev/null
import json, sys
res = json.load(open(sys.argv[1]))["results"]
out = []
for case, peers in res.items():
    e = peers.get("ember", {}).get("time", {}).get("median")
    h = [p for k, p in peers.items() if k.startswith("hf-sdpa") and "time" in p]
    s = "%s ember %s ms" % (case.replace("base-", ""), "%.3f" % e if e else "failed")
    if e and h:
        s += " (sdpa/ember %.2fx)" % (h[0]["time"]["median"] / e)
    out.append(s)
print("; ".join(out))
EOF
)
    result_by_rc $rc "${short:-see bench.md}" "compare.py exit $rc; ${short:-see bench.md}" \
        "stopped at the step's limit; ${short:-no case finished}"
}

step_tuning() {
    local log=$1 rc quick=1 n
    if [ "$HAVE_GPU" != 1 ]; then
        result NO-GPU "no GPU"
        return
    fi
    [ "$RUN_SECONDS" = 0 ] && quick=0 # the plain form: every shape of the script
    TUNING_QUICK=$quick tmo "${LIBENV[@]}" bash "$ROOT/tools/gpu-tuning.sh" "$CARRY/bin" "$WORK/tuning" \
        >>"$log" 2>&1
    rc=$?
    n=$(grep -cE '^  [a-z_]+ +(f16|bf16|f32) .*->' "$log") # the summary's lines
    for f in "$WORK"/tuning/tuning-*.log "$WORK"/tuning/tuning-*.txt; do
        [ -f "$f" ] && { printf '\n# %s\n\n' "$(basename "$f")"; cat "$f"; } >>"$log"
    done
    result_by_rc $rc "$n choices, each candidate's time in tuning.log" \
        "gpu-tuning.sh exit $rc; $n choices printed" "stopped at the step's limit; $n choices printed"
}

# One compute-sanitizer run of TARGET (forward | attention) under TOOL, limited to LIMIT s;
# prints "VERDICT detail" (tools/gpu_check_util.py sanitizer-verdict) and appends to LOG.
sanitize_one() { # cs tool target limit log
    local cs=$1 tool=$2 target=$3 limit=$4 log=$5 rc ran=0 extra=() saved=$STEP_END v t=$SECONDS
    local filter=$SAN_TESTS
    # Without the time box, memcheck covers every GPU test.
    [ "$RUN_SECONDS" = 0 ] && [ "$tool" = memcheck ] && filter=$(gtest_filter_of "$WORK/gpu-tests.txt")
    [ "$tool" = memcheck ] && extra=(--leak-check full)
    [ "$tool" = racecheck ] && extra=(--racecheck-report all)
    echo "== $tool $target (limit $limit s)" >>"$log"
    rm -f "$WORK/san-out.safetensors"
    STEP_END=$((SECONDS + limit < STEP_END ? SECONDS + limit : STEP_END))
    if [ "$target" = forward ]; then
        tmo "${LIBENV[@]}" "$cs" --tool "$tool" "${extra[@]}" --error-exitcode 9 "$CARRY/bin/ember" forward \
            --model "$ROOT/tests/data/models/tiny-odd" --inputs "$ROOT/tests/data/goldens/tiny-odd/right_padding.safetensors" \
            --output "$WORK/san-out.safetensors" --backend cuda --dtype f16 --pooler --hidden-states >"$WORK/san.log" 2>&1
    else
        tmo "${LIBENV[@]}" "$cs" --tool "$tool" "${extra[@]}" --error-exitcode 9 "$CARRY/bin/ember_tests" \
            --gtest_filter="$filter" --gtest_brief=1 --gtest_color=no >"$WORK/san.log" 2>&1
    fi
    rc=$?
    STEP_END=$saved
    cat "$WORK/san.log" >>"$log"
    # Did the program itself run, not only the tool? Its output file / gtest's closing line.
    if [ "$target" = forward ]; then
        [ -s "$WORK/san-out.safetensors" ] && ran=1
    else
        grep -q '^\[  PASSED  \] [1-9]' "$WORK/san.log" && ran=1  # not all skipped
    fi
    v=$("$PY" "$UTIL" sanitizer-verdict "$WORK/san.log" $rc $ran)
    echo "== $tool $target: $v ($((SECONDS - t)) s)" >>"$log"
    echo "$v"
}

step_sanitize() {
    local log=$1 cs tool target v runs_left=8 tv r any=""
    if [ "$HAVE_GPU" != 1 ]; then
        result NO-GPU "no GPU (compute-sanitizer $(command -v compute-sanitizer >/dev/null && echo found || echo 'not found'))"
        return
    fi
    cs=$(command -v compute-sanitizer || ls "$(dirname "$(command -v nvcc)")"/compute-sanitizer \
        /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n1)
    if [ -z "$cs" ]; then
        result SKIP "compute-sanitizer not found"
        return
    fi
    for tool in memcheck racecheck initcheck synccheck; do
        tv=()
        for target in forward attention; do
            v=$(sanitize_one "$cs" "$tool" "$target" $(((STEP_END - SECONDS) / runs_left)) "$log")
            runs_left=$((runs_left - 1))
            tv+=("$target ${v}")
            # The first run is the probe: a tool that cannot run a CUDA program here is a SKIP
            # of every tool, with its message (not a FAIL).
            if [ "$tool$target" = memcheckforward ] && [ "${v%% *}" = SKIP ]; then
                result SKIP "compute-sanitizer cannot run here: ${v#SKIP }"
                return
            fi
        done
        r=PASS
        case "${tv[*]}" in *FAIL*) r=FAIL ;; *TIMEOUT*) r=TIMEOUT ;; *SKIP*) r=SKIP ;; esac
        any="$any $r"
        record "sanitize/$tool" "$r" "" "" "${tv[0]}; ${tv[1]}" "$(basename "$log")"
    done
    case "$any" in
    *FAIL*) result FAIL "see the sanitize/ rows" ;;
    *TIMEOUT*) result TIMEOUT "a run reached its limit; see the sanitize/ rows" ;;
    *SKIP*) result PASS "no errors; a tool could not run a target (see the sanitize/ rows)" ;;
    *) result PASS "no errors: 4 tools on a small forward (f16) and the attention tests" ;;
    esac
}

write_summary() {
    [ "$SUMMARY_DONE" = 1 ] && return
    SUMMARY_DONE=1
    local total=$((SECONDS - T_START)) files
    files=$(find "$OUT" -type f | grep -vc '/summary\.md$')
    {
        echo "# ember GPU check"
        echo
        echo "- GPU: ${GPU_LINE:-unknown}"
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); tree $ROOT"
        sed -n 's/^commit: /- carried build of commit /p; s/^built: /- carried build made /p' "$CARRY/manifest.txt" 2>/dev/null
        if [ "$RUN_SECONDS" = 0 ]; then echo "- mode: plain (no time box)"; else echo "- mode: time box $RUN_SECONDS s; ran $total s"; fi
        echo
        echo "| step | result | seconds | budget s | details | file |"
        echo "|---|---|---:|---:|---|---|"
        local i
        for i in "${!NAMES[@]}"; do
            echo "| ${NAMES[$i]} | ${RESULTS[$i]} | ${TIMES[$i]} | ${BUDGETS[$i]} | ${DETAILS[$i]//|/\\|} | ${LOGS[$i]} |"
        done
        [ "$files" -le 7 ] || echo "**$((files + 1)) files under OUT: the GPU machine sends back 8 at most**"
    } >"$OUT/summary.md"
    rm -rf "$WORK"
    echo
    cat "$OUT/summary.md"
}

# The files prepare packed: into bin/ and lib/ where they were (executable), each once.
unpack_carry() {
    local packed f dst t0=$SECONDS n=0
    [ -d "$CARRY/packed" ] || return 0
    for packed in $(cd "$CARRY/packed" && find . -type f -name '*.xz' | sort); do
        packed=${packed#./} dst="$CARRY/${packed%.xz}"
        [ -e "$dst" ] && continue
        mkdir -p "$(dirname "$dst")" || return 1
        if command -v xz >/dev/null; then
            xz -dc "$CARRY/packed/$packed" >"$dst.part" || return 1
        else
            "$PY" "$UTIL" xz -d "$CARRY/packed/$packed" "$dst.part" || return 1
        fi
        chmod 755 "$dst.part" && mv "$dst.part" "$dst" || return 1
        n=$((n + 1))
    done
    [ $n = 0 ] || echo "gpu-check run: unpacked $n files of .gpu-carry/packed in $((SECONDS - t0)) s"
}

run() {
    OUT=${1:-}
    [ -n "$OUT" ] || die "run needs an output folder: bash tools/gpu-check.sh run OUT"
    [ -f "$CARRY/manifest.txt" ] || die "no $CARRY/manifest.txt: run 'bash tools/gpu-check.sh prepare' on the CPU machine and carry .gpu-carry along"
    unpack_carry || die "cannot unpack $CARRY/packed"
    case "$OUT" in /*) ;; *) OUT="$CALLER/$OUT" ;; esac
    mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || die "cannot create $OUT"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ember-gpucheck.XXXXXX") || die "no temporary folder"
    T_START=$SECONDS
    HAVE_GPU=0
    nvidia-smi -L 2>/dev/null | grep -q '^GPU ' && HAVE_GPU=1
    set_cuda_libs ""
    export EMBER_SOURCE_DIR="$ROOT" EMBER_CLI="$CARRY/bin/ember" PYTHONUNBUFFERED=1
    trap write_summary EXIT
    trap 'echo "gpu-check: stopped (time box or signal)" >&2; exit 1' TERM INT

    local total_budget=0 line name budget file what
    while read -r name budget file what; do
        [ -n "$name" ] && total_budget=$((total_budget + budget))
    done <<<"$STEPS"
    if [ "$RUN_SECONDS" = 0 ]; then
        echo "gpu-check run: no time box (plain form): each step may take an hour"
    else
        DEADLINE=$((T_START + RUN_SECONDS - 10)) # 10 s for the summary
        [ "$total_budget" -le $((RUN_SECONDS - 10)) ] || die "the step budgets ($total_budget s) exceed the time box"
        (trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep "$RUN_SECONDS" & sp=$!; wait $sp && kill -TERM $$ 2>/dev/null) &
        WATCHDOG=$!
        echo "gpu-check run: $RUN_SECONDS s in all ($((RUN_SECONDS - 10)) for the steps, 10 for the summary); GPU: $([ $HAVE_GPU = 1 ] && echo yes || echo 'NO (GPU-only steps say NO-GPU)')"
    fi
    printf '  %-10s %8s  %-15s %s\n' step budget file what
    while read -r name budget file what; do
        [ -n "$name" ] && printf '  %-10s %6s s  %-15s %s\n' "$name" "$budget" "$file" "$what"
    done <<<"$STEPS"

    local rest allowed t0
    while read -r name budget file what; do
        [ -n "$name" ] || continue
        rest=0
        local seen=0 n2 b2 f2 w2
        while read -r n2 b2 f2 w2; do
            [ -n "$n2" ] || continue
            [ $seen = 1 ] && rest=$((rest + b2))
            [ "$n2" = "$name" ] && seen=1
        done <<<"$STEPS"
        if [ "$RUN_SECONDS" = 0 ]; then
            allowed=3600 # still bounded: a hang must not hold the runner for ever
        else
            allowed=$((DEADLINE - SECONDS - rest)) # the budget plus what earlier steps left
            [ "$allowed" -ge "$budget" ] || allowed=$((budget < DEADLINE - SECONDS ? budget : DEADLINE - SECONDS))
        fi
        if [ "$allowed" -lt 5 ]; then
            record "$name" SKIP 0 "$budget" "no time left in the time box" "-"
            continue
        fi
        echo "== gpu-check: step $name: budget $budget s, allowed $allowed s$([ "$RUN_SECONDS" != 0 ] && echo ", $((DEADLINE - SECONDS)) s left in the box")"
        STEP_END=$((SECONDS + allowed))
        RESULT=FAIL DETAIL="the step did not report"
        t0=$SECONDS
        : >>"$OUT/$file"
        "step_$name" "$OUT/$file" </dev/null # the steps read nothing (STEPS is this loop's stdin)
        [ -s "$OUT/$file" ] || echo "$name: $RESULT: $DETAIL" >"$OUT/$file"
        record "$name" "$RESULT" $((SECONDS - t0)) "$budget" "$DETAIL" "$file"
    done <<<"$STEPS"
    [ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null
    write_summary
    local r
    for r in "${RESULTS[@]}"; do
        case "$r" in FAIL | TIMEOUT) return 1 ;; esac
    done
    return 0
}

# ==== rehearse (the CPU machine, CI) ============================================================

rehearse() {
    local t0=$SECONDS out=${1:-} dst rc
    [ -f "$CARRY/manifest.txt" ] || die "no .gpu-carry: run 'bash tools/gpu-check.sh prepare' first"
    dst=$(mktemp -d "${TMPDIR:-/tmp}/ember-rehearse.XXXXXX") || die "no temporary folder"
    mkdir -p "$dst/tree" "$dst/stubs"
    # What the device tool sends: tracked and untracked-not-ignored files, plus the carry.
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
        (cd "$ROOT" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
        tar -C "$ROOT" --null -T - -cf - | tar -C "$dst/tree" -xf - || die "cannot copy the tree"
    cp -a "$CARRY" "$dst/tree/.gpu-carry" || die "cannot copy .gpu-carry"
    # The GPU machine has no dpkg or apt, and the run must not build: stubs that record a call.
    for t in dpkg dpkg-deb apt apt-get gcc g++ cc c++ make ninja; do
        printf '#!/bin/sh\necho "rehearse: the run called %s $*" >>"%s/stub-calls"\nexit 127\n' "$t" "$dst" >"$dst/stubs/$t"
        chmod +x "$dst/stubs/$t"
    done
    cat >"$dst/stubs/cmake" <<EOF
#!/bin/sh
case "\$1" in --version) exec $(command -v cmake) "\$@" ;; esac
echo "rehearse: the run called cmake \$*" >>"$dst/stub-calls"
exit 127
EOF
    chmod +x "$dst/stubs/cmake"
    out=${out:-$dst/out}
    case "$out" in /*) ;; *) out="$CALLER/$out" ;; esac
    echo "rehearse: the tree and .gpu-carry copied to $dst/tree ($(du -sm "$dst/tree" | cut -f1) MiB); running it there"
    (cd / && env -u EMBER_SOURCE_DIR -u EMBER_CLI -u GPU_CARRY PATH="$dst/stubs:$PATH" \
        bash "$dst/tree/tools/gpu-check.sh" run "$out")
    rc=$?
    local problems=()
    [ $rc -eq 0 ] || problems+=("the run exited $rc")
    [ -f "$out/summary.md" ] || problems+=("no summary.md")
    [ "$(find "$out" -type f | wc -l)" -le 8 ] || problems+=("more than 8 files under OUT")
    [ -e "$dst/stub-calls" ] && problems+=("$(tr '\n' ';' <"$dst/stub-calls")")
    grep -E '^\| [a-z/]+ \| [A-Z]' "$out/summary.md" | grep -vE '^\| [a-z/]+ \| (PASS|NO-GPU) \|' |
        sed 's/^/  not PASS or NO-GPU: /' | grep . && problems+=("a step neither passed nor said NO-GPU")
    "$PY" "$UTIL" selftest >/dev/null || problems+=("gpu_check_util selftest failed")
    if [ ${#problems[@]} -gt 0 ]; then
        echo "rehearse: FAILED: ${problems[*]} (tree kept in $dst)"
        return 1
    fi
    rm -rf "$dst/tree" "$dst/stubs"
    echo "rehearse: passed in $((SECONDS - t0)) s (summary in $out/summary.md)"
}

# ==== the plain form (a GPU CI runner with apt and internet) =====================================

plain() {
    local out=$1 cc arch=native
    case "$out" in /*) ;; *) out="$CALLER/$out" ;; esac
    bash "$ROOT/tools/setup.sh" || die "tools/setup.sh failed"
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' ')
    [ -n "$cc" ] || die "no GPU found (nvidia-smi); use 'prepare' + 'rehearse' on a machine without one"
    [ "$cc" = 9.0 ] && arch=90a-real
    GPU_CHECK_ARCH=$arch prepare || exit 2
    RUN_SECONDS=0 run "$out"
}

case "${1:-}" in
prepare) prepare ;;
run) shift; run "$@" ;;
rehearse) shift; rehearse "$@" ;;
"" | -h | --help) usage; [ -n "${1:-}" ] ;;
-*) usage >&2; exit 2 ;;
*) plain "$1" ;;
esac
