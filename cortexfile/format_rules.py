"""What each output format refuses from the Cortexfile alone: one place per rule.

`cortex validate` reports these for every format in `build.formats`, `cortex build` before it
builds anything, and each target's plan refuses with the same diagnostics, so validate never says
OK to what build would refuse. Each rule reads the Cortexfile as that format loads it (over the
format's defaults layer). Pure: no host facts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from types import MappingProxyType
from urllib.parse import urlsplit

from . import boards, formats
from .errors import ConfigError, Diagnostic, Path_, dotted
from .loader import Resolved
from .references import runtime_references
from .schema.models import SourceKind, source_kind
from .schema.target import CUDA_12_4_CAPABILITIES, Accelerator, Distro, unbuilt

Rule = Callable[[Resolved], Iterator[Diagnostic]]

# The images the docker target makes: the accelerators it has a template for, per distro.
# images/targets/docker/matrix.py holds each pair's packages and bases, keyed by this table.
IMAGE_ACCELERATORS: Mapping[Distro, tuple[Accelerator, ...]] = MappingProxyType(
    {
        Distro.alpine: (Accelerator.cpu, Accelerator.vulkan),
        Distro.arch: (Accelerator.cpu, Accelerator.cuda, Accelerator.vulkan),
        Distro.debian: (Accelerator.cpu, Accelerator.cuda, Accelerator.vulkan),
        Distro.fedora: (Accelerator.cpu, Accelerator.cuda, Accelerator.vulkan),
        Distro.ubuntu: (Accelerator.cpu, Accelerator.cuda, Accelerator.rocm, Accelerator.vulkan),
    }
)
IMAGE_PAIRS: frozenset[tuple[str, str]] = frozenset(
    (distro.value, accelerator.value)
    for distro, accelerators in IMAGE_ACCELERATORS.items()
    for accelerator in accelerators
)

# The systemd bundle: Debian-like hosts (glibc, apt), a sandbox where only the service's own
# folders are writable, and no capabilities unless asked for.
SYSTEMD_DISTROS = (Distro.debian.value, Distro.ubuntu.value)
STATE_ROOT = PurePosixPath("/var/lib")
LOGS_ROOT = PurePosixPath("/var/log")
PRIVILEGED_PORTS = 1024
# systemd hands StateDirectory= and LogsDirectory= to the service user (recursively, when they
# belong to someone else) and `uninstall.sh --purge` removes them: only a folder named for the
# service, directly below /var/lib or /var/log, so no Cortexfile can claim /var/lib/dpkg or
# /var/log/journal.
SERVICE_FOLDER = re.compile(r"cortex(-[A-Za-z0-9._-]+)?")
# Kubernetes: secret files under /run/secrets/<folder>/, named as a Secret's keys; env names that stay the image's.
SECRETS_ROOT = PurePosixPath("/run/secrets")
DATA_MOUNT = PurePosixPath(formats.DEVICE_DATA)
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
RESERVED_ENV = frozenset({"PATH", "HOME", "USER", "SHELL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR"})


# Debian image pairs whose vendor repository was not verified on a release: NVIDIA's CUDA repository for Debian is
# used for Debian 12 (`debian12`) only.
UNVERIFIED_RELEASES = frozenset({(Distro.debian.value, "cuda", "trixie")})
# Distros whose CUDA image takes the CUDA that NVIDIA's repository for their release holds (Fedora 39's: no 13):
# that version, and the compute capabilities it builds. images/targets/docker/matrix.py names its packages.
PINNED_CUDA: Mapping[str, tuple[str, frozenset[int]]] = MappingProxyType(
    {Distro.fedora.value: ("12.4", CUDA_12_4_CAPABILITIES)}
)


def unverified_release(accelerator: str, release: str) -> str:
    return (
        f"the debian/{accelerator} image is built on Debian 12 only (its vendor repository for `{release}` is not "
        "verified): set target.release: bookworm, or use distro ubuntu"
    )


def pinned_cuda(distro: str, cuda_version: str) -> str | None:
    """Why the distro's CUDA image cannot take `cuda_version` (a major), where its CUDA is pinned; else None."""
    if distro not in PINNED_CUDA:
        return None
    major = PINNED_CUDA[distro][0].split(".")[0]
    if cuda_version == major:
        return None
    return (
        f"the {distro}/cuda image is built with CUDA {major} only: set target.cuda_version: {major}, or use distro "
        "ubuntu"
    )


