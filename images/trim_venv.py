"""Run inside the builder stage with the new environment's Python: drop what the final image
never runs (pip, setuptools, the copies of llama.cpp's libraries that wheels cannot link).

Copied into the build context as build/trim-venv.py; standard library only.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import sysconfig
from pathlib import Path

INSTALLERS = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel")
# numpy's parts that neither `import numpy` nor llama-cpp-python nor the runtime imports: the Fortran wrapper
# generator, the build helpers, the C headers and static library for compiling against numpy, and the SIMD
# test module (numpy.random, linalg, ctypeslib and the rest stay: the runtime uses some of them).
NUMPY_UNUSED = ("f2py", "distutils", "_pyinstaller", "_core/include", "_core/lib", "_core/_simd.*")
UNUSED_SCRIPTS = ("pip*", "f2py", "numpy-config")
MUSL_STACK_PTH = "import threading; threading.stack_size(8 * 1024 * 1024)\n"


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def drop_installers(site: Path) -> None:
    for entry in site.iterdir():
        name = entry.name.split("-")[0]
        if name in INSTALLERS or entry.name == "distutils-precedence.pth":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def trim_site(site: Path) -> None:
    """Everything both image paths leave out of site-packages."""
    drop_installers(site)
    drop_duplicate_libraries(site)
    link_identical_sonames(site)
    drop_tests(site)
    drop_unused_numpy(site)
    drop_type_stubs(site)


def drop_unused_scripts(scripts: Path) -> None:
    for pattern in UNUSED_SCRIPTS:
        for script in scripts.glob(pattern):
            script.unlink()


def drop_duplicate_libraries(site: Path) -> None:
    """llama-cpp-python's wheel also installs its libraries and headers at the top of
    site-packages (lib/, include/); the package loads its own llama_cpp/lib copies."""
    if (site / "llama_cpp" / "lib").is_dir():
        for folder in ("lib", "include", "bin"):
            shutil.rmtree(site / folder, ignore_errors=True)


def link_identical_sonames(site: Path) -> None:
    """Wheels hold no symlinks, so libfoo.so, libfoo.so.0 and libfoo.so.0.1 are three copies."""
    for folder in site.glob("*/lib"):
        libraries = sorted(folder.glob("*.so*"), key=lambda p: (-len(p.name), p.name))
        for index, real in enumerate(libraries):
            if real.is_symlink():
                continue
            for alias in libraries[index + 1 :]:
                if _is_copy(real, alias):
                    alias.unlink()
                    alias.symlink_to(real.name)


def _is_copy(real: Path, alias: Path) -> bool:
    if alias.name == real.name or not real.name.startswith(alias.name) or alias.is_symlink():
        return False
    return filecmp.cmp(real, alias, shallow=False)


def drop_tests(site: Path) -> None:
    for tests in list(site.glob("*/tests")) + list(site.glob("numpy/*/tests")):
        shutil.rmtree(tests)


def drop_unused_numpy(site: Path) -> None:
    for pattern in NUMPY_UNUSED:
        for path in (site / "numpy").glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def drop_type_stubs(site: Path) -> None:
    """`.pyi` stubs are read by type checkers only, never by an import."""
    for stub in site.rglob("*.pyi"):
        stub.unlink()


def write_musl_stack_hook(site: Path) -> None:
    """musl's default thread stack (128 KiB) is too small for inference threads: a .pth line runs
    at interpreter start and raises Python's."""
    (site / "cortex-musl-stack.pth").write_text(MUSL_STACK_PTH, encoding="utf-8")


def main(argv: list[str]) -> int:
    site = site_packages()
    trim_site(site)
    drop_unused_scripts(Path(sys.prefix, "bin"))
    if "--musl-stack" in argv:
        write_musl_stack_hook(site)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
