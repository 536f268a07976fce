"""The kube target's request: what `cortex build --format kube` was asked to do, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.loader import Resolved

from .. import BuildOptions, Views, default_tag, model_store
from .plan import FORMAT


@dataclass(frozen=True)
class KubeRequest:
    resolved: Resolved  # the Cortexfile as the pod loads it (the kube defaults layer)
    image: str
    model_store: Path  # where the models' sizes are read
    cortexfile: str  # the file's text: the ConfigMap
    output: Path


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> KubeRequest:
    return KubeRequest(
        resolved=views.of(FORMAT),
        image=options.tag or f"localhost/{default_tag(views.of('docker'))}",  # --tag: checked by the CLI
        model_store=model_store(views, options, environ),
        cortexfile=views.host.source.decode("utf-8"),  # the bytes validated (UTF-8 checked on reading)
        output=options.output / "kube",
    )
