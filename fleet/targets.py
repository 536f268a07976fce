"""The devices to ask: those fleet.yaml lists, then one per device Cortexfile in its repository folder."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.secrets import Secret

from .spec import MAX_DEVICES, Fleet

CORTEXFILE = "Cortexfile.yaml"


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    api_key: Secret | None
    ca_certificate: Path | None
    problem: str | None = None  # a device that cannot be asked (its Cortexfile does not validate)


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
    found = [target for target in _from_repository(fleet, base) if target.name not in taken]
    return listed + found[: MAX_DEVICES - len(listed)]


def _from_repository(fleet: Fleet, base: Path) -> list[Target]:
    folder = base / fleet.repository if fleet.repository else base
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml"), *folder.glob(f"*/{CORTEXFILE}")])
    # Only the fleet's own key goes to these devices: a key reference in a device's file names a path or a
    # variable on the device, which read here could send one of this machine's files to the address it names.
    key, ca = _based(fleet.api_key, base), _path(fleet.ca_certificate, base)
    return [_device(path, key, ca) for path in files if path.is_file()]


def _device(path: Path, key: Secret | None, ca: Path | None) -> Target:
    name = path.parent.name if path.name == CORTEXFILE else path.stem
    try:
        config = load(path).config
    except ConfigError as exc:
        first = str(exc.diagnostics[0]) if exc.diagnostics else "invalid"
        return Target(name, "", None, None, f"its Cortexfile is not valid: {first}")
    return Target(name, device_url(config), key, ca)


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