def jetson_off_arm64(architecture: str, jetson: bool) -> str | None:
    """Why an image for a Jetson's GPU (Target.jetson) cannot be built for `architecture`; else None."""
    if jetson and architecture != "arm64":
        return (
            "target.cuda_architectures name a Jetson's GPU alone, whose CPU is arm64: build for arm64 "
            "(target.architecture, --platform)"
        )
    return None


def cuda_off_amd64(distro: str, architecture: str) -> str | None:
    """Why the distro's CUDA image cannot be built for `architecture`; else None."""
    if architecture != "amd64" and distro != Distro.ubuntu.value:
        return (
            f"the {distro}/cuda image is built for amd64 only (the CUDA it installs is x86-64's): use distro ubuntu, "
            "whose CUDA images NVIDIA makes for arm64 too"
        )
    return None


def unsupported_image(distro: str, accelerator: str) -> str:
    supported = ", ".join(f"{d}/{a}" for d, a in sorted(IMAGE_PAIRS))
    return f"no image template for distro `{distro}` with accelerator `{accelerator}`; supported: {supported}"


def service_folder(path: object, root: PurePosixPath) -> str | None:
    """The name of `path` below `root` when it is a folder the service may own (see SERVICE_FOLDER)."""
    if path is None:
        return None
    candidate = PurePosixPath(str(path))
    if candidate.parent != root or not SERVICE_FOLDER.fullmatch(candidate.name):
        return None
    return candidate.name


def _located(view: Resolved, path: Path_, message: str) -> Diagnostic:
    return Diagnostic(view.origin(path), dotted(path), message)


def _image_pair(view: Resolved) -> Iterator[Diagnostic]:
    target = view.config.target
    if (target.distro.value, target.accelerator.value) not in IMAGE_PAIRS:
        yield _located(view, ("target", "accelerator"), unsupported_image(target.distro, target.accelerator))
    elif (target.distro.value, target.accelerator.value, target.release.value) in UNVERIFIED_RELEASES:
        yield _located(
            view, ("target", "accelerator"), unverified_release(target.accelerator.value, target.release.value)
        )
    elif target.accelerator is Accelerator.cuda:
        yield from _cuda_image(view)


def _cuda_image(view: Resolved) -> Iterator[Diagnostic]:
    target = view.config.target
    if refused := jetson_off_arm64(target.architecture.value, target.jetson):
        yield _located(view, ("target", "architecture"), refused)
    elif refused := cuda_off_amd64(target.distro.value, target.architecture.value):
        yield _located(view, ("target", "distro"), refused)
    elif target.distro in PINNED_CUDA:
        yield from _cuda_of_a_pinned_image(view)


def _cuda_of_a_pinned_image(view: Resolved) -> Iterator[Diagnostic]:
    target = view.config.target
    distro, (version, capabilities) = target.distro.value, PINNED_CUDA[target.distro]
    if refused := pinned_cuda(distro, target.cuda_version):
        yield _located(view, ("target", "cuda_version"), refused)
    elif outside := unbuilt(target.cuda_architectures, capabilities):
        names = ", ".join(outside)
        message = f"the {distro}/cuda image's CUDA {version} builds no compute capability {names}: use distro ubuntu"
        yield _located(view, ("target", "cuda_architectures"), message)


def _systemd_distro(view: Resolved) -> Iterator[Diagnostic]:
    if view.config.target.distro.value not in SYSTEMD_DISTROS:
        yield _located(
            view, ("target", "distro"), "--format systemd makes a bundle for Debian/Ubuntu hosts (glibc, apt)"
        )


