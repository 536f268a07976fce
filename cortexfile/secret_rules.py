"""Which secrets a Cortexfile may name, and where they may travel.

A Cortexfile comes from whoever can push to its repository; the environment and the files of the machine
that runs it are the operator's. So a reference written in the file reads only what the operator set aside
for it: `${file:PATH}` below the Cortexfile's own folder, /etc/cortex, /run/secrets or /run/credentials (a
link leading out is refused by the start and build preflights, which look at the disk); `${env:NAME}` of a
secret the file sends to a server only for that setting's usual names (HF_TOKEN for the hub token, ...), its
own CORTEX_ variable, CORTEX_ names that set no other setting, and what the operator declares in
CORTEX_SECRET_ENV (names, or prefixes ending in `*`).
And where such a secret goes is not the file's to choose: a hub endpoint other than Hugging Face's, or a proxy,
written in the file may receive only a secret written there too (or one whose env name the operator declared).
Secrets set by env vars or flags are the operator's own. A token never goes to a hub over plain http, nor a
proxy password to an http:// proxy beyond loopback.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import Diagnostic, Origin, Path_, dotted
from .formats import CONFIG_DIR
from .layers import Merged
from .table import setting_at
from .validate import origin_of_value, value_at

SECRET_ROOTS = (Path(CONFIG_DIR), Path("/run/secrets"), Path("/run/credentials"))
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
# Secrets the file sends to a server, and what each is usually called: the operator set those env vars for
# exactly this setting (and for no other: HTTPS_PROXY is not a hub token).
OUTBOUND: dict[Path_, frozenset[str]] = {
    ("network", "huggingface", "token"): frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}),
    ("network", "github", "token"): frozenset({"GH_TOKEN", "GITHUB_TOKEN"}),
    ("network", "proxy", "password"): frozenset(),
    ("device", "updates", "registry_token"): frozenset(),
    ("build", "network", "proxy"): frozenset(_PROXIES),
    ("build", "network", "pip_index_url"): frozenset({"PIP_INDEX_URL"}),
}
DECLARED = "CORTEX_SECRET_ENV"
DEFAULT_HUB = "https://huggingface.co"
# Where a secret goes, when a setting says: (the secret, the destination, the destination nobody need choose).
DESTINATIONS = (
    (("network", "huggingface", "token"), ("network", "huggingface", "endpoint"), DEFAULT_HUB),
    (("network", "proxy", "password"), ("network", "proxy", "url"), None),
    (("device", "updates", "registry_token"), ("device", "updates", "url"), None),
)
Problem = tuple[Path_, str, str | None]


def secret_diagnostics(merged: Merged, environ: Mapping[str, str]) -> list[Diagnostic]:
    """Errors for references the file may not make, and for secrets it would send where it chose."""
    found = []
    for path, origin in merged.values.items():
        value = value_at(merged.data, path)
        setting = setting_at(path)
        if origin.is_file and setting is not None and setting.is_secret and isinstance(value, str):
            found += [
                Diagnostic(origin, dotted(path), m, h) for m, h in _reference_problems(path, value, origin, environ)
            ]
    problems = [*_transport_problems(merged.data), *_destination_problems(merged, environ)]
    return found + [Diagnostic(origin_of_value(merged, p), dotted(p), m, h) for p, m, h in problems]


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
    elif value.startswith("${env:") and value.endswith("}") and (usual := _usual_names(path)) is not None:
        name = value[6:-1].strip()
        if not env_allowed(name, environ, usual | {_override_name(path)}):
            named = ", ".join(sorted(usual | {_override_name(path)}))
            yield (
                f"the Cortexfile may send only set-aside env vars to a server: `{name}` is not one",
                f"use {named}, a CORTEX_ name of your own, or declare `{name}` in {DECLARED} where Cortex runs",
            )


def allowed_roots(origin: Origin) -> tuple[Path, ...]:
    folder = Path(os.path.normpath(Path(origin.source).absolute().parent))
    return (folder, *SECRET_ROOTS)


def env_allowed(name: str, environ: Mapping[str, str], usual: frozenset[str] | set[str] = frozenset()) -> bool:
    """A usual name, a CORTEX_ name of the operator's (not another setting's own variable, CORTEX_X__Y: the
    API keys are not a hub token), or a declared one."""
    return name in usual or (name.startswith("CORTEX_") and "__" not in name) or declared(name, environ)


def declared(name: str, environ: Mapping[str, str]) -> bool:
    """The operator named it in CORTEX_SECRET_ENV: the file may send it to a server, any server."""
    items = [item.strip() for item in environ.get(DECLARED, "").split(",") if item.strip()]
    return any(name == item or (item.endswith("*") and name.startswith(item[:-1])) for item in items)


def _usual_names(path: Path_) -> frozenset[str] | None:
    """None when the setting's secret is not sent to a server."""
    return OUTBOUND.get(tuple(part for part in path if isinstance(part, str)))


def _override_name(path: Path_) -> str:
    """The env var that sets this setting (CORTEX_NETWORK__HUGGINGFACE__TOKEN): the operator's own."""
    return "CORTEX_" + "__".join(str(part).upper() for part in path)


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


def _destination_problems(merged: Merged, environ: Mapping[str, str]) -> Iterator[Problem]:
    """A destination the file chose (not the default) for a secret that is not the file's own: the operator's
    env or flag, or a reference to the machine's env or files, unless the operator declared that env var."""
    for secret_path, destination_path, default in DESTINATIONS:
        secret, destination = value_at(merged.data, secret_path), value_at(merged.data, destination_path)
        if not secret or not isinstance(destination, str) or destination.rstrip("/") == default:
            continue
        if not origin_of_value(merged, destination_path).is_file:
            continue  # the operator chose it
        if _files_own(merged, secret_path, str(secret), environ):
            continue
        setting = dotted(secret_path)
        yield (destination_path, f"the Cortexfile chose where {setting} goes, but that secret is not the file's own",
               f"set {dotted(destination_path)} where {setting} is set (env or flag), write {setting} in the file, "
               f"or declare its env var in {DECLARED}")  # fmt: skip


def _files_own(merged: Merged, path: Path_, value: str, environ: Mapping[str, str]) -> bool:
    if not origin_of_value(merged, path).is_file:
        return False  # the operator's env or flag
    if value.startswith("${env:") and value.endswith("}"):
        return declared(value[6:-1].strip(), environ)
    return not value.startswith("${file:")
