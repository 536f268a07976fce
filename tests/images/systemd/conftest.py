"""Shared pieces of the systemd target's tests: loading with the format's defaults, rendering a case."""

from __future__ import annotations

from pathlib import Path

from menlo_cortex.cortexfile.loader import Resolved, load
from menlo_cortex.images.targets.systemd.plan import DEFAULTS, FORMAT, ServicePlan, make_plan

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
PROJECT_WHEEL = "menlo_cortex-0.1.0-py3-none-any.whl"


def load_systemd(path: Path) -> Resolved:
    return load(path, format_defaults=(FORMAT, DEFAULTS))


def plan_for(path: Path, version: str = "0.1.0-golden") -> ServicePlan:
    resolved = load_systemd(path)
    return make_plan(resolved, version, "0" * 64)
