"""Search every byte of a saved image (each layer, its config, its manifest) for given strings."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

CHUNK = 1 << 20


def find_in_archive(archive: Path, needles: Mapping[str, bytes]) -> list[str]:
    """'<what> in <member>' for each needle found in any member of a `docker save` tarball,
    layers searched file by file after unpacking."""
    found = []
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            reader = outer.extractfile(member) if member.isfile() else None
            if reader is None:
                continue
            for where, stream in _unpacked(member.name, reader):
                found += [f"{what} in {where}" for what in _search(stream, needles)]
    return found


def _unpacked(name: str, reader: IO[bytes]) -> Iterator[tuple[str, IO[bytes]]]:
    head = reader.read(512)
    reader.seek(0)
    if head[:2] == b"\x1f\x8b" or _is_tar(head):  # a layer, plain or gzipped: "r|*" reads both
        with tarfile.open(fileobj=reader, mode="r|*") as layer:
            for entry in layer:
                inner = layer.extractfile(entry) if entry.isfile() else None
                if inner is not None:
                    yield f"{name}:{entry.name}", inner
        return
    yield name, reader


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def _search(stream: IO[bytes], needles: Mapping[str, bytes]) -> set[str]:
    overlap = max(len(n) for n in needles.values())
    hits, tail = set(), b""
    while chunk := stream.read(CHUNK):
        window = tail + chunk
        hits |= {what for what, needle in needles.items() if needle in window}
        tail = window[-overlap:]
    return hits
