"""`cortex migrate`: convert a legacy `.cortexrc` into a Cortexfile, saying what was dropped and why.

A token found in the old file is never copied: it becomes an `${env:NAME}` reference.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML

from .yamlio import parse_text

SCHEMA_LINE = "# yaml-language-server: $schema=https://menlo.ai/cortex/cortexfile.schema.json\n"

_BOOKKEEPING = "update and engine bookkeeping, not needed to start the server"
DROPPED = {
    "logTensorrtLLMPath": "the TensorRT-LLM engine was removed",
    "checkedForUpdateAt": _BOOKKEEPING,
    "checkedForLlamacppUpdateAt": _BOOKKEEPING,
    "latestRelease": _BOOKKEEPING,
    "latestLlamacppRelease": _BOOKKEEPING,
    "llamacppVariant": "the engine build is chosen by target.hardware / target.accelerator",
    "llamacppVersion": "the engine version is pinned by the Cortex release",
    "supportedEngines": "engines are declared under `engines:` and per model",
    "checkedForSyncHubAt": _BOOKKEEPING,
}


def _same(value: Any) -> Any:
    """Copied as written: `cortex validate` then reports a wrong type at its new place."""
    return value


# legacy key -> (dotted Cortexfile key, converter)
MOVED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "logFolderPath": ("logs.path", _same),
    "logLlamaCppPath": ("logs.llama", _same),
    "logOnnxPath": ("logs.onnx", _same),
    "dataFolderPath": ("data.path", _same),
    "maxLogLines": ("logs.max_lines", _same),
    "apiServerHost": ("server.host", _same),
    "apiServerPort": ("server.port", _same),
    "gitHubUserAgent": ("network.github.user_agent", _same),
    "enableCors": ("server.cors.enabled", _same),
    "allowedOrigins": ("server.cors.origins", _same),
    "proxyUrl": ("network.proxy.url", _same),
    "verifyProxySsl": ("network.proxy.verify_ssl", _same),
    "verifyProxyHostSsl": ("network.proxy.verify_host", _same),
    "proxyUsername": ("network.proxy.username", _same),
    "noProxy": ("network.proxy.no_proxy", lambda v: [h.strip() for h in str(v).split(",") if h.strip()]),
    "verifyPeerSsl": ("network.ssl.verify_peer", _same),
    "verifyHostSsl": ("network.ssl.verify_host", _same),
    "sslCertPath": ("server.tls.cert", _same),
    "sslKeyPath": ("server.tls.key", _same),
}

# legacy secret key -> (dotted Cortexfile key, env var the user must set)
SECRETS = {
    "huggingFaceToken": ("network.huggingface.token", "HF_TOKEN"),
    "gitHubToken": ("network.github.token", "GITHUB_TOKEN"),
    "proxyPassword": ("network.proxy.password", "CORTEX_PROXY_PASSWORD"),
}


@dataclass
class Migration:
    config: dict[str, Any] = field(default_factory=lambda: {"version": 1})
    notes: list[str] = field(default_factory=list)

    def put(self, dotted_key: str, value: Any) -> None:
        node = self.config
        *parents, last = dotted_key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    def to_yaml(self) -> str:
        self.config.setdefault("models", [])
        out = io.StringIO()
        yaml = YAML()
        yaml.default_flow_style = False
        yaml.dump(self.config, out)
        return (
            SCHEMA_LINE
            + "# Migrated from .cortexrc by `cortex migrate`. Add your models under `models:`.\n"
            + out.getvalue()
        )


def migrate(text: str, source: str) -> Migration:
    """Convert a legacy .cortexrc (YAML) text. Raises ConfigError if it is not YAML."""
    legacy = parse_text(text, source).data or {}
    migration = Migration()
    if not isinstance(legacy, dict):
        migration.notes.append("the file holds no keys; wrote an empty Cortexfile")
        return migration
    for key, value in legacy.items():
        _migrate_key(migration, key, value)
    return migration


def _migrate_key(migration: Migration, key: str, value: Any) -> None:
    if key in DROPPED:
        migration.notes.append(f"dropped {key}: {DROPPED[key]}")
    elif key in SECRETS:
        target, env_var = SECRETS[key]
        if value in ("", None):
            return
        migration.put(target, f"${{env:{env_var}}}")
        migration.notes.append(f"{key} -> {target}: not copied; set the environment variable {env_var}")
    elif key in MOVED:
        target, convert = MOVED[key]
        if value in ("", None):
            migration.notes.append(f"dropped {key}: empty, the default applies")
            return
        migration.put(target, convert(value))
    else:
        migration.notes.append(f"dropped {key}: not a known .cortexrc option")
