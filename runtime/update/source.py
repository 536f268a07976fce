"""Where an update's files are fetched from: an http(s) folder (`https://host/fleet/`: each file beside the others),
or an OCI registry (`oci://host[:port]/repository:tag`: an artifact whose layers are the files, each named by its
`org.opencontainers.image.title` annotation, as `cortex build --format update --push` makes it). Either way the
signed SHA256SUMS decides what is installed; the source only says where the bytes are.

A registry's pull token (the Bearer challenge of Docker Hub, GHCR and others) is asked for once a round, anonymously
or with device.updates.registry_token when the token service is on the registry's own domain; a registry that asks
for a password itself (Basic) gets it. Either goes to the registry's own origin only, never to the storage a blob
redirects to. Registries are spoken to over https, trusting what network.ssl says (a private registry's CA in the
system's store)."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlencode, urlsplit

from urllib3.exceptions import HTTPError

from ..fetch.http_get import HttpFailure, failure_reason, http_get, is_public, parsed_url
from ..fetch.netsettings import NetSettings, basic_auth, origin_of

OCI = "oci://"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json"
TITLE = "org.opencontainers.image.title"
MAX_DOCUMENT = 1 << 20
_PATH = r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
_REFERENCE = re.compile(
    rf"oci://(?P<host>[A-Za-z0-9.-]{{1,253}}(:[0-9]{{1,5}})?)/(?P<repo>{_PATH}):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
)
_TOKEN = re.compile(r"[\x21-\x7e]{1,16384}")  # what an HTTP header can carry
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_SCHEME = re.compile(r'(?:^|,)\s*([A-Za-z][\w-]*)((?:\s+\w+="[^"]*"(?:\s*,\s*\w+="[^"]*")*)?)')
# Registries whose token service is on another host: the password goes there too (their own documentation's pair).
TOKEN_SERVICES = {"registry-1.docker.io": "auth.docker.io", "index.docker.io": "auth.docker.io",
                  "registry.gitlab.com": "gitlab.com"}  # fmt: skip
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Login:
    user: str
    password: str = dataclasses.field(repr=False)

    @property
    def header(self) -> str:
        return basic_auth(self.user, self.password)


class SourceError(Exception):
    """The source could not say where the update's files are; the message says why, quoting no credential."""


@dataclass(frozen=True)
class Source:
    folder: str  # the http(s) folder, ending in /; for a registry, its blob folder
    net: NetSettings  # for a registry: its token, for its own origin only
    blobs: Mapping[str, str] | None = None  # registry: file name -> digest

    def url(self, name: str) -> str:
        if self.blobs is None:
            return self.folder + name
        if name not in self.blobs:
            raise SourceError(f"{name} is not in the update's OCI artifact")
        return self.folder + self.blobs[name]


def open_source(url: str, net: NetSettings, login: Login | None = None) -> Source:
    """`login`: the registry's user and password, for a registry that refuses anonymous pulls."""
    if not url.startswith(OCI):
        return Source(url if url.endswith("/") else url + "/", net)
    match = _REFERENCE.fullmatch(url)
    if match is None:
        raise SourceError(f"{url}: not an OCI reference oci://host[:port]/repository:tag")
    host, repo, tag = match.group("host"), match.group("repo"), match.group("tag")
    base = f"https://{host}/v2/{repo}/"
    net = dataclasses.replace(net, hub_authorization=None)  # the Hugging Face token goes to its hub, never here
    manifest, net = _manifest(base + f"manifests/{tag}", repo, net, login)
    return Source(base + "blobs/", net, _blobs(manifest))


def _manifest(url: str, repo: str, net: NetSettings, login: Login | None) -> tuple[dict[str, object], NetSettings]:
    headers = {"Accept": MANIFEST_TYPES}
    status, body, challenge = _get(url, net, headers)
    if status == 401:  # ask for a pull token (or send the password) once, then again with it
        net = _authorized(url, repo, challenge, net, login)
        status, body, _ = _get(url, net, headers)
    if status == 401:
        sent = net.hub_authorization is not None and net.hub_authorization.startswith("Basic ")
        refused = "device.updates.registry_token" if sent else "the pull: set device.updates.registry_token"
        raise SourceError(f"the registry {_host(url)} refused {refused} (HTTP 401)")
    if status != 200:
        raise SourceError(f"the registry answered HTTP {status} for the update's manifest")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise SourceError("the registry's manifest is not JSON") from None
    if not isinstance(document, dict):
        raise SourceError("the registry's manifest is not a JSON object")
    return document, net


def _blobs(manifest: dict[str, object]) -> dict[str, str]:
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise SourceError("the registry's manifest lists no layers")
    blobs: dict[str, str] = {}
    for layer in layers:
        annotations = layer.get("annotations") if isinstance(layer, dict) else None
        title = annotations.get(TITLE) if isinstance(annotations, dict) else None
        digest = layer.get("digest") if isinstance(layer, dict) else None
        if isinstance(title, str) and isinstance(digest, str) and _DIGEST.fullmatch(digest):
            blobs[title] = digest
    return blobs


