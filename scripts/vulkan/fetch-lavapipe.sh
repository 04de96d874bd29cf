#!/usr/bin/env bash
# Fetches Mesa 25's lavapipe (Vulkan on the CPU) from bookworm-backports into a private folder and
# prints the path of a Vulkan ICD file for it (pass it as VK_DRIVER_FILES / VK_ICD_FILENAMES, with
# LD_LIBRARY_PATH set to the folder's lib/ for its newer libdrm). Nothing is installed
# (scripts/lib/apt-download.sh).
#
# Why not bookworm's own Mesa 22.3: its lavapipe corrupts the heap while executing ggml's command
# buffers (a lavapipe queue thread calls a function pointer of 0x1, or glibc aborts with "double
# free or corruption"); with ggml-vulkan's flash attention off it does so on every run of the
# parity test, and it is not seen with ASan's allocator or in a small process. Mesa 25.0.7 runs
# the same suite clean. Uses the same LLVM 15 as bookworm.
set -euo pipefail
dest="${LLAVA_NATIVE_CACHE_DIR:-$HOME/.cache/llava-native}/lavapipe-bpo"
if [ ! -f "$dest/.complete" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  source "$(dirname "$0")/../lib/apt-download.sh"
  apt_download "$work" "deb http://deb.debian.org/debian bookworm-backports main" mesa-vulkan-drivers libdrm2 libdrm-amdgpu1
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp/x" "$dest.tmp/lib"
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest.tmp/x"; done
  libdir="$dest.tmp/x/usr/lib/x86_64-linux-gnu"
  cp "$libdir/libvulkan_lvp.so" "$dest.tmp/lib/"
  cp -P "$libdir"/libdrm.so.2* "$libdir"/libdrm_amdgpu.so.1* "$dest.tmp/lib/"
  dpkg-deb -f "$work"/mesa-vulkan-drivers_*.deb Version > "$dest.tmp/mesa-version"
  rm -rf "$dest.tmp/x"
  touch "$dest.tmp/.complete"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "%s/lib/libvulkan_lvp.so", "api_version": "1.4.305" } }\n' "$dest" > "$dest/lvp_icd.json"
echo "$dest/lvp_icd.json"
