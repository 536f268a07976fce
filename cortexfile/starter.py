"""The starting Cortexfile `cortex init` writes: a catalogue model chosen for a machine or a board, commented.

Pure: the choice and the figures come in; the YAML text comes out. Every value written is a catalogue name
or a recipe name (checked names, [a-z0-9.-]), so no value needs quoting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .catalogue import Entry
from .migrate import SCHEMA_LINE

QUANTIZATION_SUFFIX = re.compile(r"-(?:i?q[0-9][a-z0-9_]*|b?f(?:16|32))$")


def model_id(entry: Entry) -> str:
    """The name clients pass as `model`: the preset's name without its quantisation (`qwen2.5-1.5b-instruct`)."""
    return QUANTIZATION_SUFFIX.sub("", entry.name) or entry.name


def starter_text(entry: Entry, why: Sequence[str], hardware: str | None = None) -> str:
    """`why`: comment lines saying what the model was chosen for and what it is expected to take."""
    lines = [SCHEMA_LINE.rstrip("\n"), "# Written by `cortex init`."]
    lines += [f"# {line}" for line in why]
    lines += [
        "# `cortex models fit` ranks every catalogue model; `cortex models list` shows the catalogue. The model is",
        "# downloaded by `cortex pull` (or the first `cortex start`) and its sha256 pinned in Cortexfile.lock.",
        "version: 1",
    ]
    if hardware:
        lines += [
            "target:",
            f"  hardware: {hardware}  # recipes/hardware: set target.memory_mb if yours has other memory",
        ]
    lines += [
        "server:",
        "  host: 127.0.0.1  # this machine only: give server.auth.api_keys before listening on the network",
        "  port: 39281",
        "models:",
        f"  - id: {model_id(entry)}  # the name clients pass as `model`",
        f"    preset: {entry.name}  # recipes/models: {_printable(entry.model.source)}",
    ]
    return "\n".join(lines) + "\n"


def _printable(text: str) -> str:
    return text if text.isprintable() else "(a source with control characters)"
