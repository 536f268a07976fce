"""Downloads into the store from real loopback servers: hub token scope, verification, failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from menlo_cortex.runtime.fetch import download
from menlo_cortex.runtime.fetch.download import DownloadStopped
from menlo_cortex.runtime.models.model_store import DownloadFailed, ModelInvalid, ModelStore

from tests.runtime.download_servers import Route, Running, file_server, gguf_bytes, model_config, sha256_of

TOKEN = "hf_secret_token_4242"


class RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def begin(self, label: str, total: int | None) -> None:
        self.events.append(("begin", (label, total)))

    def update(self, done: int) -> None:
        self.events.append(("update", done))

    def end(self, ok: bool) -> None:
        self.events.append(("end", ok))


def hub_network(hub: Running, token: bool = True) -> str:
    token_entry = ", token: '${env:CORTEX_TEST_HF_TOKEN}'" if token else ""
    return f"{{huggingface: {{endpoint: '{hub.url('')}'{token_entry}}}}}"


def store_leftovers(data: Path) -> list[str]:
    return sorted(path.name for path in (data / "models").glob("*") if not path.name.endswith(".lock"))


@pytest.fixture(autouse=True)
def hub_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORTEX_TEST_HF_TOKEN", TOKEN)


def test_token_goes_to_the_hub_but_not_to_the_host_it_redirects_to(tmp_path: Path) -> None:
    body = gguf_bytes(size=200_000)
    with file_server() as hub, file_server() as cdn:
        cdn.routes["/blobs/tiny"] = Route(body)
        location = cdn.url("/blobs/tiny?signature=abc", host="localhost")
        hub.routes["/org/repo/resolve/main/tiny.gguf"] = Route(status=302, headers={"Location": location})
        config = model_config(tmp_path, "hf://org/repo/tiny.gguf", sha256_of(body), hub_network(hub))
        progress = RecordingProgress()

        path = ModelStore(config, tmp_path / "data").ensure(config.models[0], progress)

    assert path.read_bytes() == body
    assert hub.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert [seen.path for seen in cdn.seen] == ["/blobs/tiny?signature=abc"]
    assert "Authorization" not in cdn.seen[0].headers
    assert cdn.seen[0].headers["User-Agent"].startswith("cortex/")
    assert progress.events[0] == ("begin", ("tiny", len(body)))
    assert progress.events[-2:] == [("update", len(body)), ("end", True)]


def test_token_is_not_sent_to_a_plain_url_source(tmp_path: Path) -> None:
    body = gguf_bytes()
    with file_server() as hub, file_server() as other:
        other.routes["/tiny.gguf"] = Route(body)
        config = model_config(tmp_path, other.url("/tiny.gguf", host="localhost"), sha256_of(body), hub_network(hub))

        ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert "Authorization" not in other.seen[0].headers
    assert hub.seen == []


def test_user_agent_setting_is_sent(tmp_path: Path) -> None:
    body = gguf_bytes()
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body)
        network = "{github: {user_agent: 'acme-appliance/2'}}"
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body), network)

        ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert server.seen[0].headers["User-Agent"] == "acme-appliance/2"


def test_wrong_sha256_is_refused_and_nothing_is_left_behind(tmp_path: Path) -> None:
    body, expected = gguf_bytes(), sha256_of(b"another file")
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body)
        config = model_config(tmp_path, server.url("/tiny.gguf"), expected)

        with pytest.raises(ModelInvalid) as caught:
            ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert f"has sha256 {sha256_of(body)}, expected {expected}" in str(caught.value)
    assert server.url("/tiny.gguf") in str(caught.value)
    assert store_leftovers(tmp_path / "data") == []


def test_a_truncated_body_keeps_its_part_and_the_next_attempt_asks_for_the_rest(tmp_path: Path) -> None:
    body = gguf_bytes()
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body[:1000], declared_length=len(body))
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))
        store, progress = ModelStore(config, tmp_path / "data"), RecordingProgress()
        with pytest.raises(DownloadFailed, match=r"`tiny`: downloading .* failed: the connection broke before the end"):
            store.ensure(config.models[0], progress)
        assert progress.events[-1] == ("end", False)
        assert store_leftovers(tmp_path / "data") == [f".{sha256_of(body)}.partial"]

        server.routes["/tiny.gguf"] = Route(body, ranges=True)
        path = store.ensure(config.models[0])
        assert server.seen[-1].headers["Range"] == "bytes=1000-"
    assert path.read_bytes() == body  # and its sha256 was checked whole: ensure() returned it
    assert store_leftovers(tmp_path / "data") == [f"{sha256_of(body)}.gguf"]


def test_a_server_that_ignores_the_range_sends_the_whole_file_again(tmp_path: Path) -> None:
    body = gguf_bytes()
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / f".{sha256_of(body)}.partial").write_bytes(body[:5000])
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body)  # answers 200 to a Range request
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))
        assert ModelStore(config, data).ensure(config.models[0]).read_bytes() == body
        assert server.seen[-1].headers["Range"] == "bytes=5000-"


def test_a_partial_file_from_another_file_fails_the_whole_sha256_and_is_deleted(tmp_path: Path) -> None:
    body, other = gguf_bytes(seed=1), gguf_bytes(seed=2)
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / f".{sha256_of(body)}.partial").write_bytes(other[:5000])
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body, ranges=True)
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))
        with pytest.raises(ModelInvalid, match=f"expected {sha256_of(body)}"):
            ModelStore(config, data).ensure(config.models[0])
        assert store_leftovers(data) == []  # the next attempt starts from nothing
        assert ModelStore(config, data).ensure(config.models[0]).read_bytes() == body


def test_a_server_that_drips_is_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read gets a byte well within the read timeout, so only the rate rule ends it."""
    monkeypatch.setattr(download, "WINDOW_S", 0.5)
    body = gguf_bytes()
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body, drip_s=0.05)
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))
        started = time.monotonic()
        with pytest.raises(
            DownloadFailed,
            match=r"the server sent less than 65.5 KB in 0 s: too slow, given up \(the part received is kept",
        ):
            ModelStore(config, tmp_path / "data").ensure(config.models[0])
    assert time.monotonic() - started < 10


