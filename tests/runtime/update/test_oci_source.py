"""Updates through an OCI registry: the builder's `--push` step (skopeo) puts an update folder into Debian's
docker-registry as an artifact, and the agent installs it from `oci://127.0.0.1:PORT/fleet/update:TAG`: the same
signed files, found through the registry's manifest. Anonymous pulls, over TLS with the registry's own certificate
(trusted by skopeo through SSL_CERT_FILE, by the agent through its TLS settings)."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from menlo_cortex.images.targets.update.artifact import push_update
from menlo_cortex.runtime.fetch.netsettings import NetSettings, tls_context
from menlo_cortex.runtime.update.agent import Settings, run_round
from menlo_cortex.runtime.update.source import Login, SourceError, open_source
from menlo_cortex.runtime.update.state import UpdateState

from tests.conftest import find_free_port
from tests.git_remote import Certificate
from tests.images.docker_image.engine_parts import serve_registry
from tests.processes import stop
from tests.runtime.harness import wait_for

from .test_agent import NEWER, FileDevice, debugfs_cat, device, make_update, net, ssh_key

pytestmark = pytest.mark.timeout(300)
PASSWORD = "fleet-pull-password-0123"
LOGIN = Login("fleet", PASSWORD)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Debian's docker-registry on loopback over TLS (no password: anonymous pulls and pushes), and skopeo's
    settings for it."""
    if shutil.which("docker-registry") is None or shutil.which("skopeo") is None:
        pytest.skip("needs docker-registry and skopeo (scripts/setup.sh installs them)")
    port = find_free_port()
    folder = tmp_path / "registry"
    folder.mkdir()
    config = folder / "config.yml"
    certificate = Certificate(folder / "tls")
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {certificate.cert}\n"
                      f"    key: {certificate.key}\n")  # fmt: skip
    with (folder / "registry.log").open("wb") as log:
        process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    context = ssl.create_default_context(cafile=str(certificate.cert))
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/v2/", timeout=5, context=context).close()
            break
        except OSError:
            assert time.monotonic() < deadline, (folder / "registry.log").read_text()
            time.sleep(0.5)
    try:
        yield f"127.0.0.1:{port}", {"PATH": "/usr/bin:/bin", "SSL_CERT_FILE": str(certificate.cert)}
    finally:
        stop(process)


def pushed_update(tmp_path: Path, reference: str, environ: dict[str, str]) -> tuple[str, ...]:
    """A signed update of version NEWER pushed to `reference`; the key that signed it, as trusted_keys."""
    key = ssh_key(tmp_path / "fleet")
    update = make_update(tmp_path / "v2", key)
    names = sorted(path.name for path in update.iterdir())
    assert push_update(update, names, reference, environ) == f"pushed {reference}"
    return (key.with_suffix(".pub").read_text().strip(),)


def installed(tmp_path: Path, settings: Settings, environ: dict[str, str]) -> FileDevice:
    """The device after one round of the agent, which installed NEWER and rebooted into it."""
    dev, reboots = device(tmp_path), []
    assert run_round(settings, dev, trusting(environ), lambda: reboots.append(1))
    assert reboots == [1]
    assert debugfs_cat(dev.slots["b"], "/etc/os-release") == f"IMAGE_VERSION={NEWER}\n"
    return dev


def test_an_update_pushed_to_a_registry_is_installed_from_it(
    tmp_path: Path, registry: tuple[str, dict[str, str]]
) -> None:
    address, environ = registry
    reference = f"{address}/fleet/update:{NEWER}"
    trusted = pushed_update(tmp_path, reference, environ)
    dev = installed(tmp_path, Settings(f"oci://{reference}", trusted, None), environ)
    assert (dev.esp / "loader/entries/cortex-b+1.conf").is_file()


def test_a_missing_tag_or_file_is_a_clear_refusal(tmp_path: Path, registry: tuple[str, dict[str, str]]) -> None:
    address, environ = registry
    with pytest.raises(SourceError, match="the registry answered HTTP 404 for the update's manifest"):
        open_source(f"oci://{address}/fleet/update:9.9.9", trusting(environ))
    key = ssh_key(tmp_path / "fleet")
    update = make_update(tmp_path / "v2", key)
    push_update(update, ["manifest.json"], f"{address}/fleet/partial:1", environ)  # no SHA256SUMS in it
    dev = device(tmp_path)
    settings = Settings(f"oci://{address}/fleet/partial:1", (key.with_suffix(".pub").read_text().strip(),), None)
    assert not run_round(settings, dev, trusting(environ), lambda: pytest.fail("rebooted"))
    error = UpdateState.load(dev.state_folder).last_error or {}
    assert error.get("message") == "SHA256SUMS is not in the update's OCI artifact"


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The same registry asking for a password (htpasswd: HTTP Basic), and skopeo's settings with that login."""
    if shutil.which("docker-registry") is None or shutil.which("skopeo") is None or shutil.which("htpasswd") is None:
        pytest.skip("needs docker-registry, skopeo and htpasswd (scripts/setup.sh installs them)")
    port, folder = find_free_port(), tmp_path / "private"
    folder.mkdir()
    certificate = Certificate(folder / "tls")
    tls = f"  tls:\n    certificate: {certificate.cert}\n    key: {certificate.key}\n"
    process = serve_registry(folder, port, "fleet", PASSWORD, tls)
    address = f"127.0.0.1:{port}"
    login = base64.b64encode(f"fleet:{PASSWORD}".encode()).decode()
    (folder / "docker").mkdir()
    (folder / "docker" / "config.json").write_text(json.dumps({"auths": {address: {"auth": login}}}))
    context = ssl.create_default_context(cafile=str(certificate.cert))
    try:
        wait_for(lambda: _status(f"https://{address}/v2/", context) == 401, 60, "the registry to ask for a password")
        yield address, {"PATH": "/usr/bin:/bin", "SSL_CERT_FILE": str(certificate.cert),
                        "DOCKER_CONFIG": str(folder / "docker")}  # fmt: skip
    finally:
        stop(process)


