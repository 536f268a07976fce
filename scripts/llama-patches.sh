# Sourced by llama-wheel.sh and llama-server.sh (needs $version): the reviewed fixes to the vendored llama.cpp,
# one folder per llama-cpp-python version (each patch names its upstream reference and when to drop it).
# Sets `patches` (the files, in order) and `patches_sum` (their bytes' hash, part of each cache key).
patches_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/images/llama_patches/$version"
patches=()
[ -d "$patches_dir" ] && mapfile -t patches < <(find "$patches_dir" -maxdepth 1 -name '*.patch' | LC_ALL=C sort)
patches_sum="$( ((${#patches[@]})) && cat "${patches[@]}" | sha256sum | cut -c1-16 || echo none)"
