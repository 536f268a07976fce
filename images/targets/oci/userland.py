"""The Debian userland of a daemonless image: what the service runs on and nothing more. No kernel, no
systemd, no SSH: the container engine is the init. Shared with nothing else, but built by the same
root builder (images/debian.py) and cached beside the device roots."""

from __future__ import annotations

from ...debian import RootSpec, host_mirror

RUNTIME_PACKAGES = (
    "python3",
    "libgomp1",  # llama.cpp's OpenMP
    "ca-certificates",  # model downloads, the Hugging Face hub
)


def root_spec(architecture: str, release: str, mirror: str | None) -> RootSpec:
    """`mirror`: the Cortexfile's build.debian_mirror, else the build host's own."""
    return RootSpec(architecture, RUNTIME_PACKAGES, suite=release, mirror=mirror or host_mirror())
