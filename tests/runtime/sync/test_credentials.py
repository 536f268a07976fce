"""A private fleet repository: `cortex sync` with an https token against a real git server that requires it, and
with an ssh deploy key against a real OpenSSH server whose host key is pinned. The secrets reach the server only:
not the logs, state.json, the command line or the disk after the round."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import find_free_port
from tests.git_remote import Certificate, ssh_server
from tests.http_servers import serving

from .test_sync import Fleet

TOKEN = "ghp_fleet0123456789token"


def sync_once(fleet: Fleet, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "menlo_cortex", "sync", "-f", str(fleet.live), "--once"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **env})


def leaves_no_trace(fleet: Fleet, done: subprocess.CompletedProcess[str], secret: str) -> None:
    work = fleet.root / "data-sync"
    assert secret not in done.stdout + done.stderr
    assert secret not in (work / "state.json").read_text(encoding="utf-8")
    assert not (work / "credentials").exists()


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path)


def test_an_https_token_opens_a_private_repository(fleet: Fleet, tmp_path: Path) -> None:
    certificate = Certificate(tmp_path / "tls")
    ca = "ca_certificates: |\n" + textwrap.indent(certificate.pem, "  ")
    with fleet.repository.https(find_free_port(), certificate, basic_auth=f"git:{TOKEN}") as url:
        anonymous = fleet.cortexfile(repository=url, sync=ca)
        fleet.live.write_text(anonymous, encoding="utf-8")
        fleet.commit(anonymous)
        refused = sync_once(fleet)
        assert refused.returncode == 1
        assert f"fetching main from {url} failed:" in refused.stderr
        keyed = fleet.cortexfile(repository=url, sync=ca + "token: ${env:SYNC_TOKEN}\n")
        fleet.live.write_text(keyed, encoding="utf-8")
        tip = fleet.commit(keyed + "# private\n")
        wrong = sync_once(fleet, SYNC_TOKEN="ghp_not-the-token")
        assert wrong.returncode == 1
        assert "ghp_not-the-token" not in wrong.stderr
        done = sync_once(fleet, SYNC_TOKEN=TOKEN)
    assert done.returncode == 0, done.stderr
    assert fleet.state()["applied"]["commit"] == tip  # type: ignore[index]
    leaves_no_trace(fleet, done, TOKEN)
    unset = sync_once(fleet)
    assert unset.returncode == 1
    assert "sync.token: environment variable SYNC_TOKEN is not set" in unset.stderr


class _Redirect(BaseHTTPRequestHandler):
    """Sends every request elsewhere, and notes what reached it."""

    target = ""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization") or "")
        self.send_response(302)
        self.send_header("Location", self.target + self.path.split("/", 2)[-1])
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def redirecting(certificate: Certificate, to: str) -> Iterator[tuple[str, list[str]]]:
    """An https server on loopback that redirects every request to `to`; its URL, and what each request carried."""
    seen: list[str] = []
    handler = type("Handler", (_Redirect,), {"target": to.rstrip("/") + "/", "seen": seen})
    with serving(handler, tls=(certificate.cert, certificate.key)) as url:
        yield f"{url}/fleet.git", seen


def test_a_redirect_is_not_followed_with_the_token(fleet: Fleet, tmp_path: Path) -> None:
    """The token goes to the repository's URL alone: git follows no redirect (else it sends the token on to
    the place the redirect names, for every request after the first)."""
    certificate = Certificate(tmp_path / "tls")
    ca = "ca_certificates: |\n" + textwrap.indent(certificate.pem, "  ")
    with (
        redirecting(certificate, "https://127.0.0.1:1/") as (elsewhere, taken),
        redirecting(certificate, elsewhere) as (url, asked),
    ):
        keyed = fleet.cortexfile(repository=url, sync=ca + "token: ${env:SYNC_TOKEN}\n")
        fleet.live.write_text(keyed, encoding="utf-8")
        done = sync_once(fleet, SYNC_TOKEN=TOKEN)
    assert done.returncode == 1
    assert asked  # the token's own URL was asked (with it) ...
    assert taken == []  # ... and nothing followed its redirect
    leaves_no_trace(fleet, done, TOKEN)


@pytest.fixture
def device_root() -> Path:
    """The root of a device image that syncs (sshd, git): a real server's parts, cached by the disk tests."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None or shutil.which("unshare") is None:
        pytest.skip("needs root, debootstrap and unshare (scripts/setup.sh installs them)")
    from menlo_cortex.cortexfile.boards import load_board
    from menlo_cortex.cortexfile.schema.sync import Sync
    from menlo_cortex.images.debian import debian_root
    from menlo_cortex.images.targets.disk.plan import sync_packages
    from menlo_cortex.images.targets.disk.userland import root_spec

    more = sync_packages(Sync(repository="https://git.example/f.git", trusted_keys=["ssh-ed25519 AAAA"]))
    return debian_root(root_spec(load_board("x86-64-uefi"), more))