def _privileged_port(view: Resolved) -> Iterator[Diagnostic]:
    config = view.config
    if config.server.port < PRIVILEGED_PORTS and not config.build.systemd.allow_privileged_port:
        yield _located(
            view,
            ("server", "port"),
            f"port {config.server.port} is below 1024 and the service runs without capabilities: use a port "
            "from 1024 up, or set build.systemd.allow_privileged_port: true (grants CAP_NET_BIND_SERVICE)",
        )


def _folder_problem(path: object, root: PurePosixPath, example: str) -> str | None:
    if service_folder(path, root) is not None:
        return None
    if path is not None and PurePosixPath(str(path)).is_relative_to(root) and PurePosixPath(str(path)) != root:
        return (
            f"{path} is not a folder the service may own: systemd gives it to the service user and "
            f"uninstall.sh --purge deletes it, so use {example} or {example}-<name>"
        )
    return f"{path} is read-only inside the service's sandbox (ProtectSystem=strict): use {example}"


def _data_folder(view: Resolved) -> Iterator[Diagnostic]:
    problem = _folder_problem(view.config.data.path, STATE_ROOT, formats.DATA_DIR)
    if problem is not None:
        yield _located(view, ("data", "path"), f"{problem} (keeps the models)")


def _logs_folder(view: Resolved) -> Iterator[Diagnostic]:
    path = view.config.logs.path
    problem = None if path is None else _folder_problem(path, LOGS_ROOT, str(LOGS_ROOT / "cortex"))
    if problem is not None:
        yield _located(view, ("logs", "path"), f"{problem}, or unset it to log to the journal")


def _baked_models_have_sha256(view: Resolved) -> Iterator[Diagnostic]:
    config = view.config
    if not config.build.bake_models:
        return
    for index, model in enumerate(config.models):
        if model.sha256 is None:
            yield Diagnostic(
                view.origin(("models", index)),
                dotted(("models", index, "sha256")),
                f"model `{model.id}` is baked into the bundle: give its sha256, by which the service finds it "
                "in the store (or set build.bake_models: false)",
                "`cortex pull` pins a first download in Cortexfile.lock: copy its sha256 from there",
            )


def _debian_cpu(name: str, accelerator_hint: str) -> Rule:
    """The formats assembled from the Debian root and the CPU wheel: what they have parts for."""

    def rule(view: Resolved) -> Iterator[Diagnostic]:
        target = view.config.target
        if target.distro != Distro.debian:
            message = f"--format {name} makes Debian 12 images: set target.distro: debian"
            yield _located(view, ("target", "distro"), message)
        if target.accelerator != Accelerator.cpu:
            yield _located(view, ("target", "accelerator"), f"--format {name} makes CPU images{accelerator_hint}")

    return rule


def _disk_board(view: Resolved) -> Iterator[Diagnostic]:
    target = view.config.target
    name = boards.board_name(target.hardware, target.architecture.value)
    try:
        board = boards.load_board(name)
    except ConfigError as exc:
        where = view.origin(("target", "hardware"))
        yield from (Diagnostic(where, "target.hardware", d.message, d.hint) for d in exc.diagnostics)
        return
    if board.architecture != target.architecture.value:
        message = f"board `{name}` is {board.architecture}: it cannot make a disk image for {target.architecture.value}"
        yield _located(view, ("target", "architecture"), message)
    if view.config.device.wifi.ssid is not None and not board.wifi:
        yield _located(view, ("device", "wifi", "ssid"), f"board `{name}` has no Wi-Fi radio in its recipe")
    if target.release.value not in board.releases:
        message = f"board `{name}` boots with Debian {' or '.join(board.releases)} only, not {target.release.value}"
        yield _located(view, ("target", "release"), message)


def _device_updates(view: Resolved) -> Iterator[Diagnostic]:
    """A/B updates: a version to order them by."""
    if view.config.device.updates.url is not None:
        yield from _ab_update(view, ("device", "updates", "url"))


