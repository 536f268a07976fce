#!/usr/bin/env bash
# Install this bundle's Cortex runtime (bundle.env: its version, settings) as the systemd service `cortex`.
#   ./install.sh [--root DIR] [--no-start] [--ready-timeout SECONDS]
# Offline: the runtime is built from the wheels beside this script with the host's /usr/bin/python3.
# Everything is written under temporary names, then renamed. An upgrade keeps a locally edited
# Cortexfile, the secrets and the models, switches $PREFIX/current atomically, restarts, and rolls
# back when /ready does not come up. The same script in every bundle: `cortex build --format systemd`
# generates only bundle.env beside it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bundle.env
. "$here/bundle.env"
UNIT=/etc/systemd/system/cortex.service
SYNC_UNIT=/etc/systemd/system/cortex-sync.service
SYSUSERS=/usr/lib/sysusers.d/cortex.conf

# Only the bundle's wheels, whatever pip settings this host has.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^PIP_' || true)
export PIP_CONFIG_FILE=/dev/null
root=/
start=yes
ready_timeout=$READY_TIMEOUT_S

say() { echo "install.sh: $*" >&2; }
die() { echo "install.sh: error: $*" >&2; exit 1; }
at() { echo "${root%/}$1"; }  # a path of the target system, as seen from here
in_root() { if [ "$root" = / ]; then "$@"; else chroot "$root" "$@"; fi; }

# Copy to a new temporary file beside the destination (mktemp: never an existing name, never a
# link), then rename over it: never a half-written file, never written through a link.
# With a fourth argument, the file's group (root stays its owner), set before the rename: never a moment
# when the service cannot read it.
put() {
  local mode=$1 source=$2 dest tmp group=${4:-}
  dest=$(at "$3")
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")
  cp "$source" "$tmp"
  chmod "$mode" "$tmp"
  if [ -n "$group" ]; then in_root chown -h "root:$group" "$(dirname "$3")/$(basename "$tmp")"; fi
  mv -fT "$tmp" "$dest"
}

# The service user's own folders may hold links it planted: what is written there is written as
# that user, so a link leads nowhere it could not write already. With none of root's environment.
as_service_user() {
  in_root setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_USER" --clear-groups -- \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

parse_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      --root) root=${2:?--root needs a folder}; shift 2 ;;
      --no-start) start=no; shift ;;
      --ready-timeout) ready_timeout=${2:?--ready-timeout needs seconds}; shift 2 ;;
      -h|--help) sed -n '2,3p' "$0" | cut -c3-; exit 0 ;;
      *) die "unknown argument: $1 (see --help)" ;;
    esac
  done
  [ -d "$root" ] || die "--root $root is not a folder"
  root=$(cd "$root" && pwd)
  if [ "$root" != / ]; then start=no; fi
}

check_host() {
  [ "$(id -u)" = 0 ] || die "run as root (it installs a system service)"
  [ -x "$(at /usr/lib/systemd/systemd)" ] || [ -x "$(at /lib/systemd/systemd)" ] ||
    die "no systemd on $root: this bundle installs a systemd service (use the container image instead)"
  if [ "$start" = yes ] && [ ! -d /run/systemd/system ]; then
    die "systemd is not running on this host (PID 1 is $(ps -o comm= 1 2>/dev/null || echo unknown)): use --no-start"
  fi
  [ -x "$(at /bin/kill)" ] || [ -x "$(at /usr/bin/kill)" ] ||
    die "no kill command on $root (systemctl reload sends SIGHUP with it): apt-get install procps"
  [ -x "$(at /usr/bin/python3)" ] ||
    die "no /usr/bin/python3 on $root: install Python (one of ${PYTHON_VERSIONS[*]}: apt-get install python3)"
  if [ "$SYNC" = yes ] && { [ ! -x "$(at /usr/bin/git)" ] || [ ! -x "$(at /usr/bin/ssh-keygen)" ]; }; then
    die "the Cortexfile follows a Git repository: cortex sync needs git and ssh-keygen (apt-get install git openssh-client)"
  fi
  local problems
  if ! problems=$(in_root /usr/bin/python3 - "$MACHINE" "${PYTHON_VERSIONS[*]}" "$GLIBC_MIN" 2>&1 <<'PY'
import ctypes.util
import platform
import sys

machine, python_versions, glibc_min = sys.argv[1:4]
found = []
if platform.machine() != machine:
    found.append(f"this host is {platform.machine()}; the bundle is built for {machine}")
if "%d.%d" % sys.version_info[:2] not in python_versions.split():
    carried = ", ".join(python_versions.split())
    found.append(f"/usr/bin/python3 is {platform.python_version()}; the bundle carries wheels for Python {carried}")
library, version = platform.libc_ver()
if library != "glibc":
    found.append(f"the C library is not glibc (musl?); the bundle needs glibc {glibc_min} or later")
elif tuple(map(int, version.split("."))) < tuple(map(int, glibc_min.split("."))):
    found.append(f"glibc {version} is older than {glibc_min}, which the bundle's wheels need")
if ctypes.util.find_library("gomp") is None:
    found.append("libgomp.so.1 is missing (llama.cpp uses OpenMP): apt-get install libgomp1")
print("\n".join(found))
PY
  ); then
    die "cannot run $root/usr/bin/python3 (another architecture?): $problems"
  fi
  [ -z "$problems" ] || die "this host cannot run the bundle:"$'\n'"$problems"
}

