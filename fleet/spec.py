"""fleet.yaml: the devices `cortex fleet status` asks, listed one by one or as a folder of device Cortexfiles.
Read with the Cortexfile's parser, so every mistake is reported as FILE:LINE:COL: key: message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.layers import Merged
from menlo_cortex.cortexfile.schema.base import HttpUrl, Section, setting
from menlo_cortex.cortexfile.secrets import Secret
from menlo_cortex.cortexfile.validate import schema_diagnostics
from menlo_cortex.cortexfile.yamlio import Parsed, parse_file
from pydantic import AfterValidator, ValidationError

MAX_DEVICES = 1000
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _device_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(f"`{value[:80]}` is not a device name: letters, digits and `._-`, at most 63")
    return value


def _plain_url(value: str) -> str:
    if "@" in value.split("//", 1)[-1].split("/", 1)[0]:
        raise ValueError("the URL holds credentials: put the API key in `api_key` (a secret reference)")
    return value


DeviceName = Annotated[str, AfterValidator(_device_name)]
DeviceUrl = Annotated[HttpUrl, AfterValidator(_plain_url)]


class FleetDevice(Section):
    name: DeviceName = setting(description="The device's name in the table.")
    url: DeviceUrl = setting(description="The device's API, such as https://10.0.0.12:8080.")
    api_key: Secret | None = setting(None, "Its API key (`${env:NAME}` or `${file:PATH}`); unset: the fleet's.")
    ca_certificate: Path | None = setting(None, "PEM CA bundle its TLS certificate is checked against (the fleet's).")


class Fleet(Section):
    devices: list[FleetDevice] = setting([], "Devices, each with its URL and key.", max_length=MAX_DEVICES)
    repository: Path | None = setting(
        None,
        "A folder of device Cortexfiles (`NAME.yaml` or `NAME/Cortexfile.yaml`), relative to this file: "
        "each device is asked at its static address or host name, on its server port.",
    )
    api_key: Secret | None = setting(None, "The API key of devices that name none of their own.")
    ca_certificate: Path | None = setting(None, "The CA bundle of https devices that name none of their own.")
    timeout_s: float = setting(5.0, "How long one device has to answer each request.", gt=0, le=120)


def load_fleet(path: Path) -> tuple[Fleet, Parsed]:
    """The fleet file, validated; ConfigError with every located problem."""
    parsed = parse_file(path)
    if not isinstance(parsed.data, dict):
        raise ConfigError([Diagnostic(Origin(str(path), 1, 1), "", "a fleet file is a mapping: devices, repository")])
    try:
        fleet = Fleet.model_validate(parsed.data)
    except ValidationError as exc:
        merged = Merged(parsed.data, parsed.positions.values, parsed.positions.keys)
        raise ConfigError(schema_diagnostics(exc, merged)) from None
    problems = _duplicate_names(fleet, parsed, str(path))
    if not fleet.devices and fleet.repository is None:
        problems.append(Diagnostic(Origin(str(path), 1, 1), "devices", "list devices, or a `repository` folder"))
    if fleet.repository is not None and not (path.parent / fleet.repository).is_dir():
        origin = parsed.positions.values.get(("repository",), Origin(str(path)))
        problems.append(Diagnostic(origin, "repository", f"{path.parent / fleet.repository} is not a folder"))
    if problems:
        raise ConfigError(problems)
    return fleet, parsed


def _duplicate_names(fleet: Fleet, parsed: Parsed, source: str) -> list[Diagnostic]:
    seen: dict[str, int] = {}
    problems = []
    for index, device in enumerate(fleet.devices):
        if device.name in seen:
            origin = parsed.positions.values.get(("devices", index, "name"), Origin(source))
            message = f"`{device.name}` is also devices[{seen[device.name]}]'s name: names are unique"
            problems.append(Diagnostic(origin, f"devices[{index}].name", message))
        seen.setdefault(device.name, index)
    return problems
