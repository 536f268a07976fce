"""Build targets: one package per output format in cortexfile/formats.py, each of the same shape.

A target package has a typed request made from `BuildOptions` (never the CLI's namespace), a plan
(pure: the resolved Cortexfile, the request and the names of the files its host step gathered), a
render (pure: the plan to file contents) and a build (the only step that touches the host, an
engine, a network or a disk). Its `make(views, options, environ)` runs those steps and returns the
lines to print.

The Cortexfile is read once per command; `Views` derives the host's view and each format's view
from the same layers.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.data_folder import data_dir
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import Inputs, Resolved, read, resolve
from menlo_cortex.cortexfile.preflight import Phase, preflight

from ..architectures import MACHINES, platform_architecture

# An image reference as registries spell it (distribution's reference grammar): [host[:port]/]path[:tag][@digest].
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?"
)


@dataclass(frozen=True)
class BuildOptions:
    """What `cortex build` was asked to do, typed; each target takes what applies to it."""

    file: Path
    bake_cortexfile: bool = True  # False for official variants: the image waits for a mounted Cortexfile
    output: Path = Path("dist")  # folder for file outputs (bundles)
    platform: str | None = (
        None  # linux/amd64 | linux/arm64 (oci: a comma-separated list); overrides target.architecture
    )
    wheels_dir: Path | None = None  # prebuilt wheels (llama-cpp-python, a menlo_cortex release)
    model_store: Path | None = None  # build host's data folder with models/<sha256>.gguf
    tag: str | None = None
    push: bool = False
    push_to: str | None = None  # `--push REF`: where to (default: the tag)
    locked: bool = False  # refuse inputs that differ from Cortexfile.lock
    context_dir: Path | None = None
    context_only: bool = False
    base_image: str | None = None
    builder_image: str | None = None
    network_mode: str | None = None
    no_cache: bool = False
    verbose: bool = False
    sign_key: str | None = None  # update: the private key (a file or a secret reference) that signs it


@dataclass(frozen=True)
class Views:
    """The Cortexfile as the build host sees it, and as each format's artifact will load it."""

    host: Resolved

    def of(self, name: str) -> Resolved:
        return self.host.view(formats.get(name).loader_argument())


class Target(Protocol):
    def make(self, views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]: ...


class LockingTarget(Target, Protocol):
    """A target whose inputs Cortexfile.lock records: a format with `locks=True` in cortexfile/formats.py."""

    def check_locked(self, views: Views, options: BuildOptions, environ: Mapping[str, str]) -> None: ...

    def lock_sections(self, views: Views, options: BuildOptions, environ: Mapping[str, str]) -> dict[str, Any]: ...


def read_views(file: Path, environ: Mapping[str, str]) -> Views:
    """Read the Cortexfile once, with this host's environment."""
    inputs = Inputs(file, environ=dict(environ))
    return Views(resolve(read(inputs)))


def model_store(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> Path:
    """The build host's data folder where baked models are found, or fetched into: the same for every format."""
    given = options.model_store or environ.get("CORTEX_MODEL_STORE")
    return Path(given) if given else data_dir(views.host.config, environ)


def default_tag(image_view: Resolved) -> str:
    """The tag an image of this Cortexfile gets without --tag (the systemd quadlet runs it too)."""
    return f"cortex-appliance:{config_hash(image_view.config)[:12]}"


def baked_models(resolved: Resolved, store_dir: Path) -> dict[str, tuple[str, Path]]:
    """model id -> (sha256, verified file): located or fetched by the model store on the host,
    so no hub token enters the build."""
    from menlo_cortex.runtime.models.model_store import ModelStore, file_sha256

    config = resolved.config
    store = ModelStore(config, store_dir, resolved.path)
    found = {}
    for model in config.models:
        path = store.ensure(model)
        found[model.id] = (store.pinned(model).sha256 or file_sha256(path), path)
    return found


def check_options(options: BuildOptions) -> None:
    """The command line's own values, before they reach a plan: a known platform, image references."""
    found = []
    for platform in (options.platform or "").split(",") if options.platform is not None else ():
        if platform_architecture(platform.strip() or "?") not in MACHINES:
            message = f"{platform.strip()!r} is not a platform this builds for: linux/amd64 or linux/arm64"
            found.append(Diagnostic(Origin("flag --platform"), "", message))
    images = {
        "--base-image": options.base_image,
        "--builder-image": options.builder_image,
        "--tag": options.tag,
        "--push": options.push_to,
    }
    for flag, value in images.items():
        if value is not None and not IMAGE_REFERENCE.fullmatch(value):
            message = f"{value!r} is not an image reference ([registry/]name[:tag][@sha256:digest])"
            found.append(Diagnostic(Origin(f"flag {flag}"), "", message))
    if found:
        raise ConfigError(found)


def check_formats(options: BuildOptions, names: list[str]) -> None:
    """Options that only some formats take: several platforms and --locked are the OCI image's."""
    found = []
    others = [name for name in names if name != "oci"]
    if options.platform and "," in options.platform and others:
        message = f"several platforms are built by --format oci only, not by {', '.join(others)}"
        found.append(Diagnostic(Origin("flag --platform"), "", message))
    unlocked = [name for name in names if not formats.get(name).locks]
    if options.locked and unlocked:
        pinned = " and ".join(formats.locking())
        message = f"Cortexfile.lock pins the inputs of {pinned} images, not of {', '.join(unlocked)}"
        found.append(Diagnostic(Origin("flag --locked"), "", message))
    if found:
        raise ConfigError(found)


def device_memory_warnings(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[Diagnostic]:
    """Models that will not fit the device's memory (target.memory_mb, which board recipes set), from the
    runtime's own plan of each model file the build host has."""
    from menlo_cortex.runtime.models.batching.plan import MIB
    from menlo_cortex.runtime.models.memory_check import found_in, memory_warnings
    from menlo_cortex.runtime.models.model_store import ModelStore
    from menlo_cortex.runtime.models.weight_copies import kernels_for_build

    config = views.host.config
    memory_mb = config.target.memory_mb
    if memory_mb is None:
        return []
    budget_mb = min(memory_mb, config.server.limits.memory_budget_mb or memory_mb)
    store = ModelStore(config, model_store(views, options, environ), options.file)
    named = f"target.memory_mb{f' (recipe {config.target.hardware})' if config.target.hardware else ''}"
    kernels = kernels_for_build(config.target.architecture, config.target.llama_cmake_args)
    return memory_warnings(views.host, (memory_mb * MIB, named), budget_mb, found_in(store), kernels,
                           integrated=config.target.integrated_gpu)  # fmt: skip


def check_host(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> None:
    """The build's host checks, once for every format: build secrets, CA files, local models in the store."""
    problems = preflight(views.host, Phase.build, environ, model_store(views, options, environ))
    if problems:
        raise ConfigError(views.host.warnings + problems)


@cache
def target(name: str) -> Target:
    """The package that builds format `name` (imported on first use: it brings the builder's dependencies)."""
    module: Target = importlib.import_module(formats.get(name).target)
    return module


def locking_target(name: str) -> LockingTarget:
    """The target of a format that declares `locks=True`; the shape test checks it has the two steps."""
    if not formats.get(name).locks:
        raise ValueError(f"format `{name}` records no inputs in Cortexfile.lock")
    module: LockingTarget = importlib.import_module(formats.get(name).target)
    return module
