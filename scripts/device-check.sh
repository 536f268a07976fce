#!/usr/bin/env bash
# The GPU check: Cortex beside native llama-server, both built with CUDA from the same vendored llama.cpp, the
# model wholly on the GPU, measured by `cortex bench` at 1, 4, 16 and 64 streams. The GPU machine has no network
# and takes 64 MiB a call, so what it needs is packed here first.
#
#   scripts/device-check.sh pack          here: .device/ (the patched llama.cpp sources, trimmed; wheels for the
#                                         device's Python; the test model's skeleton, bench/gguf_synth.py)
#   scripts/device-check.sh run           there, with .device carried: build, synthesize the model, serve, bench;
#                                         JSON, BenchCard and logs to $OUT (the device tool's folder)
#   scripts/device-check.sh run --cpu     here: the same run with this machine's builds (the venv, and
#                                         scripts/llama-server.sh's llama-server), on the CPU, briefly
#   scripts/device-check.sh flags 9.0     the CMake flags for a GPU of that compute capability
#
# On the device tool: run(command="scripts/device-check.sh run", carry=[".device"], timeout_s=600).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
pack_dir="$here/.device"
device_python="3.12"  # the GPU machine's (shared/notes/machine.md)
# What Cortex runs with that the GPU machine lacks (it has numpy, jinja2, httpx, anyio and h11).
wheels=(pydantic pydantic-core annotated-types typing-extensions typing-inspection ruamel.yaml starlette
  uvicorn click watchfiles urllib3 tomli-w diskcache)
streams="1,4,16,64"

die() { echo "device-check: $*" >&2; exit 2; }

# Compute capability ("9.0") -> the CMake flags: CUDA kernels for that GPU only (minutes, not the half hour of
# every architecture), the CPU code for this CPU, both linked into libggml (GGML_NATIVE rules out loadable
# modules), shared libraries for llama-cpp-python to load.
gpu_flags() {
  [[ "$1" =~ ^([0-9]{1,2})\.([0-9])$ ]] || die "not a compute capability: '$1' (want MAJOR.MINOR, like 9.0)"
  echo "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${BASH_REMATCH[1]}${BASH_REMATCH[2]} -DGGML_NATIVE=ON" \
    "-DBUILD_SHARED_LIBS=ON -DGGML_CCACHE=OFF"
}

pack() {
  local python="$here/.venv/bin/python"
  [ -x "$python" ] || die "no .venv: run make setup first"
  tmp="$(mktemp -d)"  # global: the trap runs after pack returns
  trap 'rm -rf "$tmp"' EXIT
  rm -rf "$pack_dir" && mkdir -p "$pack_dir/wheels"
  "$python" -m pip download -q --no-binary :all: --no-deps -d "$tmp" "llama-cpp-python==$version"
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
  local src="$tmp/llama_cpp_python-$version"
  # shellcheck source=scripts/llama-patches.sh
  . "$here/scripts/llama-patches.sh"
  for patch_file in "${patches[@]}"; do patch -p1 -s -d "$src" <"$patch_file"; done
  # What the build never reads: the sources' git history, test vocabularies, docs, tests, benchmarks (54 MiB).
  rm -rf "$src/.git" "$src"/vendor/llama.cpp/{models,docs,tests,benches}
  tar -czf "$pack_dir/llama-src.tar.gz" -C "$tmp" "llama_cpp_python-$version"
  "$python" -m pip wheel -q --no-deps -w "$pack_dir/wheels" "$here"
  local pins=() name
  for name in "${wheels[@]}"; do pins+=("$name==$("$python" -m pip show "$name" | sed -n 's/^Version: //p')"); done
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$device_python" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$pack_dir/wheels" "${pins[@]}"
  local model
  model="$(cd "$here/bench" && "$python" -c 'from compare import test_model; print(test_model())')"
  "$python" "$here/bench/gguf_synth.py" skeleton "$model" "$pack_dir/skeleton"
  du -sh "$pack_dir"
}

build_for_gpu() {  # $1: work folder; prints the folder with llama-server and the libraries
  local work="$1" cap
  command -v nvidia-smi >/dev/null || die "no nvidia-smi: not a GPU machine (use run --cpu here)"
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1)"
  tar -xzf "$pack_dir/llama-src.tar.gz" -C "$work"
  local src="$work/llama_cpp_python-$version"
  # shellcheck disable=SC2046  # the flags are words
  cmake -S "$src/vendor/llama.cpp" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON $(gpu_flags "$cap") >&2
  cmake --build "$work/build" --target llama-server llama -j "$(nproc)" >&2
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$pack_dir"/wheels/*.whl >&2
  cp -r "$src/llama_cpp" "$work/site/"
  mkdir -p "$work/site/llama_cpp/lib"
  cp -a "$work"/build/bin/*.so* "$work/site/llama_cpp/lib/"
  echo "$work/build/bin"
}

run() {
  local cpu="" work python server slots=64 gpu_layers=-1 out="${OUT:-}"
  [ "${1:-}" = "--cpu" ] && cpu=1
  [ -n "$out" ] || die "OUT is not set: the folder for the JSON, the BenchCard and the logs"
  [ -d "$pack_dir/skeleton" ] || die "no $pack_dir/skeleton: run 'scripts/device-check.sh pack' here first"
  work="$(mktemp -d)"
  if [ -n "$cpu" ]; then
    python="$here/.venv/bin/python" server="$(PYTHON="$python" "$here/scripts/llama-server.sh")"
    slots=4 gpu_layers=0 streams="1,2"
  else
    server="$(build_for_gpu "$work")" python=python3
    export PYTHONPATH="$work/site"
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv | tee "$out/gpu.csv"
  fi
  "$python" "$here/bench/gguf_synth.py" synth "$pack_dir/skeleton" "$work/synthetic.gguf"
  "$python" "$here/bench/compare.py" --model "$work/synthetic.gguf" --llama-server "$server" --slots "$slots" \
    --gpu-layers "$gpu_layers" --type runtime,load --data "$work/data" --out "$out/card" --streams "$streams" \
    2>&1 | tee "$out/compare.log"
  tar -czf "$out/logs.tar.gz" --exclude='*.db' -C "$work/data" .  # the device tool takes 8 files back
  rm -rf "$work"
}

case "${1:-}" in
  pack) pack ;;
  run) run "${2:-}" ;;
  flags) gpu_flags "${2:-}" ;;
  *) die "usage: scripts/device-check.sh pack | run [--cpu] | flags CAPABILITY" ;;
esac
