"""Network settings applied to downloads: TLS verification against a self-signed server, and the proxy."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from menlo_cortex.runtime.models.model_store import DownloadFailed, ModelStore

from tests.runtime.download_servers import (
    Route,
    Running,
    file_server,
    gguf_bytes,
    model_config,
    recording_proxy,
    self_signed_tls,
    sha256_of,
)

BODY = gguf_bytes(size=100_000)
SHA = sha256_of(BODY)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Path]]:
    context, cert = self_signed_tls(tmp_path_factory.mktemp("tls"), name="localhost")
    with file_server(tls=context) as server:
        server.routes["/tiny.gguf"] = Route(BODY)
        yield server, cert


def ssl_network(verify_peer: bool, verify_host: bool = True) -> str:
    return f"{{ssl: {{verify_peer: {str(verify_peer).lower()}, verify_host: {str(verify_host).lower()}}}}}"


def test_a_self_signed_server_is_refused_while_peers_are_verified(
    tls_server: tuple[Running, Path], tmp_path: Path
) -> None:
    server, _ = tls_server
    config = model_config(tmp_path, server.url("/tiny.gguf", host="localhost"), SHA, ssl_network(True))

    with pytest.raises(DownloadFailed, match="CERTIFICATE_VERIFY_FAILED"):
        ModelStore(config, tmp_path / "data").ensure(config.models[0])


def test_a_self_signed_server_works_when_peer_verification_is_off(
    tls_server: tuple[Running, Path], tmp_path: Path
) -> None:
    server, _ = tls_server
    config = model_config(tmp_path, server.url("/tiny.gguf"), SHA, ssl_network(False))

    assert ModelStore(config, tmp_path / "data").ensure(config.models[0]).read_bytes() == BODY


def test_host_name_check_follows_verify_host(
    tls_server: tuple[Running, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate, which names only `localhost`
    wrong_name = server.url("/tiny.gguf", host="127.0.0.1")
    checked = model_config(tmp_path, wrong_name, SHA, ssl_network(True, verify_host=True))
    with pytest.raises(DownloadFailed, match="match"):
        ModelStore(checked, tmp_path / "data").ensure(checked.models[0])

    unchecked = model_config(tmp_path, wrong_name, SHA, ssl_network(True, verify_host=False))
    assert ModelStore(unchecked, tmp_path / "data").ensure(unchecked.models[0]).read_bytes() == BODY


def proxy_network(proxy: Running, no_proxy: str = "[]", *, proxy_extra: str = "", ssl: str = "") -> str:
    settings = f"url: '{proxy.url('')}', username: alice, password: '${{env:CORTEX_TEST_PROXY_PASSWORD}}'"
    return f"{{proxy: {{{settings}, no_proxy: {no_proxy}{proxy_extra}}}{ssl}}}"


@pytest.fixture
def proxy_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CORTEX_TEST_PROXY_PASSWORD", "s3cret")
    return "Basic " + base64.b64encode(b"alice:s3cret").decode()


def test_a_plain_http_download_goes_through_the_proxy_with_its_credentials(tmp_path: Path, proxy_password: str) -> None:
    with recording_proxy() as proxy, file_server() as server:
        server.routes["/tiny.gguf"] = Route(BODY)
        config = model_config(tmp_path, server.url("/tiny.gguf"), SHA, proxy_network(proxy))

        path = ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert path.read_bytes() == BODY
    assert [(seen.method, seen.path) for seen in proxy.seen] == [("GET", server.url("/tiny.gguf"))]
    assert proxy.seen[0].headers["Proxy-Authorization"] == proxy_password
    assert "Proxy-Authorization" not in server.seen[0].headers


def test_an_https_download_is_tunnelled_through_the_proxy(
    tls_server: tuple[Running, Path], tmp_path: Path, proxy_password: str
) -> None:
    server, _ = tls_server
    with recording_proxy() as proxy:
        network = proxy_network(proxy, ssl=", ssl: {verify_peer: false}")
        config = model_config(tmp_path, server.url("/tiny.gguf"), SHA, network)

        path = ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert path.read_bytes() == BODY
    assert [(seen.method, seen.path) for seen in proxy.seen] == [("CONNECT", f"127.0.0.1:{server.port}")]
    assert proxy.seen[0].headers["Proxy-Authorization"] == proxy_password


def test_no_proxy_hosts_are_reached_directly(tmp_path: Path, proxy_password: str) -> None:
    with recording_proxy() as proxy, file_server() as server:
        server.routes["/tiny.gguf"] = Route(BODY)
        config = model_config(tmp_path, server.url("/tiny.gguf"), SHA, proxy_network(proxy, no_proxy="['127.0.0.0/8']"))

        ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert proxy.seen == []
    assert len(server.seen) == 1


@pytest.mark.parametrize("verify_ssl", [True, False])
def test_tls_to_the_proxy_follows_verify_ssl(tmp_path: Path, proxy_password: str, verify_ssl: bool) -> None:
    context, _ = self_signed_tls(tmp_path, name="localhost")
    with recording_proxy(tls=context) as proxy, file_server() as server:
        server.routes["/tiny.gguf"] = Route(BODY)
        network = proxy_network(proxy, proxy_extra=f", verify_ssl: {str(verify_ssl).lower()}")
        config = model_config(tmp_path, server.url("/tiny.gguf"), SHA, network)
        store = ModelStore(config, tmp_path / "data")

        if verify_ssl:
            with pytest.raises(DownloadFailed, match="CERTIFICATE_VERIFY_FAILED"):
                store.ensure(config.models[0])
            assert proxy.seen == []
        else:
            assert store.ensure(config.models[0]).read_bytes() == BODY
            assert [(seen.method, seen.path) for seen in proxy.seen] == [("GET", server.url("/tiny.gguf"))]


@pytest.mark.parametrize("verify_ssl", [True, False])
def test_https_is_tunnelled_through_an_https_proxy(
    tls_server: tuple[Running, Path], tmp_path: Path, proxy_password: str, verify_ssl: bool
) -> None:
    server, _ = tls_server
    context, _ = self_signed_tls(tmp_path, name="localhost")
    with recording_proxy(tls=context) as proxy:
        extra = f", verify_ssl: {str(verify_ssl).lower()}"
        network = proxy_network(proxy, proxy_extra=extra, ssl=", ssl: {verify_peer: false}")
        config = model_config(tmp_path, server.url("/tiny.gguf"), SHA, network)
        store = ModelStore(config, tmp_path / "data")

        if verify_ssl:
            with pytest.raises(DownloadFailed, match="CERTIFICATE_VERIFY_FAILED"):
                store.ensure(config.models[0])
            assert proxy.seen == []
        else:
            assert store.ensure(config.models[0]).read_bytes() == BODY
            assert [(seen.method, seen.path) for seen in proxy.seen] == [("CONNECT", f"127.0.0.1:{server.port}")]
            assert proxy.seen[0].headers["Proxy-Authorization"] == proxy_password


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_that_refuses_is_a_clear_error(tls_server: tuple[Running, Path], tmp_path: Path, scheme: str) -> None:
    server, _ = tls_server
    with recording_proxy() as proxy, file_server() as plain:
        url = server.url("/tiny.gguf") if scheme == "https" else plain.url("/tiny.gguf")
        network = f"{{proxy: {{url: '{proxy.url('')}'}}, ssl: {{verify_peer: false}}}}"
        config = model_config(tmp_path, url, SHA, network)

        with pytest.raises(DownloadFailed, match="407 Proxy Authentication Required"):
            ModelStore(config, tmp_path / "data").ensure(config.models[0])

    assert [seen.method for seen in proxy.seen] == ["CONNECT" if scheme == "https" else "GET"]
