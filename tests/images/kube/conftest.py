"""Shared pieces of the kube target's tests: a case loaded with the format's defaults and planned with fixed
model sizes (the build host's one fact), so rendering is checked without a model file."""

from __future__ import annotations

from pathlib import Path

from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.loader import Resolved, load
from menlo_cortex.images.targets.kube.plan import FORMAT, KubePlan, ModelFacts, make_plan

# The oci target's session fixtures (Podman set up for this machine, the appliance image built once), shared.
from ..oci.conftest import oci_build, oci_tools, podman_env  # noqa: F401

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
IMAGE = "registry.example:5000/team/cortex@sha256:" + "ab" * 32
MODEL = ModelFacts(file_bytes=253_000_000, kv_bytes=4 * 2048 * 18 * 512 * 2)


def load_kube(path: Path) -> Resolved:
    return load(path, format_defaults=formats.get(FORMAT).loader_argument())


def plan_for(path: Path) -> KubePlan:
    resolved = load_kube(path)
    models = {model.id: MODEL for model in resolved.config.models}
    return make_plan(resolved, IMAGE, models, path.read_text(encoding="utf-8"))
