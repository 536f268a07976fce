"""`cortex migrate`: convert a legacy `.cortexrc` into a Cortexfile, saying what was dropped and why.

A token found in the old file is never copied: it becomes an `${env:NAME}` reference.
"""

from __future__ import annotations

import io
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


# legacy key -> dotted Cortexfile key; values are copied as written, so `cortex validate` then
# reports a wrong type at its new place.
MOVED = {
    "logFolderPath": "logs.path",
    "logLlamaCppPath": "logs.llama",
    "logOnnxPath": "logs.onnx",
    "dataFolderPath": "data.path",
    "maxLogLines": "logs.max_lines",
    "apiServerHost": "server.host",
    "apiServerPort": "server.port",
    "gitHubUserAgent": "network.github.user_agent",
    "enableCors": "server.cors.enabled",
    "allowedOrigins": "server.cors.origins",
    "proxyUrl": "network.proxy.url",
    "verifyProxySsl": "network.proxy.verify_ssl",
    "verifyProxyHostSsl": "network.proxy.verify_host",
    "proxyUsername": "network.proxy.username",
    "noProxy": "network.proxy.no_proxy",
    "verifyPeerSsl": "network.ssl.verify_peer",
    "verifyHostSsl": "network.ssl.verify_host",
    "sslCertPath": "server.tls.cert",
    "sslKeyPath": "server.tls.key",
}
# The legacy file spelled this list as one comma-separated string.
COMMA_SEPARATED = {"noProxy"}

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
        target = MOVED[key]
        if value in ("", None):
            migration.notes.append(f"dropped {key}: empty, the default applies")
            return
        if key in COMMA_SEPARATED and isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        migration.put(target, value)
    else:
        migration.notes.append(f"dropped {key}: not a known .cortexrc option")
