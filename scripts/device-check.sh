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
#   scripts/device-check.sh run --rehearse
#                                         here: the GPU run's own steps (the packed wheels and sources, a linked
#                                         build, the site folder) on a machine without a GPU: what a first GPU run
#                                         would meet. With nvcc here the build compiles the CUDA kernels for
#                                         DEVICE_CHECK_CAPABILITY (9.0: an H100's or H200's) and finds cuBLAS as
#                                         the GPU run does (CUDA then finds no GPU, and the model runs on the CPU);
#                                         without, the CPU alone. Pack with DEVICE_PYTHON set to this python3's.
#   scripts/device-check.sh flags 9.0     the CMake flags for a GPU of that compute capability
#
# On the device tool: run(command="scripts/device-check.sh run", carry=[".device"], timeout_s=600).
set -euo pipefail
shopt -s inherit_errexit  # a failing step inside $(...) stops the run too
here="$(cd "$(dirname "$0")/.." && pwd)"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
pack_dir="$here/.device"
sources="$here/build/device-src"  # ignored, as build/device-llama
links="$here/build/device-cuda-links"
device_python="${DEVICE_PYTHON:-3.12}"  # the GPU machine's (shared/notes/machine.md)
# What Cortex runs with that the GPU machine lacks (it has numpy, jinja2, httpx, anyio and h11).
wheels=(pydantic pydantic-core annotated-types typing-extensions typing-inspection ruamel.yaml starlette
  uvicorn click watchfiles urllib3 tomli-w diskcache)
streams="1,4,16,64"

die() { echo "device-check: $*" >&2; exit 2; }

# The CPU code for this CPU, linked into libggml (GGML_NATIVE rules out loadable modules), shared libraries for
# llama-cpp-python to load.
cpu_flags="-DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON -DGGML_CCACHE=OFF"

# Compute capability ("9.0") -> the CMake flags: CUDA kernels for that GPU only (minutes, not the half hour of
# every architecture), beside the CPU's.
gpu_flags() {
  [[ "$1" =~ ^([0-9]{1,2})\.([0-9])$ ]] || die "not a compute capability: '$1' (want MAJOR.MINOR, like 9.0)"
  echo "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${BASH_REMATCH[1]}${BASH_REMATCH[2]} $cpu_flags"
}

pack() {
  local python="$here/.venv/bin/python" model
  [ -x "$python" ] || die "no .venv: run make setup first"
  tmp="$(mktemp -d)"  # global: the trap runs after pack returns
  trap 'rm -rf "$tmp"' EXIT
  local packed="$tmp/pack" src="$tmp/llama_cpp_python-$version"
  mkdir -p "$packed/wheels"
  "$python" -m pip download -q --no-binary :all: --no-deps -d "$tmp" "llama-cpp-python==$version"
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
  # shellcheck source=scripts/llama-patches.sh
  . "$here/scripts/llama-patches.sh"
  for patch_file in "${patches[@]}"; do patch -p1 -s -d "$src" <"$patch_file"; done
  # What the build never reads: the sources' git history, test vocabularies, docs, tests, benchmarks (54 MiB).
  rm -rf "$src/.git" "$src"/vendor/llama.cpp/{models,docs,tests,benches}
  tar -czf "$packed/llama-src.tar.gz" -C "$tmp" "llama_cpp_python-$version"
  "$python" -m pip wheel -q --no-deps -w "$packed/wheels" "$here"
  local pins=() name
  for name in "${wheels[@]}"; do pins+=("$name==$("$python" -m pip show "$name" | sed -n 's/^Version: //p')"); done
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$device_python" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$packed/wheels" "${pins[@]}"
  model="$(cd "$here/bench" && "$python" -c 'from compare import test_model; print(test_model())')"
  "$python" "$here/bench/gguf_synth.py" skeleton "$model" "$packed/skeleton"
  echo "python=$device_python sources=$(sources_digest)" >"$packed/stamp"
  local size
  size="$(du -sm "$packed" | cut -f1)"
  ((size < 60)) || die "the pack is $size MiB: a device call carries 64 MiB with the rest of the tree"
  rm -rf "$pack_dir" && mv "$packed" "$pack_dir"
  echo "$pack_dir: $size MiB"
}

