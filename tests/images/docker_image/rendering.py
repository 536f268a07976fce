"""Render the golden cases: one Cortexfile, the target varied through env, fixed build options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.recipes import RECIPES_DIR
from menlo_cortex.images.targets.docker.dockerfile import render_dockerfile
from menlo_cortex.images.targets.docker.matrix import FLAVORS
from menlo_cortex.images.targets.docker.plan import BuildPlan, ImageOptions, make_plan

HERE = Path(__file__).parent
CASE_FILE = HERE / "cases" / "Cortexfile.yaml"
GOLDEN = HERE / "golden"
PROJECT_WHEEL = "menlo_cortex-0.1.0-py3-none-any.whl"
LLAMA_WHEEL = "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
FIXED_HASH = "0" * 64
CUDA_13 = ("arch", "debian", "ubuntu")  # the images with a CUDA 13 choice (Fedora's are built with 12)
HASH_LABEL = "ai.menlo.cortex.config-hash"
OPTIONS = ImageOptions(project_wheel=PROJECT_WHEEL, version="0.1.0", created="2026-01-01T00:00:00Z")


JETSON = {"CORTEX_TARGET__ARCHITECTURE": "arm64", "CORTEX_TARGET__CUDA_ARCHITECTURES": '["87"]'}  # an Orin's


def plan_for(
    distro: str,
    accelerator: str,
    options: ImageOptions = OPTIONS,
    *,
    file: Path = CASE_FILE,
    cuda: str = "12",
    target: Mapping[str, str] = MappingProxyType({}),
) -> BuildPlan:
    environ = {"CORTEX_TARGET__DISTRO": distro, "CORTEX_TARGET__ACCELERATOR": accelerator, **target}
    environ["CORTEX_TARGET__CUDA_VERSION"] = cuda
    if (distro, accelerator) == ("debian", "cuda"):  # NVIDIA's repository is used for Debian 12 only
        environ["CORTEX_TARGET__RELEASE"] = "bookworm"
    resolved = load(file, environ=environ, format_defaults=formats.get("docker").loader_argument())
    return _fixed_hash(make_plan(resolved.config, options))


def variant_plan(name: str) -> BuildPlan:
    resolved = load(RECIPES_DIR / "variants" / f"{name}.yaml", format_defaults=formats.get("docker").loader_argument())
    return _fixed_hash(make_plan(resolved.config, OPTIONS))


def _fixed_hash(plan: BuildPlan) -> BuildPlan:
    """The config hash covers every schema default, so any new setting would change every golden
    file; it is pinned here and checked against the real hash elsewhere."""
    labels = tuple((key, FIXED_HASH if key == HASH_LABEL else value) for key, value in plan.labels)
    return replace(plan, config_hash=FIXED_HASH, labels=labels)


def cases() -> dict[str, str]:
    """Golden file name -> rendered Dockerfile."""
    rendered = {f"{d}-{a}.Dockerfile": render_dockerfile(plan_for(d, a)) for d, a in sorted(FLAVORS)}
    prebuilt = ImageOptions(
        project_wheel=PROJECT_WHEEL, prebuilt_wheels=(LLAMA_WHEEL,), version="0.1.0", created=OPTIONS.created
    )
    rendered["debian-cpu-prebuilt-wheels.Dockerfile"] = render_dockerfile(plan_for("debian", "cpu", prebuilt))
    for distro in CUDA_13:
        rendered[f"{distro}-cuda13.Dockerfile"] = render_dockerfile(plan_for(distro, "cuda", cuda="13"))
    rendered["ubuntu-cuda-jetson.Dockerfile"] = render_dockerfile(plan_for("ubuntu", "cuda", cuda="13", target=JETSON))
    for name in ("alpine", "ubuntu"):
        rendered[f"variant-{name}.Dockerfile"] = render_dockerfile(variant_plan(name), bake_cortexfile=False)
    return rendered
