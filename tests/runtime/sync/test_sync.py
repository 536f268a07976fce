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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import find_free_port
from tests.git_remote import Certificate, GitRemote, git

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

    def cortexfile(
        self, extra: str = "", *, keys: str | None = None, on_rewrite: str = "refuse", sync: str = "",
        repository: str | None = None,
    ) -> str:  # fmt: skip
        return "version: 1\n" + textwrap.dedent(extra) + (
            f"data:\n  path: {self.data}\n"
            f"sync:\n  repository: {repository or f'file://{self.remote}'}\n  interval_s: 10\n"
            f"  on_rewrite: {on_rewrite}\n  trusted_keys: [\"{keys or self.key()}\"]\n"
        ) + textwrap.indent(textwrap.dedent(sync), "  ")  # fmt: skip

    def commit(self, text: str, *, signer: str | None = "ops", message: str = "change", **how: Any) -> str:
        """`how`: GitRemote.commit's trailers and date."""
        return self.repository.commit(text, self.root / f"{signer}.pub" if signer else None, message=message, **how)

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


def test_a_force_push_is_refused_and_under_follow_only_a_later_commit_is_applied(fleet: Fleet) -> None:
    """A hostile host force-pushing an older signed commit: refused, and under `on_rewrite: follow` too (a
    rollback is a new commit); a rewritten branch whose signed tip was committed later is followed."""
    older = fleet.commit(fleet.cortexfile("server:\n  port: 40125\n"), message="older", date="@1800000000 +0000")
    newer = fleet.commit(fleet.cortexfile("server:\n  port: 40126\n"), message="newer", date="@1800000100 +0000")
    assert sync_once(fleet).returncode == 0
    git("-C", str(fleet.work), "reset", "-q", "--hard", older)
    git("-C", str(fleet.work), "push", "-q", "--force", str(fleet.remote), "HEAD:main")
    refused = sync_once(fleet)
    assert refused.returncode == 1
    assert f"commit {older[:12]} does not descend from the applied {newer[:12]}" in refused.stderr
    assert "port: 40126" in fleet.live.read_text(encoding="utf-8")
    follows = fleet.cortexfile("server:\n  port: 40126\n", on_rewrite="follow")
    fleet.live.write_text(follows, encoding="utf-8")  # the device's own file says what to do with a rewrite
    still_refused = sync_once(fleet)
    assert still_refused.returncode == 1
    assert f"commit {older[:12]} is not committed later than the applied {newer[:12]}" in still_refused.stderr
    assert "port: 40126" in fleet.live.read_text(encoding="utf-8")
    rewritten = fleet.commit(fleet.cortexfile("server:\n  port: 40127\n", on_rewrite="follow"),
                             message="rewritten", date="@1800000200 +0000")  # fmt: skip
    assert not git("-C", str(fleet.work), "branch", "--contains", newer).strip()  # not a descendant
    followed = sync_once(fleet)
    assert followed.returncode == 0, followed.stderr
    assert fleet.state()["applied"]["commit"] == rewritten  # type: ignore[index]
    assert "port: 40127" in fleet.live.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("trailers", "reason"),
    [
        (
            ("Cortex-Branch: feature/new-model",),
            "its message has no `Cortex-Branch: main` trailer (it names feature/new-model)",
        ),
        ((), "its message has no `Cortex-Branch: main` trailer"),
        (("Cortex-Branch: main", "Cortex-Not-After: 2020-01-01"), "expired at 2020-01-01T00:00:00Z"),
        (("Cortex-Branch: main", "Cortex-Not-After: next week"), "is not a date (2027-01-31) or a time with its zone"),
        (("Cortex-Branch: main", "Cortex-Not-After: 2099-01-01T00:00:00"), "is not a date"),
    ],
    ids=["another-branch", "no-branch", "expired", "not-a-date", "no-zone"],
)
def test_a_signed_commit_not_bound_to_the_branch_and_now_is_refused(
    fleet: Fleet, trailers: tuple[str, ...], reason: str
) -> None:
    """What a hostile host serves as main: a signed commit of an unmerged branch, or one past its expiry."""
    before = fleet.live.read_text(encoding="utf-8")
    tip = fleet.commit(fleet.cortexfile("server:\n  port: 40131\n"), trailers=trailers)
    done = sync_once(fleet)
    assert done.returncode == 1
    assert f"sync: commit {tip[:12]}" in done.stderr
    assert reason in done.stderr
    assert fleet.live.read_text(encoding="utf-8") == before


