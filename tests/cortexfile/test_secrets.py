"""Secrets: references resolve at the phase that needs them; literals warn; nothing prints them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.hashing import canonical_json
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.preflight import Phase, preflight
from menlo_cortex.cortexfile.secrets import Secret, SecretUnavailable

from menlo_cortex.cli import main

LITERAL = "hf_supersecretliteral"


def test_reference_kinds() -> None:
    assert Secret.parse("${env:HF_TOKEN}") == Secret("env", "HF_TOKEN")
    assert Secret.parse("${file:/run/secrets/k}") == Secret("file", "/run/secrets/k")
    assert Secret.parse("plain").is_literal
    with pytest.raises(ValueError, match="not an environment variable name"):
        Secret.parse("${env:1BAD}")


def test_resolution(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("from-file\n")
    assert Secret("env", "X").resolve({"X": "from-env"}) == "from-env"
    assert Secret("file", str(key)).resolve({}) == "from-file"
    with pytest.raises(SecretUnavailable, match="environment variable NOPE is not set"):
        Secret("env", "NOPE").resolve({})
    with pytest.raises(SecretUnavailable, match="cannot read secret file"):
        Secret("file", str(tmp_path / "missing")).resolve({})


def test_literal_in_file_warns_and_is_masked_everywhere(
    write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile(f"version: 1\nnetwork:\n  huggingface:\n    token: {LITERAL}\n")
    assert main(["validate", "-f", str(path)]) == 0
    assert main(["config", "show", "-f", str(path)]) == 0
    assert main(["config", "show", "-f", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert f"{path}:4:12: network.huggingface.token: warning: literal secret in the file" in err
    assert LITERAL not in out + err
    assert "********" in out


def test_references_are_shown_as_written(
    write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile("version: 1\nserver:\n  auth:\n    api_keys: ['${env:API_KEY}', '${file:keys/a}']\n")
    assert main(["config", "show", "-f", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["config"]["server"]["auth"]["api_keys"]
    assert shown == ["${env:API_KEY}", f"${{file:{path.parent / 'keys/a'}}}"]


def test_secret_flag_accepts_at_file_and_warns_on_literal(
    write_cortexfile: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_cortexfile("version: 1\n")
    from_file = load(path, flags={"--hf-token": "@token.txt"}, cwd=tmp_path)
    assert from_file.config.network.huggingface.token == Secret("file", str(tmp_path / "token.txt"))
    assert from_file.warnings == []
    literal = load(path, flags={"--proxy-password": "hunter2"})
    assert [w.origin.source for w in literal.warnings] == ["flag --proxy-password"]
    assert "leaks through process lists and shell history" in literal.warnings[0].message


def test_unset_reference_is_an_error_of_the_phase_that_needs_it(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile(
        """\
        version: 1
        server:
          auth:
            api_keys: ["${env:CORTEX_TEST_UNSET_KEY}"]
        build:
          network:
            proxy: ${env:CORTEX_TEST_UNSET_PROXY}
        """
    )
    resolved = load(path)
    start = [str(d) for d in preflight(resolved, Phase.start, environ={})]
    build = [str(d) for d in preflight(resolved, Phase.build, environ={})]
    assert start == [f"{path}:4:16: server.auth.api_keys[0]: environment variable CORTEX_TEST_UNSET_KEY is not set"]
    assert build == [f"{path}:7:12: build.network.proxy: environment variable CORTEX_TEST_UNSET_PROXY is not set"]


def test_validate_preflight_exit_codes(
    write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile("version: 1\nserver:\n  tls: {cert: c.pem, key: k.pem}\n")
    assert main(["validate", "-f", str(path)]) == 0
    assert main(["validate", "-f", str(path), "--preflight", "start"]) == 2
    assert main(["validate", "-f", str(path), "--preflight", "build"]) == 0
    assert f"{path}:3:15: server.tls.cert: file not found: {path.parent / 'c.pem'}" in capsys.readouterr().err


def test_non_loopback_without_keys_fails_start_preflight(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\nserver:\n  host: 0.0.0.0\n")
    problems = preflight(load(path), Phase.start, environ={})
    assert "refusing to serve on 0.0.0.0 without an API key" in str(problems[0])
    allowed = load(path, flags={"--host": "0.0.0.0"}, environ={"CORTEX_SERVER__AUTH__ALLOW_UNAUTHENTICATED": "1"})
    assert preflight(allowed, Phase.start, environ={}) == []


def test_config_hash_leaves_secrets_out(write_cortexfile: Callable[..., Path]) -> None:
    one = write_cortexfile(f"version: 1\nnetwork:\n  huggingface:\n    token: {LITERAL}\n", "a.yaml")
    two = write_cortexfile("version: 1\nnetwork:\n  huggingface:\n    token: ${env:CORTEX_HUB_TOKEN}\n", "b.yaml")
    assert LITERAL not in canonical_json(load(one).config)
    assert canonical_json(load(one).config) == canonical_json(load(two).config)


def test_any_origin_without_a_key_fails_the_start_preflight(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\nserver:\n  cors:\n    origins: ['*']\n")
    problems = [str(d) for d in preflight(load(path), Phase.start, environ={})]
    assert any("server.cors.origins: `*` lets every web page" in problem for problem in problems), problems
