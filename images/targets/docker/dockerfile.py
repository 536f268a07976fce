"""Render the Dockerfile of a plan: pure, from the plan and the flavor's data only."""

from __future__ import annotations

import jinja2

from ...templating import environment
from .matrix import Flavor, flavor
from .plan import BuildPlan

FAMILIES = {"debian": "apt", "ubuntu": "apt", "alpine": "apk", "arch": "pacman", "fedora": "dnf"}
SYSTEM_CA_BUNDLES = {
    "apt": "/etc/ssl/certs/ca-certificates.crt",
    "apk": "/etc/ssl/certs/ca-certificates.crt",
    "pacman": "/etc/ssl/certs/ca-certificates.crt",
    "dnf": "/etc/pki/tls/certs/ca-bundle.crt",
}


def family(plan: BuildPlan) -> str:
    """The package-manager family of the plan's distro (apt, apk, pacman, dnf)."""
    return FAMILIES[plan.distro]


def _environment() -> jinja2.Environment:
    return environment(__package__, trim_blocks=False)


def builder_packages(plan: BuildPlan, chosen: Flavor) -> tuple[str, ...]:
    if plan.compiles_llama:
        return chosen.python + chosen.compilers + chosen.builder_extra
    return chosen.python


def render_dockerfile(plan: BuildPlan, *, bake_cortexfile: bool = True) -> str:
    """The Dockerfile text; UnsupportedTarget for a distro x accelerator pair without templates."""
    chosen = flavor(plan.distro, plan.accelerator, plan.release, plan.cuda_version, architecture=plan.architecture,
                    jetson=plan.jetson)  # fmt: skip
    template = _environment().get_template("Dockerfile.j2")
    text = template.render(
        plan=plan,
        flavor=chosen,
        family=family(plan),
        builder_packages=builder_packages(plan, chosen),
        runtime_image=plan.base_image or chosen.runtime_image,
        builder_image=plan.builder_image or chosen.builder_image,
        bake_cortexfile=bake_cortexfile,
        ca_bundle=SYSTEM_CA_BUNDLES[family(plan)],
    )
    return text.rstrip("\n") + "\n"