cuda_toolkit() {  # nvcc's own toolkit (the nvcc on PATH may be a wrapper script elsewhere)
  local top
  top="$(nvcc --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p')"
  [ -n "$top" ] || die "nvcc does not say where its toolkit is (no TOP= in its --dryrun)"
  readlink -f "$top"
}

in_toolkit() {  # whether the toolkit at $1 has the header $2, in either of its layouts
  local header
  for header in "$1/include/$2" "$1"/targets/*/include/"$2"; do [ -e "$header" ] && return 0; done
  return 1
}

# CMake looks for cuBLAS and the driver's libcuda.so in the CUDA toolkit and the system's library folders only. A
# toolkit assembled from NVIDIA's pip wheels (this machine's nvcc 13.0, and the GPU machine's, whose torch venv
# holds nvidia-cublas; shared/notes, KINDS.md) has neither, and the driver there is a mount of its own: CMake is
# sent to them through $links (the unversioned names find_library wants, and cuBLAS's headers alone). Where no
# driver is found (a rehearsal), ggml's CUDA pool does without it (GGML_CUDA_NO_VMM). Prints the CMake flags.
cuda_flags() {
  local toolkit driver vmm=OFF
  toolkit="$(cuda_toolkit)"
  rm -rf "$links" && mkdir -p "$links/include"
  in_toolkit "$toolkit" cublas_v2.h || link_cublas "$toolkit"
  driver="$(driver_library)"
  if [ -n "$driver" ]; then ln -s "$driver" "$links/libcuda.so"; else vmm=ON; fi
  echo "-DCMAKE_LIBRARY_PATH=$links -DCMAKE_CUDA_FLAGS=-I$links/include -DGGML_CUDA_NO_VMM=$vmm"
}

link_cublas() {  # torch's cuBLAS, of the toolkit's CUDA major, into $links
  local major found="" dir sub lib
  major="$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"
  for dir in $(python3 -c 'import site; print(*site.getsitepackages(), site.getusersitepackages())'); do
    for sub in "nvidia/cu$major" nvidia/cublas; do  # CUDA 13's wheels' folder, CUDA 12's
      if [ -e "$dir/$sub/include/cublas_v2.h" ] && [ -e "$dir/$sub/lib/libcublas.so.$major" ]; then
        found="$dir/$sub" && break 2
      fi
    done
  done
  [ -n "$found" ] ||
    die "no cuBLAS for CUDA $major: neither the toolkit ($1) nor python3's site-packages (nvidia/cu$major," \
      "nvidia/cublas) has cublas_v2.h and libcublas.so.$major"
  for lib in "$found"/lib/libcublas*.so.*; do
    ln -sfn "$lib" "$links/${lib##*/}"
    ln -sfn "$lib" "$links/$(basename "$lib" | sed 's/\.so\..*/.so/')"
  done
  ln -s "$found"/include/cublas*.h "$links/include/"
}

driver_library() {  # the driver's libcuda.so.1: where the loader finds it, or where the GPU machine mounts it
  local dir found
  found="$(ldconfig -p 2>/dev/null | sed -n 's/.*libcuda\.so\.1 (libc6,x86-64) => //p' | head -1)"
  [ -z "$found" ] || { echo "$found" && return 0; }
  for dir in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
    [ ! -e "$dir/libcuda.so.1" ] || { echo "$dir/libcuda.so.1" && return 0; }
  done
}

