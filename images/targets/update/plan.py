"""The update plan: the disk plan of the same Cortexfile (an update's root is the disk image's) and the names of
the files it publishes. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from menlo_cortex.cortexfile import format_rules
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import Resolved

from ..disk.plan import DiskPlan, make_plan

FORMAT = "update"


@dataclass(frozen=True)
class UpdatePlan:
    disk: DiskPlan
    version: str

    @property
    def stem(self) -> str:
        return f"{self.disk.name}_{self.version}"

    @property
    def root_file(self) -> str:
        return f"{self.stem}.root.ext4.zst"

    def boot_file(self, name: str) -> str:
        return f"{self.stem}.{name}"


def make_update_plan(resolved: Resolved, config_hash: str) -> UpdatePlan:
    """ConfigError lists what the update format refuses (no build.version, a board without UEFI, ...)."""
    problems = format_rules.problems(resolved, FORMAT)
    if problems:
        raise ConfigError(problems)
    disk = make_plan(resolved, config_hash)
    assert disk.version is not None  # format_rules: an update needs build.version
    return UpdatePlan(disk, disk.version)
