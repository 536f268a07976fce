"""What Kubernetes cannot run refused before anything is written, each problem located in the Cortexfile
(the same rules `cortex validate` reports for a file whose build.formats lists kube)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from menlo_cortex.cli import main

MODEL = "models:\n  - id: m\n    preset: gemma3-270m-q4km\n"


def build(tmp_path: Path, body: str, *args: str) -> int:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text("version: 1\n" + textwrap.dedent(body), encoding="utf-8")
    return main(["build", "-f", str(path), "--format", "kube", "-o", str(tmp_path / "out"), *args])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("server:\n  port: 80\n" + MODEL, ":3:9: server.port: port 80 is below 1024 and the pod runs as a user"),
        (
            "server:\n  auth:\n    api_keys: [hunter2]\n" + MODEL,
            "server.auth.api_keys[0]: a literal secret would be written into the ConfigMap",
        ),
        (
            "network:\n  huggingface:\n    token: hf_abc\n" + MODEL,
            "network.huggingface.token: a literal secret would be written into the ConfigMap",
        ),
        (
            "server:\n  auth:\n    api_key_file: /etc/cortex/api-keys\n" + MODEL,
            "api_key_file: /etc/cortex/api-keys: a pod reads its secret files from a folder under /run/secrets",
        ),
        ("server:\n  auth:\n    api_key_file: /tmp/keys\n" + MODEL, "/tmp/keys: a pod reads its secret files"),
        ("server:\n  auth:\n    api_key_file: /run/secrets/c/k+x\n" + MODEL, "k+x: a Secret's key holds only"),
        ("server:\n  host: 127.0.0.1\n" + MODEL, "server.host: 127.0.0.1 is the pod's own loopback"),
        (
            "server:\n  auth:\n    api_keys: ['${env:LD_PRELOAD}']\n" + MODEL,
            "server.auth.api_keys[0]: LD_PRELOAD is the runtime's own environment",
        ),
        (
            "build:\n  network:\n    proxy: http://user:hunter2@proxy:3128\n" + MODEL,
            "build.network.proxy: a literal secret would be written into the ConfigMap",
        ),
        (
            "server:\n  tls:\n    cert: /run/secrets/a/tls.pem\n    key: /run/secrets/b/tls.pem\n" + MODEL,
            "server.tls.key: /run/secrets/b/tls.pem and /run/secrets/a/tls.pem share a file name",
        ),
        (
            "build:\n  bake_models: false\nmodels:\n  - id: m\n    source: /models/m.gguf\n",
            "models[0].source: a path on this machine cannot reach a pod",
        ),
        (
            "build:\n  bake_models: false\n  kube:\n    replicas: 2\n" + MODEL,
            "build.kube.replicas: pods pulling models into one volume would write the same download",
        ),
        (
            "build:\n  kube:\n    storage_class: Fast_SSD\n" + MODEL,
            "build.kube.storage_class: `Fast_SSD`: a Kubernetes name",
        ),
        ("build:\n  kube:\n    replicas: 0\n" + MODEL, "build.kube.replicas"),
    ],
)
def test_refused_with_its_location(tmp_path: Path, body: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert build(tmp_path, body) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "hunter2" not in err
    assert "hf_abc" not in err
    assert not (tmp_path / "out").exists()


def test_validate_reports_the_same_for_build_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text("version: 1\nserver:\n  port: 443\nbuild:\n  formats: [kube]\n" + MODEL, encoding="utf-8")
    assert main(["validate", "-f", str(path)]) == 2
    assert "server.port: port 443 is below 1024" in capsys.readouterr().err


def test_an_image_reference_that_is_not_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build(tmp_path, MODEL, "--tag", "Bad Image!") == 2
    assert "flag --tag: 'Bad Image!' is not an image reference" in capsys.readouterr().err


def test_a_model_of_unknown_size_needs_a_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Pulled at start, not in this machine's store: the memory request cannot be guessed."""
    remote = (
        "build:\n  bake_models: false\nmodels:\n  - id: m\n    source: hf://org/repo/m.gguf\n    sha256: " + "a" * 64
    )
    assert build(tmp_path, remote + "\n", "--model-store", str(tmp_path / "empty")) == 2
    err = capsys.readouterr().err
    assert "models: --format kube: no size known for m (set server.limits.memory_budget_mb" in err
