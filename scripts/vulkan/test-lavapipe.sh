#!/usr/bin/env bash
# Builds the Vulkan variant into .vulkan/ and runs a targeted part of the test suite against it on
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
# Known problem: the two parity cases with a 32x32 image ('one image', 'Gemma 3') abort the process
# in 40-60% of runs here, inside a thread of Mesa 22.3's lavapipe (glibc: "double free or
# corruption" on a free in libvulkan_lvp.so); the binaries of this and the previous release do
# it alike, and the CPU build passes them every time. They are left out unless
# LLAVA_NATIVE_LAVAPIPE_ALL=1, and reported as not run.
filter=()
if [ "${LLAVA_NATIVE_LAVAPIPE_ALL:-0}" != 1 ] && [ $# -eq 0 ]; then
  filter=(-t '^(?!.*(one image$|Gemma 3)).*$')
  echo "vulkan: NOT RUN on lavapipe (known lavapipe abort): parity 'one image', parity 'Gemma 3'"
fi
start=$(date +%s)
npx jest --runInBand test/gpu.test.ts test/parity.test.ts "${filter[@]}" "$@"
echo "vulkan: tests took $(( $(date +%s) - start )) s"
