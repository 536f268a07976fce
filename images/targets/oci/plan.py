"""The OCI plan: which architectures, under which name, and each platform's image plan (the Dockerfile
path's BuildPlan: entrypoint, user, port, labels, health check and model paths are the same). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from menlo_cortex.cortexfile import format_rules
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.loader import Resolved

from menlo_cortex import __version__

from ...architectures import platform_architecture
from ...image_plan import BuildPlan, ImageOptions, make_plan

FORMAT = "oci"
# Without SOURCE_DATE_EPOCH every time in the image is 1970-01-01: a checkout's file times differ from
# machine to machine, and the same Cortexfile must give the same digest on every one (as apko and ko do).
DEFAULT_EPOCH = 0


@dataclass(frozen=True)
class OciPlan:
    reference: str  # [registry/]name:tag, what the archive loads as
    stem: str  # file names of the outputs: <stem>.oci, <stem>-<arch>.tar, <stem>-<arch>.spdx.json
    images: tuple[BuildPlan, ...]  # one per architecture, in the order asked

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(image.architecture for image in self.images)

    @property
    def tag(self) -> str:
        return self.reference.rpartition(":")[2] if ":" in self.reference.rpartition("/")[2] else "latest"


def architectures(platforms: str | None, resolved: Resolved) -> tuple[str, ...]:
    """`--platform linux/amd64,linux/arm64` (checked by targets.check_options) as architectures, in the
    order given, each once; default: target.architecture."""
    if platforms is None:
        return (resolved.config.target.architecture.value,)
    found = [str(platform_architecture(given.strip())) for given in platforms.split(",")]
    return tuple(dict.fromkeys(found))


def check_reference(flag: str, reference: str | None) -> None:
    """An OCI image is named by its tag: the digest is what the build computes."""
    if reference is not None and "@" in reference:
        message = f"{reference!r}: name the image by a tag; its digest is the build's to compute"
        raise ConfigError([Diagnostic(Origin(f"flag {flag}"), "", message)])


def make_oci_plan(
    image_view: Resolved, reference: str, architectures: tuple[str, ...], model_digests: dict[str, str], created: str
) -> OciPlan:
    problems = format_rules.problems(image_view, FORMAT)
    if problems:
        raise ConfigError(problems)
    images = tuple(
        make_plan(
            image_view.config,
            ImageOptions(format=FORMAT, tag=reference, platform=f"linux/{arch}", version=__version__, created=created),
            model_digests,
        )
        for arch in architectures
    )
    return OciPlan(reference, file_stem(reference), images)


def file_stem(reference: str) -> str:
    """`registry:5000/team/cortex:v1` -> `cortex-v1`: a file name from the image's own name and tag."""
    name = reference.split("@", maxsplit=1)[0].rpartition("/")[2]
    return re.sub(r"[^A-Za-z0-9._-]", "-", name.replace(":", "-"))
