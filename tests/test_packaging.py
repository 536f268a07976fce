"""The package layout: folders mapped by package-dir (no links), every package listed, the import
rule, the README's layout table, and `cortex build` from a plain install outside the checkout."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
MAPPED = {"menlo_cortex": "menlo_cortex", **SETUPTOOLS["package-dir"]}


def _package_folders() -> dict[str, Path]:
    """Every package (a folder with __init__.py) under the mapped folders, by its import name."""
    found = {}
    for name, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found[".".join((name, *relative))] = init.parent
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    assert sorted(_package_folders()) == sorted(SETUPTOOLS["packages"])


def test_the_source_tree_holds_no_links() -> None:
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True)
    links = [line.split("\t")[1] for line in listed.stdout.splitlines() if line.startswith("120000")]
    assert links == []


def _relative_imports(path: Path) -> list[tuple[int, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.level) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]


@pytest.mark.parametrize("folder", sorted(set(MAPPED.values())))
def test_relative_imports_stay_inside_their_folder(folder: str) -> None:
    """Relative inside a folder, `menlo_cortex.X` across folders."""
    escaping = []
    for path in (ROOT / folder).rglob("*.py"):
        depth = len(path.relative_to(ROOT / folder).parts) - 1  # packages between the folder and the file
        escaping += [f"{path.relative_to(ROOT)}:{line}" for line, level in _relative_imports(path) if level > depth + 1]
    assert escaping == []


def test_the_readme_layout_table_matches_the_tree() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Layout") :]
    listed = set(re.findall(r"^\| `([\w.-]+)/` \|", section, flags=re.M))
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    folders = {line.split("/")[0] for line in tracked.splitlines() if "/" in line and not line.startswith(".")}
    assert listed == folders


def test_the_wheel_carries_every_file_of_its_package_folders(project_wheel: Path) -> None:
    """Templates, static pages, recipes, patches: a file a package folder tracks that the wheel lacks is a
    build that works in the checkout and fails from a plain install."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    expected = set()
    for name, folder in MAPPED.items():
        prefix = name.replace(".", "/")
        expected |= {prefix + line[len(folder) :] for line in tracked if line.startswith(folder + "/")}
    with zipfile.ZipFile(project_wheel) as archive:
        names = set(archive.namelist())
    assert sorted(expected - names) == []


def _cortex(cortex: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(cortex), *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False)


def test_an_installed_cortex_renders_a_docker_context(
    installed_cortex: Path, test_data_dir: Path, tmp_path: Path
) -> None:
    example = ROOT / "examples" / "quickstart" / "Cortexfile.yaml"
    context = tmp_path / "context"
    args = ["build", "-f", str(example), "--format", "docker", "--context-only", "--context-dir", str(context)]
    done = _cortex(installed_cortex, *args, "--datapath", str(test_data_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (wheel,) = (context / "wheels").glob("menlo_cortex-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "menlo_cortex/runtime/main.py" in names
    assert "menlo_cortex/images/targets/docker/templates/Dockerfile.j2" in names
    assert any(name.endswith(".dist-info/RECORD") for name in names)
    assert (context / "Dockerfile").read_text(encoding="utf-8").count(f"/tmp/cortex-wheels/{wheel.name}[runtime]") == 1


def test_an_installed_cortex_builds_a_systemd_bundle(
    installed_cortex: Path, test_data_dir: Path, tmp_path: Path
) -> None:
    example = ROOT / "examples" / "quickstart" / "Cortexfile.yaml"
    args = ["build", "-f", str(example), "--format", "systemd", "-o", str(tmp_path / "out")]
    done = _cortex(installed_cortex, *args, "--datapath", str(test_data_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (bundle,) = (tmp_path / "out").glob("cortex-*-amd64")
    assert (bundle / "install.sh").is_file()
    assert len(list((bundle / "wheels").glob("menlo_cortex-*.whl"))) == 1
    assert len(list((bundle / "models").glob("*.gguf"))) == 1


def test_an_installed_cortex_writes_a_kubernetes_base(
    installed_cortex: Path, test_data_dir: Path, tmp_path: Path
) -> None:
    """Without the runtime extra: the models' memory is read from their GGUF headers in plain Python."""
    example = ROOT / "examples" / "quickstart" / "Cortexfile.yaml"
    args = ["build", "-f", str(example), "--format", "kube", "-o", str(tmp_path / "out")]
    done = _cortex(installed_cortex, *args, "--datapath", str(test_data_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    deployment = (tmp_path / "out" / "kube" / "deployment.yaml").read_text(encoding="utf-8")
    assert "memory:" in deployment


def test_a_source_trees_egg_info_is_not_taken_for_the_installation(tmp_path: Path) -> None:
    """`pip wheel` leaves menlo_cortex.egg-info in a source tree; run from there, it is first on sys.path."""
    shadow = tmp_path / "menlo_cortex.egg-info"
    shadow.mkdir()
    (shadow / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: menlo-cortex\nVersion: 9.9.9\n", encoding="utf-8")
    probe = "from menlo_cortex.images.project_wheel import editable_source as e, installed as i; "
    probe += "print(e(), i().version)"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == [str(ROOT), "0.1.0"]
