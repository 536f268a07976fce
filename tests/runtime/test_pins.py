"""Pinned downloads: a remote model without a sha256 is pinned in Cortexfile.lock by its first download
(`cortex pull`, a real subprocess, against a loopback hub), and every later download is checked against it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.runtime.fetch.download import download_model
from menlo_cortex.runtime.models.model_store import ModelInvalid, ModelStore, ModelUnavailable
from menlo_cortex.runtime.models.pins import lock_path

from tests.runtime.download_servers import Route, Running, file_server, gguf_bytes, model_config, sha256_of

CORTEX = str(Path(sys.executable).parent / "cortex")
ROUTE = "/org/repo/resolve/main/tiny.gguf"


def write_cortexfile(folder: Path, hub: Running) -> Path:
    lines = ["version: 1", "network:", "  huggingface:", f"    endpoint: '{hub.url('')}'", "models:"]
    lines += ["  - id: tiny", "    source: hf://org/repo/tiny.gguf"]
    path = folder / "Cortexfile.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pull(cortexfile: Path, data: Path) -> subprocess.CompletedProcess[str]:
    command = [CORTEX, "pull", "-f", str(cortexfile), "--datapath", str(data)]
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=120, check=False)


def locked_models(cortexfile: Path) -> list[dict[str, object]]:
    models = tomllib.loads(lock_path(cortexfile).read_text(encoding="utf-8"))["models"]
    assert isinstance(models, list)
    return models


def test_a_first_download_pins_the_model_and_later_pulls_use_the_pin(tmp_path: Path) -> None:
    body = gguf_bytes(size=300_000, seed=3)
    with file_server() as hub:
        hub.routes[ROUTE] = Route(body)
        cortexfile = write_cortexfile(tmp_path, hub)
        first = pull(cortexfile, tmp_path / "data")
        second = pull(cortexfile, tmp_path / "data")

    assert first.returncode == 0, first.stderr
    entry = {"id": "tiny", "source": "hf://org/repo/tiny.gguf", "sha256": sha256_of(body), "size": len(body)}
    assert locked_models(cortexfile) == [entry]
    assert (tmp_path / "data" / "models" / f"{sha256_of(body)}.gguf").read_bytes() == body
    assert second.returncode == 0, second.stderr
    assert len(hub.seen) == 1  # the second pull found the pinned file in the store
    assert sorted(p.name for p in (tmp_path / "data" / "models").iterdir() if not p.name.endswith(".lock")) == [
        f"{sha256_of(body)}.gguf"
    ]


def test_a_download_that_differs_from_its_pin_is_deleted_and_names_both_hashes(tmp_path: Path) -> None:
    pinned, served = gguf_bytes(seed=4), gguf_bytes(seed=5)
    with file_server() as hub:
        hub.routes[ROUTE] = Route(pinned)
        cortexfile = write_cortexfile(tmp_path, hub)
        assert pull(cortexfile, tmp_path / "data").returncode == 0
        (tmp_path / "data" / "models" / f"{sha256_of(pinned)}.gguf").unlink()  # a new device, the same lock
        hub.routes[ROUTE] = Route(served)  # the hub's file changed under the same name
        refused = pull(cortexfile, tmp_path / "data")

    assert refused.returncode == 1
    assert f"has sha256 {sha256_of(served)}, expected {sha256_of(pinned)} (pinned in {lock_path(cortexfile)})" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr
    assert [p.name for p in (tmp_path / "data" / "models").iterdir() if not p.name.endswith(".lock")] == []
    assert locked_models(cortexfile)[0]["sha256"] == sha256_of(pinned)  # the pin is not moved by a bad download


def test_a_changed_source_is_a_new_model_pinned_in_place_of_the_old_one(tmp_path: Path) -> None:
    first, second = gguf_bytes(seed=6), gguf_bytes(seed=7)
    with file_server() as hub:
        hub.routes[ROUTE] = Route(first)
        hub.routes["/org/repo/resolve/main/other.gguf"] = Route(second)
        cortexfile = write_cortexfile(tmp_path, hub)
        assert pull(cortexfile, tmp_path / "data").returncode == 0
        cortexfile.write_text(cortexfile.read_text().replace("tiny.gguf", "other.gguf"))
        assert pull(cortexfile, tmp_path / "data").returncode == 0

    pins = {entry["source"]: entry["sha256"] for entry in locked_models(cortexfile)}
    assert pins == {"hf://org/repo/other.gguf": sha256_of(second)}  # one entry per model id, as `cortex lock`


def test_a_lock_that_cannot_be_written_pins_in_the_data_folder(tmp_path: Path) -> None:
    """A service's Cortexfile lives in a read-only /etc: the pin is this device's own, in its data folder."""
    body = gguf_bytes(seed=8)
    (tmp_path / "a-file").write_text("")
    cortexfile = tmp_path / "a-file" / "Cortexfile.yaml"  # a folder that cannot be written to
    with file_server() as hub:
        hub.routes["/tiny.gguf"] = Route(body)
        config = model_config(tmp_path, hub.url("/tiny.gguf"), None)
        path = ModelStore(config, tmp_path / "data", cortexfile).ensure(config.models[0])
        again = ModelStore(config, tmp_path / "data", cortexfile).ensure(config.models[0])  # the next start

    assert path == again == tmp_path / "data" / "models" / f"{sha256_of(body)}.gguf"
    assert len(hub.seen) == 1
    local = tomllib.loads((tmp_path / "data" / "models" / "pins.toml").read_text(encoding="utf-8"))
    assert local["models"] == [{"id": "tiny", "source": hub.url("/tiny.gguf"), "sha256": sha256_of(body),
                                "size": len(body)}]  # fmt: skip


def test_a_pin_made_by_another_process_meanwhile_is_never_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, theirs = gguf_bytes(seed=10), gguf_bytes(seed=11)
    real_download = download_model

    def racing(*args: Any, **kwargs: Any) -> Path:
        path = real_download(*args, **kwargs)
        entry = f'models = [{{id = "tiny", source = "{hub.url("/tiny.gguf")}", sha256 = "{sha256_of(theirs)}"}}]\n'
        (tmp_path / "Cortexfile.lock").write_text(entry, encoding="utf-8")
        return path

    monkeypatch.setattr("menlo_cortex.runtime.models.model_store.download_model", racing)
    with file_server() as hub:
        hub.routes["/tiny.gguf"] = Route(mine)
        config = model_config(tmp_path, hub.url("/tiny.gguf"), None)
        with pytest.raises(ModelInvalid, match=f"pinned {sha256_of(theirs)} meanwhile"):
            ModelStore(config, tmp_path / "data", tmp_path / "Cortexfile.yaml").ensure(config.models[0])

    assert sha256_of(theirs) in (tmp_path / "Cortexfile.lock").read_text(encoding="utf-8")
    assert not (tmp_path / "data" / "models" / f"{sha256_of(mine)}.gguf").exists()


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        ("version = 1\nmodels = [\n", "unreadable pin file (TOMLDecodeError)"),
        ('models = [{id = "tiny", source = "SOURCE", sha256 = "abc", size = 1}]\n', "not 64 lowercase hex"),
    ],
)
def test_a_broken_lock_is_a_clear_error(tmp_path: Path, lock: str, message: str) -> None:
    with file_server() as hub:
        hub.routes["/tiny.gguf"] = Route(gguf_bytes())
        config = model_config(tmp_path, hub.url("/tiny.gguf"), None)
        lock_file = tmp_path / "Cortexfile.lock"
        lock_file.write_text(lock.replace("SOURCE", hub.url("/tiny.gguf")), encoding="utf-8")
        with pytest.raises(ModelUnavailable, match=re.escape(message)):
            ModelStore(config, tmp_path / "data", tmp_path / "Cortexfile.yaml").ensure(config.models[0])
    assert hub.seen == []


def test_a_pinned_file_tampered_with_in_the_store_is_refused_by_pull(tmp_path: Path) -> None:
    body = gguf_bytes(seed=9)
    with file_server() as hub:
        hub.routes[ROUTE] = Route(body)
        cortexfile = write_cortexfile(tmp_path, hub)
        assert pull(cortexfile, tmp_path / "data").returncode == 0
        stored = tmp_path / "data" / "models" / f"{sha256_of(body)}.gguf"
        stored.write_bytes(body[:-1] + b"!")
        refused = pull(cortexfile, tmp_path / "data")

    assert refused.returncode == 1
    assert f"{stored} has sha256 {sha256_of(body[:-1] + b'!')}, expected {sha256_of(body)}" in refused.stderr
