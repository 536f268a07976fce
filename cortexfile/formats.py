"""The output formats `cortex build` makes: one list that the schema (`build.formats`), the CLI
choices (`--format`, `--defaults`), each format's defaults layer and the build dispatcher all read.

A format appears here once its target builds it. Each names the module that implements it (loaded
only when building, so the base install needs no builder dependencies) and its defaults layer:
values that suit that format, just above the built-in defaults and below the recipe, the file, env
and flags, so an edit of the file still wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Where every appliance keeps its Cortexfile and its state, whatever the format.
CONFIG_DIR = "/etc/cortex"
DATA_DIR = "/var/lib/cortex"
# Where a disk image with A/B slots mounts its data partition (what survives its updates).
DEVICE_DATA = "/data"
CORTEXFILE_NAME = "Cortexfile.yaml"
# The key file a device's first boot fills when the Cortexfile declares no API key.
DEVICE_KEY_FILE = f"{CONFIG_DIR}/api-keys"


@dataclass(frozen=True)
class OutputFormat:
    name: str
    summary: str  # what it makes, for help texts
    target: str  # module implementing the build (images/targets/<name>)
    values: Mapping[str, Any] = field(default_factory=dict)  # the defaults layer, by dotted key
    missing_file_hint: str = ""  # what to do when the appliance starts without its Cortexfile
    locks: bool = False  # its target records its inputs in Cortexfile.lock (images/sequence.py's LockingTarget)

    def loader_argument(self) -> tuple[str, Mapping[str, Any]]:
        """What `cortexfile.loader.load(..., format_defaults=...)` takes."""
        return self.name, dict(self.values)


_MOUNT_HINT = (
    f"mount a folder holding {CORTEXFILE_NAME} at {CONFIG_DIR}, e.g. "
    f"`docker run -v $PWD/cortex:{CONFIG_DIR}:ro -p 39281:39281 IMAGE` "
    "(mount the folder, not the file, so edits reload)"
)

_LIST = (
    # Containers listen on all interfaces (the engine's port mapping decides who reaches them) and
    # keep their data under /var/lib/cortex; logs already go to stdout by default.
    OutputFormat(
        "docker",
        "a container image, built through any Docker-API engine (Docker, Podman)",
        "menlo_cortex.images.targets.docker",
        MappingProxyType({"server.host": "0.0.0.0", "data.path": DATA_DIR}),
        _MOUNT_HINT,
        locks=True,
    ),
    # The same appliance as `docker`, assembled from files: no engine, the same digest for the same inputs.
    OutputFormat(
        "oci",
        "a daemonless, bit-identical OCI image (layout folder, loadable archive, SBOM), for one or more platforms",
        "menlo_cortex.images.targets.oci",
        MappingProxyType({"server.host": "0.0.0.0", "data.path": DATA_DIR}),
        _MOUNT_HINT,
        locks=True,
    ),
    # The systemd service: models in its StateDirectory; logs stay on stdout, which is the journal.
    OutputFormat(
        "systemd",
        "an offline bundle: wheels, a hardened cortex.service and install.sh",
        "menlo_cortex.images.targets.systemd",
        MappingProxyType({"data.path": DATA_DIR}),
        f"reinstall the bundle (install.sh) or restore {CONFIG_DIR}/{CORTEXFILE_NAME}",
    ),
    # Kubernetes: the image of `docker`/`oci` in a Deployment, the Cortexfile from a ConfigMap mounted at /etc/cortex.
    OutputFormat(
        "kube",
        "a Kustomize base: Deployment, Service, NetworkPolicy and the Cortexfile as a ConfigMap",
        "menlo_cortex.images.targets.kube",
        MappingProxyType({"server.host": "0.0.0.0", "data.path": DATA_DIR}),
        "create the ConfigMap from the Cortexfile (kubectl apply -k DIR)",
    ),
    # A device image: the systemd service on a Debian 12 disk, listening on every interface; its API keys
    # come from a file that first boot fills with a fresh key unless the Cortexfile declares one.
    OutputFormat(
        "disk",
        "a flashable disk image: Debian 12 with the service enabled, for a board in recipes/hardware",
        "menlo_cortex.images.targets.disk",
        MappingProxyType(
            {"server.host": "0.0.0.0", "data.path": DATA_DIR, "server.auth.api_key_file": DEVICE_KEY_FILE}
        ),
        f"reflash the image or restore {CONFIG_DIR}/{CORTEXFILE_NAME}",
    ),
    # The disk image's root again, as a signed update a device installs into its idle slot: the same defaults, so
    # the root is the one `disk` would make.
    OutputFormat(
        "update",
        "a signed A/B update of a disk image's whole root (runtime, OS, baked models, Cortexfile), for device.updates",
        "menlo_cortex.images.targets.update",
        MappingProxyType(
            {"server.host": "0.0.0.0", "data.path": DATA_DIR, "server.auth.api_key_file": DEVICE_KEY_FILE}
        ),
        f"reflash the image or restore {CONFIG_DIR}/{CORTEXFILE_NAME}",
    ),
)
FORMATS: Mapping[str, OutputFormat] = MappingProxyType({f.name: f for f in _LIST})


def names() -> list[str]:
    return sorted(FORMATS)


def locking() -> list[str]:
    """The formats whose inputs `cortex lock` records and `cortex build --locked` checks."""
    return [name for name in names() if FORMATS[name].locks]


def get(name: str) -> OutputFormat:
    """The format `name`; KeyError naming the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"no output format `{name}` (known: {', '.join(names())})") from None
