"""Every kind of bad Cortexfile gives located, human errors and exit 2 - all of them at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from menlo_cortex.cli import main


def validate(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["validate", "-f", str(path), *extra])
    return code, capsys.readouterr().err


CASES = {
    "yaml syntax": ("version: 1\nserver: [1, 2\n", "3:1: invalid YAML"),
    "tab indentation": ("version: 1\nserver:\n\tport: 1\n", "3:1: tab used for indentation"),
    "cmake launcher": (
        "version: 1\ntarget:\n  llama_cmake_args: ['-DCMAKE_C_COMPILER_LAUNCHER=/usr/bin/perl;-e;system+1']\n",
        "3:22: target.llama_cmake_args[0]: `-DCMAKE_C_COMPILER_LAUNCHER=/usr/bin/perl;-e;system+1`: a llama.cpp build",
    ),
    "reused anchor": ("&a version: 1\nserver: &a {}\n", "2:9: invalid YAML: found duplicate anchor 'a'"),
    "unknown format": (
        "version: 1\nbuild:\n  formats: [iso]\n",
        "3:13: build.formats[0]: `cortex build` makes no `iso`",
    ),
    "duplicate key": ("version: 1\nserver:\n  port: 1\n  port: 2\n", "4:3: duplicate key (first defined at line 3)"),
    "wrong type": ("version: 1\nserver:\n  port: eighty\n", "3:9: server.port: input should be a valid integer"),
    "unknown key": ("version: 1\nserver:\n  prot: 80\n", "3:3: server.prot: unknown key (did you mean `port`?)"),
    "unknown section": ("version: 1\nsevrer: {}\n", "2:1: sevrer: unknown key (did you mean `server`?)"),
    "empty file": ("", "1:1: the file is empty"),
    "comment only": ("# nothing\n", "1:1: the file is empty"),
    "a list": ("- version: 1\n", "1:1: a Cortexfile is a mapping of keys"),
    "a scalar": ("hello\n", "1:1: a Cortexfile is a mapping of keys"),
    "missing version": ("server: {}\n", "1:1: version: `version` is required"),
    "wrong version": ("version: 2\n", "1:10: version: input should be 1"),
    "flash attention": (
        "version: 1\nengines:\n  llama_cpp:\n    flash_attention: sometimes\n",
        "4:22: engines.llama_cpp.flash_attention: expected `auto`, `true` or `false`",
    ),
    "malformed number": (  # ruamel's own constructor raised ValueError or IndexError on these (the fuzzer)
        "version: 1\nserver:\n  host: [.inf, 0x1F, ._]\n",
        "3:22: invalid YAML: `._` cannot be read as its type: quote it if it is text",
    ),
    "impossible date": (
        "version: 1\nserver:\n  host: 2001-13-01\n",
        "3:9: invalid YAML: `2001-13-01` cannot be read as its type: quote it if it is text",
    ),
    "bad tag": (
        "version: 1\nserver:\n  cors: !!bool maybe\n",
        "3:9: invalid YAML: `maybe` cannot be read as its type: quote it if it is text",
    ),
    "deep nesting": ("version: 1\nx: " + "[" * 400 + "]" * 400 + "\n", "1:1: invalid YAML: nested too deeply"),
    "port too big": ("version: 1\nserver:\n  port: 70000\n", "3:9: server.port: input should be less than or equal"),
    "port zero": ("version: 1\nserver:\n  port: 0\n", "3:9: server.port: input should be greater than or equal to 1"),
    "bad host": ("version: 1\nserver:\n  host: 'not a host!'\n", "3:9: server.host: `not a host!` is not an IP"),
    "bad origin": (
        "version: 1\nserver:\n  cors:\n    origins: [ftp://x]\n",
        "4:15: server.cors.origins[0]: `ftp://x` must start with http:// or https://",
    ),
    "origin with path": (
        "version: 1\nserver:\n  cors:\n    origins:\n      - http://a.b/c\n",
        "5:9: server.cors.origins[0]: `http://a.b/c` is not an origin",
    ),
    "proxy url with credentials": (
        "version: 1\nnetwork:\n  proxy:\n    url: http://ops:hunter2@proxy.corp:3128\n",
        "4:10: network.proxy.url: the proxy URL holds credentials: put them in network.proxy.username",
    ),
    "socks proxy": (
        "version: 1\nnetwork:\n  proxy:\n    url: socks5://proxy.corp:1080\n",
        "4:10: network.proxy.url: SOCKS proxies are not supported: use an http:// or https:// proxy",
    ),
    "bad proxy url": (
        "version: 1\nnetwork:\n  proxy:\n    url: proxy.corp:3128\n",
        "4:10: network.proxy.url: `proxy.corp:3128` must start with",
    ),
    "bad hub url": (
        "version: 1\nnetwork:\n  huggingface:\n    endpoint: https://\n",
        "4:15: network.huggingface.endpoint: `https://` has no host",
    ),
    "tls cert without key": (
        "version: 1\nserver:\n  tls:\n    cert: a.pem\n",
        "4:11: server.tls.cert: a TLS cert needs a key too",
    ),
    "bad sha256": (
        "version: 1\nmodels:\n  - id: m\n    source: m.gguf\n    sha256: abc\n",
        "5:13: models[0].sha256: a sha256 is 64 hexadecimal characters",
    ),
    "bad hf source": (
        "version: 1\nmodels:\n  - id: m\n    source: hf://only-org\n    sha256: " + "a" * 64 + "\n",
        "4:13: models[0].source: write a Hugging Face source as hf://org/repo/file.gguf[@revision]",
    ),
    "model without source": ("version: 1\nmodels:\n  - id: m\n", "3:5: models[0].source: `source` is required"),
    "models not a list": ("version: 1\nmodels: {id: m}\n", "2:9: models: input should be a valid list"),
    "bad model id": (
        "version: 1\nmodels:\n  - id: 'has space'\n    source: m.gguf\n",
        "3:9: models[0].id: string should match pattern",
    ),
    "unknown preset": (
        "version: 1\nmodels:\n  - id: m\n    preset: gemma3-270m\n",
        "4:13: models[0].preset: no model preset named `gemma3-270m` (did you mean `gemma3-270m-q4km`?)",
    ),
    "unknown recipe": (
        "version: 1\ntarget:\n  hardware: raspberry-pi5\n",
        "3:13: target.hardware: no hardware recipe named `raspberry-pi5` (did you mean `raspberry-pi-5`?)",
    ),
    "unsupported distro": ("version: 1\ntarget:\n  distro: gentoo\n", "3:11: target.distro: input should be"),
    "newline in a path": (
        'version: 1\ndata:\n  path: "/var/lib/cortex\\nExecStartPre=+/bin/sh"\n',
        "3:9: data.path: a path cannot hold a control character",
    ),
    "specifier in an appliance path": (
        "version: 1\nlogs:\n  path: /var/log/cortex%h\n",
        "3:9: logs.path: `/var/log/cortex%h` holds `%`: this path is written into unit files",
    ),
    "space in an appliance path": (
        "version: 1\ndata:\n  path: '/var/lib/cortex x'\n",
        "3:9: data.path: `/var/lib/cortex x` holds ` `",
    ),
    "path going up": (
        "version: 1\nserver:\n  auth:\n    api_key_file: /etc/cortex/../shadow\n",
        "4:19: server.auth.api_key_file: `/etc/cortex/../shadow` has a `..` segment",
    ),
    "relative path going up": (
        "version: 1\nserver:\n  tls:\n    cert: ../c.pem\n    key: k.pem\n",
        "4:11: server.tls.cert: ",
    ),
    "secret file going up": (
        "version: 1\nserver:\n  auth:\n    api_keys: ['${file:/etc/cortex/../shadow}']\n",
        "4:16: server.auth.api_keys[0]: `/etc/cortex/../shadow` has a `..` segment",
    ),
    "ipv6 zone": (
        "version: 1\nserver:\n  host: 'fe80::1%eth0'\n",
        "3:9: server.host: `fe80::1%eth0` has an IPv6 zone",
    ),
    "cmake flag with a shell command": (
        'version: 1\ntarget:\n  llama_cmake_args: ["-DX=1\\n RUN curl x | sh"]\n',
        "3:22: target.llama_cmake_args[0]: a llama.cpp build option is -DGGML_...=VALUE",
    ),
    "cuda architecture with a shell command": (
        "version: 1\ntarget:\n  cuda_architectures: ['87; id']\n",
        "3:24: target.cuda_architectures[0]: `87; id`: a CUDA architecture is a compute capability",
    ),
    "bad secret reference": (
        "version: 1\nnetwork:\n  huggingface:\n    token: ${vault:x}\n",
        "4:12: network.huggingface.token: a secret reference is `${env:NAME}` or `${file:/path}`",
    ),
}


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_bad_file_is_located_error_and_exit_2(
    text: str, expected: str, write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile(text)
    code, err = validate(path, capsys)
    assert code == 2
    assert f"{path}:{expected}" in err, err
    assert "Traceback" not in err
    assert "hunter2" not in err  # a password written into a value is never quoted back


def test_every_error_is_reported_not_just_the_first(
    write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile(
        """\
        version: 1
        server:
          prot: 80
          host: "bad host"
          tls:
            key: k.pem
        models:
          - id: a
            source: a.gguf
          - id: a
            source: https://x.org/a.gguf
            chat_format: chatml
            chat_template: "{{ messages }}"
        """
    )
    code, err = validate(path, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith(str(path))]
    assert [line.split(": ")[1] for line in lines] == [
        "server.prot",
        "server.host",
        "server.tls.key",
        "models[1].id",
        "models[1].chat_template",
    ]
    assert err.rstrip().endswith("5 errors")


def test_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = validate(tmp_path / "nope.yaml", capsys)
    assert code == 2
    assert "nope.yaml: cannot read: No such file or directory" in err


def test_not_utf8_is_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Cortexfile.yaml"
    path.write_bytes(b"version: 1\n# caf\xe9\n")
    code, err = validate(path, capsys)
    assert code == 2
    assert f"{path}:2:1: not UTF-8 text" in err


def test_renamed_key_warns_and_still_applies(
    write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile("version: 1\nserver:\n  cors:\n    allowed_origins: [http://a.b]\n")
    code, err = validate(path, capsys)
    assert code == 0
    assert f"{path}:4:5: server.cors.allowed_origins: warning: renamed to `origins`" in err


def test_yaml_anchors_and_merge_keys_are_understood(
    write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile("version: 1\nbase: &base {port: 8000}\n")
    assert validate(path, capsys)[0] == 2
    path = write_cortexfile("version: 1\nserver:\n  <<: {port: 8000}\n  host: ::1\n")
    assert validate(path, capsys)[0] == 0


def test_relative_paths_resolve_against_a_cortexfile_named_through_dot_dot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "appliance"
    folder.mkdir()
    (folder / "Cortexfile.yaml").write_text("version: 1\ndata:\n  path: data\n", encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, err = validate(Path("../appliance/Cortexfile.yaml"), capsys)
    assert code == 0, err
