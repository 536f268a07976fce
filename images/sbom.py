"""What an image or disk holds, as an SPDX 2.3 JSON document: the Debian packages dpkg installed, the
Python distributions of the runtime's environment, and the models, each with its sha256 and source.

Deterministic: the same contents and epoch give the same bytes (no clock, no random namespace).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from menlo_cortex import __version__

from .debian import InstalledPackage
from .reproducible import rfc3339

NAMESPACE = "https://menlo.ai/cortex/spdx"
NOASSERTION = "NOASSERTION"
MEDIA_TYPE = "application/spdx+json"


@dataclass(frozen=True)
class ModelEntry:
    id: str
    sha256: str
    source: str | None  # where it was fetched from, when remote


@dataclass(frozen=True)
class PythonEntry:
    name: str
    version: str


@dataclass(frozen=True)
class Contents:
    name: str  # the document's subject: an image reference, a disk image's name
    architecture: str
    debian: tuple[InstalledPackage, ...]
    python: tuple[PythonEntry, ...]
    models: tuple[ModelEntry, ...]
    release: str  # the Debian release the packages are from (bookworm, trixie)


def document(contents: Contents, epoch: int) -> dict[str, Any]:
    found = [
        *(_deb(package, contents.release) for package in contents.debian),
        *(_python(dist) for dist in contents.python if dist.name),
        *(_model(model) for model in contents.models),
    ]
    packages = list({package["SPDXID"]: package for package in reversed(found)}.values())[::-1]  # first wins
    seed = json.dumps(packages, sort_keys=True).encode()
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{contents.name} ({contents.architecture})",
        "documentNamespace": f"{NAMESPACE}/{quote(contents.name, safe='')}/{hashlib.sha256(seed).hexdigest()}",
        "creationInfo": {"created": rfc3339(epoch), "creators": [f"Tool: cortex-{__version__}"]},
        "packages": packages,
        "relationships": [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": p["SPDXID"]}
            for p in packages
        ],
    }


def encode(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _package(ident: str, name: str, version: str, purl: str | None, **more: Any) -> dict[str, Any]:
    """`ident` tells packages apart (a name, with its architecture for Debian's multiarch ones)."""
    entry: dict[str, Any] = {
        "SPDXID": f"SPDXRef-{_id(ident)}",
        "name": name,
        "versionInfo": version or NOASSERTION,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        **more,
    }
    if purl:
        entry["externalRefs"] = [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}
        ]
    return entry


def _deb(package: InstalledPackage, release: str) -> dict[str, Any]:
    version = quote(package.version, safe="")
    purl = f"pkg:deb/debian/{package.name}@{version}?arch={package.architecture}&distro=debian-{release}"
    ident = f"deb-{package.name}-{package.architecture}"
    return _package(ident, package.name, package.version, purl, supplier="Organization: Debian")


def _python(dist: PythonEntry) -> dict[str, Any]:
    purl = f"pkg:pypi/{_pypi_name(dist.name)}@{quote(dist.version, safe='')}"
    return _package(f"python-{dist.name}", dist.name, dist.version, purl)


def _model(model: ModelEntry) -> dict[str, Any]:
    """SPDX takes only a URL as download location; a local file or hub source goes in sourceInfo."""
    source = model.source or ""
    url = urlsplit(source).scheme in {"http", "https"}
    entry = _package(
        f"model-{model.id}",
        model.id,
        model.sha256,
        None,
        downloadLocation=source if url else NOASSERTION,
        checksums=[{"algorithm": "SHA256", "checksumValue": model.sha256}],
        primaryPackagePurpose="FILE",
    )
    if source and not url:
        entry["sourceInfo"] = f"Cortexfile source: {source}"
    return entry


def _id(name: str) -> str:
    """SPDX ids allow letters, digits, `.` and `-`; anything else becomes `-` plus a short hash, so two
    names never share one."""
    safe = re.sub(r"[^A-Za-z0-9.-]", "-", name)
    return safe if safe == name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _pypi_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages_entries(site: Path) -> tuple[PythonEntry, ...]:
    """Name and version of every distribution installed in `site`, from its METADATA."""
    found = []
    for metadata in sorted(site.glob("*.dist-info/METADATA")):
        header = metadata.read_text(encoding="utf-8", errors="replace").split("\n\n", 1)[0]
        fields = dict(line.split(": ", 1) for line in header.splitlines() if ": " in line and line[:1].strip())
        found.append(PythonEntry(fields.get("Name", metadata.parent.name), fields.get("Version", "").strip()))
    return tuple(found)
