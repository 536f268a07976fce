#!/usr/bin/env bash
# What arm64 device images need beyond `make setup`: emulation for the arm64 root's package scripts
# (qemu-user-static, binfmt_misc), the cross compiler, qemu-system-aarch64 with UEFI firmware to boot them
# (its `virt` board, and `raspi3b` for the Raspberry Pi image: Debian 12's qemu 7.2 has both),
# lsinitramfs to read an image's initramfs, and the cross-compiled arm64 llama-cpp-python wheel (cached
# like the amd64 one).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(crossbuild-essential-arm64) # the arm64 llama wheel
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
command -v qemu-system-aarch64 >/dev/null || missing+=(qemu-system-arm)
[ -f /usr/share/AAVMF/AAVMF_CODE.fd ] || missing+=(qemu-efi-aarch64)
command -v lsinitramfs >/dev/null || missing+=(initramfs-tools-core) # reads the Pi 5 image's initramfs
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || { echo "setup-arm64: run as root or install: ${missing[*]}" >&2; exit 1; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64
make arm64-wheel
