"""Writing the base: published whole into `-o DIR/kube` (images/artifacts.py), never half of one."""

from __future__ import annotations

from pathlib import Path

from ...artifacts import Files, publish_tree


def build(files: Files, folder: Path) -> Path:
    return publish_tree(files, folder)
