"""Render the bundle's text files from the service plan: pure, the same plan gives the same bytes."""

from __future__ import annotations

from ...templating import environment
from .plan import ServicePlan

# The newest glibc symbol the portable llama.cpp libraries use (GLIBC_2.34 at 0.3.36).
GLIBC_MIN = "2.34"
# Bundle path -> template; shell scripts are executable.
FILES = {
    "systemd/cortex.service": "cortex.service.j2",
    "systemd/cortex-sync.service": "cortex-sync.service.j2",
    "systemd/cortex.sysusers": "cortex.sysusers.j2",
    "quadlet/cortex.container": "cortex.container.j2",
    "install.sh": "install.sh.j2",
    "uninstall.sh": "uninstall.sh.j2",
}
EXECUTABLE = frozenset({"install.sh", "uninstall.sh"})


def render_files(plan: ServicePlan, project_wheel: str) -> dict[str, str]:
    """Every generated file of the bundle, by its path inside the bundle."""
    env = environment(__package__)
    context = {"plan": plan, "project_wheel": project_wheel, "glibc_min": GLIBC_MIN}
    return {path: env.get_template(template).render(context) for path, template in FILES.items()}
