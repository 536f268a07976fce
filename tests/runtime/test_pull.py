"""`cortex pull -f FILE --datapath DIR` end to end: a real subprocess against a loopback hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.runtime.download_servers import Route, Running, file_server, gguf_bytes, sha256_of

CORTEX = str(Path(sys.executable).parent / "cortex")
TOKEN = "hf_pull_token_777"


def write_cortexfile(folder: Path, hub: Running, models: list[tuple[str, str, str]]) -> Path:
    lines = ["version: 1", "network:", "  huggingface:", f"    endpoint: '{hub.url('')}'"]
    lines += ["    token: '${env:CORTEX_TEST_HF_TOKEN}'", "models:"]
    for model_id, source, sha in models:
        lines += [f"  - id: {model_id}", f"    source: {source}", f"    sha256: {sha}"]
    path = folder / "Cortexfile.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pull(cortexfile: Path, data: Path) -> subprocess.CompletedProcess[str]:
    # The operator's consent: the file names the hub (a test server), and this env var may go there.
    env = {**os.environ, "CORTEX_TEST_HF_TOKEN": TOKEN, "CORTEX_SECRET_ENV": "CORTEX_TEST_HF_TOKEN"}
    command = [CORTEX, "pull", "-f", str(cortexfile), "--datapath", str(data)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_pull_downloads_remote_models_verifies_local_ones_and_is_idempotent(tmp_path: Path) -> None:
    remote, local = gguf_bytes(size=500_000, seed=1), gguf_bytes(seed=2)
    (tmp_path / "local.gguf").write_bytes(local)
    with file_server() as hub:
        hub.routes["/org/repo/resolve/main/remote.gguf"] = Route(remote)
        models = [("remote", "hf://org/repo/remote.gguf", sha256_of(remote)), ("local", "local.gguf", sha256_of(local))]
        cortexfile = write_cortexfile(tmp_path, hub, models)

        first = pull(cortexfile, tmp_path / "data")
        second = pull(cortexfile, tmp_path / "data")

    assert first.returncode == 0, first.stderr
    assert (tmp_path / "data" / "models" / f"{sha256_of(remote)}.gguf").read_bytes() == remote
    assert "remote: downloading (500.0 KB)" in first.stderr
    assert "remote: 100.0% 500.0 KB of 500.0 KB" in first.stderr
    assert f"local: ok ({tmp_path / 'local.gguf'})" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "downloading" not in second.stderr
    assert len(hub.seen) == 1
    assert hub.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_pull_reports_each_failure_and_exits_1_without_a_traceback(tmp_path: Path) -> None:
    good, served = gguf_bytes(seed=1), gguf_bytes(seed=2)
    (tmp_path / "broken.gguf").write_bytes(b"not a model")
    with file_server() as hub:
        hub.routes["/org/repo/resolve/main/good.gguf"] = Route(good)
        hub.routes["/org/repo/resolve/main/tampered.gguf"] = Route(served)
        models = [
            ("tampered", "hf://org/repo/tampered.gguf", sha256_of(b"expected")),
            ("absent", "hf://org/repo/absent.gguf", sha256_of(b"absent")),
            ("broken", "broken.gguf", sha256_of(b"broken")),
            ("good", "hf://org/repo/good.gguf", sha256_of(good)),
        ]
        result = pull(write_cortexfile(tmp_path, hub, models), tmp_path / "data")

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("cortex: error:")]
    assert len(errors) == 3, result.stderr
    assert f"`tampered`: {hub.url('/org/repo/resolve/main/tampered.gguf')} has sha256" in errors[0]
    assert "`absent`" in errors[1]
    assert "HTTP 404" in errors[1]
    assert f"`broken`: {tmp_path / 'broken.gguf'} is not a GGUF file" in errors[2]
    assert "good: ok" in result.stderr
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_pull_of_an_unreachable_hub_fails_cleanly(tmp_path: Path) -> None:
    with file_server() as hub:
        cortexfile = write_cortexfile(tmp_path, hub, [("tiny", "hf://org/repo/tiny.gguf", sha256_of(b"t"))])
    # the server is stopped now: its port refuses connections

    result = pull(cortexfile, tmp_path / "data")

    assert result.returncode == 1
    assert "model `tiny`: downloading http://127.0.0.1:" in result.stderr
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr
