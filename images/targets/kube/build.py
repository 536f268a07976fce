"""Writing the base: every file into a private folder beside the output, then one rename, so `-o` never holds
half a base (and an old base is replaced whole)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_base(files: dict[str, str], folder: Path) -> Path:
    if folder.is_symlink():
        raise OSError(f"{folder} is a symbolic link: give a real folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
            os.chmod(staging / name, 0o644)
        os.chmod(staging, 0o755)
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(folder, old)
        os.rename(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
