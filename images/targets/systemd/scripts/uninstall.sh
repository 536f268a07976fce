#!/usr/bin/env bash
# Remove the Cortex service.  ./uninstall.sh [--root DIR] [--purge]
# Keeps the Cortexfile, secrets and models unless --purge. Running it again does nothing more.
# The same script in every bundle; bundle.env beside it holds the installation's folders and user.
set -euo pipefail
# shellcheck source=bundle.env
. "$(cd "$(dirname "$0")" && pwd)/bundle.env"
root=/
purge=no

say() { echo "uninstall.sh: $*" >&2; }
at() { echo "${root%/}$1"; }
in_root() { if [ "$root" = / ]; then "$@"; else chroot "$root" "$@"; fi; }

while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$(cd "${2:?--root needs a folder}" && pwd); shift 2 ;;
    --purge) purge=yes; shift ;;
    -h|--help) sed -n '2,3p' "$0" | cut -c3-; exit 0 ;;
    *) echo "uninstall.sh: error: unknown argument: $1" >&2; exit 1 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "uninstall.sh: error: run as root" >&2; exit 1; }

if [ "$root" = / ] && [ -d /run/systemd/system ]; then
  systemctl disable --now --quiet cortex-sync.service 2>/dev/null || true
  systemctl disable --now --quiet cortex.service 2>/dev/null || true
else
  in_root systemctl disable --quiet cortex-sync.service 2>/dev/null || true
  in_root systemctl disable --quiet cortex.service 2>/dev/null || true
fi
rm -f "$(at /etc/systemd/system/cortex.service)" "$(at /etc/systemd/system/cortex-sync.service)" \
  "$(at /usr/lib/sysusers.d/cortex.conf)"
rm -rf "$(at "$PREFIX")"
if [ "$root" = / ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
if [ "$purge" = yes ]; then
  rm -rf "$(at "$CONFIG_DIR")" "$(at "$DATA_DIR")" "$(at "$LOGS_DIR")" "$(at "$SYNC_DIR")"
  if in_root getent passwd "$SERVICE_USER" >/dev/null; then in_root userdel "$SERVICE_USER" 2>/dev/null || true; fi
  say "removed Cortex, its configuration, models and logs"
else
  say "removed Cortex; kept $CONFIG_DIR (Cortexfile, secrets) and $DATA_DIR (models): --purge removes them"
fi
