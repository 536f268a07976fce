"""mypy --strict over the menlo_cortex package as installed, with errors reported at the source files, then
over the tests and the bench scripts against that package (they drifted unnoticed while only the package was
checked: a bench script importing a helper that had moved).

The package maps top-level folders into its namespace (pyproject's package-dir), which mypy cannot
follow through an editable install's import hook. So this lays the package out as a wheel would,
from copies under build/typecheck, runs mypy there, and names the source paths in what it prints.
"""

from __future__ import annotations

import os
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
    mypy = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    package = subprocess.run([*mypy, "-p", PACKAGE], cwd=TREE, capture_output=True, text=True, check=False)
    for line in (package.stdout + package.stderr).splitlines():
        print(to_source(line, pairs))
    # MYPYPATH comes before the checkout on mypy's search path: `menlo_cortex` is the laid-out package.
    environ = {**os.environ, "MYPYPATH": str(TREE)}
    command = [*mypy, "tests", "bench"]
    users = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, check=False)
    print(users.stdout + users.stderr, end="")
    return package.returncode or users.returncode


if __name__ == "__main__":
    sys.exit(main())
