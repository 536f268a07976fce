"""Host checks of one phase, run first by `cortex start` / `cortex build` and by
`cortex validate --preflight PHASE`: only what that phase itself needs."""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path

from .data_folder import data_dir, find_local, local_candidates
from .errors import Diagnostic, Origin, Path_, dotted
from .loader import Resolved
from .schema.models import SourceKind, source_kind
from .secret_rules import allowed_roots
from .secrets import Secret, SecretUnavailable
from .table import settings

Problem = tuple[Path_, str, str | None]


class Phase(StrEnum):
    start = "start"
    build = "build"


BUILD_SECRETS = {("build", "network", "proxy"), ("build", "network", "pip_index_url")}


def preflight(
    resolved: Resolved, phase: Phase, environ: Mapping[str, str] | None = None, store: Path | None = None
) -> list[Diagnostic]:
    """Host checks of `phase`; `store` is the data folder models are looked up in (default: data.path)."""
    env = dict(os.environ if environ is None else environ)
    data = store or data_dir(resolved.config, env)
    checks = _start_problems(resolved, env, data) if phase is Phase.start else _build_problems(resolved, env, data)
    return [Diagnostic(resolved.origin(path), dotted(path), message, hint) for path, message, hint in checks]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _start_problems(resolved: Resolved, env: dict[str, str], data: Path) -> Iterator[Problem]:
    config = resolved.config
    # The update agent's own (it resolves them each round): the server may not even be able to read them.
    yield from _secret_problems(resolved, env, lambda path: path[0] != "build" and path[:2] != ("device", "updates"))
    for key in ("cert", "key"):
        yield from _readable(("server", "tls", key), getattr(config.server.tls, key))
    yield from _readable(("server", "auth", "api_key_file"), config.server.auth.api_key_file)
    yield from _auth_problems(resolved)
    yield from _local_model_problems(resolved, data)


def _auth_problems(resolved: Resolved) -> Iterator[Problem]:
    server = resolved.config.server
    has_keys = bool(server.auth.api_keys) or server.auth.api_key_file is not None
    if server.cors.enabled and "*" in server.cors.origins and not has_keys:
        yield (
            ("server", "cors", "origins"),
            "`*` lets every web page the user opens call this server, which has no API key",
            "name the origins that may call it, or set server.auth.api_keys",
        )
    if is_loopback(server.host) or has_keys or server.auth.allow_unauthenticated:
        return
    yield (
        ("server", "host"),
        f"refusing to serve on {server.host} without an API key",
        "set server.auth.api_keys or server.auth.api_key_file, bind 127.0.0.1, "
        "or set server.auth.allow_unauthenticated: true",
    )


def _build_problems(resolved: Resolved, env: dict[str, str], data: Path) -> Iterator[Problem]:
    config = resolved.config
    yield from _secret_problems(resolved, env, lambda path: path[:3] in BUILD_SECRETS)
    for index, cert in enumerate(config.build.network.ca_certificates):
        path = ("build", "network", "ca_certificates", index)
        problems = list(_readable(path, cert))
        yield from problems or _pem_certificates(path, cert)
    if config.build.bake_models:
        yield from _local_model_problems(resolved, data)


def _local_model_problems(resolved: Resolved, data: Path) -> Iterator[Problem]:
    """Local models must be there; remote ones are fetched by the phase, not required."""
    for index, model in enumerate(resolved.config.models):
        if source_kind(model.source) is SourceKind.local and find_local(model, data) is None:
            tried = ", ".join(str(p) for p in local_candidates(model, data))
            yield ("models", index, "source"), f"model file not found (looked at {tried})", None


def _secret_problems(
    resolved: Resolved, env: dict[str, str], wanted: Callable[[tuple[str, ...]], bool]
) -> Iterator[Problem]:
    for setting in settings():
        if not setting.is_secret or not wanted(setting.path):
            continue
        value = _get(resolved.config, setting.path)
        items = value if isinstance(value, list) else [value]
        for index, secret in enumerate(items):
            if not isinstance(secret, Secret):
                continue
            path: Path_ = (*setting.path, index) if isinstance(value, list) else setting.path
            try:
                secret.resolve(env, lines=setting.secret_lines)
            except SecretUnavailable as exc:
                yield path, str(exc), None
            else:
                yield from _secret_link_problems(path, secret, resolved.origin(path))


def _secret_link_problems(path: Path_, secret: Secret, origin: Origin) -> Iterator[Problem]:
    """A secret file the Cortexfile names stays where the file may read (secret_rules.py), links followed."""
    if secret.kind != "file" or not origin.is_file:
        return
    real = Path(os.path.realpath(secret.target))
    if not any(real == root or root in real.parents for root in map(_real, allowed_roots(origin))):
        yield path, f"secret file {secret.target} is a link that leads out of the folders the Cortexfile may read", None


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _pem_certificates(path: Path_, file: Path) -> Iterator[Problem]:
    """A CA file goes into the build: it must be PEM certificates (not, say, a credentials file)."""
    try:
        ssl.create_default_context(cadata=file.read_text(encoding="ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        yield path, f"{file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", None


def _readable(path: Path_, file: Path | None) -> Iterator[Problem]:
    if file is None:
        return
    if not file.is_file():
        yield path, f"file not found: {file}", None
    elif not os.access(file, os.R_OK):
        yield path, f"file not readable: {file}", None


def _get(config: object, path: tuple[str, ...]) -> object:
    for part in path:
        config = getattr(config, part)
    return config
