"""Rendered files as text, for tests that read them (every render returns images/artifacts.py's Files)."""

from __future__ import annotations

from menlo_cortex.images.artifacts import Files


def texts(files: Files) -> dict[str, str]:
    return {
        name: artifact.content.decode("utf-8")
        for name, artifact in files.items()
        if isinstance(artifact.content, bytes)
    }
