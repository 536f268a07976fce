"""The builder's venv trimming on a real folder tree shaped like an installed environment."""

from __future__ import annotations

from pathlib import Path

from menlo_cortex.images import trim_venv


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
    trim_venv.drop_installers(site)
    trim_venv.drop_duplicate_libraries(site)
    trim_venv.drop_tests(site)
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
