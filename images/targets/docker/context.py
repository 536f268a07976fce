"""The build context: the rendered files plus host files (wheels, models, the Cortexfile),
written to a folder for inspection or streamed to the engine as a reproducible tar."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...artifacts import link_or_copy
from ...llama_source import llama_patches
from ...reproducible import add_bytes, add_file
from .build_network import EXTRA_CA_NAME, env_script
from .dockerfile import SYSTEM_CA_BUNDLES, family, render_dockerfile
from .plan import BuildPlan

CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")


def certificate_blocks(data: bytes) -> list[bytes]:
    return CERTIFICATE.findall(data)


TRIM_SCRIPT = Path(__file__).with_name("trim_venv.py")
SECRETS_FILE = "build/env.sh"
DOCKERIGNORE = "# The context holds only what cortex build put there.\n**/__pycache__\n**/*.partial\n"


@dataclass(frozen=True)
class HostFiles:
    """Files the build step gathered on the host for a plan."""

    cortexfile: bytes | None  # the bytes validated; None: the image waits for a mounted one (official variants)
    wheels: tuple[Path, ...]  # this project's wheel first, then prebuilt ones
    models: Mapping[str, Path] = field(default_factory=dict)  # sha256 -> verified file
    environ: Mapping[str, str] = field(default_factory=dict)  # resolves build secrets


Entry = bytes | Path


def entries(plan: BuildPlan, host: HostFiles) -> dict[str, Entry]:
    """Every file of the context by its relative path."""
    files: dict[str, Entry] = {
        "Dockerfile": render_dockerfile(plan, bake_cortexfile=host.cortexfile is not None).encode(),
        ".dockerignore": DOCKERIGNORE.encode(),
        SECRETS_FILE: env_script(plan.network, SYSTEM_CA_BUNDLES[family(plan)], host.environ).encode(),
        "build/trim-venv.py": TRIM_SCRIPT,
    }
    if plan.network.has_extra_ca:
        files[f"build/{EXTRA_CA_NAME}"] = b"".join(_pem(Path(p)) for p in plan.network.ca_certificates)
    if plan.compiles_llama:
        patches = {patch.name: patch for patch in llama_patches(plan.llama_version)}
        for name in plan.llama_patches:
            files[f"build/llama-patches/{name}"] = patches[name]
    if host.cortexfile is not None:
        files[plan.cortexfile_name] = host.cortexfile
    for wheel in host.wheels:
        files[f"wheels/{wheel.name}"] = wheel
    for model in plan.models:
        files[model.context_name] = host.models[model.sha256]
    return dict(sorted(files.items()))


def _pem(path: Path) -> bytes:
    """Only the certificate blocks of the file: whatever else it holds never reaches the build."""
    return b"".join(block + b"\n" for block in certificate_blocks(path.read_bytes()))


def write_tree(files: Mapping[str, Entry], folder: Path) -> None:
    """Write the context out for inspection (`--context-dir`); models and wheels are hard-linked
    where the file system allows it, else copied."""
    for name, entry in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        if isinstance(entry, bytes):
            target.write_bytes(entry)
            if name == SECRETS_FILE:
                target.chmod(0o600)  # it holds the resolved build secrets
        else:
            link_or_copy(entry, target)


def write_tar(files: Mapping[str, Entry], stream: io.BufferedIOBase | io.BytesIO, epoch: int) -> None:
    """The context as a reproducible tar (names sorted by `entries`), for the engine."""
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, entry in files.items():
            if isinstance(entry, bytes):
                add_bytes(archive, name, entry, epoch)
            else:
                add_file(archive, name, entry, epoch)
