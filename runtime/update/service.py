"""`cortex update run|check|status`: the device's update agent, wired from the Cortexfile (device.updates, the
server's port, keys and models) to the device's real slots and boot partition."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable

from menlo_cortex.cortexfile.data_folder import data_dir, sync_dir
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.secrets import SecretUnavailable

from menlo_cortex.exits import Exit

from ..fetch.netsettings import net_settings
from ..http.auth import read_key_file
from ..sync.state import STATE_FILE
from .agent import Settings, reconcile, run_round
from .check import Server, probes, record_failure, run_check
from .slots import Device
from .source import Login
from .state import FAILED, UpdateState

log = logging.getLogger("cortex.update")


def run_update(resolved: Resolved) -> int:
    _journal()
    updates = resolved.config.device.updates
    device = Device()
    if updates.url is None:
        state = UpdateState.load(device.state_folder)
        reconcile(state, device)
        state.save(device.state_folder)
        log.info("update: device.updates.url is not set: nothing to check")
        return Exit.OK
    url = updates.url
    sync_state = sync_dir(data_dir(resolved.config, resolved.inputs.environ)) / STATE_FILE
    try:
        net = net_settings(resolved.config.network, resolved.inputs.environ)
        token = updates.registry_token.resolve(dict(resolved.inputs.environ)) if updates.registry_token else None
    except SecretUnavailable as exc:
        log.error("update: %s", exc)
        return Exit.CONFIG
    if token == "":
        log.error("update: device.updates.registry_token is empty")
        return Exit.CONFIG
    login = Login(updates.registry_user, token) if token is not None else None
    settings = Settings(url, tuple(updates.trusted_keys), updates.window, sync_state, login)
    installed = run_round(settings, device, net, _reboot)
    state = UpdateState.load(device.state_folder)
    return Exit.OK if installed or state.state != FAILED else Exit.FAILURE


def run_boot_check(load: Callable[[], Resolved]) -> int:
    """Only a slot on trial is checked, and only then is its Cortexfile read: its unit reboots the device when this
    fails, so a Cortexfile that does not load on a kept version must not fail it."""
    _journal()
    device = Device()
    try:
        trial = device.on_trial()
    except Exception:
        log.exception("update check: cannot tell whether this slot is on trial; taken as kept")
        return Exit.OK
    if not trial:
        log.info("update check: slot %s is not on trial; nothing to prove", device.booted_slot())
        return Exit.OK
    try:
        resolved = load()
    except ConfigError as exc:
        record_failure(device, f"its Cortexfile does not load ({len(exc.diagnostics)} problems: `cortex validate`)")
        return Exit.FAILURE
    config = resolved.config
    scheme = "https" if config.server.tls.cert is not None else "http"
    server = Server(f"{scheme}://{_local_host(config.server.host)}:{config.server.port}", _a_key(resolved))
    kinds = [(m.id, "embeddings" if m.embeddings else "rerank" if m.rerank else "chat") for m in config.models]
    kept = run_check(device, server, probes(kinds), config.device.updates.ready_timeout_s, _service_failed)
    return Exit.OK if kept else Exit.FAILURE


def print_status() -> int:
    device = Device()
    state = UpdateState.load(device.state_folder)
    shown = {"slot": device.booted_slot(), **state.public(details=True)}
    print(json.dumps(shown, indent=1))
    return Exit.OK


def _a_key(resolved: Resolved) -> str | None:
    auth = resolved.config.server.auth
    for secret in auth.api_keys:
        try:
            return secret.with_base(resolved.path.parent).resolve(dict(resolved.inputs.environ))
        except SecretUnavailable:
            continue
    if auth.api_key_file is not None:
        try:
            keys = read_key_file(auth.api_key_file)
        except (OSError, UnicodeDecodeError):
            keys = ()
        return keys[0] if keys else None
    return None


def _local_host(host: str) -> str:
    """Where this machine reaches its own server: loopback when it listens on every address."""
    if host in ("0.0.0.0", "", "*"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _journal() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def _service_failed() -> bool:
    done = subprocess.run(["systemctl", "is-failed", "--quiet", "cortex.service"], check=False, timeout=60)
    return done.returncode == 0


def _reboot() -> None:
    subprocess.run(["systemctl", "reboot"], check=False, timeout=60)
