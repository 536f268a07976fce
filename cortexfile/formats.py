"""Each output format's defaults layer: values that suit that format, just above the built-in
defaults and below the recipe, the file, env and flags, so an edit of the file still wins.

Containers listen on all interfaces (the engine's port mapping decides who reaches them) and
keep their data under /var/lib/cortex; logs already go to stdout by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

CONFIG_DIR = "/etc/cortex"
CONTAINER_DATA = "/var/lib/cortex"


@dataclass(frozen=True)
class FormatDefaults:
    name: str
    values: Mapping[str, Any] = field(default_factory=dict)
    missing_file_hint: str = ""

    def loader_argument(self) -> tuple[str, Mapping[str, Any]]:
        """What `cortexfile.loader.load(..., format_defaults=...)` takes."""
        return self.name, dict(self.values)


_MOUNT_HINT = (
    f"mount a folder holding Cortexfile.yaml at {CONFIG_DIR}, e.g. "
    f"`docker run -v $PWD/cortex:{CONFIG_DIR}:ro -p 39281:39281 IMAGE` "
    "(mount the folder, not the file, so edits reload)"
)

_CONTAINER = MappingProxyType({"server.host": "0.0.0.0", "data.path": CONTAINER_DATA})

FORMATS: Mapping[str, FormatDefaults] = MappingProxyType(
    {
        "docker": FormatDefaults("docker", _CONTAINER, _MOUNT_HINT),
        "oci": FormatDefaults("oci", _CONTAINER, _MOUNT_HINT),
        # The systemd service: models in its StateDirectory; logs stay on stdout, which is the journal.
        "systemd": FormatDefaults(
            "systemd",
            MappingProxyType({"data.path": CONTAINER_DATA}),
            f"reinstall the bundle (install.sh) or restore {CONFIG_DIR}/Cortexfile.yaml",
        ),
    }
)


def names() -> list[str]:
    return sorted(FORMATS)


def get(name: str) -> FormatDefaults:
    """The defaults of format `name`; KeyError naming the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"no defaults for format `{name}` (known: {', '.join(names())})") from None