def test_stop_ends_a_download_that_waits_for_data(tmp_path: Path) -> None:
    body = gguf_bytes()
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body, drip_s=30)  # the first byte would come in 30 s
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))
        store = ModelStore(config, tmp_path / "data")
        errors: list[BaseException] = []

        def download() -> None:
            try:
                store.ensure(config.models[0])
            except DownloadFailed as exc:
                errors.append(exc)

        worker = threading.Thread(target=download)
        worker.start()
        deadline = time.monotonic() + 30
        while not server.seen:  # the download is waiting for its first byte
            assert time.monotonic() < deadline, "the download never reached the server"
            time.sleep(0.01)
        started = time.monotonic()
        store.stop()
        worker.join(timeout=10)
        assert not worker.is_alive()
    assert time.monotonic() - started < 5
    assert [type(error) for error in errors] == [DownloadStopped]


def test_a_stop_between_the_headers_and_the_body_still_ends_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop comes after the answer's headers, before its body is watched: the first read is interrupted
    anyway (it once waited for the server's first byte; a shutdown then hung)."""
    body = gguf_bytes()
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body, drip_s=30)
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))
        store = ModelStore(config, tmp_path / "data")
        check_space = download._check_free_space

        def stop_first(*args: object) -> None:
            store.stop()
            check_space(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(download, "_check_free_space", stop_first)
        started = time.monotonic()
        with pytest.raises(DownloadStopped):
            store.ensure(config.models[0])
    assert time.monotonic() - started < 10


def test_a_file_that_is_not_gguf_is_refused_even_with_the_right_sha256(tmp_path: Path) -> None:
    body = b"<!DOCTYPE html><p>sign in</p>"
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body)
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))

        with pytest.raises(ModelInvalid, match="is not a GGUF file"):
            ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert store_leftovers(tmp_path / "data") == []


