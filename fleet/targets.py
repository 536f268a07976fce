"""The devices to ask: those fleet.yaml lists, then one per device Cortexfile in its repository folder."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.secrets import Secret
from menlo_cortex.runtime.ops.text import printable

from .spec import MAX_DEVICES, NAME, Fleet

CORTEXFILE = "Cortexfile.yaml"
MAX_FILE = 1 << 20


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    api_key: Secret | None
    ca_certificate: Path | None
    problem: str | None = None  # a device that cannot be asked (its Cortexfile does not validate)
    no_key_because: str | None = None  # why the fleet's key is not sent to it


def targets(fleet: Fleet, base: Path) -> list[Target]:
    """`base`: the fleet file's folder, which relative paths start from."""
    listed = [
        Target(
            device.name,
            device.url.rstrip("/"),
            _based(device.api_key or fleet.api_key, base),
            _path(device.ca_certificate or fleet.ca_certificate, base),
        )
        for device in fleet.devices
    ]
    if fleet.repository is None:
        return listed
    taken = {target.name for target in listed}
    found = [target for target in _from_repository(fleet, base, MAX_DEVICES) if target.name not in taken]
    return listed + found[: MAX_DEVICES - len(listed)]


def _from_repository(fleet: Fleet, base: Path, room: int) -> list[Target]:
    """At most `room` devices. Links are passed over: the folder is the repository's, and a link in it could
    make this machine read one of its own files. The fleet's key goes only to a device whose certificate the
    fleet's own CA signed: a file in the repository names the address, which could be anyone's."""
    folder = base / fleet.repository if fleet.repository else base
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml"), *folder.glob(f"*/{CORTEXFILE}")])
    regular = [path for path in files if not _linked(path, folder) and path.is_file()][:room]
    return [_device(path, _based(fleet.api_key, base), _path(fleet.ca_certificate, base)) for path in regular]


def _linked(path: Path, folder: Path) -> bool:
    return any(part.is_symlink() for part in (path, *path.parents) if part != folder and folder in part.parents)


def _device(path: Path, key: Secret | None, ca: Path | None) -> Target:
    name = path.parent.name if path.name == CORTEXFILE else path.stem
    if not NAME.fullmatch(name):
        return Target(printable(name, 63) or "?", "", None, None, "not a device name: letters, digits and `._-`")
    if path.stat().st_size > MAX_FILE:
        return Target(name, "", None, None, f"its Cortexfile is larger than {MAX_FILE >> 10} KiB")
    try:
        config = load(path).config
    except ConfigError as exc:
        first = str(exc.diagnostics[0]) if exc.diagnostics else "invalid"
        return Target(name, "", None, None, printable(f"its Cortexfile is not valid: {first}", 300))
    url = device_url(config)
    if key is not None and (ca is None or not url.startswith("https://")):
        why = "the fleet's key goes to a repository's device only over https checked with the fleet's ca_certificate"
        return Target(name, url, None, ca, no_key_because=why)
    return Target(name, url, key, ca)


def device_url(config: Cortexfile) -> str:
    """Where a flashed device answers: its static address, else its host name; its port; https with TLS."""
    scheme = "https" if config.server.tls.cert else "http"
    address = config.device.network.address
    host = str(ipaddress.ip_interface(address).ip) if address else config.device.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{config.server.port}"


def _based(secret: Secret | None, base: Path) -> Secret | None:
    return secret.with_base(base) if secret else None


def _path(path: Path | None, base: Path) -> Path | None:
    return base / path if path else None
