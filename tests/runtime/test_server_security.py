"""API keys, CORS, TLS and secret hygiene on the real `cortex start` process."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from tests.runtime.cortex_server import MODEL_ID, CortexServer, StartServer

pytestmark = pytest.mark.slow
ENV_KEY = "sk-env-4f1c9a7e2b"
FILE_KEY = "sk-file-93d0c6b1aa"
PROMPT = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def keyed_server(start_cortex: StartServer, tmp_path: Path) -> CortexServer:
    key_file = tmp_path / "api-keys"
    key_file.write_text(f"# rotated by ops\n{FILE_KEY}\n", encoding="utf-8")
    body = f"""\
        server:
          auth:
            api_keys: ["${{env:CORTEX_E2E_KEY}}"]
            api_key_file: {key_file}
        logs:
          level: debug
          path: {tmp_path / "logs"}
    """
    return start_cortex(body, env={"CORTEX_E2E_KEY": ENV_KEY})


def test_api_keys_from_env_and_file_are_accepted_and_nothing_else(keyed_server: CortexServer) -> None:
    for key in (ENV_KEY, FILE_KEY):
        with openai.OpenAI(base_url=f"{keyed_server.base_url}/v1", api_key=key, max_retries=0) as client:
            assert client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=4).choices  # type: ignore[arg-type]
    wrong = openai.OpenAI(base_url=f"{keyed_server.base_url}/v1", api_key="sk-wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_without_a_key_only_health_ready_docs_and_openapi_answer(keyed_server: CortexServer) -> None:
    with keyed_server.client() as http:
        for path in ("/health", "/ready", "/docs", "/openapi.json"):
            assert http.get(path).status_code == 200, path
        assert http.get("/ready").json() == {"status": "ready"}  # no model ids, states or paths
        for path in ("/metrics", "/v1/models"):
            response = http.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"]["type"] == "authentication_error"
        detailed = http.get("/ready", headers={"authorization": f"Bearer {FILE_KEY}"}).json()
        assert detailed["models"][0]["id"] == MODEL_ID
        assert "gpus" not in http.get("/health").json()["backends"]  # the hardware: key holders only
        keyed = http.get("/health", headers={"authorization": f"Bearer {FILE_KEY}"}).json()["backends"]
        assert keyed["gpus"] == []  # this machine has none; the GPU check reads them on one


def test_secrets_never_reach_the_logs(keyed_server: CortexServer, tmp_path: Path) -> None:
    with keyed_server.client() as http:
        for key in (ENV_KEY, FILE_KEY, "sk-wrong-guess"):
            http.get("/v1/models", headers={"authorization": f"Bearer {key}"})
            http.get("/v1/models?api_key=" + key)
    log_file = tmp_path / "logs" / "cortex.log"
    logged = keyed_server.output() + log_file.read_text(encoding="utf-8")
    assert '"GET /v1/models HTTP/1.1" 401' in logged  # the requests were logged...
    for key in (ENV_KEY, FILE_KEY, "sk-wrong-guess"):
        assert key not in logged  # ...without what they carried


def test_cors_preflight_from_an_allowed_origin_only(start_cortex: StartServer) -> None:
    server = start_cortex('server:\n  cors:\n    origins: ["https://app.example"]\n')
    ask = {"access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type"}
    with server.client() as http:
        allowed = http.options("/v1/chat/completions", headers={"origin": "https://app.example", **ask})
        refused = http.options("/v1/chat/completions", headers={"origin": "https://evil.example", **ask})
        simple = http.get("/v1/models", headers={"origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in simple.headers


def make_self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_tls_from_the_configured_certificate(start_cortex: StartServer, tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    server = start_cortex(f"server:\n  tls:\n    cert: {cert}\n    key: {key}\n", ca_file=cert)
    assert server.base_url.startswith("https://")
    http_client = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(cert)))
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", http_client=http_client, max_retries=0) as client:
        assert client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=4).choices  # type: ignore[arg-type]
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as untrusting:
        untrusting.get(f"{server.base_url}/health")  # the system CAs do not vouch for it
    with pytest.raises(httpx.TransportError), httpx.Client() as plain:
        plain.get(f"http://127.0.0.1:{server.port}/health")  # no plain HTTP on the TLS port
