"""`cortex sync` against a real bare repository over file://, with real SSH signatures (ssh-keygen) and
OpenPGP ones (gpg): signed commits applied, everything else refused and reported with its commit, the live
Cortexfile untouched by a refusal, and a running server reporting the commit it serves in /health."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import find_free_port
from tests.git_remote import GitRemote, git

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


class Fleet:
    """A remote repository, a clone that commits to it, and a device folder with the live Cortexfile."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repository = GitRemote(root)
        self.remote = self.repository.bare
        self.work = self.repository.work
        self.device = root / "etc"
        self.data = root / "data"
        for name in ("ops", "intruder"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(root / name)],
                           check=True)  # fmt: skip
        self.device.mkdir()

    def key(self, name: str = "ops") -> str:
        return (self.root / f"{name}.pub").read_text(encoding="utf-8").strip()

    def cortexfile(self, extra: str = "", *, keys: str | None = None, on_rewrite: str = "refuse") -> str:
        return "version: 1\n" + textwrap.dedent(extra) + (
            f"data:\n  path: {self.data}\n"
            f"sync:\n  repository: file://{self.remote}\n  interval_s: 10\n  on_rewrite: {on_rewrite}\n"
            f"  trusted_keys: [\"{keys or self.key()}\"]\n"
        )  # fmt: skip

    def commit(self, text: str, *, signer: str | None = "ops", message: str = "change") -> str:
        return self.repository.commit(text, self.root / f"{signer}.pub" if signer else None, message=message)

    @property
    def live(self) -> Path:
        return self.device / "Cortexfile.yaml"

    def state(self) -> dict[str, object]:
        return dict(json.loads((self.root / "data-sync" / "state.json").read_text(encoding="utf-8")))


KEY = "sync-test-key"
ENV = {**os.environ, "CORTEX_TEST_KEY": KEY}  # the server's and sync's environment (one EnvironmentFile)


def sync_once(fleet: Fleet) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "menlo_cortex", "sync", "-f", str(fleet.live), "--once"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=ENV)


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    made = Fleet(tmp_path)
    made.live.write_text(made.cortexfile(), encoding="utf-8")
    return made


def test_a_signed_commit_is_applied(fleet: Fleet) -> None:
    wanted = fleet.cortexfile("server:\n  port: 40123\n")
    tip = fleet.commit(wanted)
    done = sync_once(fleet)
    assert done.returncode == 0, done.stderr
    assert fleet.live.read_text(encoding="utf-8") == wanted
    applied = fleet.state()["applied"]
    assert isinstance(applied, dict)
    assert applied["commit"] == tip
    assert fleet.state()["error"] is None
    assert f"sync: applied commit {tip}" in done.stderr
    assert not list(fleet.device.glob(".*")), "no staged file left beside the live one"


@pytest.mark.parametrize("signer", [None, "intruder"])
def test_an_unsigned_or_wrongly_signed_commit_is_refused(fleet: Fleet, signer: str | None) -> None:
    before = fleet.live.read_text(encoding="utf-8")
    tip = fleet.commit(fleet.cortexfile("server:\n  port: 40124\n"), signer=signer)
    done = sync_once(fleet)
    assert done.returncode == 1
    assert f"sync: commit {tip[:12]} is not signed by a trusted key" in done.stderr
    assert fleet.live.read_text(encoding="utf-8") == before
    error = fleet.state()["error"]
    assert isinstance(error, dict)
    assert (error["commit"], error["message"]) == (tip, f"commit {tip[:12]} is not signed by a trusted key")


def test_a_signed_commit_whose_cortexfile_would_not_load_is_refused(fleet: Fleet) -> None:
    before = fleet.live.read_text(encoding="utf-8")
    tip = fleet.commit(fleet.cortexfile("server:\n  port: 99999\n"))
    done = sync_once(fleet)
    assert done.returncode == 1
    assert f"sync: Cortexfile.yaml@{tip[:12]}: the Cortexfile would not load" in done.stderr
    assert f"Cortexfile.yaml@{tip[:12]}:3:9: server.port: input should be less than" in done.stderr
    assert fleet.live.read_text(encoding="utf-8") == before
    assert not list(fleet.device.glob(".*"))


def test_a_force_push_to_an_older_commit_is_refused_unless_the_file_says_follow(fleet: Fleet) -> None:
    older = fleet.commit(fleet.cortexfile("server:\n  port: 40125\n"), message="older")
    newer = fleet.commit(fleet.cortexfile("server:\n  port: 40126\n"), message="newer")
    assert sync_once(fleet).returncode == 0
    git("-C", str(fleet.work), "reset", "-q", "--hard", older)
    git("-C", str(fleet.work), "push", "-q", "--force", str(fleet.remote), "HEAD:main")
    refused = sync_once(fleet)
    assert refused.returncode == 1
    assert f"commit {older[:12]} does not descend from the applied {newer[:12]}" in refused.stderr
    assert "port: 40126" in fleet.live.read_text(encoding="utf-8")
    follows = fleet.cortexfile("server:\n  port: 40126\n", on_rewrite="follow")
    fleet.live.write_text(follows, encoding="utf-8")  # the device's own file says what to do with a rewrite
    followed = sync_once(fleet)
    assert followed.returncode == 0, followed.stderr
    assert "port: 40125" in fleet.live.read_text(encoding="utf-8")


def test_an_unreachable_remote_is_reported_and_followed_again_when_back(fleet: Fleet) -> None:
    tip = fleet.commit(fleet.cortexfile("server:\n  port: 40127\n"))
    away = fleet.remote.with_name("away.git")
    fleet.remote.rename(away)
    gone = sync_once(fleet)
    assert gone.returncode == 1
    error = fleet.state()["error"]
    assert isinstance(error, dict)
    assert error["commit"] is None
    assert "does not appear to be a git repository" in str(error["message"])
    away.rename(fleet.remote)
    back = sync_once(fleet)
    assert back.returncode == 0, back.stderr
    assert fleet.state()["applied"]["commit"] == tip  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
def test_an_openpgp_signature_from_a_trusted_key_file(fleet: Fleet, tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", "ops-pgp@example", "ed25519",
                    "sign", "never"], env=env, check=True, timeout=120)  # fmt: skip
    exported = subprocess.run(["gpg", "--batch", "--armor", "--export", "ops-pgp@example"], env=env,
                              capture_output=True, check=True).stdout  # fmt: skip
    (tmp_path / "ops.asc").write_bytes(exported)
    fleet.live.write_text(fleet.cortexfile(keys=str(tmp_path / "ops.asc")), encoding="utf-8")
    (fleet.work / "Cortexfile.yaml").write_text(fleet.cortexfile("server:\n  port: 40128\n",
                                                                  keys=str(tmp_path / "ops.asc")))  # fmt: skip
    git("-C", str(fleet.work), "add", "Cortexfile.yaml")
    subprocess.run(["git", "-C", str(fleet.work), "-c", "gpg.format=openpgp", "-c", "user.signingkey=ops-pgp@example",
                    "commit", "-q", "-S", "-m", "pgp"], env={**env, "HOME": str(tmp_path)}, check=True)  # fmt: skip
    git("-C", str(fleet.work), "push", "-q", str(fleet.remote), "HEAD:main")
    done = sync_once(fleet)
    assert done.returncode == 0, done.stderr
    assert "port: 40128" in fleet.live.read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_health_reports_the_commit_the_server_serves(fleet: Fleet) -> None:
    port = find_free_port()
    server_section = f'server:\n  port: {port}\n  auth:\n    api_keys: ["${{env:CORTEX_TEST_KEY}}"]\n'
    fleet.live.write_text(fleet.cortexfile(server_section))
    log = (fleet.root / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "menlo_cortex", "start", "-f", str(fleet.live)], stdout=log,
                              stderr=subprocess.STDOUT, env=ENV)  # fmt: skip
    try:
        health = _health_when_up(port)
        assert "sync" not in health["config"]  # nothing synced yet
        tip = fleet.commit(fleet.cortexfile(server_section + "  limits:\n    max_tokens: 77\n"))
        assert sync_once(fleet).returncode == 0
        health = _health_until(port, lambda sync: sync.get("commit") == tip)
        assert health["config"]["generation"] == 2
        assert health["config"]["sync"]["commit"] == tip
        assert health["config"]["sync"]["last_error"] is None
        unsigned = fleet.commit(fleet.cortexfile(server_section), signer=None)
        assert sync_once(fleet).returncode == 1
        health = _health_until(port, lambda sync: sync.get("last_error") is not None)  # read at most every 2 s
        assert health["config"]["sync"]["commit"] == tip  # still serving the last good one
        assert health["config"]["sync"]["last_error"]["commit"] == unsigned
        assert "message" not in health["config"]["sync"]["last_error"]  # its text only for key holders
        with_key = _health_when_up(port, KEY)["config"]["sync"]["last_error"]
        assert with_key["message"] == f"commit {unsigned[:12]} is not signed by a trusted key"
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _health_until(port: int, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """/health once its `config.sync` satisfies `done` (the server reads the sync state at most every 2 s)."""
    deadline = time.monotonic() + 60
    while not done((health := _health_when_up(port))["config"].get("sync", {})):
        assert time.monotonic() < deadline, f"/health never showed it: {health}"
        time.sleep(0.1)
    return health


def _health_when_up(port: int, key: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    while True:
        try:
            return dict(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, headers=headers).json())
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not answer /health"
            time.sleep(0.2)


def test_a_refused_tip_is_not_tried_again_until_a_new_commit(fleet: Fleet) -> None:
    """No verification and no write to /etc/cortex every interval for a commit already refused."""
    tip = fleet.commit(fleet.cortexfile("server:\n  port: 99999\n"))
    first = sync_once(fleet)
    assert first.returncode == 1
    assert f"Cortexfile.yaml@{tip[:12]}" in first.stderr
    again = sync_once(fleet)
    assert again.returncode == 1
    assert again.stderr == ""  # nothing new to say: the same tip, already refused
    fixed = fleet.commit(fleet.cortexfile("server:\n  port: 40129\n"))
    assert sync_once(fleet).returncode == 0
    assert fleet.state()["applied"]["commit"] == fixed  # type: ignore[index]


def test_an_unreadable_state_applies_nothing(fleet: Fleet) -> None:
    """Its applied commit is the anchor against rollbacks: without it, sync fails closed."""
    before = fleet.live.read_text(encoding="utf-8")
    fleet.commit(fleet.cortexfile("server:\n  port: 40130\n"))
    state = fleet.root / "data-sync" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{" * 100_000, encoding="utf-8")
    done = sync_once(fleet)
    assert done.returncode == 1
    assert "state.json cannot be read: sync applies nothing until it is repaired" in done.stderr
    assert fleet.live.read_text(encoding="utf-8") == before


@pytest.mark.parametrize(
    "url", ["https://user:token@git.example/fleet.git", "https://git.example/fleet.git?private_token=x", "ext::sh"]
)
def test_a_repository_url_with_credentials_or_another_transport_is_refused(tmp_path: Path, url: str) -> None:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(f"version: 1\nsync:\n  repository: '{url}'\n  trusted_keys: ['/k.asc']\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "menlo_cortex", "validate", "-f", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert ":3:15: sync.repository:" in done.stderr
    assert "token" not in done.stderr.replace("no password, token", "")
