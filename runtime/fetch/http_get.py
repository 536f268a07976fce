"""One GET, following redirects, through the configured proxy and TLS checks (http.client underneath)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import closing, contextmanager
from urllib.parse import SplitResult, urljoin, urlsplit

from .netsettings import DEFAULT_PORTS, NetSettings, redact
from .proxy_tunnel import TunnelConnection

MAX_REDIRECTS = 10
REDIRECTS = {301, 302, 303, 307, 308}


class HttpFailure(Exception):
    """The server answered something other than the file; the message holds no credentials."""


@contextmanager
def http_get(url: str, net: NetSettings) -> Iterator[http.client.HTTPResponse]:
    """Yield the final 200 response; every connection opened on the way is closed on exit."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise HttpFailure(f"cannot download from {redact(url)}: not an http(s) URL")
        with closing(_connection(parts, net)) as connection:
            connection.request("GET", _request_target(parts, net), headers=_headers(parts, net))
            with closing(connection.getresponse()) as response:
                location = response.getheader("Location")
                if response.status in REDIRECTS and location:
                    url = urljoin(url, location)
                    continue
                if response.status != 200:
                    raise HttpFailure(f"{redact(url)} answered HTTP {response.status} {response.reason}")
                yield response
                return
    raise HttpFailure(f"{redact(url)}: more than {MAX_REDIRECTS} redirects")


def _through_proxy(parts: SplitResult, net: NetSettings) -> bool:
    return net.proxy is not None and not net.proxy.bypasses(parts.hostname or "")


def _connection(parts: SplitResult, net: NetSettings) -> http.client.HTTPConnection:
    host, port = parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme]
    proxy = net.proxy if _through_proxy(parts, net) else None
    if proxy is None:
        if parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=net.timeout, context=net.tls)
        return http.client.HTTPConnection(host, port, timeout=net.timeout)
    if parts.scheme == "https":
        return TunnelConnection(host, port, proxy=proxy, tls=net.tls, timeout=net.timeout)
    if proxy.tls is not None:
        return http.client.HTTPSConnection(proxy.host, proxy.port, timeout=net.timeout, context=proxy.tls)
    return http.client.HTTPConnection(proxy.host, proxy.port, timeout=net.timeout)


def _request_target(parts: SplitResult, net: NetSettings) -> str:
    """Absolute form for a plain-http request to a proxy; origin form otherwise (CONNECT or direct)."""
    path = parts.path or "/"
    path += f"?{parts.query}" if parts.query else ""
    if parts.scheme == "http" and _through_proxy(parts, net):
        return f"http://{parts.netloc.rpartition('@')[2]}{path}"
    return path


def _headers(parts: SplitResult, net: NetSettings) -> dict[str, str]:
    headers = {"User-Agent": net.user_agent, "Accept-Encoding": "identity"}
    token = net.authorization_for(parts)
    if token:
        headers["Authorization"] = token
    if parts.scheme == "http" and _through_proxy(parts, net) and net.proxy and net.proxy.authorization:
        headers["Proxy-Authorization"] = net.proxy.authorization
    return headers