# The pack is made for one Python and one state of the sources: a stale one (another Python's wheels, an older
# Cortex) would fail or measure other code. Its stamp: the Python, and a digest of what the wheel is made of.
sources_digest() {
  local folders
  folders="$(cd "$here" && python3 -c 'import tomllib
tool = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]
print(*sorted({"menlo_cortex", *tool["package-dir"].values()}))')"
  # shellcheck disable=SC2086  # the folders are words
  (cd "$here" && find $folders pyproject.toml -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

preflight() {  # what the GPU run needs, checked before minutes of building
  local tool tools=(cmake ninja python3)
  [ "$mode" = --rehearse ] || tools+=(nvidia-smi nvcc)
  for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || die "no $tool on this machine"
  done
  python3 -c "import sys; sys.exit(sys.version_info[:2] != (${device_python/./, }))" ||
    die "python3 is $(python3 -V 2>&1), the run expects $device_python (DEVICE_PYTHON sets it)"
  [ "$(cat "$pack_dir/stamp" 2>/dev/null)" = "python=$device_python sources=$(sources_digest)" ] ||
    die "$pack_dir was packed for another Python or other sources ($(cat "$pack_dir/stamp" 2>/dev/null ||
      echo 'no stamp')): run 'scripts/device-check.sh pack' again here"
}

