#!/usr/bin/env bash
# Build llama-cpp-python once per (version, CMake flags) and keep the wheel in a cache
# outside the work tree, so fresh clones, CI runs and image builds on this machine reuse it.
# pip's own wheel cache ignores CMAKE_ARGS, hence this key. Prints the wheel folder.
set -euo pipefail
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
# Portable by default: no -march=native (such a wheel can crash on another CPU or under qemu). On
# x86-64, every CPU variant as a module and the best loaded at run time: the flags `cortex build`
# gives a CPU image's builder stage (cortexfile/plan.py), so the image tests can use this wheel.
portable="-DGGML_NATIVE=OFF"
if [ "$(uname -m)" = x86_64 ]; then
  portable="$portable -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_BACKEND_DIR:STRING=llama_cpp/lib"
fi
flags="${LLAMA_CMAKE_ARGS:-$portable}"
python="${PYTHON:-python3}"
key=$(printf '%s|%s|%s' "$version" "$flags" "$("$python" -c 'import sys,platform;print(sys.implementation.cache_tag, platform.machine())')" | sha256sum | cut -c1-16)
dir="${CORTEX_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cortex/wheels}/llama-cpp-python-$version-$key"
if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  tmp="$dir.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  echo "building llama-cpp-python $version ($flags): takes minutes, once" >&2
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$python" -m pip wheel --no-deps --no-cache-dir -w "$tmp" "llama-cpp-python==$version" >&2
  printf 'version=%s\nflags=%s\n' "$version" "$flags" > "$tmp/BUILD-INFO"
  rm -rf "$dir" && mv "$tmp" "$dir"
fi
echo "$dir"
