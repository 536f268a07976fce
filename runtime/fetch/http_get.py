"""One GET through the configured proxy and TLS checks, on urllib3.

urllib3 does the protocol work: connections, TLS, HTTP and HTTPS proxies (TLS to the proxy and TLS
to the server inside it), timeouts. The policy stays here: which hosts skip the proxy (no_proxy),
which origin gets the hub token (re-decided at every redirect, so a CDN never sees it), that no
message quotes a URL's credentials or query, and the bounds a hostile server meets:

- every hop (connect, TLS, request, response headers) ends within `net.timeout`, however slowly the
  server drips its bytes (a per-read timeout alone would wait for ever);
- a redirect from a public host may not lead into loopback, private, link-local or other non-public
  addresses (the appliance's own network): the name is resolved once, checked, and the connection goes
  to the address that was checked, so a second answer from DNS cannot swap it. A source the Cortexfile
  names on such an address is its choice, and so are redirects it makes within that network.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    HTTPError,
    InsecureRequestWarning,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
)
from urllib3.util import parse_url

from .netsettings import DEFAULT_PORTS, NetSettings, redact

MAX_REDIRECTS = 10
REDIRECTS = {301, 302, 303, 307, 308}
Response = urllib3.BaseHTTPResponse


class HttpFailure(Exception):
    """The server answered something other than the file; the message holds no credentials."""


@contextmanager
def http_get(
    url: str, net: NetSettings, headers: Mapping[str, str] | None = None, also: frozenset[int] = frozenset()
) -> Iterator[Response]:
    """Yield the final response (200; 206 or 416 when `headers` ask for a Range; a status in `also`, such as a
    registry's 401 that names where to get a token), its body not yet read."""
    public_origin: bool | None = None  # whether the first hop went to a public address (through a proxy: yes)
    for _ in range(MAX_REDIRECTS + 1):
        parts = parsed_url(url)
        if parts is None or parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise HttpFailure(f"cannot download from {redact(url)}: not an http(s) URL")
        address = None
        if net.proxy is None or net.proxy.bypasses(parts.hostname):
            address = _checked_address(url, parts, public_origin)
            public_origin = is_public(address) if public_origin is None else public_origin
        elif public_origin is None:
            public_origin = True  # the proxy reaches the internet: a redirect past it (no_proxy) may not go inward
        pool = _pool(parts, net, address)
        try:
            response = _send(pool, url, {**_headers(parts, net), **(headers or {})}, net)
            try:
                location = response.headers.get("Location")
                if response.status in REDIRECTS and location:
                    url = _joined(url, location)
                    continue
                ranged = response.status == 416 and "Range" in (headers or {})
                if response.status not in (200, 206) and not ranged and response.status not in also:
                    raise HttpFailure(f"{redact(url)} answered HTTP {response.status} {response.reason or ''}".rstrip())
                yield response
                return
            finally:
                response.close()  # its connection too: nothing is kept between downloads
        finally:
            pool.clear()
    raise HttpFailure(f"{redact(url)}: more than {MAX_REDIRECTS} redirects")


def _joined(base: str, location: str) -> str:
    try:
        return urljoin(base, location)
    except ValueError:
        return location  # refused, cleanly, by the next hop's parsed_url


def parsed_url(url: str) -> SplitResult | None:
    """The URL's parts; None when it cannot be one (a hostile Location: a bad port, a stray `[`), or when urllib3,
    which makes the connection, would read another host or port than urlsplit, which decides who gets a token
    (`https://evil.example\\@hub.example/`: a proxy would be asked for evil.example)."""
    try:
        parts = urlsplit(url)
        port = parts.port
        connected = parse_url(url)
    except (ValueError, LocationParseError):
        return None
    same = (connected.host or "").strip("[]").lower() == (parts.hostname or "").lower() and connected.port == port
    return parts if same and "\\" not in parts.netloc else None


def _send(pool: urllib3.PoolManager, url: str, headers: dict[str, str], net: NetSettings) -> Response:
    timeout = urllib3.Timeout(connect=net.timeout, read=net.timeout)
    try:
        with warnings.catch_warnings():  # `verify_peer: false` is the Cortexfile's choice, said at validate
            warnings.simplefilter("ignore", InsecureRequestWarning)
            return pool.request(
                "GET", url, headers=headers, redirect=False, retries=False, preload_content=False, timeout=timeout
            )
    except HTTPError as exc:
        raise HttpFailure(f"{redact(url)}: {failure_reason(exc)}") from None


# Most specific first: urllib3's own messages include the path and query, so none is quoted.
REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (NewConnectionError, "cannot connect"),
    (ReadTimeoutError, "the server sent nothing for too long"),
    (ProtocolError, "the connection broke before the end of the file"),
)


