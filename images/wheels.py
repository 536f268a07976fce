"""Wheels that go into the build context: this project built on the host, plus prebuilt ones
(`--wheels DIR`, e.g. llama-cpp-python compiled once by scripts/llama-wheel.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

WHEEL_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can hold
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # images/ is linked into menlo_cortex/


class WheelError(RuntimeError):
    """The project's wheel could not be built, or a wheel folder is unusable."""


def build_project_wheel(out: Path, source: Path = PROJECT_ROOT) -> Path:
    """`pip wheel --no-deps` of the project into `out`; the wheel's path."""
    if not (source / "pyproject.toml").is_file():
        raise WheelError(f"cannot build the runtime wheel: no pyproject.toml in {source} (install from a source tree)")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cortex-wheel-") as scratch:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", scratch]
        # Fixed zip timestamps: the same sources give the same wheel, so the engine re-uses its layers
        # and a bundle that only changes the Cortexfile lets install.sh re-use the installed runtime.
        environ = dict(os.environ, SOURCE_DATE_EPOCH=os.environ.get("SOURCE_DATE_EPOCH", WHEEL_EPOCH))
        done = subprocess.run([*command, str(source)], capture_output=True, text=True, check=False, env=environ)
        if done.returncode != 0:
            raise WheelError(f"building the runtime wheel failed: {done.stderr.strip()[-2000:]}")
        built = sorted(Path(scratch).glob("menlo_cortex-*.whl"))
        if not built:
            raise WheelError("pip wheel produced no menlo_cortex wheel")
        target = out / built[0].name
        built[0].replace(target)
    return target


def prebuilt_wheels(folder: Path) -> tuple[Path, ...]:
    """The wheels of a `--wheels` folder, sorted; WheelError when it holds none."""
    if not folder.is_dir():
        raise WheelError(f"--wheels {folder}: not a folder")
    found = tuple(sorted(folder.glob("*.whl")))
    if not found:
        raise WheelError(f"--wheels {folder}: no .whl files in it")
    return found
