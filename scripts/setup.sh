#!/usr/bin/env bash
# Everything `make demo` and `make test` need on a fresh Debian 12 with Python 3.11:
# system packages, the virtual environment, llama-cpp-python (compiled once per version and
# flags, then reused from a cache outside the work tree), the project, and the test model.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/cortex"

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++ make)
command -v curl >/dev/null || missing+=(curl)
command -v patch >/dev/null || missing+=(patch) # llama-wheel.sh applies images/llama_patches
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs) # the /docs page's script; the openai Node SDK test
# qemu's user-mode emulator plays an older CPU for the CPU-variant dispatch test.
command -v qemu-x86_64 >/dev/null || missing+=(qemu-user)
# The systemd bundle's and the disk image's tests: a debootstrap'd root, a UEFI disk image without loop devices, qemu.
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing+=(ovmf)
[ -f /usr/lib/systemd/boot/efi/systemd-bootx64.efi ] || missing+=(systemd-boot-efi)
command -v mcopy >/dev/null || missing+=(mtools)
# A Raspberry Pi image's boot script, run by Debian's U-Boot (its qemu build) under qemu-system-aarch64 -M virt.
command -v qemu-system-aarch64 >/dev/null || missing+=(qemu-system-arm)
[ -f /usr/lib/u-boot/qemu_arm64/u-boot.bin ] || missing+=(u-boot-qemu)
command -v mkfs.vfat >/dev/null || missing+=(dosfstools)
command -v sfdisk >/dev/null || missing+=(fdisk)
command -v mke2fs >/dev/null || missing+=(e2fsprogs)
command -v debugfs >/dev/null || missing+=(e2fsprogs)
command -v bmaptool >/dev/null || missing+=(bmap-tools) # the disk image's block map, and flashing it in a test
command -v zstd >/dev/null || missing+=(zstd)
command -v ssh >/dev/null || missing+=(openssh-client) # the device image's boot test logs in with a key
command -v shellcheck >/dev/null || missing+=(shellcheck)
# The console's browser test: Debian's headless Chromium and its WebDriver (Selenium drives them).
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# `cortex view logs` is tested in a real terminal.
command -v tmux >/dev/null || missing+=(tmux)
# cortex build's tests: Podman's Docker API, a local base (debootstrap), a registry with htpasswd auth.
command -v podman >/dev/null || missing+=(podman buildah skopeo runc)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
# --format kube's tests: `podman kube play` builds its pause image with catatonit; kubectl runs kustomize.
command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  [ "$(id -u)" = 0 ] || { echo "setup: run as root or install: ${missing[*]}" >&2; exit 1; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements-dev.txt
wheels="$(PYTHON="$VENV/bin/python" scripts/llama-wheel.sh)"
# pip keeps an installed llama-cpp-python of the same version whatever flags built it: reinstall
# when llama-wheel.sh's wheel is another one.
if [ "$(cat "$VENV/.llama-wheel" 2>/dev/null)" != "$wheels" ]; then
  "$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$wheels"/llama_cpp_python-*.whl
  echo "$wheels" >"$VENV/.llama-wheel"
fi
"$VENV/bin/python" -m pip install -q -c constraints.txt --find-links "$wheels" -e ".[runtime,build,view]"
# The test model in the test cache and, linked, in the default data folder: the README's commands find it there.
"$VENV/bin/python" scripts/test-model.py "$CACHE/test-data" --default-store >/dev/null
scripts/node-openai.sh >/dev/null # the official openai Node SDK, for the Responses API client test
echo "setup: ready ($VENV, test model in $CACHE/test-data and ${XDG_DATA_HOME:-$HOME/.local/share}/cortex/models)" >&2
