"""`build.systemd:` what the systemd service of `cortex build --format systemd` may do and use."""

from __future__ import annotations

from .base import Section, setting


class SystemdService(Section):
    allow_privileged_port: bool = setting(
        False, "Grant CAP_NET_BIND_SERVICE so the service may listen on a port below 1024."
    )
    limit_nofile: int = setting(8192, "Open files the service may hold (LimitNOFILE=).", ge=256)
    memory_max_mb: int | None = setting(
        None,
        "Hard memory limit of the service in MiB (MemoryMax=); unset: server.limits.memory_budget_mb "
        "plus 1024 MiB for the runtime, or no limit when that is unset too.",
        ge=256,
    )
    start_timeout_s: int = setting(
        120, "Time a start may take before systemd gives up; the runtime extends it while loading models.", ge=10
    )