def _status(url: str, context: ssl.SSLContext) -> int:
    try:
        urllib.request.urlopen(url, timeout=5, context=context).close()
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
    return 200


def test_a_registry_that_asks_for_a_password_gets_the_registry_token(
    tmp_path: Path, private_registry: tuple[str, dict[str, str]]
) -> None:
    address, environ = private_registry
    reference = f"{address}/fleet/update:{NEWER}"
    trusted = pushed_update(tmp_path, reference, environ)
    url = f"oci://{reference}"
    with pytest.raises(SourceError, match=r"asks for a password: set device\.updates\.registry_token"):
        open_source(url, trusting(environ))
    with pytest.raises(SourceError, match=r"refused device\.updates\.registry_token \(HTTP 401\)") as refused:
        open_source(url, trusting(environ), Login("fleet", "not-the-password"))
    assert "not-the-password" not in str(refused.value)
    settings = Settings(url, trusted, None, login=Login("fleet", PASSWORD))
    assert PASSWORD not in repr(settings)
    installed(tmp_path, settings, environ)  # the manifest and every blob fetched with the password


@pytest.mark.parametrize(
    ("registry", "realm", "sent"),
    [
        ("https://registry-1.docker.io/v2/", "https://auth.docker.io/token", True),  # Docker Hub's own pair
        ("https://registry.gitlab.com/v2/", "https://gitlab.com/jwt/auth", True),
        ("https://ghcr.io/v2/fleet/", "https://ghcr.io/token", True),
        ("https://registry.example.com/v2/", "https://tokens.elsewhere.net/", False),
        ("https://fleet.co.uk/v2/", "https://attacker.co.uk/token", False),  # a shared parent is no proof
        ("https://127.0.0.1:5000/v2/", "https://127.0.0.2/token", False),
    ],
)
def test_the_password_goes_to_the_registrys_own_token_service_only(registry: str, realm: str, sent: bool) -> None:
    from menlo_cortex.runtime.update.source import _for_token_service

    for_service = _for_token_service(registry, urllib.parse.urlsplit(realm), net(), Login("fleet", PASSWORD))
    to_service = for_service.authorization_for(urllib.parse.urlsplit(realm + "?scope=repository:fleet:pull"))
    assert (to_service == Login("fleet", PASSWORD).header) is sent
    assert to_service is not None or for_service.hub_authorization is None  # sent nowhere else either


def test_no_password_leaves_without_checked_tls_nor_shows_in_a_repr() -> None:
    from menlo_cortex.runtime.update.source import _for_token_service

    unchecked = dataclasses.replace(net(), tls=tls_context(False, False))
    with pytest.raises(SourceError, match=r"only with network\.ssl's peer and host checks on"):
        _for_token_service("https://ghcr.io/v2/", urllib.parse.urlsplit("https://ghcr.io/t"), unchecked, LOGIN)
    checked = _for_token_service("https://ghcr.io/v2/", urllib.parse.urlsplit("https://ghcr.io/t"), net(), LOGIN)
    assert checked.hub_authorization is not None
    assert PASSWORD not in repr(checked)
    assert LOGIN.header.split()[1] not in repr(checked)


def trusting(environ: dict[str, str]) -> NetSettings:
    """The agent's network settings, trusting the registry's certificate as a private registry's CA."""
    return dataclasses.replace(net(), tls=ssl.create_default_context(cafile=environ["SSL_CERT_FILE"]))


def test_a_size_header_int_refuses_is_no_size() -> None:
    """`²` is a digit to str.isdigit and not to int(): a hostile server's header must not crash a download."""
    import urllib3
    from menlo_cortex.runtime.fetch.download import _total_size

    for header in ("²", "9" * 5000, "-1", ""):
        assert _total_size(urllib3.HTTPResponse(b"", headers={"Content-Length": header}, status=200), 0) is None
    assert _total_size(urllib3.HTTPResponse(b"", headers={"Content-Length": "42"}, status=200), 0) == 42
