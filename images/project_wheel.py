"""Wheels that go into the build context: this project's own, plus prebuilt ones (`--wheels DIR`,
e.g. llama-cpp-python compiled once by scripts/llama-wheel.sh).

This project's wheel comes from where `cortex` itself runs: a checkout installed in editable mode
builds it from its source tree; a plain `pip install menlo-cortex[build]` repacks the installed
distribution, file for file, so the appliance runs exactly the version that built it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "menlo-cortex"
WHEEL_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can hold
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Written by the installer, not part of the wheel (RECORD is written anew).
INSTALL_ONLY = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


class WheelError(RuntimeError):
    """The project's wheel could not be built, or a wheel folder is unusable."""


def build_project_wheel(out: Path) -> Path:
    """This project's wheel in `out`: built from the checkout, or repacked from the installation."""
    out.mkdir(parents=True, exist_ok=True)
    source = editable_source()
    return build_from_source(source, out) if source else repack_installed(out)


def installed() -> metadata.Distribution:
    """This environment's installation of the project: looked up in site-packages only, so that a
    source tree's `*.egg-info` on sys.path (the working directory) is never taken for it."""
    found = list(metadata.distributions(name=DISTRIBUTION, path=_site_packages()))
    if not found:
        raise WheelError(f"{DISTRIBUTION} is not installed in {sys.prefix}: cannot put the runtime into the build")
    return found[0]


def _site_packages() -> list[str]:
    return sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def editable_source() -> Path | None:
    """The source tree of an editable install (PEP 610's direct_url.json), else None."""
    info = json.loads(installed().read_text("direct_url.json") or "{}")
    if not info.get("dir_info", {}).get("editable") or not str(info.get("url", "")).startswith("file://"):
        return None
    return Path(info["url"].removeprefix("file://"))


def build_from_source(source: Path, out: Path) -> Path:
    """`pip wheel --no-deps` of the source tree into `out`; the wheel's path."""
    if not (source / "pyproject.toml").is_file():
        raise WheelError(f"cannot build the runtime wheel: no pyproject.toml in {source}")
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


def repack_installed(out: Path) -> Path:
    """The installed distribution as a wheel again: its package files and metadata, sorted, with
    fixed times and a new RECORD, so the same installation always gives the same bytes."""
    dist = installed()
    members = _wheel_members(dist)
    info_dir = f"menlo_cortex-{dist.version}.dist-info"
    target = out / f"menlo_cortex-{dist.version}-py3-none-any.whl"
    partial = target.with_name(target.name + ".partial")
    record = []
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            data = members[name].read_bytes()
            _add(archive, name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        _add(archive, f"{info_dir}/RECORD", ("\n".join(record) + "\n").encode())
    partial.replace(target)
    return target


def _wheel_members(dist: metadata.Distribution) -> dict[str, Path]:
    """Archive name -> installed file, for every file the wheel carried (no scripts, no caches)."""
    found = {}
    for file in dist.files or ():
        name = file.as_posix()
        parts = file.parts
        if ".." in parts or "__pycache__" in parts or name.endswith(".pyc"):
            continue
        if parts[0].endswith(".dist-info") and parts[-1] in INSTALL_ONLY:
            continue
        found[name] = Path(str(dist.locate_file(file)))
    if not any(name.startswith("menlo_cortex/") for name in found):
        raise WheelError(f"the installed {DISTRIBUTION} lists no package files: reinstall it")
    return found


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def runtime_constraints() -> str:
    """Pins (`name==version`) for the installed distributions the runtime extra needs: a bundle
    installs what this build host runs, whether it is a checkout or a plain install."""
    requirements = installed().requires or []
    pins: set[str] = set()
    for requirement in requirements:
        name = requirement.split(";")[0].split("[")[0]
        for cut in "<>=!~ ":
            name = name.split(cut)[0]
        found = list(metadata.distributions(name=name, path=_site_packages()))
        pins.update(f"{name}=={dist.version}" for dist in found[:1])
    return "".join(f"{pin}\n" for pin in sorted(pins))


def prebuilt_wheels(folder: Path) -> tuple[Path, ...]:
    """The wheels of a `--wheels` folder, sorted; WheelError when it holds none."""
    if not folder.is_dir():
        raise WheelError(f"--wheels {folder}: not a folder")
    found = tuple(sorted(folder.glob("*.whl")))
    if not found:
        raise WheelError(f"--wheels {folder}: no .whl files in it")
    return found
