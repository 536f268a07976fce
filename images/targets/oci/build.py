"""`cortex build --format oci`: the host step. The image is assembled from files, with no engine and
no emulation: per architecture, the layers (each cached by a key of its inputs), the image config and
manifest; then the index over every architecture, the SBOMs, the OCI layout folder and one archive per
architecture, all written in a private folder and renamed into the output folder when complete.

Layers hold no parent folders of their own: the engine makes a missing one (root, 0755) and keeps an
existing one as the layers below made it (/tmp stays 1777, /lib stays a link).

Layers, in the order an edit is most likely to reach them last:
the Debian root, the runtime's venv, one per model, the Cortexfile with the appliance's folders.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.runtime.models.model_store import file_sha256

from ... import runtime_wheels, sbom
from ...artifacts import publish, staging
from ...debian import PYTHONS, InstalledPackage, debian_root, installed_packages
from ...image_plan import BuildPlan
from ...llama_source import LLAMA_VERSION
from ...project_wheel import runtime_constraints
from ...reproducible import add_bytes, add_file, add_folder, rfc3339
from . import venv
from .cache import Cached, Facts, LayerCache
from .layers import Blob, Tree, add_tree, write_layer
from .layout import Blobs, descriptor, docker_entry, write_archive, write_layout
from .manifest import REF_NAME, Document, empty_config, image_config, image_index, image_manifest, referrer
from .plan import OciPlan
from .rootfs import SERVICE_UID, TRIM, kept_packages, root_tree
from .userland import root_spec

# Bump when a layer's recipe changes: the cache keys include it.
LAYERS_REVISION = "4"
SBOM_SUFFIX = ".spdx.json"


@dataclass(frozen=True)
class Inputs:
    """What the layers are made of, found on the host by the target's request step."""

    cortexfile: bytes | None  # the bytes validated; None: the image waits for a mounted one
    models: Mapping[str, tuple[str, Path]]  # id -> (sha256, file in the host's store)
    sources: Mapping[str, str]  # id -> the Cortexfile's source (for the SBOM and the lock)
    wheels_dir: Path | None
    epoch: int
    cache: LayerCache


@dataclass(frozen=True)
class PlatformImage:
    architecture: str
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    sbom: bytes


@dataclass(frozen=True)
class OciImage:
    plan: OciPlan
    index: Blob
    layout: Path
    archives: tuple[Path, ...]
    sboms: tuple[Path, ...]
    images: tuple[PlatformImage, ...]


def assemble(plan: OciPlan, inputs: Inputs, output: Path) -> OciImage:
    """Every platform's image, then the outputs, renamed into `output` only when all are written."""
    if output.is_symlink():
        raise OSError(f"-o {output}: a symbolic link; give the folder itself (the build runs as root)")
    blobs = Blobs()
    images = tuple(_platform_image(plan.reference, image, inputs, blobs) for image in plan.images)
    index = blobs.add(image_index([(image.manifest, image.architecture) for image in images]))
    with staging(output, plan.stem) as work:
        names = _write_outputs(plan, images, index, blobs, work)
        published = [publish(work / name, output / name) for name in names]
    archives = tuple(path for path in published if path.suffix == ".tar")
    sboms = tuple(path for path in published if path.name.endswith(SBOM_SUFFIX))
    return OciImage(plan, index, output / f"{plan.stem}.oci", archives, sboms, images)


def base_facts(image: BuildPlan, inputs: Inputs) -> Facts:
    """What the root and the runtime layers of one platform's image hold (packages, distributions, wheels)."""
    return _facts(_root_layer(image, inputs), _venv_layer(image, inputs))


def _facts(root: Cached, runtime: Cached) -> Facts:
    return {**root.facts, **runtime.facts}


def _platform_layers(image: BuildPlan, inputs: Inputs) -> list[tuple[Cached, str]]:
    """The cached layers of one platform's image, with what each holds (the history's words)."""
    layers = [
        (_root_layer(image, inputs), "Debian root"),
        (_venv_layer(image, inputs), "runtime"),
    ]
    for model in image.models:
        layers.append((_model_layer(image, model.sha256, inputs), f"model {model.id}"))
    layers.append((_config_layer(image, inputs), "Cortexfile"))
    return layers


def _platform_image(reference: str, image: BuildPlan, inputs: Inputs, blobs: Blobs) -> PlatformImage:
    cached = _platform_layers(image, inputs)
    layers = [blobs.add_file(layer.blob, layer.path) for layer, _ in cached]
    created = rfc3339(inputs.epoch)
    config = blobs.add(image_config(image, [(layer.blob, what) for layer, what in cached], created))
    manifest = blobs.add(image_manifest(config, layers, created))
    facts = _facts(cached[0][0], cached[1][0])
    document = sbom.encode(sbom.document(_contents(reference, image, facts, inputs), inputs.epoch))
    return PlatformImage(image.architecture, manifest, config, tuple(layers), document)


def _contents(reference: str, image: BuildPlan, facts: Facts, inputs: Inputs) -> sbom.Contents:
    packages = tuple(InstalledPackage(**package) for package in facts["packages"])
    python = tuple(sbom.PythonEntry(**dist) for dist in facts["distributions"])
    models = tuple(sbom.ModelEntry(m.id, m.sha256, inputs.sources.get(m.id)) for m in image.models)
    return sbom.Contents(reference, image.architecture, packages, python, models, image.release)


