#!/usr/bin/env bash
# Compile-and-link check of the CUDA variant, for machines with nvcc but possibly no GPU.
#   bash scripts/cuda/build-check.sh            # sm_90 only, into .cuda/
#   LLAVA_NATIVE_CUDA_ARCHITECTURES='86-real;90-real' bash scripts/cuda/build-check.sh
# When the toolkit has no cuBLAS (as on a bare nvcc install), cuBLAS is taken from Debian's
# non-free archive by scripts/cuda/fetch-cublas-debian.sh: good for linking, not for shipping.
# Prints the build time, the CUDA libraries the addon needs, and the GPU code it embeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
arch="${LLAVA_NATIVE_CUDA_ARCHITECTURES:-90}"
build_dir="${LLAVA_NATIVE_CUDA_BUILD_DIR:-.cuda}"
nvcc_bin="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
[ -x "$nvcc_bin" ] || { echo "cuda-check: nvcc not found; install the CUDA toolkit" >&2; exit 2; }
cuda_home="${CUDA_HOME:-/usr/local/cuda}"

extra=()
if [ ! -f "$cuda_home/include/cublas_v2.h" ]; then
  cublas="$(bash scripts/cuda/fetch-cublas-debian.sh)"
  echo "cuda-check: the toolkit has no cuBLAS; linking against $cublas" >&2
  extra+=("-DCMAKE_CUDA_FLAGS=-I$cublas/include" "-DCMAKE_CXX_FLAGS=-I$cublas/include"
    "-DCUDA_cublas_LIBRARY=$cublas/lib/libcublas.so" "-DCUDA_cublasLt_LIBRARY=$cublas/lib/libcublasLt.so"
    "-DCUDA_cuda_driver_LIBRARY=$cublas/lib/stubs/libcuda.so")
fi

start=$(date +%s)
node scripts/build-native.js --backend cuda --cuda-arch "$arch" --build-dir "$build_dir" -- "${extra[@]}"
echo "cuda-check: build took $(( $(date +%s) - start )) s for CUDA architectures '$arch' with $(nproc) cores"

addon="$build_dir/Release/llava_native.node"
echo "cuda-check: $addon is $(du -m "$addon" | cut -f1) MiB; it needs:"
readelf -d "$addon" | grep NEEDED | sed 's/^.*\[/  /; s/\]$//'
readelf -d "$addon" | grep -q 'libcublas' || { echo "cuda-check: the addon does not link cuBLAS" >&2; exit 1; }
# The kernels live in the .nv_fatbin section: its size shows that GPU code was compiled in.
# (readelf -S -W: Name Type Address Off Size; parsed with sed, as mawk has no hex conversion.)
fatbin_hex=$(readelf -S -W "$addon" | sed -n 's/.*\.nv_fatbin *[A-Z_]* *[0-9a-f]* *[0-9a-f]* *\([0-9a-f]*\).*/\1/p' | head -1)
[ -n "$fatbin_hex" ] && [ $((16#$fatbin_hex)) -gt 0 ] || { echo "cuda-check: no GPU code (.nv_fatbin) in the addon" >&2; exit 1; }
echo "cuda-check: GPU code (.nv_fatbin): $(( 16#$fatbin_hex / 1048576 )) MiB"
