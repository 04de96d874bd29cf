#!/usr/bin/env bash
# Builds the Vulkan variant into .vulkan/ and runs the GPU and parity suites (or all) against it on
# Mesa's CPU Vulkan driver (lavapipe), with every layer and the projector offloaded: the GPU
# offload path (gpuLayers, device choice, projector on the device) runs for real. Debian 12 only
# (scripts/vulkan/setup-debian.sh installs what it needs).
#   bash scripts/vulkan/test-lavapipe.sh [jest arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
LLAVA_NATIVE_VULKAN_INCLUDE_DIR="$(bash scripts/vulkan/setup-debian.sh | tail -1)"
export LLAVA_NATIVE_VULKAN_INCLUDE_DIR
start=$(date +%s)
# The parity suite compares with the CPU reference programs of the main build (build/bin).
env -u LLAVA_NATIVE_REFERENCE node scripts/build-native.js --backend vulkan --build-dir .vulkan/build
echo "vulkan: build took $(( $(date +%s) - start )) s"
npm run build:ts >/dev/null
export LLAVA_NATIVE_BINARY_DIR="$PWD/.vulkan"
# lavapipe is a CPU-type Vulkan device, which ggml-vulkan hides unless asked for by index.
export GGML_VK_VISIBLE_DEVICES=0
export LLAVA_NATIVE_EXPECT_GPU=1
# Mesa 25's lavapipe from bookworm-backports: bookworm's Mesa 22.3 corrupts the heap while running
# ggml's command buffers (see fetch-lavapipe.sh). LLAVA_NATIVE_LAVAPIPE=system uses the installed one.
if [ "${LLAVA_NATIVE_LAVAPIPE:-backports}" != system ]; then
  icd="$(bash scripts/vulkan/fetch-lavapipe.sh)"
  export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
  export LD_LIBRARY_PATH="$(dirname "$icd")/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "vulkan: lavapipe from Mesa $(cat "$(dirname "$icd")/mesa-version")"
fi
# CI runs the GPU and parity suites; LLAVA_NATIVE_LAVAPIPE_SUITE=all runs every suite.
suites=(test/gpu.test.ts test/parity.test.ts)
[ "${LLAVA_NATIVE_LAVAPIPE_SUITE:-}" = all ] && suites=()
start=$(date +%s)
# lavapipe compiles every shader ggml uses with LLVM the first time it sees it, and keeps the result
# in Mesa's shader cache (~/.cache/mesa_shader_cache_db). On a machine whose cache is empty, the
# tiny LLaVA and Gemma 3 pairs' image shaders took 14 minutes to compile on 2 cores (6 s once
# cached), so a test may wait that long for its first image.
npx jest --runInBand --testTimeout=1800000 "${suites[@]}" "$@"
echo "vulkan: tests took $(( $(date +%s) - start )) s"
