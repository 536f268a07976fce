#!/usr/bin/env bash
# Build native llama-server from the llama.cpp sources vendored in the pinned llama-cpp-python source
# package, with the wheel's own CMake flags (same kernels, same CPU variants), once per (version, flags,
# machine), and keep it in a cache outside the work tree. The serving benchmark's baseline
# (bench/compare.py). Prints the folder holding llama-server and its libraries.
set -euo pipefail
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
python="${PYTHON:-python3}"
cache="${CORTEX_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cortex/llama-server}"
flags="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON}"
# The wheel's reviewed patches too: the baseline runs the same kernels, and unpatched llama.cpp dies on
# AMX Xeons (images/llama_patches).
# shellcheck source=scripts/llama-patches.sh
. "$(dirname "$0")/llama-patches.sh"
key=$(printf '%s|%s|%s|patches %s' "$version" "$flags" "$(uname -m)" "$patches_sum" | sha256sum | cut -c1-16)
dir="$cache/$version-$key"

if [ ! -x "$dir/llama-server" ]; then
  for tool in cmake g++ make; do
    command -v "$tool" >/dev/null || { echo "llama-server.sh: building needs $tool (make setup installs it)" >&2; exit 1; }
  done
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "building llama-server from llama-cpp-python $version's sources ($flags): takes minutes, once" >&2
  "$python" -m pip download -q --no-binary :all: --no-deps -d "$tmp/sdist" "llama-cpp-python==$version" >&2
  tar -xzf "$tmp"/sdist/llama_cpp_python-*.tar.gz -C "$tmp/sdist"
  sdist="$(echo "$tmp"/sdist/llama_cpp_python-*/)"
  for patch_file in "${patches[@]}"; do
    patch -p1 -s -d "$sdist" <"$patch_file" >&2 || { echo "llama-server.sh: $patch_file does not apply" >&2; exit 1; }
  done
  src="$sdist/vendor/llama.cpp"
  # shellcheck disable=SC2086  # the flags are words
  cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON $flags >&2
  cmake --build "$tmp/build" --target llama-server -j "$(nproc)" >&2
  mkdir -p "$tmp/out"
  cp -a "$tmp"/build/bin/. "$tmp/out/"
  printf 'version=%s\nflags=%s\npatches=%s\n' "$version" "$flags" "$patches_sum" >"$tmp/out/BUILD-INFO"
  rm -rf "$dir"
  mv "$tmp/out" "$dir"
fi
echo "$dir"
