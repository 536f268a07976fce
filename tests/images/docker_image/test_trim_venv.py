"""The builder's venv trimming on a real folder tree shaped like an installed environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy
from menlo_cortex.images import trim_venv

# What llama-cpp-python and the runtime use of numpy (llama.py, cpu_selftest.py, the sampler's grammar path).
NUMPY_IN_USE = """
import numpy, numpy.ctypeslib, numpy.lib.stride_tricks, numpy.typing, llama_cpp.llama_chat_format
assert numpy.__file__.startswith(sys.argv[1]), numpy.__file__
numpy.random.default_rng(1).integers(0, 9, 4)
assert float(numpy.linalg.norm(numpy.array([3.0, 4.0]))) == 5.0
"""


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    for folder in ("pip", "setuptools", "pkg_resources", "numpy/_core/tests", "llama_cpp/lib", "lib", "include"):
        (site / folder).mkdir(parents=True, exist_ok=True)
    (site / "pip-24.0.dist-info").mkdir()
    (site / "distutils-precedence.pth").write_text("import os\n", encoding="utf-8")
    (site / "numpy" / "__init__.py").write_text("", encoding="utf-8")
    lib = site / "llama_cpp" / "lib"
    for name in ("libllama.so", "libllama.so.0", "libllama.so.0.5.0"):
        (lib / name).write_bytes(b"ELF llama")
    (lib / "libggml.so").write_bytes(b"ELF ggml other")
    return site


def test_installers_copies_and_tests_are_dropped(tmp_path: Path) -> None:
    site = _site(tmp_path)
    trim_venv.trim_site(site)
    assert sorted(p.name for p in site.iterdir()) == ["llama_cpp", "numpy"]
    assert not (site / "numpy" / "_core" / "tests").exists()


def test_identical_sonames_become_links_to_the_real_file(tmp_path: Path) -> None:
    site = _site(tmp_path)
    trim_venv.link_identical_sonames(site)
    lib = site / "llama_cpp" / "lib"
    assert not (lib / "libllama.so.0.5.0").is_symlink()
    assert (lib / "libllama.so").readlink() == Path("libllama.so.0.5.0")
    assert (lib / "libllama.so.0").readlink() == Path("libllama.so.0.5.0")
    assert (lib / "libllama.so").read_bytes() == b"ELF llama"
    assert not (lib / "libggml.so").is_symlink()


def test_musl_stack_hook_raises_python_thread_stacks(tmp_path: Path) -> None:
    site = _site(tmp_path)
    trim_venv.write_musl_stack_hook(site)
    hook = (site / "cortex-musl-stack.pth").read_text(encoding="utf-8")
    assert hook.startswith("import threading; threading.stack_size(")


def test_trimmed_numpy_still_imports_what_the_runtime_uses(tmp_path: Path) -> None:
    """The real numpy wheel's files, trimmed: its build helpers, headers, test module and stubs go; every part
    the runtime and llama-cpp-python (its chat formats, which import the most) import still works."""
    installed = Path(numpy.__file__).parent
    site = tmp_path / "site-packages"
    for folder in (installed, installed.with_name("numpy.libs")):
        if folder.is_dir():
            shutil.copytree(folder, site / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    missing = [pattern for pattern in trim_venv.NUMPY_UNUSED if not list((site / "numpy").glob(pattern))]
    assert missing in ([], ["distutils"]), "numpy changed: the trim names parts it no longer has"  # 3.12+: none
    trim_venv.trim_site(site)
    assert not [pattern for pattern in trim_venv.NUMPY_UNUSED if list((site / "numpy").glob(pattern))]
    assert not list(site.rglob("*.pyi"))
    command = [sys.executable, "-S", "-c", "import sys\n" + NUMPY_IN_USE, str(site)]
    env = {"PYTHONPATH": f"{site}:{installed.parent}"}  # the trimmed numpy first, then llama_cpp and the rest
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
