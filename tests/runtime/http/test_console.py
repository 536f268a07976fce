"""The console's routes at the ASGI level: the page and assets public and locked down, its data behind the key,
`server.console: false`, and what the page's files may and may not contain. A real browser drives it in
tests/runtime/test_server_console.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.runtime.app import create_app
from menlo_cortex.runtime.http.auth import ApiKeys
from menlo_cortex.runtime.http.console import ASSETS, PAGE, console_routes
from menlo_cortex.runtime.http.middleware import EXCEPTION_HANDLERS, middleware
from menlo_cortex.runtime.http.pages import read_asset
from menlo_cortex.runtime.ops.activity import Activity
from menlo_cortex.runtime.ops.metrics import standard_metrics
from starlette.applications import Starlette
from starlette.testclient import TestClient

KEY = "sk-console-0123456789"
OVERVIEW: list[dict[str, object]] = [
    {"id": "m", "state": "ready", "error": None, "memory_mb": 300, "slots": 4, "busy": 1, "queued": 0}
]


def make_client(tmp_path: Path, server: dict[str, Any] | None = None) -> TestClient:
    config = Cortexfile.model_validate({"version": 1, "server": server or {}})
    keys, metrics = ApiKeys(config.server.auth), standard_metrics()
    routes = console_routes(lambda: OVERVIEW, Activity(metrics), tmp_path)
    app = Starlette(routes=routes, middleware=middleware(config, keys, metrics), exception_handlers=EXCEPTION_HANDLERS)
    return TestClient(app, base_url="http://localhost", raise_server_exceptions=False, client=("127.0.0.1", 50000))


def test_the_page_and_its_assets_are_public_with_a_strict_policy(tmp_path: Path) -> None:
    client = make_client(tmp_path, {"auth": {"api_keys": [KEY]}})
    for path, media_type in [("/", "text/html"), *((f"/console/assets/{n}", t) for n, t in ASSETS.items())]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media_type.split(";")[0])
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["x-frame-options"] == "DENY"
    for outside in ("/console/assets/../app.py", "/console/assets/%2e%2e%2fapp.py", "/console/assets/console.html"):
        assert client.get(outside).status_code in {401, 404}, outside
    assert client.get("/console/assets/nope.js").status_code == 404


def test_the_consoles_data_needs_the_key(tmp_path: Path) -> None:
    client = make_client(tmp_path, {"auth": {"api_keys": [KEY]}})
    for path in ("/console/api/models", "/console/api/activity", "/console/api/bench"):
        assert client.get(path).status_code == 401, path
    bearer = {"authorization": f"Bearer {KEY}"}
    assert client.get("/console/api/models", headers=bearer).json() == {"models": OVERVIEW}
    assert client.get("/console/api/activity", headers=bearer).json() == {"interval_s": 10.0, "kept": 60, "points": []}
    assert client.get("/console/api/bench", headers=bearer).json() == {"runs": []}


def test_an_unreadable_bench_database_is_a_503_naming_no_path(tmp_path: Path) -> None:
    (tmp_path / "cortex.db").write_bytes(b"not a database" * 100)
    response = make_client(tmp_path).get("/console/api/bench")
    assert response.status_code == 503
    assert str(tmp_path) not in response.text


@pytest.mark.parametrize(("server", "status"), [({}, 404), ({"auth": {"api_keys": [KEY]}}, 401)])
def test_console_false_serves_no_page(tmp_path: Path, server: dict[str, Any], status: int) -> None:
    config = Cortexfile.model_validate({"version": 1, "server": {**server, "console": False}})
    app = create_app(config, data_dir=tmp_path, engine_document=lambda: {"paths": {}})
    client = TestClient(app, base_url="http://localhost", raise_server_exceptions=False, client=("127.0.0.1", 50000))
    assert client.get("/").status_code == status
    assert client.get("/console/api/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 404


def test_the_whole_page_is_small() -> None:
    total = sum(len(read_asset(name).encode()) for name in [PAGE, *ASSETS])
    assert total < 200_000


def test_the_page_has_no_inline_script_or_style_and_loads_only_its_own_assets() -> None:
    page = read_asset(PAGE)
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert not re.search(r"\son\w+=|\sstyle=|<style", page)
    linked = set(re.findall(r'(?:src|href)="/console/assets/([^"]+)"', page))
    imported = {name for asset in ASSETS for name in re.findall(r'from "\./([^"]+)"', read_asset(asset))}
    assert linked | imported <= set(ASSETS)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)


@pytest.mark.parametrize("name", [name for name in ASSETS if name.endswith(".js")])
def test_no_script_writes_markup(name: str) -> None:
    """Model output, model ids and error messages reach the page through textContent and DOM calls only."""
    script = read_asset(name)
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", script)


def test_activity_is_the_rate_between_samples() -> None:
    metrics = standard_metrics()
    activity = Activity(metrics, interval_s=10, kept=2)
    activity.sample(at=100.0, clock=100.0)
    metrics.inc("cortex_tokens_total", 300, model="m", direction="out")
    metrics.inc("cortex_tokens_total", 999, model="m", direction="in")  # prompt tokens are not generated ones
    metrics.inc("cortex_requests_total", 5, route="/v1/chat/completions", status="200")
    metrics.inc("cortex_requests_total", 50, route="/health", status="200")  # polls are not API requests
    activity.sample(at=110.0, clock=110.0)
    activity.sample(at=120.0, clock=120.0)
    activity.sample(at=130.0, clock=130.0)  # `kept` points: the oldest goes
    points = activity.series()["points"]
    assert points == [
        {"at": 120.0, "tokens_per_s": 0.0, "requests_per_min": 0.0},
        {"at": 130.0, "tokens_per_s": 0.0, "requests_per_min": 0.0},
    ]
    fresh = Activity(metrics)
    fresh.sample(at=0.0, clock=0.0)
    metrics.inc("cortex_tokens_total", 50, model="m", direction="out")
    fresh.sample(at=5.0, clock=10.0)  # the wall clock went back: rates follow the monotonic one
    assert fresh.series()["points"] == [{"at": 5.0, "tokens_per_s": 5.0, "requests_per_min": 0.0}]
