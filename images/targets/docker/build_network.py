"""The builder stages' network settings file (build/env.sh): the only place build secrets go.

Sourced by the `packages` and `builder` stages before each step that downloads; the final
stage never copies build/, so nothing here reaches the image that ships.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...escape import sh
from .plan import BuildNetworkPlan

CONTEXT_DIR = "/tmp/cortex-build"
EXTRA_CA_NAME = "extra-ca.pem"


def env_script(network: BuildNetworkPlan, system_bundle: str, environ: Mapping[str, str]) -> str:
    """Shell exports for the plan's settings, secrets resolved from `environ` (or their files)."""
    lines = ["# Build-time network settings of the Cortexfile: builder stages only."]
    if network.proxy is not None:
        proxy = sh(network.proxy.resolve(dict(environ)))
        lines += [f"export {name}={proxy}" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")]
    if network.no_proxy:
        hosts = sh(",".join(network.no_proxy))
        lines += [f"export no_proxy={hosts}", f"export NO_PROXY={hosts}"]
    if network.pip_index_url is not None:
        lines.append(f"export PIP_INDEX_URL={sh(network.pip_index_url.resolve(dict(environ)))}")
    if network.has_extra_ca:
        lines += _extra_ca_lines(system_bundle)
    return "\n".join(lines) + "\n"


def _extra_ca_lines(system_bundle: str) -> list[str]:
    extra, bundle = f"{CONTEXT_DIR}/{EXTRA_CA_NAME}", f"{CONTEXT_DIR}/ca-bundle.pem"
    # The distro's bundle may not exist yet (before ca-certificates is installed): extras alone then.
    system, extra, bundle = sh(system_bundle), sh(extra), sh(bundle)
    return [
        f"cat {system} {extra} > {bundle} 2>/dev/null || cp {extra} {bundle}",
        f"export PIP_CERT={bundle} SSL_CERT_FILE={bundle}",
    ]