def _update_artifact(view: Resolved) -> Iterator[Diagnostic]:
    yield from _ab_update(view, ("target", "hardware"))


def _ab_update(view: Resolved, where: Path_) -> Iterator[Diagnostic]:
    if view.config.build.version is None:
        message = "updates are ordered by build.version: set it (dotted numbers such as 1.0.0)"
        yield _located(view, ("build", "version"), message)


def _ab_data_folder(view: Resolved) -> Iterator[Diagnostic]:
    """A disk image mounts its data partition at /data: the service's folder is an overlay elsewhere."""
    path = PurePosixPath(str(view.config.data.path))
    if path == DATA_MOUNT or path.is_relative_to(DATA_MOUNT):
        message = f"{path}: a disk image mounts its data partition at {DATA_MOUNT}; use {formats.DATA_DIR}"
        yield _located(view, ("data", "path"), message)


# An image hands its data folder (and models/ in it) to the service user (uid 10001): never one of the
# image's system folders or anything inside them (its code in /opt/cortex, its libraries, /etc), nor a
# folder that holds them.
SYSTEM_TREES = tuple(
    PurePosixPath(p)
    for p in ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/opt/cortex", "/proc", "/sbin", "/sys", "/usr",
              "/var/lib/apt", "/var/lib/dpkg")
)  # fmt: skip
SYSTEM_PARENTS = tuple(
    PurePosixPath(p)
    for p in ("/", "/home", "/opt", "/root", "/run", "/tmp", "/var", "/var/cache", "/var/lib", "/var/log", "/var/tmp")
)


def _image_data_folder(view: Resolved) -> Iterator[Diagnostic]:
    """An image gives its data folder (and models/ in it) to the service user: never a system folder."""
    path = view.config.data.path
    folder = PurePosixPath(str(path)) if path is not None else None
    if folder is None or folder in SYSTEM_PARENTS or any(folder.is_relative_to(tree) for tree in SYSTEM_TREES):
        message = f"{path} is not a folder an image may give to its service user: use {formats.DATA_DIR} or /data"
        yield _located(view, ("data", "path"), message)


def _kube_port(view: Resolved) -> Iterator[Diagnostic]:
    port = view.config.server.port
    if port < PRIVILEGED_PORTS:
        yield _located(view, ("server", "port"), f"port {port} is below 1024 and the pod runs as a user without "
                       "capabilities: use a port from 1024 up (the Service can still expose 80 or 443)")  # fmt: skip


def _kube_secrets(view: Resolved) -> Iterator[Diagnostic]:
    """The Cortexfile becomes a ConfigMap (readable by whoever reads ConfigMaps): no literal secret in it (the
    builder's too), secret files only under /run/secrets (mounted from the Secret, never over a folder the
    image needs), named as a Secret's keys may be, and env vars that cannot redirect the runtime."""
    names: dict[str, str] = {}
    for ref in runtime_references(view.config, builder=True):
        if ref.kind == "literal":
            yield _located(view, ref.path, "a literal secret would be written into the ConfigMap: write "
                           "${env:NAME} or ${file:/run/secrets/cortex/NAME} and create the Secret")  # fmt: skip
        elif ref.path[0] == "build":
            continue  # the builder's, referenced: not the pod's business
        elif ref.kind == "env" and (ref.target in RESERVED_ENV or ref.target.startswith(("LD_", "PYTHON"))):
            yield _located(view, ref.path, f"{ref.target} is the runtime's own environment: name the secret otherwise")
        elif ref.kind == "file":
            yield from _kube_secret_file(view, ref.path, ref.target, names)


