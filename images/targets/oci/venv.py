"""The runtime's Python environment at /opt/cortex, assembled from wheels on the build host without
running the target's Python: pip unpacks wheels made for the target's platform (the cross-built arm64
llama-cpp-python among them) into site-packages, and the rest of a venv is three small files.

The same trim as the Dockerfile path's builder stage (images/trim_venv.py) leaves out the installers, tests,
duplicate libraries, type stubs and the parts of numpy nothing imports.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.runtime.models.model_store import file_sha256

from ... import runtime_wheels, trim_venv
from ...project_wheel import WheelError, build_project_wheel, editable_source, installed, runtime_constraints
from ...sbom import PythonEntry, site_packages_entries

PREFIX = "opt/cortex"
LAUNCHER = """#!/opt/cortex/bin/python
import sys

from menlo_cortex.cli import main

if __name__ == "__main__":
    sys.exit(main())
"""
# Installer leftovers that name the build host's paths.
HOST_RECORDS = ("direct_url.json", "INSTALLER", "REQUESTED")


@dataclass(frozen=True)
class Wheel:
    name: str
    sha256: str


def project_fingerprint() -> str:
    """Changes whenever the runtime's code could: a checkout's package files (names, sizes, times),
    else the installed distribution's RECORD. Lets a rebuild skip building the project's wheel."""
    digest = hashlib.sha256()
    source = editable_source()
    if source is None:
        digest.update((installed().read_text("RECORD") or "").encode())
        return digest.hexdigest()[:16]
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    folders = ["menlo_cortex", *project["tool"]["setuptools"]["package-dir"].values()]
    for path in sorted(p for folder in folders for p in (source / folder).rglob("*") if p.is_file()):
        if "__pycache__" not in path.parts:
            status = path.stat()
            digest.update(f"{path.relative_to(source)}|{status.st_size}|{status.st_mtime_ns}\n".encode())
    readme = project["project"].get("readme")  # the wheel's METADATA carries it
    for name in ("pyproject.toml", *([readme] if isinstance(readme, str) else [])):
        digest.update((source / name).read_bytes())
    return digest.hexdigest()[:16]


def site_packages(python: str) -> str:
    return f"lib/python{python}/site-packages"


def gather_wheels(architecture: str, python: str, scratch: Path, llama_folder: Path | None) -> list[Path]:
    """This project's wheel, the runtime's dependencies and llama-cpp-python, all for `architecture` and the
    root's `python` (3.11 on Debian 12, 3.13 on Debian 13)."""
    llama = runtime_wheels.llama_wheel(architecture, llama_folder)
    project = build_project_wheel(scratch)
    needed = runtime_wheels.dependency_wheels(project, llama, architecture, runtime_constraints(), (python,))
    found = {w.name: w for w in needed}
    found[llama.name] = llama
    found[project.name] = project
    return [found[name] for name in sorted(found) if not name.startswith(trim_venv.INSTALLERS)]


def assemble(wheels: list[Path], architecture: str, python: str, into: Path) -> list[PythonEntry]:
    """The venv under `into` (its /opt/cortex) for the root's `python`; the distributions it holds."""
    site = into / site_packages(python)
    _unpack(wheels, architecture, python, site)
    shutil.rmtree(site / "bin", ignore_errors=True)  # pip's scripts name the build host's Python
    trim_venv.trim_site(site)
    _forget_host(site)
    _write_venv_files(into, python)
    return list(site_packages_entries(site))


def wheel_hashes(wheels: list[Path]) -> list[Wheel]:
    return [Wheel(wheel.name, file_sha256(wheel)) for wheel in wheels]


def _unpack(wheels: list[Path], architecture: str, python: str, site: Path) -> None:
    platforms = runtime_wheels.wheel_platforms(architecture)
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile"]
    command += ["--only-binary=:all:", "--target", str(site), "--python-version", python]
    command += ["--implementation", "cp", *(arg for name in platforms for arg in ("--platform", name))]
    # The wheels were chosen for the root's Python by their tags; pip 23.2 (venv's on Debian 12) checks Requires-Python
    # against the Python it runs on, not --python-version, and refuses e.g. numpy's cp313 wheel on 3.11.
    command += ["--ignore-requires-python"]
    done = subprocess.run([*command, *map(str, wheels)], capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise WheelError(f"unpacking the runtime's wheels for {architecture} failed: {done.stderr.strip()[-2000:]}")


def _forget_host(site: Path) -> None:
    """pip records where each wheel came from (a path on this machine) and who installed it."""
    for info in site.glob("*.dist-info"):
        for name in HOST_RECORDS:
            (info / name).unlink(missing_ok=True)
        record = info / "RECORD"
        if record.is_file():
            lines = record.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if not _host_record(line.split(",")[0])]
            record.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


def _host_record(name: str) -> bool:
    """An installer's own record, or a script pip wrote with the build host's Python in its first line."""
    return name.rpartition("/")[2] in HOST_RECORDS or name.startswith("../../bin/")


def _write_venv_files(into: Path, python: str) -> None:
    (into / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python}\n", encoding="utf-8"
    )
    scripts = into / "bin"
    scripts.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3", f"python{python}"):
        (scripts / name).symlink_to(f"/usr/bin/python{python}")
    launcher = scripts / "cortex"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    launcher.chmod(0o755)
