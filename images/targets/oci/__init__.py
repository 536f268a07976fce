"""`cortex build --format oci`: the appliance image assembled from files, without an engine (see
build.assemble); `cortex lock` writes the inputs it would use to Cortexfile.lock."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.runtime.models.store import ModelStore

from ...reproducible import rfc3339, source_epoch
from .. import BuildOptions, Views, baked_models, default_tag, model_store
from . import lock, push
from .build import Inputs, OciImage, assemble, platform_layers
from .cache import LayerCache, default_folder
from .plan import DEFAULT_EPOCH, FORMAT, OciPlan, architectures, make_oci_plan


def prepare(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> tuple[OciPlan, Inputs]:
    """The plan and the host files it is made of: every check that can fail before a layer is written."""
    image_view = views.of(FORMAT)
    arches = architectures(options.platform, image_view)
    models = (
        baked_models(views.host, model_store(views, options, environ)) if image_view.config.build.bake_models else {}
    )
    epoch = source_epoch([], {**environ, "SOURCE_DATE_EPOCH": environ.get("SOURCE_DATE_EPOCH") or str(DEFAULT_EPOCH)})
    digests = {model: sha for model, (sha, _) in models.items()}
    plan = make_oci_plan(image_view, options.tag or default_tag(image_view), arches, digests, rfc3339(epoch))
    inputs = Inputs(
        cortexfile=options.file if options.bake_cortexfile else None,
        models=models,
        sources={model.id: _source(views.host, model.id) for model in views.host.config.models},
        wheels_dir=options.wheels_dir,
        epoch=epoch,
        cache=LayerCache(Path(environ.get("CORTEX_OCI_CACHE") or default_folder())),
    )
    return plan, inputs


def _source(resolved: Resolved, model_id: str) -> str:
    model = next(m for m in resolved.config.models if m.id == model_id)
    return ModelStore(resolved.config, Path(os.devnull)).source_url(model)


def lock_of(plan: OciPlan, inputs: Inputs) -> dict[str, Any]:
    platforms = {}
    for image in plan.images:
        layers = platform_layers(image, inputs)
        platforms[image.architecture] = {**layers[0][0].facts, **layers[1][0].facts}
    models = [
        {"id": model_id, "source": inputs.sources[model_id], "sha256": sha, "size": path.stat().st_size}
        for model_id, (sha, path) in inputs.models.items()
    ]
    return lock.contents(models, platforms)


def make(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]:
    plan, inputs = prepare(views, options, environ)
    if options.locked:
        lock.check(lock.lock_path(options.file), lock_of(plan, inputs))
    image = assemble(plan, inputs, options.output)
    lines = _summary(image)
    if options.push:
        destination = options.push_to or plan.reference
        lines.append(push.push(image.layout, plan.tag, destination, environ))
    return lines


def write_lock(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> Path:
    plan, inputs = prepare(views, options, environ)
    path = lock.lock_path(options.file)
    lock.write(path, lock_of(plan, inputs))
    return path


def _summary(image: OciImage) -> list[str]:
    lines = [f"{image.layout} ({image.plan.reference}, index {image.index.digest})"]
    for built, archive, document in zip(image.images, image.archives, image.sboms, strict=True):
        size = sum(layer.size for layer in built.layers) >> 20
        lines.append(f"{archive} (linux/{built.architecture}, {size} MiB, manifest {built.manifest.digest})")
        lines.append(f"{document} (SPDX 2.3)")
    lines.append(f"load it: podman load -i {image.archives[0]}   (or docker load -i)")
    return lines