def _root_layer(image: BuildPlan, inputs: Inputs) -> Cached:
    spec = root_spec(image.architecture, image.release, image.debian_mirror)

    def write(path: Path) -> tuple[Blob, Facts]:
        root = debian_root(spec)
        closure = kept_packages(root)
        tree = root_tree(root, inputs.epoch, closure)
        blob = write_layer(path, lambda tar: add_tree(tar, tree, inputs.epoch), compress=True)
        debian = {"suite": spec.suite, "mirror": spec.mirror, "root": spec.key()}
        packages = [vars(p) for p in installed_packages(root) if p.name in closure.kept]
        return blob, {"packages": packages, "debian": debian}

    return inputs.cache.layer(_key("root", spec.key(), inputs.epoch, TRIM), write)


def _venv_layer(image: BuildPlan, inputs: Inputs) -> Cached:
    architecture, python = image.architecture, PYTHONS[image.release]
    llama = runtime_wheels.llama_wheel(architecture, inputs.wheels_dir)
    key = _key(
        "venv",
        architecture,
        python,
        venv.project_fingerprint(),
        llama.name,
        file_sha256(llama),
        runtime_constraints(),
        inputs.epoch,
    )

    def write(path: Path) -> tuple[Blob, Facts]:
        staging = path.with_name(path.name + ".venv")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            wheels = venv.gather_wheels(architecture, python, staging / "wheels", inputs.wheels_dir)
            dists = venv.assemble(wheels, architecture, python, staging / "tree")
            hashes = venv.wheel_hashes(wheels)
            tree = Tree(staging / "tree", prefix=f"{venv.PREFIX}/", plain=True)
            blob = write_layer(path, lambda tar: _add_under(tar, venv.PREFIX, tree, inputs.epoch), compress=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return blob, {
            "distributions": [vars(d) for d in dists],
            "wheels": [vars(w) for w in hashes],
            "llama_cpp_python": LLAMA_VERSION,
        }

    return inputs.cache.layer(key, write)


def _add_under(tar: tarfile.TarFile, prefix: str, tree: Tree, epoch: int) -> None:
    add_folder(tar, prefix, epoch)
    add_tree(tar, tree, epoch)


def _model_layer(image: BuildPlan, sha256: str, inputs: Inputs) -> Cached:
    """The model file where the image's store looks for it; stored uncompressed: a GGUF hardly
    compresses, and an uncompressed layer costs a copy with its hash beside it."""
    source = next(path for sha, path in inputs.models.values() if sha == sha256)
    target = f"{image.data_dir.strip('/')}/models/{sha256}.gguf"

    def write(path: Path) -> tuple[Blob, Facts]:
        def fill(tar: tarfile.TarFile) -> None:
            _data_folders(tar, image, inputs.epoch)  # the model's folders, the service user's as in the last layer
            add_file(tar, target, source, inputs.epoch)

        return write_layer(path, fill, compress=False), {}

    return inputs.cache.layer(_key("model", sha256, target, inputs.epoch), write)


def _config_layer(image: BuildPlan, inputs: Inputs) -> Cached:
    """The Cortexfile, and the service's folders: the data folder (and its models/) is the service user's."""
    digest = hashlib.sha256(inputs.cortexfile or b"").hexdigest()

    def write(path: Path) -> tuple[Blob, Facts]:
        def fill(tar: tarfile.TarFile) -> None:
            add_folder(tar, image.config_dir.strip("/"), inputs.epoch)
            if inputs.cortexfile is not None:
                add_bytes(tar, image.config_path.strip("/"), inputs.cortexfile, inputs.epoch)
            _data_folders(tar, image, inputs.epoch)

        return write_layer(path, fill, compress=True), {}

    exists = inputs.cortexfile is not None
    return inputs.cache.layer(_key("config", digest, exists, image.config_path, image.data_dir, inputs.epoch), write)


def _data_folders(tar: tarfile.TarFile, image: BuildPlan, epoch: int) -> None:
    data = image.data_dir.strip("/")
    for folder in (data, f"{data}/models"):
        add_folder(tar, folder, epoch, mode=0o750, owner=SERVICE_UID)


def _key(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, (LAYERS_REVISION, *parts))).encode()).hexdigest()[:24]


def _write_outputs(
    plan: OciPlan, images: tuple[PlatformImage, ...], index: Blob, blobs: Blobs, work: Path
) -> list[str]:
    names = {REF_NAME: plan.tag, "io.containerd.image.name": plan.reference}
    entries = [descriptor(index, names)]
    for image in images:
        sbom_blob = blobs.add(Document(image.sbom, sbom.MEDIA_TYPE))
        attached = blobs.add(referrer(image.manifest, sbom_blob, sbom.MEDIA_TYPE))
        blobs.add(empty_config())
        entries.append(descriptor(attached, artifactType=sbom.MEDIA_TYPE))
    write_layout(work / f"{plan.stem}.oci", blobs, entries)
    written = [f"{plan.stem}.oci"]
    for image in images:
        own = {image.manifest.hex, image.config.hex, *(layer.hex for layer in image.layers)}
        archive = f"{plan.stem}-{image.architecture}.tar"
        docker = [docker_entry(image.config, list(image.layers), [plan.reference])]
        write_archive(work / archive, blobs.subset(own), [descriptor(image.manifest, names)], docker)
        document = f"{plan.stem}-{image.architecture}{SBOM_SUFFIX}"
        (work / document).write_bytes(image.sbom)
        written += [archive, document]
    return written