def failure_reason(exc: BaseException) -> str:
    """Why a transfer failed, in words that quote no URL; a TLS failure says what the check found."""
    tls = _ssl_error(exc)
    where = "the proxy: " if isinstance(exc, ProxyError) else ""
    if tls is not None:
        return f"{where}TLS verification failed: {_tls_words(tls)}"
    if isinstance(exc, ProxyError):
        inner = next((arg for arg in exc.args if isinstance(arg, BaseException)), None)
        return where + (failure_reason(inner) if inner is not None else "it refused the connection")
    reason = next((text for kind, text in REASONS if isinstance(exc, kind)), None)
    cause = _os_words(exc.__cause__ or exc.__context__)
    if reason is not None:
        return f"{reason}: {cause}" if cause else reason
    return _os_words(exc) or type(exc).__name__


def _os_words(exc: BaseException | None) -> str | None:
    """A socket error's own words ("Connection refused", a proxy's "407 Proxy Authentication Required"),
    never urllib3's, which quote the URL."""
    if not isinstance(exc, OSError) or isinstance(exc, HTTPError):
        return None
    if exc.strerror:
        return exc.strerror
    text = str(exc)
    return text if text and "://" not in text else None


def _ssl_error(exc: BaseException | None) -> ssl.SSLError | None:
    """The ssl module's error inside urllib3's wrappers (their args, or the exception's cause)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, ssl.SSLError):
            return exc
        inner = [arg for arg in exc.args if isinstance(arg, BaseException)]
        exc, seen = (inner[0] if inner else exc.__cause__ or exc.__context__), seen + 1
    return None


def _tls_words(error: ssl.SSLError) -> str:
    detail = error.verify_message if isinstance(error, ssl.SSLCertVerificationError) else None
    return " ".join(part for part in (error.reason, detail) if part) or "the handshake failed"


def _checked_address(url: str, parts: SplitResult, public_origin: bool | None) -> str:
    """The address to connect to for this hop: resolved once, and for a redirect from a public host, public."""
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise HttpFailure(f"{redact(url)}: cannot resolve the host ({getattr(exc, 'strerror', None) or exc})") from None
    addresses = [str(info[4][0]) for info in found]
    if public_origin and not all(is_public(address) for address in addresses):
        raise HttpFailure(
            f"{redact(url)}: a redirect from a public host to a loopback, private or link-local address is refused"
        )
    return addresses[0]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: str) -> bool:
    """A global address, and so is any IPv4 address it carries (mapped, NAT64, 6to4, Teredo): Python calls
    64:ff9b::a00:1 global, and a NAT64 gateway takes it to 10.0.0.1."""
    ip = ipaddress.ip_address(address)
    if not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    carried = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64:
        carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return all(inner.is_global for inner in carried if inner is not None)


class _Deadline:
    """A connection that ends at `deadline_s` after it starts connecting, unless the response's headers have
    come: the socket is shut down, and the waiting read fails at once. `address`: connect there, not to what
    the host name resolves to now (the Host header and TLS still name the host)."""

    deadline_s: float = 60.0
    address: str | None = None
    _timer: threading.Timer | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.address is not None:
            self._dns_host = self.address

    def connect(self) -> None:
        self._timer = threading.Timer(self.deadline_s, self._too_slow)
        self._timer.daemon = True
        self._timer.start()
        super().connect()  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().close()  # type: ignore[misc]

    def _too_slow(self) -> None:
        sock = getattr(self, "sock", None)
        if sock is not None:
            with suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


def _pool_classes(deadline_s: float, address: str | None) -> dict[str, type[HTTPConnectionPool]]:
    settings = {"deadline_s": deadline_s, "address": address}
    plain = type("DeadlineHTTPConnection", (_Deadline, HTTPConnection), settings)
    tls = type("DeadlineHTTPSConnection", (_Deadline, HTTPSConnection), settings)
    return {
        "http": type("DeadlineHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
        "https": type("DeadlineHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
    }


def _pool(parts: SplitResult, net: NetSettings, address: str | None) -> urllib3.PoolManager:
    # urllib3 matches host names itself unless told not to: `verify_host: false` must say so.
    server_names = None if net.tls.check_hostname else False
    proxy = net.proxy
    if proxy is None or proxy.bypasses(parts.hostname or ""):
        manager = urllib3.PoolManager(ssl_context=net.tls, assert_hostname=server_names)
    else:
        manager = urllib3.ProxyManager(
            f"{proxy.scheme}://{proxy.host}:{proxy.port}",
            proxy_headers={"Proxy-Authorization": proxy.authorization} if proxy.authorization else None,
            proxy_ssl_context=proxy.tls,
            proxy_assert_hostname=None if proxy.tls is None or proxy.tls.check_hostname else False,
            ssl_context=net.tls,
            assert_hostname=server_names,
        )
    manager.pool_classes_by_scheme = _pool_classes(net.timeout, address)
    return manager


def _headers(parts: SplitResult, net: NetSettings) -> dict[str, str]:
    headers = {"User-Agent": net.user_agent, "Accept-Encoding": "identity"}
    token = net.authorization_for(parts)
    if token:
        headers["Authorization"] = token
    return headers
