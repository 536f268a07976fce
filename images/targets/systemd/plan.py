"""The service plan: what the systemd bundle's files say, derived from the resolved Cortexfile alone.

Pure: no host facts. Settings the sandbox cannot honour (a port below 1024 without the capability,
a data folder ProtectSystem=strict makes read-only, a distro or architecture the bundle cannot
serve) are located ConfigErrors, so `cortex build` stops before writing anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, dotted
from menlo_cortex.cortexfile.formats import CONFIG_DIR, DATA_DIR
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema import Cortexfile

from ...plan import TARGET_PYTHON, machine_of

FORMAT = "systemd"
STATE_ROOT = PurePosixPath("/var/lib")
LOGS_ROOT = PurePosixPath("/var/log")
# The systemd format's defaults layer (cortexfile/formats.py), which `cortex start --defaults systemd` applies too.
DEFAULTS = dict(formats.get(FORMAT).values)
PRIVILEGED_PORTS = 1024
DEBIAN_LIKE = ("debian", "ubuntu")
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
    python_version: str
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
    def ready_url(self) -> str:
        """Where the installer polls /ready: a wildcard listener is reached on loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/ready"

    @property
    def publish_address(self) -> str:
        """The quadlet's PublishPort= host side: the address the Cortexfile listens on."""
        return "" if self.host in ("0.0.0.0", "::") else f"{self.host}:"


def make_plan(resolved: Resolved, version: str, config_hash: str, image: str | None = None) -> ServicePlan:
    """`resolved` was loaded with DEFAULTS as the format layer; ConfigError lists every problem."""
    problems = list(_problems(resolved))
    if problems:
        raise ConfigError(problems)
    config = resolved.config
    service = config.build.systemd
    return ServicePlan(
        version=version,
        architecture=config.target.architecture.value,
        python_version=TARGET_PYTHON,
        config_hash=config_hash,
        host=config.server.host,
        port=config.server.port,
        tls=config.server.tls.cert is not None,
        state_directory=_below(config.data.path, STATE_ROOT) or "cortex",
        logs_directory=_below(config.logs.path, LOGS_ROOT) or "cortex",
        capabilities=("CAP_NET_BIND_SERVICE",) if config.server.port < PRIVILEGED_PORTS else (),
        devices=ACCELERATOR_DEVICES[config.target.accelerator.value],
        limit_nofile=service.limit_nofile,
        memory_max_mb=_memory_max(config),
        start_timeout_s=service.start_timeout_s,
        models=_baked_models(config),
        secret_files=_secret_files(config),
        image=image or f"localhost/cortex:{version}",
    )


def _problems(resolved: Resolved) -> Iterator[Diagnostic]:
    config = resolved.config

    def located(path: tuple[str | int, ...], message: str) -> Diagnostic:
        return Diagnostic(resolved.origin(path), dotted(path), message)

    if config.target.distro.value not in DEBIAN_LIKE:
        yield located(("target", "distro"), "--format systemd makes a bundle for Debian/Ubuntu hosts (glibc, apt)")
    if config.server.port < PRIVILEGED_PORTS and not config.build.systemd.allow_privileged_port:
        yield located(
            ("server", "port"),
            f"port {config.server.port} is below 1024 and the service runs without capabilities: use a port "
            "from 1024 up, or set build.systemd.allow_privileged_port: true (grants CAP_NET_BIND_SERVICE)",
        )
    if config.data.path is None or _below(config.data.path, STATE_ROOT) is None:
        yield located(
            ("data", "path"),
            f"{config.data.path} is read-only inside the service's sandbox (ProtectSystem=strict): "
            f"keep models under /var/lib/<name> (default {DATA_DIR})",
        )
    for index, model in enumerate(config.models):
        if config.build.bake_models and model.sha256 is None:
            yield Diagnostic(
                resolved.origin(("models", index)),
                dotted(("models", index, "sha256")),
                f"model `{model.id}` is baked into the bundle: give its sha256, by which the service finds it "
                "in the store (or set build.bake_models: false)",
            )
    if config.logs.path is not None and _below(config.logs.path, LOGS_ROOT) is None:
        yield located(
            ("logs", "path"),
            f"{config.logs.path} is read-only inside the service's sandbox: use /var/log/<name>, or unset it "
            "to log to the journal",
        )


def _below(path: object, root: PurePosixPath) -> str | None:
    """`path` relative to `root` when it lies strictly below it (systemd's *Directory= take that form)."""
    if path is None:
        return None
    candidate = PurePosixPath(str(path))
    if not candidate.is_relative_to(root) or candidate == root or ".." in candidate.parts:
        return None
    return str(candidate.relative_to(root))


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
    return tuple(sorted({p for p in paths if PurePosixPath(p).is_relative_to(CONFIG_DIR)}))