def test_a_file_larger_than_the_free_disk_is_refused_before_writing(tmp_path: Path) -> None:
    with file_server() as server:
        server.routes["/huge.gguf"] = Route(b"", declared_length=10**18)
        config = model_config(tmp_path, server.url("/huge.gguf"), sha256_of(b"huge"))
        progress = RecordingProgress()

        with pytest.raises(DownloadFailed, match="not enough disk space"):
            ModelStore(config, tmp_path / "data").ensure(config.models[0], progress)

    assert progress.events == []
    assert store_leftovers(tmp_path / "data") == []


def test_an_http_error_names_model_and_url_but_never_the_token(tmp_path: Path) -> None:
    with file_server() as hub:
        config = model_config(tmp_path, "hf://org/repo/missing.gguf@v2", sha256_of(b"x"), hub_network(hub))

        with pytest.raises(DownloadFailed) as caught:
            ModelStore(config, tmp_path / "data").ensure(config.models[0])

    message = str(caught.value)
    assert message == (
        f"model `tiny`: downloading {hub.url('/org/repo/resolve/v2/missing.gguf')} failed: "
        f"{hub.url('/org/repo/resolve/v2/missing.gguf')} answered HTTP 404 Not Found"
    )
    assert TOKEN not in message


def test_credentials_in_a_url_never_reach_the_error(tmp_path: Path) -> None:
    with file_server() as server:
        url = server.url("/private.gguf?token=querysecret").replace("://", "://user:urlsecret@")
        config = model_config(tmp_path, url, sha256_of(b"x"))

        with pytest.raises(DownloadFailed) as caught:
            ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert "urlsecret" not in str(caught.value)
    assert "querysecret" not in str(caught.value)
    assert server.url("/private.gguf?...") in str(caught.value)


def test_concurrent_downloads_of_one_model_download_it_once(tmp_path: Path) -> None:
    body = gguf_bytes(size=2_000_000)
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body)
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))
        store = ModelStore(config, tmp_path / "data")
        results: list[Path] = []
        threads = [threading.Thread(target=lambda: results.append(store.ensure(config.models[0]))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(results) == 3
    assert {path.read_bytes() == body for path in results} == {True}
    assert len(server.seen) == 1
    assert store_leftovers(tmp_path / "data") == [f"{sha256_of(body)}.gguf"]


def test_a_redirect_to_a_hostile_location_is_a_clean_error(tmp_path: Path) -> None:
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(status=302, headers={"Location": "http://127.0.0.1:ab\x1b[2Jc/x?t=1"})
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(b"x"))
        with pytest.raises(DownloadFailed) as caught:
            ModelStore(config, tmp_path / "data").ensure(config.models[0])
    message = str(caught.value)
    assert "not an http(s) URL" in message
    assert message.isprintable()
    assert "t=1" not in message


def test_a_location_two_parsers_read_differently_is_not_followed(tmp_path: Path) -> None:
    """urlsplit reads the host after the backslash's `@`, urllib3 (which connects, or asks a proxy to) before it:
    the hub's token would have gone to the host urllib3 reads."""
    with file_server() as server:
        location = f"http://evil.example\\@127.0.0.1:{server.port}/other.gguf"
        server.routes["/tiny.gguf"] = Route(status=302, headers={"Location": location})
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(b"x"))
        with pytest.raises(DownloadFailed, match="not an http\\(s\\) URL"):
            ModelStore(config, tmp_path / "data").ensure(config.models[0])
    assert [seen.path for seen in server.seen] == ["/tiny.gguf"]


def test_a_body_that_would_fill_the_disk_is_given_up_and_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunked body announces no size: free space is looked at again while it is written."""
    monkeypatch.setattr(download, "SPACE_CHECK_BYTES", 16 << 10)
    monkeypatch.setattr(download, "FREE_MARGIN_BYTES", 1 << 62)
    body = gguf_bytes()
    with file_server() as server:
        server.routes["/tiny.gguf"] = Route(body)
        config = model_config(tmp_path, server.url("/tiny.gguf"), sha256_of(body))
        with pytest.raises(DownloadFailed, match="not enough disk space"):
            ModelStore(config, tmp_path / "data").ensure(config.models[0])
    assert store_leftovers(tmp_path / "data") == []
