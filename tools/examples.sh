#!/usr/bin/env bash
# Install ember from a build folder into a temporary prefix, then build and run every example
# against the installed tree (not the build tree), linked with libember.so and with libember.a:
#   - examples/ with CMake (find_package(ember) in each example's CMakeLists.txt);
#   - examples/embed with its Makefile (pkg-config), in a folder outside the source tree;
#   - the installed libember.so exports only ember.h's functions (tools/check-exports.sh).
# The examples run on the CPU. embed's embeddings must be the installed CLI's (`ember embed`)
# within kCpuFastAbs (tests/tolerances.h), whichever way it was built and linked: both run the
# fast CPU backend, whose rows depend on their place in the batch (the CLI sorts the texts by
# length and removes padding, embed runs one padded batch); search must run (and with the real
# checkpoint rank the paraphrase first). perturb (CUDA) is built where nvcc is, and runs to the
# end only on a GPU: elsewhere it must say so and exit 77, which is reported as "not run".
# Uses all-MiniLM-L6-v2 from .pydeps/ when fetched, else the tiny test model with a vocab.txt cut
# to its vocabulary (the texts then become mostly [UNK]: a smoke test, said so).
#   bash tools/examples.sh [BUILD_DIR]          (default build/, already built)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD="${1:-build}"
start=$SECONDS
W=$(mktemp -d "${TMPDIR:-/tmp}/ember-examples.XXXXXX")
trap 'rm -rf "$W"' EXIT
say() { echo "examples: $*"; }
die() { echo "examples: FAILED: $*" >&2; exit 1; }

P="$W/prefix"
cmake --install "$BUILD" --prefix "$P" >/dev/null
pc=$(find "$P" -name ember.pc)
[ -n "$pc" ] || die "no ember.pc under $P"
LIBDIR=$(cd "$(dirname "$pc")/.." && pwd)
export PKG_CONFIG_PATH="$(dirname "$pc")"
bash tools/check-exports.sh "$LIBDIR/libember.so" include/ember.h
[ -f "$LIBDIR/libember.a" ] || die "libember.a not installed"
say "pkg-config --cflags --libs ember: $(pkg-config --cflags --libs ember)"
say "pkg-config --static --libs ember: $(pkg-config --static --libs ember)"

MODEL="$ROOT/.pydeps/all-MiniLM-L6-v2"
if [ -f "$MODEL/vocab.txt" ]; then
    say "model: all-MiniLM-L6-v2"
else
    MODEL="$W/tiny"
    mkdir "$MODEL"
    cp tests/data/models/tiny-odd/config.json tests/data/models/tiny-odd/model.safetensors "$MODEL/"
    v=$(sed -n 's/.*"vocab_size": *\([0-9]*\).*/\1/p' "$MODEL/config.json")
    head -n "$v" tests/data/tokenizer/vocab.txt > "$MODEL/vocab.txt"
    say "model: tests/data/models/tiny-odd with the first $v lines of a BERT vocab.txt" \
        "(all-MiniLM-L6-v2 not fetched; texts are mostly [UNK]: a smoke test)"
fi
TEXTS=("A man is eating food." "A man is eating a piece of bread." "A monkey is playing drums.")
"$P/bin/ember" embed --model "$MODEL" --format text "${TEXTS[@]}" > "$W/cli.txt"

