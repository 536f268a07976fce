"""What every target's plan shares: architecture names and the Pythons a bundle carries wheels for.

The Cortexfile names architectures the OCI way (amd64, arm64); `uname -m`, Python's
platform.machine() and wheel tags call them x86_64 and aarch64.
"""

from __future__ import annotations

from menlo_cortex.cortexfile.schema.target import Architecture, normalize_architecture

MACHINES = {Architecture.amd64.value: "x86_64", Architecture.arm64.value: "aarch64"}
# The Pythons a systemd bundle carries wheels for: the hosts people run (Debian 12: 3.11; Ubuntu 24.04: 3.12;
# Debian 13 and Raspberry Pi OS trixie: 3.13). install.sh builds the venv with the host's own.
BUNDLE_PYTHONS = ("3.11", "3.12", "3.13")


def machine_of(architecture: str) -> str:
    return MACHINES[architecture]


def platform_architecture(platform: str | None) -> str | None:
    """`--platform` (linux/arm64, aarch64, x86_64, ...) as the Cortexfile names architectures."""
    return None if platform is None else str(normalize_architecture(platform))
