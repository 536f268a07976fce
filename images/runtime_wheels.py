"""The bundle's wheels: this project (`pip wheel --no-deps`), its runtime dependencies for each Python the
target may run (`pip download`, binary only, cached per requirement set), and the portable llama-cpp-python
wheel that scripts/llama-wheel.sh keeps under ~/.cache/cortex/wheels. Never the builder's own
dependencies (docker, jinja2): the runtime extra does not name them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .architectures import machine_of
from .llama_source import LLAMA_VERSION, llama_patches
from .project_wheel import WheelError

# manylinux tags up to the glibc the bundle asks for (2.34, see systemd/render.py: Ubuntu 22.04 has 2.35)
GLIBC_MINORS = range(17, 35)


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cortex"


def llama_wheel(architecture: str, folder: Path | None = None) -> Path:
    """The prebuilt llama-cpp-python wheel for `architecture` (from `folder` or the llama-wheel.sh cache)."""
    machine = machine_of(architecture)
    folders = [folder] if folder else sorted(_cached_folders(), key=_preference)
    pattern = f"llama_cpp_python-{LLAMA_VERSION}-*linux_{machine}.whl"
    found = [wheel for place in folders for wheel in sorted(place.glob(pattern))]
    if not found:
        where = folder or cache_root() / "wheels"
        raise WheelError(
            f"no llama-cpp-python {LLAMA_VERSION} wheel for {architecture} ({machine}) in {where}: the bundle "
            f"cannot contain that architecture; {_how_to_build(architecture, machine)}"
        )
    return found[-1]


def _cached_folders() -> list[Path]:
    """llama-wheel.sh's finished folders: it builds in `<folder>.tmp.<pid>` and renames that when done."""
    found = (cache_root() / "wheels").glob(f"llama-cpp-python-{LLAMA_VERSION}-*")
    return [place for place in found if ".tmp." not in place.name]


def _how_to_build(architecture: str, machine: str) -> str:
    if machine == "aarch64":
        return (
            "run `make arm64-wheel` (scripts/llama-wheel.sh --arch arm64: on an x86_64 host it cross-compiles, "
            "with crossbuild-essential-arm64) or pass a folder holding one with --wheels"
        )
    return f"build one on a {machine} host with scripts/llama-wheel.sh and pass its folder with --wheels"


def _preference(folder: Path) -> tuple[bool, bool, float, str]:
    """A wheel that llama-wheel.sh built with every CPU variant runs on any CPU of its architecture:
    it sorts last, so it is the one chosen for a host never seen; then one with every patch of
    images/llama_patches; among equals, the newest build (BUILD-INFO is written last), the folder
    name (a hash) only breaking ties."""
    info = folder / "BUILD-INFO"
    if not info.is_file():
        return False, False, 0.0, folder.name
    text = info.read_text(encoding="utf-8")
    patched = all(f"patch={patch.name}" in text.splitlines() for patch in llama_patches())
    return "-DGGML_CPU_ALL_VARIANTS=ON" in text, patched, info.stat().st_mtime, folder.name


def wheel_platforms(architecture: str) -> list[str]:
    """The platform tags a wheel for the target's glibc and `architecture` may carry (pip's --platform)."""
    machine = machine_of(architecture)
    manylinux = [f"manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS]
    return [*manylinux, f"manylinux2014_{machine}", f"linux_{machine}"]


def dependency_wheels(
    project_wheel: Path, llama: Path, architecture: str, constraints: str, pythons: tuple[str, ...]
) -> list[Path]:
    """Every wheel the runtime extra needs on the target, for each of `pythons` (pip on the target picks the
    ones its Python takes), downloaded once per requirement set."""
    key = _dependency_key(project_wheel, llama, architecture, constraints, pythons)
    cached = cache_root() / "bundle-wheels" / key
    if not (cached / ".complete").is_file():
        _download(project_wheel, llama, architecture, constraints, pythons, into=cached)
    return sorted(cached.glob("*.whl"))


def _download(
    project_wheel: Path, llama: Path, architecture: str, constraints: str, pythons: tuple[str, ...], *, into: Path
) -> None:
    partial = into.with_name(into.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "constraints.txt").write_text(constraints, encoding="utf-8")
    command = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(partial)]
    command += [arg for name in wheel_platforms(architecture) for arg in ("--platform", name)]
    command += ["--implementation", "cp", "--find-links", str(llama.parent), "-c", str(partial / "constraints.txt")]
    for python in pythons:  # the pure wheels come once: pip keeps what the folder holds
        what = f"downloading the runtime's dependencies for Python {python}"
        _run([*command, "--python-version", python, f"{project_wheel}[runtime]", "pip"], what)
    for own in partial.glob("menlo_cortex-*.whl"):
        own.unlink()
    (partial / ".complete").touch()
    shutil.rmtree(into, ignore_errors=True)
    partial.rename(into)


def _dependency_key(
    project_wheel: Path, llama: Path, architecture: str, constraints: str, pythons: tuple[str, ...]
) -> str:
    platforms = ",".join(wheel_platforms(architecture))
    digest = hashlib.sha256(f"{architecture}|{','.join(pythons)}|{platforms}|{llama.name}".encode())
    digest.update("\n".join(_requirements(project_wheel)).encode())
    digest.update(constraints.encode())
    return digest.hexdigest()[:16]


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode().splitlines()
    return sorted(line for line in lines if line.startswith("Requires-Dist:"))


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise WheelError(f"{what} failed: {(done.stderr or done.stdout).strip()[-2000:]}")
