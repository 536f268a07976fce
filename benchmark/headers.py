"""A model's shape and file size for `cortex models fit`: from its file when it is here, else from the first
megabytes of its remote file (HTTP Range), read again only when its URL changes (cached by URL).

A GGUF's header holds its vocabulary, so it can take a few megabytes: the read grows from 4 MiB to at most
64 MiB until the header parses. The weights are never downloaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from menlo_cortex.runtime.fetch.netsettings import NetSettings
from menlo_cortex.runtime.fetch.prefix import PrefixFailed, read_prefix
from menlo_cortex.runtime.models.batching.offload import Layout
from menlo_cortex.runtime.models.batching.plan import Shape, Sizes, checked, sizes_of
from menlo_cortex.runtime.models.gguf import Truncated, read_header
from menlo_cortex.runtime.models.weight_copies import BLOCKS, Matrix, within
from menlo_cortex.runtime.ops.durable import write_atomically

READS = (4 << 20, 16 << 20, 64 << 20)  # bytes of the file read, in turn, until the header parses


class Unreadable(Exception):
    """Neither the file nor its remote header can be read; the message says why, with no credentials."""


@dataclass(frozen=True)
class Header:
    sizes: Sizes  # what the plan reads of it: shape, file size, weight matrices, where the weights may go
    read_from: str  # "file" or "range request"


def from_file(path: Path) -> Header:
    try:
        return _parsed(path, path.stat().st_size, "file")
    except (ValueError, OSError) as exc:
        raise Unreadable(f"its GGUF header cannot be read: {exc}") from None


def _parsed(path: Path, file_bytes: int, read_from: str) -> Header:
    metadata, tensors = read_header(path)
    return Header(sizes_of(metadata, tensors, file_bytes), read_from)


def from_url(url: str, net: NetSettings, cache: Path) -> Header:
    """The header of the remote file at `url`, from the cache when this URL was read before."""
    key = hashlib.sha256(url.encode()).hexdigest()
    known = _cached(cache / f"{key}.json")
    if known is not None:
        return known
    header = _read_remote(url, net)
    with contextlib.suppress(OSError):  # a read-only home: read again next time
        write_atomically(cache / f"{key}.json", json.dumps(_as_json(header)))
    return header


def cache_folder(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "cortex" / "headers"


def _read_remote(url: str, net: NetSettings) -> Header:
    prefix, total = b"", None
    with tempfile.TemporaryDirectory(prefix="cortex-header-") as folder:
        partial = Path(folder) / "head.gguf"
        for size in READS:
            try:
                more, total = read_prefix(url, net, len(prefix), size)
            except PrefixFailed as exc:
                raise Unreadable(str(exc)) from None
            prefix += more
            if total is None or not 0 < len(prefix) <= total:
                raise Unreadable("the server does not say how large the file is, or says it is smaller than sent")
            partial.write_bytes(prefix)
            try:
                return _parsed(partial, total, "range request")
            except Truncated:
                if len(prefix) == total:  # the whole file was read: it is damaged, not cut short by us
                    raise Unreadable("its GGUF header runs past the end of the file") from None
            except ValueError as exc:
                raise Unreadable(f"its GGUF header cannot be read: {exc}") from None
    raise Unreadable(f"its GGUF header is larger than {READS[-1] >> 20} MiB")


def _as_json(header: Header) -> dict[str, Any]:
    sizes = header.sizes
    return {
        "shape": dataclasses.asdict(sizes.shape),
        "file_bytes": sizes.file_bytes,
        "matrices": [dataclasses.astuple(matrix) for matrix in sizes.matrices],
        "layout": dataclasses.astuple(sizes.layout),
    }


def _cached(path: Path) -> Header | None:
    """The cached header, or None when there is none, it is not one this version wrote, or it is implausible."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        shape, size = data["shape"], data["file_bytes"]
        fields = {field.name for field in dataclasses.fields(Shape)}
        if set(shape) != fields or not all(type(value) is int and value >= 0 for value in [*shape.values(), size]):
            return None
        found, layout = _matrices(data["matrices"], size), _layout(data["layout"], size)
        header = Header(Sizes(checked(Shape(**shape)), size, found, layout), "range request (cached)")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return header if size > 0 else None


def _layout(row: list[Any], file_bytes: int) -> Layout:
    """The cached layout; ValueError when it is not what _as_json wrote, or outgrows the file."""
    layers, output, tied = row
    whole = type(layers) is int and type(output) is int and type(tied) is bool
    if not (whole and layers >= 0 and output >= 0 and layers + output <= file_bytes):
        raise ValueError("not a layout, or more weights than the file holds")
    return Layout(layers, output, tied)


def _matrices(rows: list[Any], file_bytes: int) -> tuple[Matrix, ...]:
    """The cached matrices; ValueError when one is not what _as_json wrote, or they outgrow the file."""
    found = tuple(Matrix(*row) for row in rows)
    for matrix in found:
        sizes_whole = all(type(n) is int and n > 0 for n in (matrix.columns, matrix.rows, matrix.count))
        flags = type(matrix.experts) is bool and type(matrix.tied) is bool
        if not (sizes_whole and flags and type(matrix.type) is int and matrix.type in BLOCKS):
            raise ValueError("not a matrix")
    if not within(found, file_bytes):
        raise ValueError("more weights than the file holds")
    return found
