#!/usr/bin/env bash
# Run on a Debian/Ubuntu machine WITH apt (not on the GPU machine): download the .deb files
# the build needs into .deps/ (git-ignored), to be carried to a GPU machine that has no apt.
# tools/gpu-check.sh unpacks them there with `dpkg -x` into /opt/deps (never into /).
#
#   bash tools/fetch-gpu-deps.sh          # -> .deps/*.deb
#
# Packages: GoogleTest (static libraries + CMake config; libgmock-dev because GTest's CMake
# config also describes the GMock targets) and Jansson (headers + the shared library).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(libgtest-dev libgmock-dev libjansson-dev libjansson4 libutf8proc-dev libutf8proc2)

command -v apt-get >/dev/null || { echo "fetch-gpu-deps: apt-get not found: run this on Debian/Ubuntu" >&2; exit 1; }
mkdir -p .deps
cd .deps
rm -f ./*.deb
# apt-get download needs the package lists; refresh them only if they are missing.
if ! apt-cache show "${pkgs[0]}" >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
fi
apt-get download "${pkgs[@]}"
echo "fetch-gpu-deps: downloaded into $(pwd):"
ls -l ./*.deb