def _authorized(url: str, repo: str, challenge: str, net: NetSettings, login: Login | None) -> NetSettings:
    """`net` with what the registry's 401 asks for: its password (Basic), or a pull token from its token service."""
    registry = origin_of(urlsplit(url))
    schemes = _challenges(challenge)
    if "bearer" in schemes:
        bearer = schemes["bearer"]
        realm = bearer.get("realm", "")
        service_net = _for_token_service(url, _parsed_realm(realm), net, login)
        _check_realm(url, realm)
        token = _pull_token(realm, bearer.get("service"), repo, service_net)
        return dataclasses.replace(net, hub=registry, hub_authorization=f"Bearer {token}")
    if "basic" in schemes:
        if login is None:
            raise SourceError(f"the registry {_host(url)} asks for a password: set device.updates.registry_token")
        return dataclasses.replace(net, hub=registry, hub_authorization=_sent(login, net).header)
    raise SourceError(f"the registry {_host(url)} asks for credentials in a way the update agent does not speak "
                      "(neither Bearer nor Basic)")  # fmt: skip


def _challenges(header: str) -> dict[str, dict[str, str]]:
    """WWW-Authenticate's challenges by scheme (lower case), each with its parameters."""
    found: dict[str, dict[str, str]] = {}
    for match in _SCHEME.finditer(header):
        found.setdefault(match.group(1).lower(), dict(_CHALLENGE.findall(match.group(2) or "")))
    return found


def _parsed_realm(realm: str) -> SplitResult:
    """Read as every hop of http_get is read, so the host checked here is the host the token request reaches."""
    parts = parsed_url(realm)
    if parts is None or parts.scheme != "https" or not parts.hostname:
        raise SourceError("the registry names a token service that is not an https:// URL")
    return parts


def _for_token_service(registry: str, realm: SplitResult, net: NetSettings, login: Login | None) -> NetSettings:
    """The password goes to the token service only when it is the registry's own host, or the service a known
    registry uses (auth.docker.io for Docker Hub, gitlab.com for GitLab's), to its origin alone."""
    registry_host, service_host = urlsplit(registry).hostname or "", realm.hostname or ""
    if login is None or service_host not in (registry_host, TOKEN_SERVICES.get(registry_host)):
        return net
    return dataclasses.replace(net, hub=origin_of(realm), hub_authorization=_sent(login, net).header)


def _sent(login: Login, net: NetSettings) -> Login:
    """`login`, where the connection checks whom it speaks to: a password is never sent with network.ssl's checks
    off (whoever is on the path could ask for it)."""
    if net.tls.verify_mode != ssl.CERT_REQUIRED or not net.tls.check_hostname:
        raise SourceError("device.updates.registry_token is sent only with network.ssl's peer and host checks on")
    return login


def _host(url: str) -> str:
    return urlsplit(url).netloc


def _pull_token(realm: str, service: str | None, repo: str, net: NetSettings) -> str:
    """A pull token for `repo` alone, whatever scope the challenge named."""
    query = {"scope": f"repository:{repo}:pull"} | ({"service": service} if service else {})
    status, body, _ = _get(f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}", net, {})
    try:
        answer = json.loads(body) if status == 200 else {}
        token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
    except (ValueError, RecursionError):
        token = None
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        sent = " (device.updates.registry_token sent)" if net.hub_authorization else ""
        raise SourceError(f"the token service {_host(realm)} gave no pull token (HTTP {status}){sent}")
    return token


def _check_realm(registry: str, realm: str) -> None:
    """The token service the registry names is the registry's choice, not the Cortexfile's: a registry on a public
    address may not send the device to a private one (its metadata service, the LAN), as a redirect may not."""
    if _public(registry) and not _public(realm):
        raise SourceError("the registry names a token service on a loopback, private or link-local address: refused")


def _public(url: str) -> bool:
    parts = urlsplit(url)
    try:
        found = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise SourceError(f"cannot resolve {parts.hostname}") from None
    return all(is_public(str(info[4][0])) for info in found)


def _get(url: str, net: NetSettings, headers: Mapping[str, str]) -> tuple[int, bytes, str]:
    try:
        with http_get(url, net, headers, also=frozenset({401, 404})) as response:
            body = response.read(MAX_DOCUMENT + 1)
            challenge = response.headers.get("WWW-Authenticate", "")
            status = response.status
    except (HttpFailure, HTTPError, OSError) as exc:
        reason = str(exc) if isinstance(exc, HttpFailure) else failure_reason(exc)
        raise SourceError(f"the registry could not be asked: {reason}") from None
    if len(body) > MAX_DOCUMENT:
        raise SourceError("the registry's answer is too large")
    return status, bytes(body), challenge
