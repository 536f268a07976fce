"""Render the bundle's files from the service plan: pure, the same plan gives the same bytes.

The units, the sysusers file, the quadlet and bundle.env (the bundle's values, shell-escaped) are
rendered; install.sh and uninstall.sh are the same in every bundle (scripts/, checked by shellcheck as
they are) and read bundle.env.
"""

from __future__ import annotations

from pathlib import Path

from ...artifacts import Artifact, Files, text
from ...templating import environment
from .plan import ServicePlan

# The newest glibc symbol the portable llama.cpp libraries use (GLIBC_2.34 at 0.3.36).
GLIBC_MIN = "2.34"
# Bundle path -> template.
TEMPLATES = {
    "systemd/cortex.service": "cortex.service.j2",
    "systemd/cortex-sync.service": "cortex-sync.service.j2",
    "systemd/cortex.sysusers": "cortex.sysusers.j2",
    "quadlet/cortex.container": "cortex.container.j2",
    "bundle.env": "bundle.env.j2",
}
SCRIPTS_DIR = Path(__file__).with_name("scripts")
SCRIPTS = ("install.sh", "uninstall.sh")


def render(plan: ServicePlan, project_wheel: str) -> Files:
    """Every generated file of the bundle, by its path inside the bundle."""
    env = environment(__package__)
    context = {"plan": plan, "project_wheel": project_wheel, "glibc_min": GLIBC_MIN}
    files = {path: text(env.get_template(template).render(context)) for path, template in TEMPLATES.items()}
    return files | {name: Artifact((SCRIPTS_DIR / name).read_bytes(), 0o755) for name in SCRIPTS}