def test_a_required_expiry_is_enforced_and_an_expired_applied_commit_is_reported(fleet: Fleet) -> None:
    """sync.require_not_after: a commit without one is refused; once the applied one expires with nothing newer
    (a repository withholding commits), the round fails and says so; a new signed commit clears it."""
    strict = fleet.cortexfile(sync="require_not_after: true\n")
    fleet.live.write_text(strict, encoding="utf-8")
    unbounded = fleet.commit(strict)
    refused = sync_once(fleet)
    assert refused.returncode == 1
    assert f"commit {unbounded[:12]} has no `Cortex-Not-After:` trailer (sync.require_not_after)" in refused.stderr
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat(timespec="seconds")
    expiring = fleet.commit(strict, trailers=("Cortex-Branch: main", f"Cortex-Not-After: {soon}"))
    applied = sync_once(fleet)
    assert applied.returncode == 0, applied.stderr
    assert fleet.state()["applied"]["not_after"] == soon.replace("+00:00", "Z")  # type: ignore[index]
    time.sleep(max((datetime.fromisoformat(soon) - datetime.now(UTC)).total_seconds() + 1, 0))  # the clock passes it
    stale = sync_once(fleet)
    assert stale.returncode == 1
    assert f"the applied commit {expiring[:12]} expired at" in stale.stderr
    assert "the repository may be withholding commits" in stale.stderr
    later = (datetime.now(UTC) + timedelta(days=7)).isoformat(timespec="seconds")
    fleet.commit(strict, trailers=("Cortex-Branch: main", f"Cortex-Not-After: {later}"))
    assert sync_once(fleet).returncode == 0
    assert fleet.state()["error"] is None


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
                    "commit", "-q", "-S", "-m", "pgp", "--trailer", "Cortex-Branch: main"],
                   env={**env, "HOME": str(tmp_path)}, check=True)  # fmt: skip
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
    ("url", "reason"),
    [
        ("https://user:token@git.example/fleet.git", "no password, token, query or fragment"),
        ("https://git.example/fleet.git?private_token=x", "no password, token, query or fragment"),
        ("ext::sh", "a repository URL: https://, ssh:// or file://"),
        ("git://git.example/fleet.git", "git:// and http:// are not encrypted"),
        ("HTTP://git.example/fleet.git", "git:// and http:// are not encrypted"),
    ],
)
def test_a_repository_url_with_credentials_or_another_transport_is_refused(
    tmp_path: Path, url: str, reason: str
) -> None:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(f"version: 1\nsync:\n  repository: '{url}'\n  trusted_keys: ['/k.asc']\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "menlo_cortex", "validate", "-f", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert ":3:15: sync.repository:" in done.stderr
    assert reason in done.stderr
    assert "token" not in done.stderr.replace("no password, token", "")


def test_https_with_the_cortexfiles_ca_and_not_without_it(fleet: Fleet, tmp_path: Path) -> None:
    """A private git server over https: trusted through sync.ca_certificates, refused (a certificate error,
    nothing applied) by the system's CAs."""
    certificate = Certificate(tmp_path / "tls")
    with fleet.repository.https(find_free_port(), certificate) as url:
        without_ca = fleet.cortexfile(repository=url)
        fleet.live.write_text(without_ca, encoding="utf-8")
        fleet.commit(without_ca)
        untrusted = sync_once(fleet)
        assert untrusted.returncode == 1
        assert f"fetching main from {url} failed:" in untrusted.stderr
        assert "certificate" in untrusted.stderr.lower()
        with_ca = fleet.cortexfile(repository=url, sync="ca_certificates: |\n" + textwrap.indent(certificate.pem, "  "))
        fleet.live.write_text(with_ca, encoding="utf-8")
        tip = fleet.commit(with_ca + "# synced\n")
        done = sync_once(fleet)
    assert done.returncode == 0, done.stderr
    assert fleet.state()["applied"]["commit"] == tip  # type: ignore[index]
    assert fleet.live.read_text(encoding="utf-8").endswith("# synced\n")


def test_a_fetch_larger_than_the_cap_is_stopped(fleet: Fleet, tmp_path: Path) -> None:
    """A remote that sends more than sync.max_fetch_mb (20 MiB of noise, sent at 4 MiB/s) is cut off once the
    mirror grew past the cap, and nothing it sent is kept."""
    certificate = Certificate(tmp_path / "tls")
    (fleet.work / "noise.bin").write_bytes(os.urandom(20 << 20))
    git("-C", str(fleet.work), "add", "noise.bin")
    with fleet.repository.https(find_free_port(), certificate, bytes_per_s=4 << 20) as url:
        capped = fleet.cortexfile(repository=url, sync="max_fetch_mb: 2\nca_certificates: |\n"
                                                        + textwrap.indent(certificate.pem, "  "))  # fmt: skip
        fleet.live.write_text(capped, encoding="utf-8")
        fleet.commit(capped)
        done = sync_once(fleet)
    assert done.returncode == 1
    assert "git fetch stopped: it brought more than 2 MiB" in done.stderr  # cut off, not a fetch that ended
    mirror = fleet.root / "data-sync" / "mirror.git" / "objects"
    assert sum(path.stat().st_size for path in mirror.rglob("*") if path.is_file()) < 1 << 20


def test_what_refused_rounds_brought_does_not_pile_up(fleet: Fleet) -> None:
    """A hostile host serving a new unrelated history of 3 MiB every round, just under sync.max_fetch_mb: each is
    refused, and the mirror is pruned to what its refs reach once it passes twice the cap (before: it kept all of
    it, until the disk was full). The applied commit's history stays."""
    capped = fleet.cortexfile(sync="max_fetch_mb: 4\n")
    fleet.live.write_text(capped, encoding="utf-8")
    applied = fleet.commit(capped)
    assert sync_once(fleet).returncode == 0
    objects = fleet.root / "data-sync" / "mirror.git" / "objects"
    sizes = []
    for round_number in range(6):
        git("-C", str(fleet.work), "checkout", "-q", "--orphan", f"junk{round_number}")
        (fleet.work / "noise.bin").write_bytes(os.urandom(3 << 20))
        git("-C", str(fleet.work), "add", "noise.bin")
        git("-C", str(fleet.work), "commit", "-q", "-m", "junk")
        git("-C", str(fleet.work), "push", "-q", "--force", str(fleet.remote), "HEAD:main")
        assert sync_once(fleet).returncode == 1
        sizes.append(sum(path.stat().st_size for path in objects.rglob("*") if path.is_file()))
    assert max(sizes) < 12 << 20, sizes  # without the prune: 18 MiB after six rounds
    mirror = str(fleet.root / "data-sync" / "mirror.git")
    assert git("--git-dir", mirror, "cat-file", "-t", applied).strip() == "commit"