@pytest.mark.engine
@pytest.mark.timeout(600)
def test_an_ssh_deploy_key_and_a_pinned_host_key(fleet: Fleet, tmp_path: Path, device_root: Path) -> None:
    deploy = fleet.device / "deploy"  # beside the Cortexfile, as /etc/cortex/sync-key is on a device
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy", "-f", str(deploy)], check=True)
    authorized = (fleet.device / "deploy.pub").read_text(encoding="utf-8").strip()
    with ssh_server(fleet.remote, device_root, authorized, tmp_path / "sshd", find_free_port()) as (url, host):
        private = fleet.cortexfile(repository=url, sync=f"ssh_key: ${{file:{deploy}}}\nknown_hosts: ['{host}']\n")
        fleet.live.write_text(private, encoding="utf-8")
        tip = fleet.commit(private + "# over ssh\n")
        done = sync_once(fleet)
        assert done.returncode == 0, done.stderr
        assert fleet.state()["applied"]["commit"] == tip  # type: ignore[index]
        leaves_no_trace(fleet, done, deploy.read_text(encoding="ascii").splitlines()[1])

        other = fleet.device / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        impostor = host.rsplit(" ", 1)[0] + " " + (fleet.device / "other.pub").read_text(encoding="ascii").split()[1]
        changed = fleet.cortexfile(repository=url, sync=f"ssh_key: ${{file:{deploy}}}\nknown_hosts: ['{impostor}']\n")
        fleet.live.write_text(changed, encoding="utf-8")
        fleet.commit(changed)
        refused = sync_once(fleet)
        assert refused.returncode == 1
        assert "Host key verification failed" in refused.stderr

        stranger = fleet.cortexfile(repository=url, sync=f"ssh_key: ${{file:{other}}}\nknown_hosts: ['{host}']\n")
        fleet.live.write_text(stranger, encoding="utf-8")
        denied = sync_once(fleet)
        assert denied.returncode == 1
        assert "Permission denied" in denied.stderr
    assert json.loads((fleet.root / "data-sync" / "state.json").read_text())["applied"]["commit"] == tip


@pytest.mark.parametrize(
    ("sync", "message"),
    [
        ("repository: ssh://git@git.example/fleet.git", "an ssh:// repository needs its host keys pinned"),
        ("repository: https://git.example/fleet.git\n  ssh_key: ${file:/etc/cortex/k}", "are for an ssh:// repository"),
        (
            "repository: ssh://git@git.example/f.git\n  known_hosts: ['git.example ssh-ed25519 AAAA']\n  token: t",
            "sync.token is for an https:// repository",
        ),
        (
            "repository: ssh://git@git.example/f.git\n  known_hosts: ['@cert-authority * ssh-ed25519 AAAA']",
            "a known_hosts line",
        ),
        ("repository: https://git.example/f.git\n  token: t\n  token_user: 'a b'", "token_user"),
    ],
)
def test_credentials_that_do_not_fit_the_repository_are_refused(tmp_path: Path, sync: str, message: str) -> None:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(f"version: 1\nsync:\n  {sync}\n  trusted_keys: ['/k.asc']\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "menlo_cortex", "validate", "-f", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr


pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
