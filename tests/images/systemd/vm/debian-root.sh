#!/usr/bin/env bash
# A bootable Debian 12 root (minbase + kernel + systemd + python3), built once per machine and
# kept under ~/.cache/cortex/vm keyed by this script's content; prints the root's path.
# Needs root and the `debootstrap` package; no loop devices or mounts beyond /proc in the chroot.
set -euo pipefail
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="linux-image-amd64,systemd-sysv,udev,initramfs-tools,procps,python3,libgomp1"
key=$( (cat "$0"; printf '%s|%s' "$suite" "$mirror") | sha256sum | cut -c1-16)
cache="${CORTEX_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cortex/vm}"
root="$cache/debian-$suite-$key"
if [ ! -f "$root/.complete" ]; then
  tmp="$root.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  trap 'umount "$tmp/proc" 2>/dev/null || true; rm -rf "$tmp"' EXIT
  echo "debian-root: debootstrap $suite (about 2 minutes, once per machine)" >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror" >&2
  # A root a VM boots: DHCP on every ethernet link, the serial console, a root password nobody needs.
  printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' >"$tmp/etc/systemd/network/80-dhcp.network"
  chroot "$tmp" systemctl enable systemd-networkd.service >&2
  echo cortex-vm >"$tmp/etc/hostname"
  rm -f "$tmp/var/cache/apt/archives/"*.deb
  touch "$tmp/.complete"
  trap - EXIT
  rm -rf "$root" && mv "$tmp" "$root"
fi
echo "$root"
