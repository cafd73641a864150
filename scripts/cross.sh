#!/usr/bin/env bash
# Cross-builds the runtime and the tools that need no compiler (librsr_runtime.a, rsr-run,
# rsr-mkmodel, the runtime's unit tests: -DRSRC_RUNTIME_ONLY=ON) for Linux on another CPU with
# Debian's cross toolchain and multiarch libraries, installing what is missing (apt-get, as root
# or through sudo), then runs the built rsr-run under user-mode QEMU.
# Usage: scripts/cross.sh aarch64 [BUILD_DIR [CMAKE_ARGS...]]     (default: build-aarch64)
#
# What it installs: the arm64 architecture in dpkg, gcc-aarch64-linux-gnu and libc6-dev-arm64-cross
# (the compiler and the libc it links against, in /usr/aarch64-linux-gnu), libpcre2-dev:arm64,
# libcjson-dev:arm64, libutf8proc-dev:arm64 and libssl-dev:arm64 (the runtime's tokenizer, rsr-run's
# libcrypto), libgomp1:arm64 (OpenMP at run time) and qemu-user. apt keeps a Multi-Arch: same package at one version for every
# architecture, so installing an :arm64 library may upgrade the amd64 one beside it (libssl3, ...).
#
# How the aarch64 programs find their shared libraries under QEMU: everything they load at run time
# comes from Debian's arm64 packages, one consistent set, where the aarch64 loader looks by default:
# /lib/ld-linux-aarch64.so.1 and libc.so.6 (libc6:arm64); libgomp, libpcre2-8, libcjson,
# libutf8proc and libcrypto in /lib/aarch64-linux-gnu (multiarch). So QEMU runs them with the
# prefix / (which turns its path rewriting off, and overrides a QEMU_LD_PREFIX left in the
# environment):
#   qemu-aarch64 -L / build-aarch64/rsr-run --version
#   ctest --test-dir build-aarch64          (CMAKE_CROSSCOMPILING_EMULATOR: the same command)
#   QEMU_CPU=cortex-a72 qemu-aarch64 -L / build-aarch64/rsr-run ...   (a CPU without dotprod, i8mm)
# Not -L /usr/aarch64-linux-gnu (QEMU_LD_PREFIX): QEMU would start that directory's ld.so, the
# cross toolchain's glibc build, and the loader would still take libc.so.6 from
# /lib/aarch64-linux-gnu, another build: a pair that works only while the two builds agree.
# LD_LIBRARY_PATH is not needed, and linking statically is no option: rsr-run dlopens models.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:?usage: scripts/cross.sh aarch64 [BUILD_DIR [CMAKE_ARGS...]]}
case $arch in
aarch64) deb_arch=arm64 triple=aarch64-linux-gnu ;;
*)
  echo "cross.sh: no cross build for '$arch' (known: aarch64)" >&2
  exit 2
  ;;
esac
build=${2:-$root/build-$arch}

packages=(cmake make "gcc-$triple" "libc6-dev-$deb_arch-cross" "libpcre2-dev:$deb_arch" "libcjson-dev:$deb_arch"
          "libutf8proc-dev:$deb_arch" "libssl-dev:$deb_arch" "libgomp1:$deb_arch" qemu-user)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "cross.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  dpkg --print-foreign-architectures | grep -qx "$deb_arch" || $sudo dpkg --add-architecture "$deb_arch"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/$triple.cmake" -DRSRC_RUNTIME_ONLY=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo "${@:3}" >/dev/null
cmake --build "$build" -j "$jobs" >&2
"qemu-$arch" -L / "$build/rsr-run" --version
