"""The Cortexfile's `network:` section made ready for outgoing requests: TLS contexts, proxy, hub token."""

from __future__ import annotations

import base64
import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

from menlo_cortex.cortexfile.schema.network import Network
from menlo_cortex.cortexfile.schema.network import Proxy as ProxySettings

from menlo_cortex import __version__

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def origin_of(url: SplitResult) -> Origin:
    return url.scheme, (url.hostname or "").lower(), url.port or DEFAULT_PORTS.get(url.scheme, 0)


def redact(url: str) -> str:
    """The URL without user info or query string, either of which may carry credentials. Total: a
    URL from a hostile redirect (a bad port, control characters) is shown, not raised on."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    try:
        netloc += f":{parts.port}" if parts.port else ""
    except ValueError:
        netloc += ":?"
    query = "?..." if parts.query else ""
    shown = f"{parts.scheme}://{netloc}{parts.path}{query}"
    return "".join(char if char.isprintable() else "?" for char in shown)


def tls_context(verify_peer: bool, verify_host: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif not verify_host:
        context.check_hostname = False
    return context


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@dataclass(frozen=True)
class ProxyRoute:
    """Where requests go instead of straight to the server, and which hosts skip it."""

    scheme: str
    host: str
    port: int
    authorization: str | None = field(repr=False)
    tls: ssl.SSLContext | None
    no_proxy: tuple[str, ...]

    def bypasses(self, host: str) -> bool:
        host = host.lower().strip("[]")
        return any(_no_proxy_matches(entry.strip().lower(), host) for entry in self.no_proxy if entry.strip())


def _no_proxy_matches(entry: str, host: str) -> bool:
    if entry == "*":
        return True
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        domain = entry.lstrip(".").removeprefix("*.")
        return host == domain or host.endswith("." + domain)


@dataclass(frozen=True)
class NetSettings:
    user_agent: str
    tls: ssl.SSLContext
    proxy: ProxyRoute | None
    hub: Origin
    hub_authorization: str | None = field(repr=False)  # the Authorization header's value: `Bearer <token>`, ...
    timeout: float = 60.0

    def authorization_for(self, url: SplitResult) -> str | None:
        """The hub's credential goes to the hub's own origin and nowhere else (not to the CDN it redirects to)."""
        if self.hub_authorization and origin_of(url) == self.hub:
            return self.hub_authorization
        return None


def net_settings(network: Network, environ: Mapping[str, str] | None = None) -> NetSettings:
    """Raises SecretUnavailable when the hub token or proxy password references a missing secret."""
    env = None if environ is None else dict(environ)
    token = network.huggingface.token.resolve(env) if network.huggingface.token else None
    return NetSettings(
        user_agent=network.github.user_agent or f"cortex/{__version__}",
        tls=tls_context(network.ssl.verify_peer, network.ssl.verify_host),
        proxy=_proxy_route(network.proxy, env),
        hub=origin_of(urlsplit(network.huggingface.endpoint)),
        hub_authorization=f"Bearer {token}" if token else None,
    )


def _proxy_route(settings: ProxySettings, env: dict[str, str] | None) -> ProxyRoute | None:
    if settings.url is None:
        return None
    url = urlsplit(settings.url)
    if url.scheme not in DEFAULT_PORTS:
        raise ValueError(f"proxy {redact(settings.url)}: only http:// and https:// proxies are supported")
    user = settings.username or (unquote(url.username) if url.username else None)
    password = settings.password.resolve(env) if settings.password else unquote(url.password or "")
    return ProxyRoute(
        scheme=url.scheme,
        host=url.hostname or "",
        port=url.port or DEFAULT_PORTS[url.scheme],
        authorization=basic_auth(user, password) if user else None,
        tls=tls_context(settings.verify_ssl, settings.verify_host) if url.scheme == "https" else None,
        no_proxy=tuple(settings.no_proxy),
    )
