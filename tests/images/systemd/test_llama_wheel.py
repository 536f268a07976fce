"""Which cached llama-cpp-python wheel a bundle takes for each architecture, and what it says
when there is none (the folders scripts/llama-wheel.sh writes, with empty stand-in wheels)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from menlo_cortex.images.project_wheel import WheelError
from menlo_cortex.images.runtime_wheels import llama_wheel

ALL_VARIANTS = "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "cortex" / "wheels"


def cached(cache: Path, key: str, machine: str, flags: str | None, mtime: int = 1_000_000) -> Path:
    folder = cache / f"llama-cpp-python-0.3.36-{key}"
    folder.mkdir(parents=True)
    wheel = folder / f"llama_cpp_python-0.3.36-py3-none-linux_{machine}.whl"
    wheel.touch()
    if flags is not None:
        info = folder / "BUILD-INFO"
        info.write_text(f"version=0.3.36\nflags={flags}\narchitecture={machine}\n", encoding="utf-8")
        os.utime(info, (mtime, mtime))
    return wheel


def test_each_architecture_gets_its_own_wheel(cache: Path) -> None:
    amd64 = cached(cache, "c769d66f5eef871b", "x86_64", ALL_VARIANTS)
    arm64 = cached(cache, "0a0a0a0a0a0a0a0a", "aarch64", ALL_VARIANTS)
    assert llama_wheel("amd64") == amd64
    assert llama_wheel("arm64") == arm64


def test_every_cpu_variant_wins_over_one_pinned_cpu(cache: Path) -> None:
    portable = cached(cache, "0000000000000000", "aarch64", ALL_VARIANTS)
    cached(cache, "ffffffffffffffff", "aarch64", "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod")
    cached(cache, "eeeeeeeeeeeeeeee", "aarch64", None)
    assert llama_wheel("arm64") == portable


def test_among_equals_the_newest_build_wins(cache: Path) -> None:
    cached(cache, "ffffffffffffffff", "aarch64", ALL_VARIANTS, mtime=1_000_000)
    newer = cached(cache, "0000000000000000", "aarch64", ALL_VARIANTS, mtime=2_000_000)
    assert llama_wheel("arm64") == newer


def test_a_build_in_progress_is_not_taken(cache: Path) -> None:
    """llama-wheel.sh builds in `<folder>.tmp.<pid>`, then renames it."""
    cached(cache, "0a0a0a0a0a0a0a0a.tmp.4242", "aarch64", ALL_VARIANTS)
    with pytest.raises(WheelError):
        llama_wheel("arm64")


def test_a_missing_arm64_wheel_says_how_to_build_it(cache: Path) -> None:
    cached(cache, "c769d66f5eef871b", "x86_64", ALL_VARIANTS)
    with pytest.raises(WheelError) as caught:
        llama_wheel("arm64")
    message = str(caught.value)
    assert f"no llama-cpp-python 0.3.36 wheel for arm64 (aarch64) in {cache}" in message
    assert "run `make arm64-wheel` (scripts/llama-wheel.sh --arch arm64" in message
    assert "crossbuild-essential-arm64" in message


def test_a_given_folder_is_the_only_place_looked_in(cache: Path, tmp_path: Path) -> None:
    cached(cache, "0a0a0a0a0a0a0a0a", "aarch64", ALL_VARIANTS)
    empty = tmp_path / "given"
    empty.mkdir()
    with pytest.raises(WheelError, match=f"wheel for arm64 \\(aarch64\\) in {empty}: "):
        llama_wheel("arm64", empty)
