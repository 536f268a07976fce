"""Which secrets a Cortexfile may name, and where they may travel.

A Cortexfile comes from whoever can push to its repository; the environment and the files of the machine
that runs it are the operator's. So a reference written in the file reads only what the operator set aside
for it: `${file:PATH}` below the Cortexfile's own folder, /etc/cortex, /run/secrets or /run/credentials (a
link leading out is refused by the start and build preflights, which look at the disk); `${env:NAME}` of a
secret the file sends to a server only for the usual names (HF_TOKEN, HTTPS_PROXY, ...), `CORTEX_*`, and what
the operator declares
in CORTEX_SECRET_ENV (names, or prefixes ending in `*`). Secrets set by env vars or flags are the operator's
own and free. A token never goes to a hub over plain http, nor a proxy password to an http:// proxy beyond
loopback; a hub endpoint other than Hugging Face's is worth a warning: the token goes there.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import Diagnostic, Origin, Path_, Severity, dotted
from .formats import CONFIG_DIR
from .layers import Merged
from .table import setting_at
from .validate import origin_of_value, value_at

SECRET_ROOTS = (Path(CONFIG_DIR), Path("/run/secrets"), Path("/run/credentials"))
# Secrets the file sends to a server it may name: an env reference here must be one set aside for it.
OUTBOUND = {
    ("network", "huggingface", "token"),
    ("network", "github", "token"),
    ("network", "proxy", "password"),
    ("build", "network", "proxy"),
    ("build", "network", "pip_index_url"),
}
# What these secrets are usually called: the operator set them for exactly this.
USUAL_NAMES = frozenset({
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "PIP_INDEX_URL",
})  # fmt: skip
DECLARED = "CORTEX_SECRET_ENV"
DEFAULT_HUB = "https://huggingface.co"
Problem = tuple[Path_, str, str | None]


def secret_diagnostics(merged: Merged, environ: Mapping[str, str]) -> list[Diagnostic]:
    """Errors for references the file may not make, and the hub-endpoint warning."""
    found = []
    for path, origin in merged.values.items():
        value = value_at(merged.data, path)
        setting = setting_at(path)
        if origin.is_file and setting is not None and setting.is_secret and isinstance(value, str):
            found += [
                Diagnostic(origin, dotted(path), m, h) for m, h in _reference_problems(path, value, origin, environ)
            ]
    found += [Diagnostic(origin_of_value(merged, p), dotted(p), m, h) for p, m, h in _transport_problems(merged.data)]
    return found + _hub_warning(merged)


def _reference_problems(
    path: Path_, value: str, origin: Origin, environ: Mapping[str, str]
) -> Iterator[tuple[str, str | None]]:
    if value.startswith("${file:") and value.endswith("}"):
        target = Path(os.path.normpath(value[7:-1].strip()))
        if not any(_within(target, root) for root in allowed_roots(origin)):
            yield (
                f"a secret file the Cortexfile names must be below its own folder, {', '.join(map(str, SECRET_ROOTS))}",
                "give the secret through an env var or a flag instead, or move the file there",
            )
    elif value.startswith("${env:") and value.endswith("}") and _outbound(path):
        name = value[6:-1].strip()
        if not env_allowed(name, environ):
            yield (
                f"the Cortexfile may send only set-aside env vars to a server: `{name}` is not one",
                f"use HF_TOKEN, HTTPS_PROXY, a CORTEX_* name..., or declare it in {DECLARED} where Cortex runs",
            )


def allowed_roots(origin: Origin) -> tuple[Path, ...]:
    folder = Path(os.path.normpath(Path(origin.source).absolute().parent))
    return (folder, *SECRET_ROOTS)


def env_allowed(name: str, environ: Mapping[str, str]) -> bool:
    if name in USUAL_NAMES or name.startswith("CORTEX_"):
        return True
    declared = [item.strip() for item in environ.get(DECLARED, "").split(",") if item.strip()]
    return any(name == item or (item.endswith("*") and name.startswith(item[:-1])) for item in declared)


def _outbound(path: Path_) -> bool:
    return tuple(part for part in path if isinstance(part, str)) in OUTBOUND


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _transport_problems(data: dict[str, Any]) -> Iterator[Problem]:
    hub = value_at(data, ("network", "huggingface"))
    if isinstance(hub, dict) and hub.get("token") and _in_clear(str(hub.get("endpoint", DEFAULT_HUB))):
        yield (("network", "huggingface", "endpoint"), "the hub token would cross the network in clear text",
               "use an https:// endpoint")  # fmt: skip
    proxy = value_at(data, ("network", "proxy"))
    if isinstance(proxy, dict) and isinstance(proxy.get("url"), str) and _clear_password(proxy):
        yield (("network", "proxy", "url"), "the proxy password would cross the network in clear text",
               "use an https:// proxy, or one on this machine (127.0.0.1)")  # fmt: skip


def _clear_password(proxy: dict[str, Any]) -> bool:
    url = str(proxy["url"])
    return bool(proxy.get("password") or urlsplit(url).password) and _in_clear(url)


def _in_clear(url: str) -> bool:
    """Plain http to another machine (to this one, nothing crosses the network)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host != "localhost"


def _hub_warning(merged: Merged) -> list[Diagnostic]:
    endpoint = value_at(merged.data, ("network", "huggingface", "endpoint"))
    token = value_at(merged.data, ("network", "huggingface", "token"))
    if not token or not isinstance(endpoint, str) or endpoint.rstrip("/") == DEFAULT_HUB:
        return []
    path = ("network", "huggingface", "endpoint")
    message = f"the hub token is sent to {urlsplit(endpoint).hostname}, not Hugging Face: check that it is yours"
    return [Diagnostic(origin_of_value(merged, path), dotted(path), message, severity=Severity.warning)]
