#!/usr/bin/env bash
# The shared libraries that ember's binaries take from Debian packages (Jansson, utf8proc,
# libgomp, ... whatever `ldd` names), for a GPU machine that has none of them and no dpkg:
# each owning package's .deb, at the version installed here, is downloaded into .deps/ and the
# library is taken out of it with tools/gpu_check_util.py (ar + tar in Python, no dpkg).
# Run on the Debian machine that built the binaries (tools/gpu-check.sh prepare calls it).
#
#   bash tools/fetch-gpu-deps.sh DEST_DIR LIST_FILE ELF...
#
# Left to the GPU machine: glibc (libc, libm, ...) and libstdc++/libgcc_s, whose versions the
# run checks, and the CUDA libraries, which must match its driver. Libraries of the build
# itself (libember) are the caller's. LIST_FILE says, per library, where it came from.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dest=$1 list=$2
shift 2
command -v dpkg-query >/dev/null || { echo "fetch-gpu-deps: not a Debian machine (no dpkg-query)" >&2; exit 1; }
mkdir -p "$dest" .deps

# soname path, for every library the ELF files load that is neither theirs nor left behind.
declare -A path_of=()
for f in "$@"; do
    while read -r soname arrow path _; do
        [ "$arrow" = "=>" ] || continue
        case "$soname" in
        libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | libresolv.so.* | \
            libutil.so.* | ld-linux*) continue ;; # glibc
        libstdc++.so.* | libgcc_s.so.*) continue ;; # the compiler's runtime: the host's
        libcuda.so.* | libcudart.so.* | libcublas*.so.* | libnv*.so.* | libcu*.so.*) continue ;;
        esac
        [ "$path" != "not" ] || { echo "fetch-gpu-deps: $f needs $soname, which is not found here" >&2; exit 1; }
        [ -e "$dest/$soname" ] && [ "$(cd "$(dirname "$path")" && pwd -P)" = "$(cd "$dest" && pwd -P)" ] && continue
        path_of[$soname]=$path
    done < <(ldd "$f")
done

apt_updated=0
{
    echo "# shared libraries in $(basename "$dest")/: soname, Debian package, version, source"
    for soname in "${!path_of[@]}"; do
        path=${path_of[$soname]}
        real=$(readlink -f "$path")
        pkg=""
        for p in "$real" "$path" "/usr$real" "${real#/usr}"; do
            pkg=$(dpkg-query -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$pkg" ] && break
        done
        [ -n "$pkg" ] || { echo "fetch-gpu-deps: no Debian package owns $real ($soname)" >&2; exit 1; }
        ver=$(dpkg-query -W -f='${Version}' "$pkg")
        arch=$(dpkg-query -W -f='${Architecture}' "$pkg")
        deb=$(ls .deps/"${pkg}_${ver#*:}_${arch}".deb 2>/dev/null || true)
        if [ -z "$deb" ]; then
            if [ $apt_updated = 0 ] && ! apt-cache show "$pkg=$ver" >/dev/null 2>&1; then
                apt-get update -qq >&2 || true
                apt_updated=1
            fi
            (cd .deps && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver" >&2) || true
            deb=$(ls .deps/"${pkg}_${ver#*:}_${arch}".deb 2>/dev/null || true)
        fi
        if [ -n "$deb" ]; then
            # By its soname (a link in the package), else by the file it resolves to here.
            if ! python3 tools/gpu_check_util.py deb-extract "$deb" "$dest" "$soname" >&2 2>/dev/null; then
                python3 tools/gpu_check_util.py deb-extract "$deb" "$dest" "$(basename "$real")" >&2 &&
                    mv "$dest/$(basename "$real")" "$dest/$soname" ||
                    { echo "fetch-gpu-deps: $soname not found in $deb" >&2; exit 1; }
            fi
            echo "  $soname $pkg $ver $deb"
        else
            # No package archive reachable: the installed copy is the same file.
            cp -L "$path" "$dest/$soname"
            echo "  $soname $pkg $ver copied from $real (apt-get download failed)"
        fi
    done
} >"$list"
# Their own dependencies (libopenblas needs libgfortran, which needs libquadmath) are carried
# too, but a library's RUNPATH covers only its direct needs: each finds its siblings in
# $ORIGIN, not in the GPU machine's system folders.
command -v patchelf >/dev/null || { echo "fetch-gpu-deps: needs patchelf (tools/setup.sh installs it)" >&2; exit 1; }
for soname in "${!path_of[@]}"; do
    patchelf --set-rpath '$ORIGIN' "$dest/$soname" ||
        { echo "fetch-gpu-deps: patchelf failed on $dest/$soname" >&2; exit 1; }
done
sed -n '2,$p' "$list" | sed 's/^/fetch-gpu-deps: /'