build_venv() {
  local staging=$1 pip
  say "building the runtime (offline, from $(find "$here/wheels" -name '*.whl' | wc -l) wheels)"
  mkdir -p "$(at "$staging")"
  cp -r "$here/wheels" "$(at "$staging")/.wheelhouse"
  in_root /usr/bin/python3 -m venv --without-pip "$staging"
  pip=$(cd "$(at "$staging")/.wheelhouse" && echo pip-*.whl)
  in_root "$staging/bin/python" "$staging/.wheelhouse/$pip/pip" install --quiet --no-index --no-compile \
    --disable-pip-version-check --no-warn-script-location --find-links "$staging/.wheelhouse" \
    "$staging/.wheelhouse/${PROJECT_WHEEL}[runtime]"
  rm -rf "$(at "$staging")/.wheelhouse"
}

install_runtime() {
  local target="$PREFIX/$VERSION" staging="$PREFIX/.$VERSION.partial"
  if [ -f "$(at "$target")/.complete" ]; then
    say "runtime $VERSION already in $target"
    return
  fi
  rm -rf "$(at "$staging")" "$(at "$target")"
  local wheels same
  wheels=$(cd "$here/wheels" && sha256sum -- *.whl | sha256sum | cut -d' ' -f1)
  same=$(grep -lx "$wheels" "$(at "$PREFIX")"/*/.wheels 2>/dev/null | head -n1 || true)
  if [ -n "$same" ]; then
    # Only the Cortexfile changed: the same wheels make the same runtime, copy it.
    say "copying the runtime to $target (same wheels as $(basename "$(dirname "$same")"))"
    cp -a "$(dirname "$same")" "$(at "$staging")"
    rm -f "$(at "$staging")/.complete"
  else
    build_venv "$staging"
  fi
  echo "$wheels" >"$(at "$staging")/.wheels"
  cp "$here/Cortexfile.yaml" "$(at "$staging")/Cortexfile.yaml"
  cp "$here/systemd/cortex.service" "$(at "$staging")/cortex.service"
  cp "$here/systemd/cortex-sync.service" "$(at "$staging")/cortex-sync.service"
  cp "$here/uninstall.sh" "$here/bundle.env" "$(at "$staging")/"
  mv -T "$(at "$staging")" "$(at "$target")"
  # Compiled after the rename so tracebacks name the real paths; the service cannot write them. Into an
  # image (--root) by one process in compileall's sorted order with a fixed hash seed: marshal's output
  # depends on what the process compiled before (reference counts) and on set order, so parallel workers
  # made a device image built twice differ in a .pyc. A host install compiles on every core.
  local jobs=0
  [ "$root" = / ] || jobs=1
  in_root env PYTHONHASHSEED=0 "$target/bin/python" -m compileall -q -j "$jobs" "$target/lib" >/dev/null || true
  touch "$(at "$target")/.complete"
}

install_config() {
  local conf="$CONFIG_DIR/Cortexfile.yaml" previous
  mkdir -p "$(at "$CONFIG_DIR")"
  rm -f "$(at "$CONFIG_DIR")/.Cortexfile.yaml.rollback"
  previous=$(readlink "$(at "$PREFIX/current")" 2>/dev/null || true)
  # Readable by root and the service's group only: it may name secrets, and literal ones are only warned about.
  if [ ! -f "$(at "$conf")" ] || cmp -s "$(at "$conf")" "$here/Cortexfile.yaml"; then
    put 0640 "$here/Cortexfile.yaml" "$conf" "$SERVICE_USER"
  elif [ -n "$previous" ] && cmp -s "$(at "$conf")" "$(at "$PREFIX/$previous/Cortexfile.yaml")"; then
    cp -p "$(at "$conf")" "$(at "$CONFIG_DIR")/.Cortexfile.yaml.rollback"
    put 0640 "$here/Cortexfile.yaml" "$conf" "$SERVICE_USER"
    say "replaced $conf with the bundle's (it was not edited locally)"
  else
    put 0640 "$here/Cortexfile.yaml" "$conf.new" "$SERVICE_USER"
    say "kept your edited $conf; the bundle's Cortexfile is $conf.new: merge it and reload (systemctl reload cortex)"
  fi
}

install_user_and_secrets() {
  put 0644 "$here/systemd/cortex.sysusers" "$SYSUSERS"
  in_root systemd-sysusers "$SYSUSERS"
  local path
  for path in "${SECRET_FILES[@]}"; do
    if [ -L "$(at "$path")" ]; then
      # Its target may be any file of the host: its owner and mode are not ours to change.
      say "warning: secret file $path is a symbolic link, left as it is: make it a file, root:$SERVICE_USER, mode 0640"
    elif [ -f "$(at "$path")" ]; then
      in_root chown -h "root:$SERVICE_USER" "$path"
      chmod 0640 "$(at "$path")"
    else
      say "warning: secret file $path is missing: create it as root:$SERVICE_USER, mode 0640"
    fi
  done
  if [ -f "$(at "$CONFIG_DIR/environment")" ] && [ ! -L "$(at "$CONFIG_DIR/environment")" ]; then
    chmod 0600 "$(at "$CONFIG_DIR/environment")"
  fi
}

# The data folder (a folder of its own below /var/lib, see the plan) belongs to the service user;
# root makes it and never writes below it.
own_data_folder() {
  local data=$1
  [ ! -L "$(at "$data")" ] || die "$data is a symbolic link: refusing to write through it (remove it, reinstall)"
  mkdir -p "$(at "$data")"
  in_root chown -h "$SERVICE_USER:$SERVICE_USER" "$data"
  chmod 0750 "$(at "$data")"
  [ ! -L "$(at "$data/models")" ] || die "$data/models is a symbolic link: refusing to write through it"
  if [ -d "$(at "$data/models")" ]; then in_root chown -h "$SERVICE_USER:$SERVICE_USER" "$data/models"; fi
  as_service_user mkdir -p "$data/models"
}

# A baked model becomes root's and stays read-only to the service: owned through a handle on the
# folder that refuses a link, and only when it is a regular file.
seal_model() {
  in_root /usr/bin/python3 - "$1" "$2" <<'PY'
import os
import stat
import sys

folder, name = sys.argv[1:3]
handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
if not stat.S_ISREG(os.stat(name, dir_fd=handle, follow_symlinks=False).st_mode):
    sys.exit(f"install.sh: error: {folder}/{name} is not a regular file")
os.chown(name, 0, 0, dir_fd=handle, follow_symlinks=False)
PY
}

# The file there is the bundle's model: a regular file (not a link, not a pipe that would hold the read) of
# the same size and the same sha256 (the service user could have rewritten it in place).
same_model() {
  [ -f "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %s "$1")" = "$(stat -c %s "$2")" ] &&
    [ "$(timeout 1800 sha256sum <"$1" | cut -d' ' -f1)" = "$(basename "$2" .gguf)" ]
}

install_models() {
  local models="$DATA_DIR/models" sha dest
  own_data_folder "$DATA_DIR"
  for sha in "${MODELS[@]}"; do
    dest="$(at "$models/$sha.gguf")"
    if ! same_model "$dest" "$here/models/$sha.gguf"; then
      say "copying model $sha to $models"
      # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
      as_service_user /bin/sh -c 'umask 022; tmp=$(mktemp "$1/.$2.XXXXXX") && cat >"$tmp" && chmod 0444 "$tmp" &&
        mv -fT "$tmp" "$1/$2"' sh "$models" "$sha.gguf" <"$here/models/$sha.gguf"
    fi
    seal_model "$models" "$sha.gguf"
  done
}

switch_to() {
  ln -sfn "$1" "$(at "$PREFIX")/.current.partial"
  mv -T "$(at "$PREFIX")/.current.partial" "$(at "$PREFIX/current")"
  put 0644 "$(at "$PREFIX/$1/cortex.service")" "$UNIT"
  # A version from before cortex sync has no such unit: it does not follow a repository.
  if [ -f "$(at "$PREFIX/$1/cortex-sync.service")" ]; then
    put 0644 "$(at "$PREFIX/$1/cortex-sync.service")" "$SYNC_UNIT"
  else
    rm -f "$(at "$SYNC_UNIT")"
  fi
}

# Once the server serves: follow the repository when the Cortexfile says so, else make sure nothing does.
follow_repository() {
  if [ "$SYNC" = yes ]; then
    systemctl enable --quiet cortex-sync.service
    systemctl restart cortex-sync.service
  else
    systemctl disable --now --quiet cortex-sync.service 2>/dev/null || true
  fi
}

wait_ready() {
  /usr/bin/python3 - "$READY_URL" "$ready_timeout" <<'PY'
import ssl
import sys
import time
import urllib.request

url, limit = sys.argv[1], float(sys.argv[2])
context = ssl._create_unverified_context()  # only asks whether our own listener is up
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(1)
sys.exit(1)
PY
}

restart_and_check() {
  systemctl daemon-reload
  systemctl enable --quiet cortex.service
  systemctl restart cortex.service && wait_ready
}

roll_back() {
  local previous=$1
  say "cortex $VERSION did not become ready at $READY_URL within ${ready_timeout}s"
  journalctl -u cortex.service -n 15 --no-pager >&2 || true
  [ -n "$previous" ] || die "first install did not start: see journalctl -u cortex"
  say "rolling back to $previous"
  if [ -f "$CONFIG_DIR/.Cortexfile.yaml.rollback" ]; then
    mv -f "$CONFIG_DIR/.Cortexfile.yaml.rollback" "$CONFIG_DIR/Cortexfile.yaml"
  fi
  switch_to "$previous"
  restart_and_check || die "the rollback to $previous did not become ready either: see journalctl -u cortex"
  die "rolled back to $previous, which is serving again; $VERSION stays in $PREFIX/$VERSION for inspection"
}

prune() {
  local keep_a=$1 keep_b=$2 dir
  for dir in "$(at "$PREFIX")"/*/; do
    dir=$(basename "$dir")
    if [ "$dir" != "$keep_a" ] && [ "$dir" != "$keep_b" ] && [ "$dir" != current ]; then
      rm -rf "$(at "$PREFIX/$dir")"
    fi
  done
}

main() {
  parse_args "$@"
  check_host
  local started=$SECONDS previous
  previous=$(readlink "$(at "$PREFIX/current")" 2>/dev/null || true)
  install_runtime
  install_user_and_secrets
  install_config
  install_models
  switch_to "$VERSION"
  if [ "$start" = yes ]; then
    restart_and_check || roll_back "$previous"
    follow_repository
  else
    in_root systemctl enable --quiet cortex.service
    if [ "$SYNC" = yes ]; then in_root systemctl enable --quiet cortex-sync.service; fi
  fi
  if [ "$previous" != "$VERSION" ]; then prune "$VERSION" "$previous"; fi
  say "cortex $VERSION installed in $((SECONDS - started))s${previous:+ (was $previous)}$([ "$start" = yes ] && echo ", serving")"
}

main "$@"