install_python() {  # the wheels and llama-cpp-python's Python code into $work/site; its libraries come later
  # The sources in one ignored place: CMake's cache names them, so a rerun's build folder is reused only if
  # they stay where they were (tar keeps the files' times: ninja rebuilds nothing).
  mkdir -p "$sources" && tar -xzf "$pack_dir/llama-src.tar.gz" -C "$sources"
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "$pack_dir"/wheels/*.whl
  cp -r "$sources/llama_cpp_python-$version/llama_cpp" "$work/site/"
  PYTHONPATH="$work/site" python3 -c 'import menlo_cortex.cli, pydantic, starlette, uvicorn, ruamel.yaml, watchfiles'
}

# llama-server and the libraries, in an ignored folder that a rerun on the same machine reuses (one cut short by the
# run's time goes on from where it stopped). Its log goes to $OUT as it is written: it comes back however the run
# ends.
build_for_gpu() {
  local cap="" gpu cuda flags="$cpu_flags" build="$here/build/device-llama" left
  if [ "$mode" = gpu ]; then
    cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1)"
  elif command -v nvcc >/dev/null; then
    cap="${DEVICE_CHECK_CAPABILITY:-9.0}" build+="-rehearsal"
  else
    build+="-rehearsal-cpu"
  fi
  if [ -n "$cap" ]; then  # each on its own line: a failure inside $(...) stops the run only as the last one
    gpu="$(gpu_flags "$cap")"
    cuda="$(cuda_flags)"
    flags="$gpu $cuda"
  fi
  left=$((deadline - SECONDS - 150))  # what the bench needs at least
  ((left > 0)) || die "no time left to build (DEVICE_CHECK_S sets the run's)"
  # shellcheck disable=SC2086  # the flags are words
  {
    cmake -S "$sources/llama_cpp_python-$version/vendor/llama.cpp" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DLLAMA_CURL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      -DLLAMA_BUILD_SERVER=ON -U'CUDA_cu*_LIBRARY' $flags  # found again each run: $links is made anew
    timeout -k 10 "$left" cmake --build "$build" --target llama-server llama -j "$(nproc)" ||
      die "the build stopped or ran out of the run's time: run again, it goes on from where it was"
  } 2>&1 | tee -a "$OUT/build.log" | tail -20
  [ -z "$cap" ] || [ -e "$build/bin/libggml-cuda.so" ] || die "the build has no CUDA backend ($build/bin)"
  mkdir -p "$work/site/llama_cpp/lib"
  cp -a "$build"/bin/*.so* "$work/site/llama_cpp/lib/"
  server="$build/bin"
  check_build "$cap"
}

# What the build finds, through llama-cpp-python and through llama-server (as compare.py starts it), the CUDA
# runtime first put where the loader looks (the build's RUNPATH leaves the toolkit out). On the GPU machine, a GPU,
# or the run stops before minutes of benching the CPU.
check_build() {
  local toolkit
  if [ -n "$1" ]; then
    toolkit="$(cuda_toolkit)"
    export LD_LIBRARY_PATH="$toolkit/lib64:$toolkit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "device-check: the CUDA toolkit in $toolkit"
  fi
  python3 -c 'import llama_cpp' || die "llama-cpp-python does not load this build's libraries (above)"
  LD_LIBRARY_PATH="$server${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$server/llama-server" --list-devices 2>&1 |
    tee -a "$OUT/build.log"
  [ "$mode" != gpu ] || python3 -c 'import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())' ||
    die "this CUDA build finds no GPU (is the driver's CUDA, in nvidia-smi, older than nvcc's?)"
}

finish() {  # however the run ends: the servers' logs back (8 files come back from $OUT), the work gone
  tar -czf "$OUT/logs.tar.gz" --exclude='*.db' -C "$work/data" . || echo "device-check: logs not saved" >&2
  rm -rf "$work" || true
}

run() {
  mode="${1:-gpu}"  # global: preflight and build_for_gpu read it
  local python slots=64 gpu_layers=-1 deadline=$((SECONDS + ${DEVICE_CHECK_S:-570}))
  [[ "$mode" = gpu || "$mode" = --cpu || "$mode" = --rehearse ]] ||
    die "run takes --cpu, --rehearse or nothing, not '$mode'"
  [ -n "${OUT:-}" ] || die "OUT is not set: the folder for the JSON, the BenchCard and the logs"
  [ -f "$pack_dir/skeleton/layout.json" ] || die "no $pack_dir/skeleton: run 'scripts/device-check.sh pack' here"
  mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
  work="$(mktemp -d)"  # global, as `server`: finish runs after run returns
  mkdir -p "$work/data"
  trap finish EXIT
  # Python run in the checkout would import its menlo_cortex/ folder (the CLI alone) before the installed package.
  cd "$work"
  if [ "$mode" = --cpu ]; then
    python="$here/.venv/bin/python" slots=4 gpu_layers=0 streams="1,2"
    server="$(PYTHON="$python" "$here/scripts/llama-server.sh")"
  else
    preflight
    install_python
    export PYTHONPATH="$work/site"
    python=python3
  fi
  "$python" "$here/bench/gguf_synth.py" synth "$pack_dir/skeleton" "$work/synthetic.gguf"
  if [ "$mode" = --rehearse ]; then
    slots=4 gpu_layers=0 streams="1,2"
    build_for_gpu
  elif [ "$mode" = gpu ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv | tee "$OUT/build.log"
    build_for_gpu
  fi
  local left=$((deadline - SECONDS))
  ((left > 60)) || die "$left s left of the run's time: too little to bench (DEVICE_CHECK_S sets it)"
  local status=0
  timeout -k 15 "$left" "$python" "$here/bench/compare.py" --model "$work/synthetic.gguf" \
    --llama-server "$server" --slots "$slots" --gpu-layers "$gpu_layers" --type runtime,load --data "$work/data" \
    --out "$OUT/card" --streams "$streams" 2>&1 | tee "$OUT/compare.log" || status=$?
  grep -h -e "llama.cpp backends" -e "layers to GPU" -e "layers offloaded" -e "found no GPU" \
    "$work/data/cortex-logs/cortex.log" || true
  ((status != 124 && status != 137)) ||
    die "the bench ran out of the run's time ($left s left for it; DEVICE_CHECK_S sets the run's)"
  return "$status"
}

case "${1:-}" in
  pack) pack ;;
  run) run "${2:-gpu}" ;;
  flags) gpu_flags "${2:-}" ;;
  *) die "usage: scripts/device-check.sh pack | run [--cpu | --rehearse] | flags CAPABILITY" ;;
esac
