"""The server's cross-cutting middleware at the ASGI level: ids, auth, CORS, Host, body size, errors.

The real process and the real model are exercised in test_server_e2e.py; here one small app is built
from the same `middleware()` stack, health and docs routes, plus routes that provoke each case.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.runtime.http.auth import KEY_FILE_CHECK_S, ApiKeys
from menlo_cortex.runtime.http.connections import client_key
from menlo_cortex.runtime.http.docs import docs_routes
from menlo_cortex.runtime.http.health import health_routes
from menlo_cortex.runtime.http.middleware import EXCEPTION_HANDLERS, middleware
from menlo_cortex.runtime.ops.logs import configure_logging
from menlo_cortex.runtime.ops.metrics import standard_metrics
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

KEY = "sk-test-0123456789"
LOCAL = "http://localhost"


class Models:
    """What /ready reads; its state is set by each test."""

    def __init__(self) -> None:
        self.is_ready = True

    def ready(self) -> bool:
        return self.is_ready

    def status(self) -> list[dict[str, object]]:
        return [{"id": "m", "state": "ready" if self.is_ready else "loading", "error": None, "gpu_layers": 0}]


async def echo_length(request: Request) -> Response:
    logging.getLogger("cortex.test").info("echo handler ran")
    return JSONResponse({"length": len(await request.body())})


async def crash(request: Request) -> Response:
    raise RuntimeError("boom: /secret/path")


def engine_document() -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "Cortex", "version": "1"}, "paths": {"/v1/echo": {}}}


def make_client(
    server: dict[str, Any] | None = None, models: Models | None = None, peer: str = "127.0.0.1"
) -> TestClient:
    config = Cortexfile.model_validate({"version": 1, "server": server or {}})
    keys, metrics = ApiKeys(config.server.auth), standard_metrics()
    routes = [
        *health_routes(models or Models(), metrics),
        *docs_routes(engine_document, keys_required=keys.configured, public_metrics=False),
        Route("/v1/echo", echo_length, methods=["POST"]),
        Route("/v1/completions", echo_length, methods=["POST"]),  # a JSON route: the guard checks its media type
        Route("/v1/crash", crash, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=middleware(config, keys, metrics), exception_handlers=EXCEPTION_HANDLERS)
    app.state.metrics = metrics
    return TestClient(app, base_url=LOCAL, raise_server_exceptions=False, client=(peer, 50000))


def assert_openai_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.fixture
def client() -> TestClient:
    return make_client()


@pytest.fixture
def keyed() -> TestClient:
    return make_client({"auth": {"api_keys": [KEY]}})


def test_every_response_carries_a_fresh_request_id(client: TestClient) -> None:
    ids = {client.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_sane_client_request_id_is_kept_and_a_wild_one_replaced(client: TestClient) -> None:
    assert client.get("/health", headers={"x-request-id": "abc-123.x"}).headers["x-request-id"] == "abc-123.x"
    for wild in ("has space", "x" * 200, "semi;colon", "-", "-x"):
        assert client.get("/health", headers={"x-request-id": wild}).headers["x-request-id"] != wild


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging(Cortexfile.model_validate({"version": 1}).logs, stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_every_log_line_of_a_request_names_its_id(client: TestClient, log_stream: io.StringIO) -> None:
    client.post("/v1/echo", content=b"hi", headers={"x-request-id": "trace-me-1"})
    lines = [line for line in log_stream.getvalue().splitlines() if "trace-me-1" in line]
    assert any("echo handler ran" in line for line in lines)
    assert any('"POST /v1/echo HTTP/1.1" 200' in line for line in lines)


def test_an_unexpected_exception_is_a_500_in_openai_shape_with_traceback_logged(
    client: TestClient, log_stream: io.StringIO
) -> None:
    response = client.get("/v1/crash")
    error = assert_openai_error(response, 500)
    request_id = response.headers["x-request-id"]
    assert request_id in error["message"]
    assert "boom" not in error["message"]  # details stay in the log
    assert "RuntimeError: boom" in log_stream.getvalue()


def test_unknown_routes_and_methods_answer_in_openai_shape(client: TestClient) -> None:
    assert_openai_error(client.get("/nope"), 404)
    assert_openai_error(client.get("/v1/echo"), 405)


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    client.get("/health")
    client.get("/nope/123")
    text = client.get("/metrics").text
    assert 'cortex_requests_total{route="/health",status="200"} 1' in text
    assert 'cortex_requests_total{route="unmatched",status="404"} 1' in text


def test_without_keys_configured_everything_answers(client: TestClient) -> None:
    assert client.post("/v1/echo", content=b"x").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_keys_are_required_on_the_api_and_metrics(keyed: TestClient) -> None:
    error = assert_openai_error(keyed.post("/v1/echo", content=b"x"), 401)
    assert error["code"] == "invalid_api_key"
    assert keyed.post("/v1/echo", content=b"x").headers["www-authenticate"] == "Bearer"
    assert_openai_error(keyed.post("/v1/echo", headers={"authorization": "Bearer wrong"}), 401)
    assert_openai_error(keyed.post("/v1/echo", headers={"authorization": f"Basic {KEY}"}), 401)
    assert_openai_error(keyed.get("/metrics"), 401)
    assert keyed.post("/v1/echo", content=b"x", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.get("/metrics", headers={"authorization": f"bearer {KEY}"}).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready", "/docs", "/docs/docs.js", "/openapi.json"])
def test_public_paths_answer_without_a_key(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_public_metrics_setting_opens_metrics_only() -> None:
    client = make_client({"auth": {"api_keys": [KEY], "public_metrics": True}})
    assert client.get("/metrics").status_code == 200
    assert client.post("/v1/echo").status_code == 401


def test_ready_shows_model_details_only_to_key_holders() -> None:
    models = Models()
    client = make_client({"auth": {"api_keys": [KEY]}}, models)
    assert client.get("/ready").json() == {"status": "ready"}
    detailed = client.get("/ready", headers={"authorization": f"Bearer {KEY}"}).json()
    assert detailed["models"] == [{"id": "m", "state": "ready", "error": None, "gpu_layers": 0}]
    models.is_ready = False
    assert client.get("/ready").status_code == 503
    assert client.get("/ready").json() == {"status": "loading"}


def _status_settles(client: TestClient, key: str, wanted: int) -> None:
    """The key file is looked at again at most once a second: the answer changes within about that."""
    deadline = time.monotonic() + 3 * KEY_FILE_CHECK_S
    while client.post("/v1/echo", headers={"authorization": f"Bearer {key}"}).status_code != wanted:
        assert time.monotonic() < deadline, f"key {key!r} still not answered {wanted}"
        time.sleep(0.05)


def test_key_file_keys_rotate_live(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_bytes("\ufeff# ops team\n\nkey-one\n  key-two  \n".encode())  # a BOM, as some editors write
    client = make_client({"auth": {"api_key_file": str(key_file)}})
    for key, status in (("key-one", 200), ("key-two", 200), ("# ops team", 401), ("key-three", 401)):
        assert client.post("/v1/echo", headers={"authorization": f"Bearer {key}"}).status_code == status
    key_file.write_bytes(b"\xef\xbb\xbfkey-three\n")
    _status_settles(client, "key-three", 200)
    assert client.post("/v1/echo", headers={"authorization": "Bearer key-one"}).status_code == 401
    key_file.unlink()
    _status_settles(client, "key-three", 401)


def test_keys_from_env_references_are_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORTEX_TEST_KEY", "from-env")
    client = make_client({"auth": {"api_keys": ["${env:CORTEX_TEST_KEY}"]}})
    assert client.post("/v1/echo", headers={"authorization": "Bearer from-env"}).status_code == 200
    assert client.post("/v1/echo", headers={"authorization": "Bearer ${env:CORTEX_TEST_KEY}"}).status_code == 401


def preflight(client: TestClient, origin: str) -> Any:
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    return client.options("/v1/echo", headers=headers)


def test_cors_preflight_allows_only_configured_origins(keyed: TestClient) -> None:
    allowed = preflight(keyed, "http://localhost:39281")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:39281"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    refused = preflight(keyed, "http://evil.example")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_cors_headers_also_on_401_so_a_browser_can_read_it(keyed: TestClient) -> None:
    response = keyed.post("/v1/echo", headers={"origin": "http://127.0.0.1:39281"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "http://127.0.0.1:39281"
    assert "x-request-id" in response.headers["access-control-expose-headers"]


def test_cors_disabled_answers_no_cross_origin_request() -> None:
    client = make_client({"cors": {"enabled": False}})
    assert "access-control-allow-origin" not in preflight(client, "http://localhost:39281").headers
    assert (
        "access-control-allow-origin" not in client.get("/health", headers={"origin": "http://localhost:39281"}).headers
    )


@pytest.mark.parametrize("host", ["localhost", "localhost:39281", "127.0.0.1:1", "[::1]:8080", "[::1]", "LOCALHOST."])
def test_loopback_bind_accepts_loopback_host_names(client: TestClient, host: str) -> None:
    assert client.get("/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:39281", "localhost.evil.example", "127.0.0.2", ""])
def test_loopback_bind_refuses_other_host_names(client: TestClient, host: str) -> None:
    error = assert_openai_error(client.get("/health", headers={"host": host}), 403)
    assert error["code"] == "host_not_allowed"


def test_a_public_bind_does_not_check_the_host_name() -> None:
    client = make_client({"host": "0.0.0.0", "auth": {"allow_unauthenticated": True}})
    assert client.get("/health", headers={"host": "appliance.lan"}).status_code == 200


def test_bodies_over_the_limit_are_413_declared_or_chunked() -> None:
    client = make_client({"limits": {"max_body_bytes": 1024}})
    assert client.post("/v1/echo", content=b"x" * 1024).json() == {"length": 1024}
    error = assert_openai_error(client.post("/v1/echo", content=b"x" * 1025), 413)
    assert error["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:
        yield from (b"y" * 300 for _ in range(5))

    assert_openai_error(client.post("/v1/echo", content=chunks()), 413)


def test_docs_page_and_assets_are_served_locally_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert re.findall(r'(?:src|href)="(/[^"]+)"', page.text) == ["/docs/docs.css", "/docs/docs.js", "/openapi.json"]
    assert "http" not in " ".join(re.findall(r'(?:src|href)="([^"]+)"', page.text))
    assert client.get("/docs/docs.js").headers["content-type"].startswith("text/javascript")
    assert "/openapi.json" in client.get("/docs/docs.js").text
    assert_openai_error(client.get("/docs/other.js"), 404)


def test_openapi_adds_the_server_routes_to_the_engine_document(keyed: TestClient, client: TestClient) -> None:
    keyed_doc, open_doc = keyed.get("/openapi.json").json(), client.get("/openapi.json").json()
    assert {"/v1/echo", "/health", "/ready", "/metrics"} <= set(keyed_doc["paths"])
    assert keyed_doc["security"] == [{"bearer": []}]
    assert keyed_doc["paths"]["/health"]["get"]["security"] == []
    assert "security" not in open_doc
    assert "401" not in open_doc["paths"]["/metrics"]["get"]["responses"]


def test_a_path_cannot_forge_log_lines_or_leak_its_query(client: TestClient, log_stream: io.StringIO) -> None:
    client.get("/nope%0A2026-01-01 INFO forged?api_key=sk-secret")
    logged = "\n".join(line for line in log_stream.getvalue().splitlines() if " cortex." in line)  # not httpx's
    assert "/nope%0A2026-01-01%20INFO%20forged" in logged
    assert "\n2026-01-01 INFO forged" not in log_stream.getvalue()
    assert "sk-secret" not in logged


JSON = {"content-type": "application/json"}


def test_a_loopback_bind_refuses_a_peer_that_is_not_loopback() -> None:
    """A connection accepted before the listener moved to loopback comes from elsewhere: refused."""
    remote = make_client(peer="192.0.2.10")
    error = assert_openai_error(remote.get("/health"), 403)
    assert error["code"] == "peer_not_allowed"
    assert make_client(peer="::1").get("/health").status_code == 200
    public = make_client({"host": "0.0.0.0", "auth": {"allow_unauthenticated": True}}, peer="192.0.2.10")
    assert public.get("/health").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site", "origin": "http://other.localhost:39281"},
    ],
    ids=["foreign-origin", "opaque-origin", "cross-site-fetch", "same-site-other-origin"],
)
def test_a_cross_site_browser_request_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    error = assert_openai_error(client.post("/v1/completions", content=b"{}", headers={**JSON, **headers}), 403)
    assert error["code"] == "cross_site_refused"


def test_requests_from_allowed_or_own_origins_and_from_non_browsers_pass(client: TestClient) -> None:
    allowed = {"origin": "http://localhost:39281", "sec-fetch-site": "cross-site"}  # the default CORS origin
    assert client.post("/v1/completions", content=b"{}", headers={**JSON, **allowed}).status_code == 200
    own = {"origin": LOCAL, "sec-fetch-site": "same-origin"}
    assert client.post("/v1/completions", content=b"{}", headers={**JSON, **own}).status_code == 200
    assert client.post("/v1/completions", content=b"{}", headers=JSON).status_code == 200
    assert client.get("/health", headers={"origin": "http://evil.example"}).status_code == 200  # reads are CORS's


def test_cors_off_trusts_only_the_servers_own_origin() -> None:
    closed = make_client({"cors": {"enabled": False}})
    refused = closed.post("/v1/completions", content=b"{}", headers={**JSON, "origin": "http://localhost:39281"})
    assert_openai_error(refused, 403)
    assert closed.post("/v1/completions", content=b"{}", headers={**JSON, "origin": LOCAL}).status_code == 200


@pytest.mark.parametrize("media_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""])
def test_a_json_route_takes_only_json(client: TestClient, media_type: str) -> None:
    """A form or text/plain POST is a CORS "simple request": a browser sends it without asking first."""
    headers = {"content-type": media_type} if media_type else {}
    error = assert_openai_error(client.post("/v1/completions", content=b"{}", headers=headers), 415)
    assert error["code"] == "unsupported_media_type"
    charset = {"content-type": "Application/JSON; charset=utf-8"}
    assert client.post("/v1/completions", content=b"{}", headers=charset).status_code == 200


def test_a_dns_name_that_rebinds_to_a_keyless_server_is_not_its_own_origin() -> None:
    public = make_client({"host": "0.0.0.0", "auth": {"allow_unauthenticated": True}}, peer="192.0.2.10")
    rebound = {**JSON, "host": "rebind.evil:8080", "origin": "http://rebind.evil:8080"}
    assert_openai_error(public.post("/v1/completions", content=b"{}", headers=rebound), 403)
    by_address = {**JSON, "host": "192.0.2.1:8080", "origin": "http://192.0.2.1:8080"}
    assert public.post("/v1/completions", content=b"{}", headers=by_address).status_code == 200


def test_a_keyed_server_trusts_its_own_origin_by_any_name() -> None:
    """The console at http://device.local/ posts from its own origin; a rebinding page would have no key."""
    keyed = make_client({"host": "0.0.0.0", "auth": {"api_keys": [KEY]}}, peer="192.0.2.10")
    own = {**JSON, "host": "device.local:39281", "origin": "http://device.local:39281"}
    with_key = {**own, "authorization": f"Bearer {KEY}"}
    assert keyed.post("/v1/completions", content=b"{}", headers=with_key).status_code == 200
    assert_openai_error(keyed.post("/v1/completions", content=b"{}", headers=own), 401)
    other = {**with_key, "origin": "http://evil.example"}
    assert_openai_error(keyed.post("/v1/completions", content=b"{}", headers=other), 403)


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::/56"),  # a host is often routed a /56, not only a /64
        ("2001:db8:1:ff::9", "2001:db8:1::/56"),
        ("2001:db8:1:100::1", "2001:db8:1:100::/56"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
    ],
)
def test_clients_are_counted_per_address_and_per_ipv6_56(peer: str, key: str) -> None:
    assert client_key(peer) == key
