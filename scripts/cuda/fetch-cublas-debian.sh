#!/usr/bin/env bash
# Fetches cuBLAS headers and libraries from Debian 12's non-free archive into a private folder,
# for a compile-and-link check of the CUDA variant on a machine whose CUDA toolkit lacks cuBLAS.
# Nothing is installed (scripts/lib/apt-download.sh).
# cuBLAS 11.8 with a CUDA 13 runtime only proves that the code compiles and links; do not ship it.
#
# Prints the folder; it holds include/ (cublas*.h only) and lib/ (libcublas*.so, stubs/libcuda.so).
set -euo pipefail
dest="${LLAVA_NATIVE_CUBLAS_DIR:-$HOME/.cache/llava-native/cublas-debian}"
if [ -f "$dest/.complete" ]; then echo "$dest"; exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/../lib/apt-download.sh"
apt_download "$work" "deb http://deb.debian.org/debian bookworm contrib non-free" nvidia-cuda-dev libcublas11 libcublaslt11

rm -rf "$dest.tmp" && mkdir -p "$dest.tmp/x" "$dest.tmp/include" "$dest.tmp/lib/stubs"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest.tmp/x"; done
# Only cuBLAS's own headers: the rest of that include tree is CUDA 11.8 and would shadow nvcc's.
cp "$dest.tmp"/x/usr/include/cublas*.h "$dest.tmp/include/"
libdir="$dest.tmp/x/usr/lib/x86_64-linux-gnu"
cp -P "$libdir"/libcublas.so* "$libdir"/libcublasLt.so* "$dest.tmp/lib/"
cp "$libdir"/stubs/libcuda.so "$dest.tmp/lib/stubs/" 2>/dev/null || cp "$libdir"/libcuda.so* "$dest.tmp/lib/stubs/" 2>/dev/null || true
rm -rf "$dest.tmp/x"
touch "$dest.tmp/.complete"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "$dest"
