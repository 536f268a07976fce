"""The service plan: what the systemd bundle's files say, derived from the resolved Cortexfile alone.

Pure: no host facts. Settings the sandbox cannot honour (a port below 1024 without the capability,
a data folder ProtectSystem=strict makes read-only, a distro the bundle cannot serve) are located
ConfigErrors from cortexfile/format_rules.py, the rules `cortex validate` reports too, so
`cortex build` stops before writing anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile import format_rules, formats
from menlo_cortex.cortexfile.data_folder import sync_dir
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.format_rules import LOGS_ROOT, PRIVILEGED_PORTS, STATE_ROOT, service_folder
from menlo_cortex.cortexfile.formats import CONFIG_DIR, CORTEXFILE_NAME
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema import Cortexfile

from ...architectures import BUNDLE_PYTHONS, machine_of

FORMAT = "systemd"
# The systemd format's defaults layer (cortexfile/formats.py), which `cortex start --defaults systemd` applies too.
DEFAULTS = dict(formats.get(FORMAT).values)
# Device nodes an accelerator needs; everything else stays hidden (DevicePolicy=closed).
ACCELERATOR_DEVICES = {
    "cpu": (),
    "cuda": ("/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"),
    "vulkan": ("char-drm",),
    "rocm": ("/dev/kfd", "char-drm"),
}
RUNTIME_OVERHEAD_MB = 1024


@dataclass(frozen=True)
class BakedModel:
    id: str
    sha256: str


@dataclass(frozen=True)
class ServicePlan:
    version: str
    architecture: str
    python_versions: tuple[str, ...]  # the hosts' Pythons the bundle carries wheels for
    config_hash: str
    host: str
    port: int
    tls: bool
    state_directory: str
    logs_directory: str
    capabilities: tuple[str, ...]
    devices: tuple[str, ...]
    limit_nofile: int
    memory_max_mb: int | None
    start_timeout_s: int
    models: tuple[BakedModel, ...]
    secret_files: tuple[str, ...]
    image: str
    sync: bool  # the Cortexfile follows a repository: install.sh enables cortex-sync.service
    defaults: str = FORMAT  # the format whose defaults layer the service starts with (`cortex start --defaults`)
    config_dir: str = CONFIG_DIR
    prefix: str = "/opt/cortex"
    user: str = "cortex"

    @property
    def machine(self) -> str:
        """The architecture as `uname -m` and Python's platform.machine() name it."""
        return machine_of(self.architecture)

    @property
    def data_dir(self) -> str:
        return str(STATE_ROOT / self.state_directory)

    @property
    def logs_dir(self) -> str:
        return str(LOGS_ROOT / self.logs_directory)

    @property
    def exec_start(self) -> tuple[str, ...]:
        python, cortexfile = f"{self.prefix}/current/bin/python", f"{self.config_dir}/{CORTEXFILE_NAME}"
        return (python, "-m", "menlo_cortex", "start", "--defaults", self.defaults, "-f", cortexfile)

    @property
    def sync_exec_start(self) -> tuple[str, ...]:
        python, cortexfile = f"{self.prefix}/current/bin/python", f"{self.config_dir}/{CORTEXFILE_NAME}"
        return (python, "-m", "menlo_cortex", "sync", "--defaults", self.defaults, "-f", cortexfile)

    @property
    def sync_directory(self) -> str:
        """StateDirectory= of cortex-sync.service: the folder `cortex sync` uses (cortexfile.data_folder.sync_dir)."""
        return sync_dir(Path(self.data_dir)).name

    @property
    def sync_dir(self) -> str:
        return str(STATE_ROOT / self.sync_directory)

    @property
    def environment_file(self) -> str:
        """Env-var secret references (${env:NAME}) come from this optional root-only file."""
        return f"{self.config_dir}/environment"

    @property
    def model_digests(self) -> tuple[str, ...]:
        return tuple(model.sha256 for model in self.models)

    @property
    def ready_url(self) -> str:
        """Where the installer polls /ready: a wildcard listener is reached on loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"{'https' if self.tls else 'http'}://{_bracketed(host)}:{self.port}/ready"

    @property
    def publish_port(self) -> str:
        """The quadlet's PublishPort=: the address the Cortexfile listens on (all when a wildcard)."""
        address = "" if self.host in ("0.0.0.0", "::") else f"{_bracketed(self.host)}:"
        return f"{address}{self.port}:{self.port}"


def make_plan(
    resolved: Resolved, version: str, config_hash: str, image: str | None = None, defaults: str = FORMAT
) -> ServicePlan:
    """`resolved` was loaded with the defaults layer of format `defaults` (this one's, or the disk image's,
    which installs this service); ConfigError lists every problem."""
    problems = format_rules.problems(resolved, defaults)
    if problems:
        raise ConfigError(problems)
    config = resolved.config
    service = config.build.systemd
    return ServicePlan(
        version=version,
        architecture=config.target.architecture.value,
        python_versions=BUNDLE_PYTHONS,
        config_hash=config_hash,
        host=config.server.host,
        port=config.server.port,
        tls=config.server.tls.cert is not None,
        state_directory=service_folder(config.data.path, STATE_ROOT) or "cortex",
        logs_directory=service_folder(config.logs.path, LOGS_ROOT) or "cortex",
        capabilities=("CAP_NET_BIND_SERVICE",) if config.server.port < PRIVILEGED_PORTS else (),
        devices=ACCELERATOR_DEVICES[config.target.accelerator.value],
        limit_nofile=service.limit_nofile,
        memory_max_mb=_memory_max(config),
        start_timeout_s=service.start_timeout_s,
        models=_baked_models(config),
        secret_files=_secret_files(config),
        image=image or f"localhost/cortex:{version}",
        sync=config.sync.repository is not None,
        defaults=defaults,
    )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _memory_max(config: Cortexfile) -> int | None:
    if config.build.systemd.memory_max_mb is not None:
        return config.build.systemd.memory_max_mb
    budget = config.server.limits.memory_budget_mb
    return None if budget is None else budget + RUNTIME_OVERHEAD_MB


def _baked_models(config: Cortexfile) -> tuple[BakedModel, ...]:
    if not config.build.bake_models:
        return ()
    return tuple(BakedModel(m.id, m.sha256) for m in config.models if m.sha256 is not None)


def _secret_files(config: Cortexfile) -> tuple[str, ...]:
    """Files under the config folder that hold secrets: installed root:cortex 0640, never world-readable."""
    auth = config.server.auth
    paths = [str(auth.api_key_file)] if auth.api_key_file else []
    paths += [key.target for key in auth.api_keys if key.kind == "file"]
    if config.server.tls.key is not None:
        paths.append(str(config.server.tls.key))
    return tuple(sorted({p for p in paths if _inside(p, CONFIG_DIR)}))


def _inside(path: str, folder: str) -> bool:
    """`path` lies below `folder` as the kernel would resolve it: compared normalised, so
    /etc/cortex/../shadow is not inside /etc/cortex (the schema refuses such a path first)."""
    normal = os.path.normpath(path)
    return normal == path and normal.startswith(folder.rstrip("/") + "/")
