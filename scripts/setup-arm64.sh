#!/usr/bin/env bash
# What arm64 device images need beyond `make setup`: emulation for the arm64 root's package scripts
# (qemu-user-static, binfmt_misc), the cross compiler, qemu-system-aarch64 with UEFI firmware and the
# `raspi4b` board to boot them (qemu 9+: Debian 13's own, or the host release's backports on Debian 12),
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
command -v fdtput >/dev/null || missing+=(device-tree-compiler) # fits the Pi 4 device tree to qemu's board
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || { echo "setup-arm64: run as root or install: ${missing[*]}" >&2; exit 1; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
has_raspi4b() { qemu-system-aarch64 -machine help 2>/dev/null | grep -q '^raspi4b '; }
if ! has_raspi4b; then
  [ "$(id -u)" = 0 ] || { echo "setup-arm64: run as root, or install a qemu-system-arm with the raspi4b board (9.0 or later)" >&2; exit 1; }
  . /etc/os-release
  backports="${VERSION_CODENAME:?}-backports"
  # The host's own Debian mirror (the one its apt sources name), as every root Cortex builds uses.
  mirror=$(.venv/bin/python -c 'from menlo_cortex.images.debian import host_mirror; print(host_mirror())')
  list=/etc/apt/sources.list.d/cortex-backports.sources
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$backports" >"$list"
  # A mirror without backports must not leave the host's apt failing on every update.
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -t "$backports" qemu-system-arm; }; then
    rm -f "$list"
    apt-get update -q || true
    echo "setup-arm64: no qemu-system-arm from $backports at $mirror" >&2
    exit 1
  fi
  has_raspi4b || { echo "setup-arm64: $backports's qemu-system-aarch64 has no raspi4b board" >&2; exit 1; }
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64
make arm64-wheel
