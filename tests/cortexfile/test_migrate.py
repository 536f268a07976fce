"""`cortex migrate` converts the roadmap's .cortexrc, drops what it must with reasons, never copies tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from menlo_cortex.cortexfile.loader import load

from menlo_cortex.cli import main

TOKEN = "hf_REALTOKENVALUE123"
CORTEXRC = f"""\
logFolderPath: /home/user/cortexcpp
logLlamaCppPath: ./logs/cortex.log
logTensorrtLLMPath: ./logs/cortex.log
logOnnxPath: ./logs/cortex.log
dataFolderPath: /home/user/cortexcpp
maxLogLines: 100000
apiServerHost: 127.0.0.1
apiServerPort: 39281
checkedForUpdateAt: 1740630061
checkedForLlamacppUpdateAt: 1740628158149
latestRelease: v1.0.10
latestLlamacppRelease: v0.1.49
huggingFaceToken: {TOKEN}
gitHubUserAgent: ""
gitHubToken: ""
llamacppVariant: linux-amd64-avx2-cuda-12-0
llamacppVersion: v0.1.49
enableCors: true
allowedOrigins:
  - http://localhost:39281
  - http://127.0.0.1:39281
  - http://0.0.0.0:39281
proxyUrl: ""
verifyProxySsl: true
verifyProxyHostSsl: true
proxyUsername: ""
proxyPassword: ""
noProxy: example.com,::1,localhost,127.0.0.1
verifyPeerSsl: true
verifyHostSsl: true
sslCertPath: ""
sslKeyPath: ""
supportedEngines:
  - llama-cpp
  - onnxruntime
  - tensorrt-llm
  - python-engine
  - python
checkedForSyncHubAt: 0
"""


def test_roadmap_cortexrc_migrates_to_a_valid_cortexfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    legacy = tmp_path / ".cortexrc"
    legacy.write_text(CORTEXRC)
    output = tmp_path / "Cortexfile.yaml"
    assert main(["migrate", str(legacy), "-o", str(output)]) == 0
    err = capsys.readouterr().err
    text = output.read_text()
    assert TOKEN not in text + err
    assert "token: ${env:HF_TOKEN}" in text
    assert "huggingFaceToken -> network.huggingface.token: not copied; set the environment variable HF_TOKEN" in err
    assert "dropped logTensorrtLLMPath: the TensorRT-LLM engine was removed" in err
    assert "dropped checkedForUpdateAt: update and engine bookkeeping" in err
    assert "dropped supportedEngines" in err
    config = load(output, cwd=tmp_path).config
    assert config.server.port == 39281
    assert config.logs.max_lines == 100000
    assert config.network.proxy.no_proxy == ["example.com", "::1", "localhost", "127.0.0.1"]
    assert config.server.cors.origins[-1] == "http://0.0.0.0:39281"
    assert config.network.github.token is None


def test_migrate_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    legacy = tmp_path / ".cortexrc"
    legacy.write_text("apiServerHost: 0.0.0.0\nmysteryKey: 1\n")
    assert main(["migrate", str(legacy)]) == 0
    out, err = capsys.readouterr()
    assert "host: 0.0.0.0" in out
    assert "dropped mysteryKey: not a known .cortexrc option" in err


def test_migrate_broken_legacy_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    legacy = tmp_path / ".cortexrc"
    legacy.write_text("apiServerHost: [\n")
    assert main(["migrate", str(legacy), "-o", str(tmp_path / "out.yaml")]) == 2
    assert ".cortexrc:2:1: invalid YAML" in capsys.readouterr().err
    assert not (tmp_path / "out.yaml").exists()
