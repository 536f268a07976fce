#!/usr/bin/env bash
# Build llama-cpp-python once per (version, CMake flags, architecture) and keep the wheel in a cache
# outside the work tree, so fresh clones, CI runs and image builds on this machine reuse it.
# pip's own wheel cache ignores CMAKE_ARGS, hence this key. Prints the wheel folder.
#
# Usage: scripts/llama-wheel.sh [--arch amd64|arm64]   (or ARCH=arm64; default: this host's)
# An arm64 wheel on an x86_64 host is cross-compiled (crossbuild-essential-arm64): llama-cpp-python's
# native part is shared libraries loaded with ctypes, not a CPython extension, so the wheel is the
# pure-Python package plus aarch64 libraries, tagged linux_aarch64 (`make arm64-wheel`).
set -euo pipefail
arch="${ARCH:-}"
while (($#)); do
  case "$1" in
    --arch) arch="${2:?--arch needs a value: amd64 or arm64}"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    *) echo "llama-wheel.sh: unknown argument: $1 (usage: llama-wheel.sh [--arch amd64|arm64])" >&2; exit 2 ;;
  esac
done
machine_of() {
  case "$1" in
    amd64 | x86_64 | linux/amd64) echo x86_64 ;;
    arm64 | aarch64 | linux/arm64) echo aarch64 ;;
    *) echo "llama-wheel.sh: unknown architecture: $1 (amd64 or arm64)" >&2; return 2 ;;
  esac
}
host="$(uname -m)"
machine="$(machine_of "${arch:-$host}")"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
python="${PYTHON:-python3}"
cache="${CORTEX_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cortex/wheels}"
# Portable by default: no -march=native (such a wheel can crash on another CPU or under qemu). On
# x86-64 and aarch64, every CPU variant as a module and the best loaded at run time: on x86-64 the
# flags `cortex build` gives a CPU image's builder stage (images/targets/docker/plan.py), so the image tests can
# use this wheel; on aarch64 armv8.0 (Raspberry Pi 4) up to armv8.6 with SVE2 and i8mm.
portable="-DGGML_NATIVE=OFF"
if [ "$machine" = x86_64 ] || [ "$machine" = aarch64 ]; then
  portable="$portable -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_BACKEND_DIR:STRING=llama_cpp/lib"
fi
flags="${LLAMA_CMAKE_ARGS:-$portable}"
# shellcheck source=scripts/llama-patches.sh
. "$(dirname "$0")/llama-patches.sh"

if [ "$machine" = "$host" ]; then
  # The interpreter the wheel is built for and its machine, the flags and the patches.
  key=$(printf '%s|%s|%s|patches %s' "$version" "$flags" "$("$python" -c 'import sys,platform;print(sys.implementation.cache_tag, platform.machine())')" "$patches_sum" | sha256sum | cut -c1-16)
elif [ "$machine" = aarch64 ] && [ "$host" = x86_64 ]; then
  cc=aarch64-linux-gnu-gcc
  cxx=aarch64-linux-gnu-g++
  if ! command -v "$cc" >/dev/null || ! command -v "$cxx" >/dev/null; then
    echo "llama-wheel.sh: cross-compiling for arm64 needs $cc and $cxx:" \
      "apt-get install crossbuild-essential-arm64" >&2
    exit 1
  fi
  # The compiler decides which CPU variants can be built (see drop_unsupported_variants): in the key.
  key=$(printf '%s|%s|cross %s %s|patches %s' "$version" "$flags" "$machine" "$("$cc" -dumpfullversion)" "$patches_sum" | sha256sum | cut -c1-16)
else
  echo "llama-wheel.sh: cannot build a $machine wheel on a $host host (only x86_64 -> aarch64 is cross-compiled)" >&2
  exit 1
fi
dir="$cache/llama-cpp-python-$version-$key"

