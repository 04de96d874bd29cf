#!/usr/bin/env bash
# Prepares a Debian 12 (bookworm) machine to build and run the Vulkan variant on Mesa's CPU
# Vulkan driver (lavapipe). Prints the folder of Vulkan headers to pass to CMake.
#  - bookworm packages: the loader, glslc, glslang, SPIR-V headers, lavapipe;
#  - headers: this llama.cpp uses VK_EXT_layer_settings, newer than bookworm's 1.3.239 headers, so
#    trixie's libvulkan-dev is downloaded (not installed: its binaries need a newer glibc) and
#    unpacked into a cache folder, with the trixie source removed again.
set -euo pipefail
dest="${LLAVA_NATIVE_CACHE_DIR:-$HOME/.cache/llava-native}/vulkan-headers"
export DEBIAN_FRONTEND=noninteractive
need=()
for p in libvulkan-dev glslc glslang-tools spirv-headers mesa-vulkan-drivers; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -f "$dest/usr/include/vulkan/vulkan_core.h" ]; then
  src=/etc/apt/sources.list.d/llava-native-trixie.sources
  pin=/etc/apt/preferences.d/llava-native-trixie
  cleanup() { rm -f "$src" "$pin"; apt-get update -qq >/dev/null 2>&1 || true; }
  trap cleanup EXIT
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$src"
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 1\n' > "$pin"
  apt-get update -qq >/dev/null
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq libvulkan-dev/trixie >/dev/null)
  mkdir -p "$dest"
  dpkg -x "$tmp"/libvulkan-dev_*.deb "$dest"
  rm -rf "$tmp"
fi
echo "$dest/usr/include"
