"""The llama-cpp-python every image and bundle carries: its pinned version, and the reviewed patches to
the llama.cpp it vendors (images/llama_patches/<version>/, applied in file-name order with `patch -p1`
in the sdist's root by scripts/llama-wheel.sh and by the docker target's builder stage)."""

from __future__ import annotations

from pathlib import Path

LLAMA_VERSION = "0.3.36"
PATCHES_DIR = Path(__file__).with_name("llama_patches")


def llama_patches(version: str = LLAMA_VERSION) -> tuple[Path, ...]:
    return tuple(sorted((PATCHES_DIR / version).glob("*.patch")))
