"""The docker target's render: the build context's files from the plan and the host files the build step
gathered. Pure: the same plan and host files give the same bytes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...artifacts import Artifact, Files
from ...llama_source import llama_patches
from .build_network import EXTRA_CA_NAME, env_script
from .dockerfile import SYSTEM_CA_BUNDLES, family, render_dockerfile
from .plan import BuildPlan

CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")
TRIM_SCRIPT = Path(__file__).parents[2] / "trim_venv.py"  # images/trim_venv.py, which the OCI target runs too
SECRETS_FILE = "build/env.sh"
DOCKERIGNORE = "# The context holds only what cortex build put there.\n**/__pycache__\n**/*.partial\n"


def certificate_blocks(data: bytes) -> list[bytes]:
    return CERTIFICATE.findall(data)


@dataclass(frozen=True)
class HostFiles:
    """Files the build step gathered on the host for a plan."""

    cortexfile: bytes | None  # the bytes validated; None: the image waits for a mounted one (official variants)
    wheels: tuple[Path, ...]  # this project's wheel first, then prebuilt ones
    models: Mapping[str, Path] = field(default_factory=dict)  # sha256 -> verified file
    environ: Mapping[str, str] = field(default_factory=dict)  # resolves build secrets


def render(plan: BuildPlan, host: HostFiles) -> Files:
    """Every file of the context by its relative path."""
    files: dict[str, Artifact] = {
        "Dockerfile": Artifact(render_dockerfile(plan, bake_cortexfile=host.cortexfile is not None).encode()),
        ".dockerignore": Artifact(DOCKERIGNORE.encode()),
        # It holds the resolved build secrets: made readable by its owner only.
        SECRETS_FILE: Artifact(env_script(plan.network, SYSTEM_CA_BUNDLES[family(plan)], host.environ).encode(), 0o600),
        "build/trim-venv.py": Artifact(TRIM_SCRIPT),
    }
    if plan.network.has_extra_ca:
        blocks = b"".join(_pem(Path(p)) for p in plan.network.ca_certificates)
        files[f"build/{EXTRA_CA_NAME}"] = Artifact(blocks)
    if plan.compiles_llama:
        patches = {patch.name: patch for patch in llama_patches(plan.llama_version)}
        for name in plan.llama_patches:
            files[f"build/llama-patches/{name}"] = Artifact(patches[name])
    if host.cortexfile is not None:
        files[plan.cortexfile_name] = Artifact(host.cortexfile)
    for wheel in host.wheels:
        files[f"wheels/{wheel.name}"] = Artifact(wheel)
    for model in plan.models:
        files[model.context_name] = Artifact(host.models[model.sha256])
    return dict(sorted(files.items()))


def _pem(path: Path) -> bytes:
    """Only the certificate blocks of the file: whatever else it holds never reaches the build."""
    return b"".join(block + b"\n" for block in certificate_blocks(path.read_bytes()))
