"""The repository's credentials, given to git for one round and gone after it: a token in git's environment
(never on its command line, which every user of the machine can read), an ssh deploy key and the pinned host keys
in files only this service can read (ssh takes them from files), under `<data>-sync/credentials`."""

from __future__ import annotations

import base64
import shlex
import shutil
from pathlib import Path

from menlo_cortex.cortexfile.schema.sync import Sync
from menlo_cortex.cortexfile.secrets import Secret, SecretUnavailable

from ..ops.durable import write_atomically
from .git import Git, GitError

FOLDER = "credentials"
SSH_OPTIONS = (
    "BatchMode=yes", "StrictHostKeyChecking=yes", "GlobalKnownHostsFile=/dev/null", "UpdateHostKeys=no",
    "IdentitiesOnly=yes", "IdentityAgent=none", "ConnectTimeout=20", "ServerAliveInterval=15", "ServerAliveCountMax=4",
)  # fmt: skip


def with_credentials(git: Git, settings: Sync, work: Path) -> Git:
    """`git` with what `settings` gives for its repository; GitError when a secret cannot be read."""
    if settings.token is not None:
        git = git.with_env(_token_config(settings, _read(settings.token, "sync.token")))
    if settings.known_hosts:
        git = git.with_env({"GIT_SSH_COMMAND": _ssh_command(settings, work / FOLDER)})
    return git


def forget(work: Path) -> None:
    shutil.rmtree(work / FOLDER, ignore_errors=True)


def _token_config(settings: Sync, token: str) -> dict[str, str]:
    """Basic auth for the repository's URL alone (git's http.<url>.* matching): a redirect elsewhere gets none."""
    basic = base64.b64encode(f"{settings.token_user}:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{settings.repository}.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }


def _ssh_command(settings: Sync, folder: Path) -> str:
    forget(folder.parent)
    folder.mkdir(mode=0o700)
    known = folder / "known_hosts"
    write_atomically(known, "\n".join(settings.known_hosts) + "\n", mode=0o600)
    command = ["ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={known}"]
    command += [part for option in SSH_OPTIONS for part in ("-o", option)]
    if settings.ssh_key is None:
        command += ["-o", "IdentityFile=none"]  # not root's own keys, offered to whatever server the URL names
    else:
        key = _read(settings.ssh_key, "sync.ssh_key", lines=True)
        if not key.startswith("-----BEGIN ") or "PRIVATE KEY-----" not in key:
            raise GitError(f"sync.ssh_key: {settings.ssh_key.described()} is not a private key (OpenSSH or PEM)")
        write_atomically(folder / "key", key + "\n", mode=0o600)
        command += ["-i", str(folder / "key")]
    return shlex.join(command)


def _read(secret: Secret, key: str, *, lines: bool = False) -> str:
    try:
        return secret.resolve(lines=lines)
    except SecretUnavailable as exc:
        raise GitError(f"{key}: {exc}") from None
