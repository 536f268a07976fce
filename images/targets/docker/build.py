"""The docker target's host step: the context written for inspection (--context-dir), or streamed to the
engine as a reproducible tar; the image built untagged, then tagged and pushed only once it finished."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import docker

from ...artifacts import Files, publish_tree
from ...reproducible import add_bytes, add_file
from . import engine
from .progress import BuildDisplay
from .render import DOCKERIGNORE
from .request import DockerRequest

SPACE_MARGIN_BYTES = 512 << 20


class ContextFolderTaken(ValueError):
    """--context-dir names a folder that holds files this build did not write."""


def write_context(files: Files, folder: Path) -> None:
    """The context, published whole into `folder` (images/artifacts.py): an absent or empty folder, or an
    earlier context (its .dockerignore says so), never one that holds other files."""
    if folder.is_dir() and not folder.is_symlink() and any(folder.iterdir()) and not _earlier_context(folder):
        raise ContextFolderTaken(f"{folder} holds files cortex build did not write: give a new or empty folder")
    publish_tree(files, folder)


def _earlier_context(folder: Path) -> bool:
    marker = folder / ".dockerignore"
    return marker.is_file() and not marker.is_symlink() and marker.read_bytes() == DOCKERIGNORE.encode()


def write_tar(files: Files, stream: io.BufferedIOBase | io.BytesIO, epoch: int) -> None:
    """The context as a reproducible tar (names sorted by the render), for the engine."""
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, artifact in files.items():
            if isinstance(artifact.content, bytes):
                add_bytes(archive, name, artifact.content, epoch, mode=artifact.mode)
            else:
                add_file(archive, name, artifact.content, epoch)


def build_image(
    client: docker.DockerClient, request: DockerRequest, reference: str, files: Files, *, scratch: Path, epoch: int
) -> str:
    """Build untagged, then tag (and push) only what finished; the image id."""
    check_space(files, scratch)
    options = request.options
    display = BuildDisplay(verbose=options.verbose)
    tarball = scratch / "context.tar"
    with tarball.open("w+b") as stream:
        write_tar(files, stream, epoch)
        stream.seek(0)
        image_id = engine.build(
            client,
            engine.BuildRequest(stream, options.platform, options.network_mode, options.no_cache),
            display,
        )
    engine.tag(client, image_id, reference)
    if options.push:
        engine.push(client, reference, display)
    return image_id


def check_space(files: Files, scratch: Path) -> None:
    sizes = (len(a.content) if isinstance(a.content, bytes) else a.content.stat().st_size for a in files.values())
    needed = sum(sizes) + SPACE_MARGIN_BYTES
    free = shutil.disk_usage(scratch).free
    if free < needed:
        raise engine.EngineError(
            f"not enough disk space to stage the build context in {scratch}: {needed >> 20} MiB needed, "
            f"{free >> 20} MiB free (set TMPDIR to a larger disk)"
        )
