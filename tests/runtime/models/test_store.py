"""ModelStore: lookup by sha256 in the store, then the source path; clear errors for missing or wrong files."""

from __future__ import annotations

from pathlib import Path

import pytest
from menlo_cortex.runtime.models.model_store import ModelInvalid, ModelStore, ModelUnavailable

from tests.runtime.download_servers import Route, file_server, gguf_bytes, model_config, sha256_of


def test_store_copy_is_found_before_the_source_path(tmp_path: Path) -> None:
    beside, stored = gguf_bytes(seed=1), gguf_bytes(seed=2)
    (tmp_path / "tiny.gguf").write_bytes(beside)
    sha = sha256_of(stored)
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / f"{sha}.gguf").write_bytes(stored)
    config = model_config(tmp_path, "tiny.gguf", sha)

    assert ModelStore(config, data).locate(config.models[0]) == data / "models" / f"{sha}.gguf"


def test_relative_source_is_found_beside_the_cortexfile(tmp_path: Path) -> None:
    body = gguf_bytes()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf").write_bytes(body)
    config = model_config(tmp_path, "models/tiny.gguf", sha256_of(body))
    store = ModelStore(config, tmp_path / "empty-data")

    assert store.locate(config.models[0]) == tmp_path / "models" / "tiny.gguf"
    assert store.ensure(config.models[0]) == tmp_path / "models" / "tiny.gguf"


def test_missing_local_model_names_the_model_and_every_path_tried(
    tmp_path: Path,
) -> None:
    sha = sha256_of(b"absent")
    config = model_config(tmp_path, "gone.gguf", sha)
    store = ModelStore(config, tmp_path / "data")

    with pytest.raises(ModelUnavailable) as caught:
        store.ensure(config.models[0])
    message = str(caught.value)
    assert "`tiny`" in message
    assert str(tmp_path / "data" / "models" / f"{sha}.gguf") in message
    assert str(tmp_path / "gone.gguf") in message
    assert "cortex pull" not in message


def test_missing_remote_model_says_to_pull_and_from_where(tmp_path: Path) -> None:
    sha = sha256_of(b"absent")
    config = model_config(
        tmp_path,
        "hf://org/repo/sub/tiny.gguf@v1",
        sha,
        "{huggingface: {endpoint: 'http://127.0.0.1:9'}}",
    )

    with pytest.raises(ModelUnavailable) as caught:
        ModelStore(config, tmp_path / "data").locate(config.models[0])
    message = str(caught.value)
    assert "`tiny`" in message
    assert "cortex pull" in message
    assert "http://127.0.0.1:9/org/repo/resolve/v1/sub/tiny.gguf" in message


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tiny.gguf").write_bytes(b"<html>not a model</html>")
    config = model_config(tmp_path, "tiny.gguf", None)

    with pytest.raises(ModelInvalid, match=r"`tiny`: .*tiny\.gguf is not a GGUF file"):
        ModelStore(config, tmp_path / "data").locate(config.models[0])


def test_a_local_file_with_the_wrong_sha256_is_refused(tmp_path: Path) -> None:
    body = gguf_bytes()
    (tmp_path / "tiny.gguf").write_bytes(body)
    wrong = sha256_of(b"something else")
    config = model_config(tmp_path, "tiny.gguf", wrong)

    with pytest.raises(ModelInvalid) as caught:
        ModelStore(config, tmp_path / "data").ensure(config.models[0])
    assert f"has sha256 {sha256_of(body)}, expected {wrong}" in str(caught.value)
    assert str(tmp_path / "tiny.gguf") in str(caught.value)


def test_ensure_downloads_a_hub_model_once(tmp_path: Path) -> None:
    body = gguf_bytes(size=300_000)
    with file_server() as hub:
        hub.routes["/org/repo/resolve/main/tiny.gguf"] = Route(body)
        endpoint = f"{{huggingface: {{endpoint: '{hub.url('')}'}}}}"
        config = model_config(tmp_path, "hf://org/repo/tiny.gguf", sha256_of(body), endpoint)
        store = ModelStore(config, tmp_path / "data")

        first = store.ensure(config.models[0])
        second = store.ensure(config.models[0])

    assert first == second == tmp_path / "data" / "models" / f"{sha256_of(body)}.gguf"
    assert first.read_bytes() == body
    assert [seen.path for seen in hub.seen] == ["/org/repo/resolve/main/tiny.gguf"]
    assert not list((tmp_path / "data" / "models").glob("*.partial"))


def test_the_real_test_model_is_found_in_the_store(test_data_dir: Path, test_model_path: Path, tmp_path: Path) -> None:
    config = model_config(tmp_path, "hf://org/repo/gemma.gguf", test_model_path.stem)

    assert ModelStore(config, test_data_dir).locate(config.models[0]) == test_model_path


def test_a_replaced_local_file_is_hashed_again(tmp_path: Path) -> None:
    body = gguf_bytes()
    source = tmp_path / "tiny.gguf"
    source.write_bytes(body)
    config = model_config(tmp_path, "tiny.gguf", sha256_of(body))
    store = ModelStore(config, tmp_path / "data")
    assert store.ensure(config.models[0]) == source

    source.write_bytes(gguf_bytes(size=len(body) + 1, seed=9))

    with pytest.raises(ModelInvalid, match="has sha256"):
        store.ensure(config.models[0])
