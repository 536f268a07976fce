"""What an update folder holds, as `cortex build --format update` writes it and a device reads it:

    SHA256SUMS             one `<sha256>  <name>` line per file below (sysupdate's format)
    SHA256SUMS.sig         its SSH signature (namespace cortex-update), or SHA256SUMS.gpg (OpenPGP, detached)
    manifest.json          the image, version and files of the update
    <name>_<version>.root.ext4.zst, .vmlinuz, .initrd.img

A device trusts the signature alone: SHA256SUMS names manifest.json's hash, the manifest names the files."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

SUMS = "SHA256SUMS"
SSH_SIGNATURE = "SHA256SUMS.sig"
PGP_SIGNATURE = "SHA256SUMS.gpg"
MANIFEST = "manifest.json"
NAMESPACE = "cortex-update"  # what an SSH signature of an update is made for (never a git commit's)
MAX_SMALL_FILE = 64 << 10  # SHA256SUMS, its signature, the manifest
MAX_ROOT_BYTES = 1 << 40
MAX_BOOT_FILE = 1 << 30
_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *]([A-Za-z0-9][A-Za-z0-9._+-]{0,200})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}")
_VERSION = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}")
_WORD = re.compile(r"[A-Za-z0-9._-]{1,64}")
_OPTIONS = re.compile(r"[A-Za-z0-9._,:=/+ -]{0,1000}")
_OWN_OPTIONS = ("root=", "cortex.slot=")  # the device's own, from the slot it writes


class ManifestError(ValueError):
    """A file of the update is not as the format says; the message names it."""


def version_key(version: str) -> tuple[int, ...]:
    """1.10.0 after 1.9.3; 1.0 and 1.0.0 equal."""
    numbers = [int(part) for part in version.split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


@dataclass(frozen=True)
class Payload:
    file: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    image_id: str  # os-release IMAGE_ID: the board the update is for
    architecture: str
    version: str
    root: Payload  # the root file system (ext4), zstd-compressed
    root_bytes: int  # its size uncompressed: what the slot must hold
    kernel: Payload
    initrd: Payload
    boot_options: str  # kernel options besides root= and the slot

    def encode(self) -> str:
        return json.dumps({"format": 1, **asdict(self)}, indent=1, sort_keys=True) + "\n"

    @property
    def payloads(self) -> tuple[Payload, ...]:
        return (self.root, self.kernel, self.initrd)


def parse_sums(data: bytes) -> dict[str, str]:
    """SHA256SUMS: file name -> sha256. Every line must be a sum line; a name listed twice is refused."""
    sums: dict[str, str] = {}
    for number, line in enumerate(_text(data, SUMS).splitlines(), 1):
        match = _SUM_LINE.fullmatch(line)
        if match is None or match.group(2) in sums:
            raise ManifestError(f"{SUMS} line {number} is not `<sha256>  <file name>` (or repeats a name)")
        sums[match.group(2)] = match.group(1)
    return sums


def parse_manifest(data: bytes) -> Manifest:
    try:
        raw = json.loads(_text(data, MANIFEST))
        if not isinstance(raw, dict) or raw.get("format") != 1:
            raise ManifestError(f"{MANIFEST} is not format 1")
        manifest = Manifest(
            image_id=_matching(raw["image_id"], _WORD, "image_id"),
            architecture=_matching(raw["architecture"], _WORD, "architecture"),
            version=_matching(raw["version"], _VERSION, "version"),
            root=_payload(raw["root"], MAX_ROOT_BYTES),
            root_bytes=_size(raw["root_bytes"], MAX_ROOT_BYTES, "root_bytes"),
            kernel=_payload(raw["kernel"], MAX_BOOT_FILE),
            initrd=_payload(raw["initrd"], MAX_BOOT_FILE),
            boot_options=_matching(raw["boot_options"], _OPTIONS, "boot_options"),
        )
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"{MANIFEST} is missing a field or holds a wrong type") from None
    if any(word.startswith(_OWN_OPTIONS) for word in manifest.boot_options.split()):
        raise ManifestError(f"{MANIFEST}: `boot_options` names the root or the slot, which the device sets")
    if len({payload.file for payload in manifest.payloads}) != 3:
        raise ManifestError(f"{MANIFEST} names one file twice")
    return manifest


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{name} is not UTF-8 text") from None


def _payload(raw: Any, most: int) -> Payload:
    if not isinstance(raw, dict):
        raise ManifestError(f"{MANIFEST}: a file entry is not an object")
    sha256 = _matching(raw["sha256"], re.compile(r"[0-9a-f]{64}"), "sha256")
    return Payload(_matching(raw["file"], _NAME, "file"), sha256, _size(raw["size"], most, "size"))


def _matching(value: Any, pattern: re.Pattern[str], field: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ManifestError(f"{MANIFEST}: `{field}` is not of the expected form")
    return value


def _size(value: Any, most: int, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= most:
        raise ManifestError(f"{MANIFEST}: `{field}` is not a size in bytes")
    return value