def _kube_secret_file(view: Resolved, path: Path_, target: str, names: dict[str, str]) -> Iterator[Diagnostic]:
    file = PurePosixPath(target)
    if not file.is_relative_to(SECRETS_ROOT) or file.parent == SECRETS_ROOT:
        yield _located(view, path, f"{target}: a pod reads its secret files from a folder under {SECRETS_ROOT} "
                       "(e.g. /run/secrets/cortex/NAME), mounted from the Secret")  # fmt: skip
    elif not SECRET_KEY.fullmatch(file.name):
        yield _located(view, path, f"{file.name}: a Secret's key holds only letters, digits, `-`, `_` and `.`")
    elif names.setdefault(file.name, target) != target:
        yield _located(view, path, f"{target} and {names[file.name]} share a file name: one Secret holds them "
                       "both, by name")  # fmt: skip


def _kube_host(view: Resolved) -> Iterator[Diagnostic]:
    host = view.config.server.host
    if host.startswith("127.") or host in ("::1", "localhost"):
        yield _located(view, ("server", "host"), f"{host} is the pod's own loopback: the Service and the probes "
                       "could not reach it (leave server.host unset: the kube default listens on 0.0.0.0)")  # fmt: skip


def _kube_model_sources(view: Resolved) -> Iterator[Diagnostic]:
    if view.config.build.bake_models:
        return
    if view.config.build.kube.replicas > 1:  # one claim, several pods pulling into it: one download file
        message = "pods pulling models into one volume would write the same download: bake the models "
        yield _located(view, ("build", "kube", "replicas"), message + "(build.bake_models: true) or run 1 replica")
    for index, model in enumerate(view.config.models):
        if source_kind(model.source) is SourceKind.local:
            message = "a path on this machine cannot reach a pod: bake the model into the image "
            yield _located(view, ("models", index, "source"), message + "(build.bake_models: true) or give a URL")


def _published_source_secrets(view: Resolved) -> Iterator[Diagnostic]:
    """The Cortexfile travels with the artifact (a ConfigMap, an image layer, a bundle): a model URL holding
    credentials or a query (a signed URL's signature) would be published with it."""
    for index, model in enumerate(view.config.models):
        if source_kind(model.source) is not SourceKind.url:
            continue
        parts = urlsplit(model.source)
        if parts.username or parts.password or parts.query:
            message = "a URL with credentials or a query (a signature?) would be published with the Cortexfile: "
            yield _located(view, ("models", index, "source"), message + "pull the model first and give its path")


_SERVICE_RULES = (_privileged_port, _data_folder, _baked_models_have_sha256, _logs_folder, _published_source_secrets)
RULES: Mapping[str, tuple[Rule, ...]] = MappingProxyType(
    {
        "docker": (_image_pair, _image_data_folder, _published_source_secrets),
        "oci": (
            _debian_cpu("oci", "; for an accelerator, use --format docker"),
            _image_data_folder,
            _published_source_secrets,
        ),
        "systemd": (_systemd_distro, *_SERVICE_RULES),
        "kube": (
            _image_pair,
            _image_data_folder,
            _kube_port,
            _kube_host,
            _kube_secrets,
            _kube_model_sources,
            _published_source_secrets,
        ),
        "disk": (
            _debian_cpu("disk", " (no GPU drivers in the image yet): set target.accelerator: cpu"),
            _disk_board,
            _device_updates,
            _ab_data_folder,
            *_SERVICE_RULES,
        ),
        "update": (
            _debian_cpu("update", " (no GPU drivers in the image yet): set target.accelerator: cpu"),
            _disk_board,
            _update_artifact,
            _ab_data_folder,
            *_SERVICE_RULES,
        ),
    }
)


def problems(view: Resolved, name: str) -> list[Diagnostic]:
    """What format `name` refuses in `view` (the Cortexfile loaded over that format's defaults)."""
    return [diagnostic for rule in RULES.get(name, ()) for diagnostic in rule(view)]


def build_problems(resolved: Resolved, names: Iterable[str] | None = None) -> list[Diagnostic]:
    """What the formats `names` (default: the file's build.formats) refuse, each in its own view."""
    found: list[Diagnostic] = []
    for name in names if names is not None else resolved.config.build.formats:
        view = resolved.view(formats.get(name).loader_argument())
        found += [d for d in problems(view, name) if d not in found]
    return found
