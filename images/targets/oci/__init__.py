"""`cortex build --format oci`: the appliance image assembled from files, without an engine (see
build.assemble); `cortex lock` writes the inputs it would use to Cortexfile.lock."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ... import lock
from ...reproducible import rfc3339, source_epoch
from ...runtime_wheels import llama_wheel
from .. import BuildOptions, Views, baked_models, default_tag
from . import push
from .build import Inputs, OciImage, assemble, base_facts
from .cache import LayerCache, default_folder
from .plan import DEFAULT_EPOCH, FORMAT, OciPlan, make_oci_plan
from .request import OciRequest, request_from

__all__ = ["FORMAT", "OciRequest", "make", "request_from"]


def prepare(request: OciRequest) -> tuple[OciPlan, Inputs]:
    """The plan and the host files it is made of: every check that can fail before a layer is written."""
    for architecture in request.architectures:  # a platform without its llama-cpp-python wheel fails first
        llama_wheel(architecture, request.wheels_dir)
    bake = request.image.config.build.bake_models
    models = baked_models(request.host, request.model_store) if bake else {}
    environ = request.environ
    epoch = source_epoch([], {"SOURCE_DATE_EPOCH": environ.get("SOURCE_DATE_EPOCH") or str(DEFAULT_EPOCH)})
    digests = {model: sha for model, (sha, _) in models.items()}
    reference = request.tag or default_tag(request.image)
    plan = make_oci_plan(request.image, reference, request.architectures, digests, rfc3339(epoch))
    inputs = Inputs(
        cortexfile=request.cortexfile,
        models=models,
        sources=lock.model_sources(request.host),
        wheels_dir=request.wheels_dir,
        epoch=epoch,
        cache=LayerCache(Path(environ.get("CORTEX_OCI_CACHE") or default_folder())),
    )
    return plan, inputs


def lock_of(plan: OciPlan, inputs: Inputs) -> dict[str, Any]:
    """The lock of these inputs: the models, and what the root and runtime layers hold (each cached)."""
    facts = {image.architecture: base_facts(image, inputs) for image in plan.images}
    return lock.contents(lock.models(inputs.models, inputs.sources), lock.platforms(facts))


def make(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]:
    """The image's outputs (with --locked, `cortex build` ran check_locked for every format first)."""
    request = request_from(views, options, environ)
    plan, inputs = prepare(request)
    image = assemble(plan, inputs, request.output)
    lines = _summary(image)
    if request.push:
        destination = request.push_to or plan.reference
        lines.append(push.push(image.layout, plan.tag, destination, environ))
    return lines


def check_locked(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> None:
    """ConfigError naming every input that differs from Cortexfile.lock."""
    request = request_from(views, options, environ)
    lock.check(lock.lock_path(options.file), lock_of(*prepare(request)), lock.declared(views.host))


def lock_sections(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> dict[str, Any]:
    """What `cortex lock` records for this format: the models, and per architecture the root and wheels."""
    return lock_of(*prepare(request_from(views, options, environ)))


def _summary(image: OciImage) -> list[str]:
    lines = [f"{image.layout} ({image.plan.reference}, index {image.index.digest})"]
    for built, archive, document in zip(image.images, image.archives, image.sboms, strict=True):
        size = sum(layer.size for layer in built.layers) >> 20
        lines.append(f"{archive} (linux/{built.architecture}, {size} MiB, manifest {built.manifest.digest})")
        lines.append(f"{document} (SPDX 2.3)")
    lines.append(f"load it: podman load -i {image.archives[0]}   (or docker load -i)")
    return lines