needs_libember() { readelf -d "$1" | grep -q 'NEEDED.*libember\.so'; }
check_link() {  # BINARY shared|static
    if [ "$2" = shared ]; then
        needs_libember "$1" || die "$1 does not load libember.so"
    else
        ! needs_libember "$1" || die "$1 loads libember.so although linked with libember.a"
    fi
}
TOL=$(sed -n 's/^constexpr double kCpuFastAbs = \(.*\);.*/\1/p' tests/tolerances.h)
[ -n "$TOL" ] || die "kCpuFastAbs not found in tests/tolerances.h"
check_embed() {  # BINARY LABEL; sets EMBED_DIFF to the largest |embed - ember embed|
    "$1" "$MODEL" "${TEXTS[@]}" > "$W/embed.txt" || die "$2: embed failed"
    EMBED_DIFF=$(python3 - "$W/embed.txt" "$W/cli.txt" "$TOL" <<'PY'
import sys
a, b = ([line.split() for line in open(f)] for f in sys.argv[1:3])
tol, worst = float(sys.argv[3]), 0.0
if [len(r) for r in a] != [len(r) for r in b]:
    sys.exit("%d rows of %s numbers, ember embed: %d rows of %s"
             % (len(a), sorted({len(r) for r in a}), len(b), sorted({len(r) for r in b})))
for i, (ra, rb) in enumerate(zip(a, b)):
    for j, (x, y) in enumerate(zip(ra, rb)):
        d = abs(float(x) - float(y))
        if not d <= tol:  # NaN fails too
            sys.exit("row %d, number %d: %s vs %s (|diff| %g > %g)" % (i, j, x, y, d, tol))
        worst = max(worst, d)
print("%.3g" % worst)
PY
) || die "$2: embed's embeddings differ from ember embed's by more than $TOL"
}

for link in shared static; do
    static=OFF
    [ $link = static ] && static=ON
    B="$W/cmake-$link"
    cmake -S examples -B "$B" -G Ninja -DCMAKE_PREFIX_PATH="$P" -DEMBER_USE_STATIC_LIBS=$static \
        -DCMAKE_CUDA_ARCHITECTURES=80 > "$W/configure.log" || { cat "$W/configure.log"; die "configuring examples ($link)"; }
    cmake --build "$B" > "$W/build.log" || { cat "$W/build.log"; die "building examples ($link)"; }
    check_link "$B/embed/embed" $link
    check_embed "$B/embed/embed" "CMake $link"
    check_link "$B/cpp/search" $link
    "$B/cpp/search" "$MODEL" "Someone is having a meal." "${TEXTS[@]:1}" "${TEXTS[0]}" > "$W/search.txt" \
        || die "CMake $link: search failed"
    [ "$(wc -l < "$W/search.txt")" = 4 ] || die "search printed: $(cat "$W/search.txt")"
    if [ "$MODEL" = "$ROOT/.pydeps/all-MiniLM-L6-v2" ]; then
        top=$(sed -n 2p "$W/search.txt")
        case "$top" in *"${TEXTS[0]}") ;; *) die "search ranked first: $top";; esac
    fi
    if [ -x "$B/perturb/perturb" ]; then
        check_link "$B/perturb/perturb" $link
        rc=0
        "$B/perturb/perturb" "$MODEL" > "$W/perturb.txt" 2>&1 || rc=$?
        case $rc in
            0) perturb="perturb passed on the GPU" ;;
            77) perturb="perturb built, $(grep -o 'not run: .*' "$W/perturb.txt")" ;;
            *) cat "$W/perturb.txt"; die "CMake $link: perturb failed" ;;
        esac
    else
        perturb=$(grep -o "perturb (CUDA) not built: .*" "$W/configure.log")
    fi
    say "CMake, $link: embed = ember embed within $TOL (max |diff| $EMBED_DIFF), search ran; $perturb"

    M="$W/make-$link"
    mkdir "$M"
    cp examples/embed/embed.c examples/embed/Makefile "$M/"
    make -s -C "$M" STATIC=$([ $link = static ] && echo 1 || echo 0) > "$W/make.log" 2>&1 \
        || { cat "$W/make.log"; die "make ($link)"; }
    check_link "$M/embed" $link
    check_embed "$M/embed" "Makefile $link"
    say "Makefile (pkg-config), $link: embed = ember embed within $TOL (max |diff| $EMBED_DIFF)"
done
say "passed in $((SECONDS - start)) s"
