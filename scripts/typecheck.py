"""mypy --strict over the menlo_cortex package as installed, with errors reported at the source files.

The package maps top-level folders into its namespace (pyproject's package-dir), which mypy cannot
follow through an editable install's import hook. So this lays the package out as a wheel would,
from copies under build/typecheck, runs mypy there, and names the source paths in what it prints.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"
PACKAGE = "menlo_cortex"


def folders() -> dict[str, Path]:
    """Installed package folder (relative to the tree) -> source folder, longest first."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping = {PACKAGE: PACKAGE, **config["tool"]["setuptools"]["package-dir"]}
    pairs = {name.replace(".", "/"): ROOT / source for name, source in mapping.items()}
    return dict(sorted(pairs.items(), key=lambda item: -len(item[0])))


def lay_out(pairs: dict[str, Path]) -> None:
    shutil.rmtree(TREE / PACKAGE, ignore_errors=True)
    for installed, source in pairs.items():
        for file in source.rglob("*"):
            if file.suffix in (".py", ".typed") and "__pycache__" not in file.parts:
                target = TREE / installed / file.relative_to(source)
                if not target.exists():  # a mapped subfolder wins over its parent's copy
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target)


def to_source(line: str, pairs: dict[str, Path]) -> str:
    for installed, source in pairs.items():
        if line.startswith(installed + "/"):
            return f"{source.relative_to(ROOT)}/{line[len(installed) + 1 :]}"
    return line


def main() -> int:
    pairs = folders()
    lay_out(pairs)
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", PACKAGE]
    done = subprocess.run(command, cwd=TREE, capture_output=True, text=True, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        print(to_source(line, pairs))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
