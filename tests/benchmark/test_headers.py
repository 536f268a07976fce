"""A remote model's header by HTTP Range, against a loopback server that behaves, ignores Range, lies or drips."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.benchmark.headers import Unreadable, from_url
from menlo_cortex.runtime.fetch.netsettings import net_settings
from menlo_cortex.runtime.fetch.prefix import PrefixFailed, read_prefix

from tests.runtime.download_servers import Route, file_server, gguf_bytes, model_config


@pytest.fixture(scope="module")
def head(test_model_path: Path) -> bytes:
    """The test model: its header is its first 7 MiB (a 262k-token vocabulary); only that much is asked for."""
    return test_model_path.read_bytes()


def read(tmp_path: Path, route: Route) -> tuple[object, list[str]]:
    config = model_config(tmp_path, "m.gguf", None)
    with file_server() as server:
        server.routes["/m.gguf"] = route
        try:
            found: object = from_url(server.url("/m.gguf"), net_settings(config.network), tmp_path / "cache")
        except Unreadable as exc:
            found = exc
        return found, [seen.headers.get("Range", "") for seen in server.seen]


def test_the_header_is_read_in_growing_ranges_and_cached(tmp_path: Path, head: bytes) -> None:
    net = net_settings(model_config(tmp_path, "m.gguf", None).network)
    with file_server() as server:
        server.routes["/m.gguf"] = Route(head, ranges=True)
        header = from_url(server.url("/m.gguf"), net, tmp_path / "cache")
        cached = from_url(server.url("/m.gguf"), net, tmp_path / "cache")
    assert (header.sizes.file_bytes, header.sizes.shape.vocab, header.read_from) == (len(head), 262144, "range request")
    asked = [seen.headers["Range"] for seen in server.seen]
    assert asked == [f"bytes=0-{(4 << 20) - 1}", f"bytes={4 << 20}-{(16 << 20) - 1}"]  # never past the header
    assert (cached.sizes.shape, cached.read_from) == (header.sizes.shape, "range request (cached)")
    assert cached.sizes.matrices == header.sizes.matrices
    assert cached.sizes.layout == header.sizes.layout
    assert header.sizes.layout.tied
    assert 0 < header.sizes.layout.layers < header.sizes.file_bytes
    assert any(matrix.tied for matrix in header.sizes.matrices)  # Gemma's output is its token embeddings


def test_a_header_that_claims_more_weights_than_the_file_is_refused(tmp_path: Path, head: bytes) -> None:
    found, _ = read(tmp_path, Route(head[: 20 << 20], ranges=True))  # the whole header, a tenth of the weights
    assert isinstance(found, Unreadable)
    assert "more weights than the file holds" in str(found)


def test_a_server_that_ignores_range_is_read_only_as_far_as_needed(tmp_path: Path, head: bytes) -> None:
    header, _ = read(tmp_path, Route(head))
    assert getattr(getattr(header, "sizes", None), "file_bytes", None) == len(head)


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (Route(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 16, ranges=True), "its GGUF header"),
        (Route(b"not a model at all", ranges=True), "it does not start with `GGUF`"),
        (Route(gguf_bytes(), status=404), "404"),
    ],
)
def test_a_bad_file_or_server_is_a_reason_never_a_crash(tmp_path: Path, route: Route, message: str) -> None:
    found, _ = read(tmp_path, route)
    assert isinstance(found, Unreadable)
    assert message in str(found)
    assert not (tmp_path / "cache").exists()  # nothing cached from a failure


def test_a_lie_about_the_size_is_refused(tmp_path: Path, head: bytes) -> None:
    route = Route(head, status=206, headers={"Content-Range": "bytes 0-99/0"})
    found, _ = read(tmp_path, route)
    assert isinstance(found, Unreadable)


def huge_layers(data: dict[str, Any]) -> None:
    data["shape"]["layers"] = 1 << 40


def unknown_matrix_type(data: dict[str, Any]) -> None:
    data["matrices"][0][0] = 99


def matrix_of_strings(data: dict[str, Any]) -> None:
    data["matrices"][0] = ["8", "640", "256", "9", False, False]


def layout_past_the_file(data: dict[str, Any]) -> None:
    data["layout"] = [data["file_bytes"], data["file_bytes"], False]  # each within it, together twice it


def layout_gone(data: dict[str, Any]) -> None:
    del data["layout"]  # a cache an earlier version wrote


@pytest.mark.parametrize(
    "spoil", [huge_layers, unknown_matrix_type, matrix_of_strings, layout_past_the_file, layout_gone]
)
def test_an_implausible_cached_header_is_read_again(
    tmp_path: Path, head: bytes, spoil: Callable[[dict[str, Any]], None]
) -> None:
    read(tmp_path, Route(head, ranges=True))
    (cached,) = (tmp_path / "cache").iterdir()
    data = json.loads(cached.read_text())
    spoil(data)
    cached.write_text(json.dumps(data))
    again, asked = read(tmp_path, Route(head, ranges=True))
    assert (getattr(again, "read_from", None), len(asked)) == ("range request", 2)


def test_a_server_that_drips_is_given_up_on(tmp_path: Path) -> None:
    config = model_config(tmp_path, "m.gguf", None)
    with file_server() as server:
        server.routes["/m.gguf"] = Route(gguf_bytes(size=4096), drip_s=0.05)
        with pytest.raises(PrefixFailed, match="too slow, given up"):
            read_prefix(server.url("/m.gguf"), net_settings(config.network), 0, 4096, deadline_s=0.5)