# The armv9.2 variants need -march=armv9.2-a+sme, which GCC 12 (Debian 12's cross compiler) lacks:
# they are left out of the variant list then. They only add SME; such CPUs load the armv8.6 variant.
drop_unsupported_variants() {
  local lists="$1/vendor/llama.cpp/ggml/src/CMakeLists.txt"
  if ! echo 'int main(void){return 0;}' | "$cc" -march=armv9.2-a+sme -x c -c -o /dev/null - 2>/dev/null; then
    sed -i '/ggml_add_cpu_backend_variant(armv9\.2_/d' "$lists"
    echo "armv9.2 (SME): $cc $("$cc" -dumpfullversion) lacks -march=armv9.2-a+sme"
  fi
}

# scikit-build-core tags the wheel for the build host: the libraries are aarch64, so is the tag.
retag() {
  "$python" - "$1" "$2" <<'EOF'
import base64, hashlib, pathlib, re, sys, zipfile
wheel, platform = pathlib.Path(sys.argv[1]), sys.argv[2]
head, old = wheel.name[: -len(".whl")].rsplit("-", 1)
if old != platform:
    target = wheel.with_name(f"{head}-{platform}.whl")
    rows = []
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        record = next(n for n in source.namelist() if n.endswith(".dist-info/RECORD"))
        for info in source.infolist():
            if info.filename == record:
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/WHEEL"):
                data = re.sub(rb"(?m)^(Tag: .*)-" + re.escape(old.encode()) + rb"$", rb"\1-" + platform.encode(), data)
            out.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{info.filename},sha256={digest},{len(data)}")
        out.writestr(record, "\n".join([*rows, f"{record},,"]) + "\n")
    wheel.unlink()
EOF
}

if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  tmp="$dir.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  info="architecture=$machine"
  "$python" -m pip download -q --no-binary :all: --no-deps -d "$tmp/sdist" "llama-cpp-python==$version" >&2
  tar -xzf "$tmp"/sdist/llama_cpp_python-*.tar.gz -C "$tmp/sdist"
  src="$(echo "$tmp"/sdist/llama_cpp_python-*/)"
  for patch_file in "${patches[@]}"; do
    patch -p1 -s -d "$src" <"$patch_file" >&2 || { echo "llama-wheel.sh: $patch_file does not apply to llama-cpp-python $version" >&2; exit 1; }
    info="$info
patch=$(basename "$patch_file")"
  done
  if [ "$machine" = "$host" ]; then
    echo "building llama-cpp-python $version ($flags, ${#patches[@]} patches): takes minutes, once" >&2
    CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$python" -m pip wheel --no-deps --no-cache-dir -w "$tmp" "$src" >&2
  else
    echo "cross-compiling llama-cpp-python $version for $machine ($flags, ${#patches[@]} patches): takes minutes, once" >&2
    dropped=""
    case " $flags " in *" -DGGML_CPU_ALL_VARIANTS=ON "*) dropped="$(drop_unsupported_variants "$src")" ;; esac
    cat >"$tmp/aarch64.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER $cc)
set(CMAKE_CXX_COMPILER $cxx)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
EOF
    CMAKE_ARGS="-DCMAKE_TOOLCHAIN_FILE=$tmp/aarch64.cmake $flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$python" -m pip wheel --no-deps --no-cache-dir -w "$tmp/built" "$src" >&2
    # Retagged in a subfolder: no wheel with the host's tag and aarch64 libraries is ever in $tmp.
    retag "$(echo "$tmp"/built/llama_cpp_python-*.whl)" "linux_$machine"
    mv "$tmp"/built/llama_cpp_python-*.whl "$tmp/"
    info="$info
cross=$cc $("$cc" -dumpfullversion)"
    [ -z "$dropped" ] || info="$info
dropped-variants=$dropped"
    rm -rf "$tmp/built" "$tmp/aarch64.cmake"
  fi
  rm -rf "$tmp/sdist"
  printf 'version=%s\nflags=%s\n%s\n' "$version" "$flags" "$info" >"$tmp/BUILD-INFO"
  rm -rf "$dir" && mv "$tmp" "$dir"
  trap - EXIT
fi
echo "$dir"
