"""Is an update's SHA256SUMS signed by one of device.updates.trusted_keys? ssh-keygen (an SSH signature in the
cortex-update namespace, checked against an allowed-signers file of those keys alone) or gpg (a detached OpenPGP
signature, checked against a private keyring of those key files alone) decides."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .manifest import NAMESPACE

TOOL_S = 60


class UntrustedUpdate(Exception):
    """No trusted key signed the update; the message says so, without the tools' output."""


def verify_ssh(sums: Path, signature: Path, keys: Sequence[str], folder: Path) -> None:
    ssh_keys = [key for key in keys if not key.startswith("/")]
    if not ssh_keys:
        raise UntrustedUpdate("the update has an SSH signature and no SSH key is trusted")
    _fresh(folder)
    allowed = folder / "allowed_signers"
    allowed.write_text("".join(f'{NAMESPACE} namespaces="{NAMESPACE}" {key}\n' for key in ssh_keys), encoding="utf-8")
    command = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", NAMESPACE, "-n", NAMESPACE, "-s", str(signature)]
    with sums.open("rb") as message:
        done = _run(command, stdin=message)
    if done.returncode != 0:
        raise UntrustedUpdate("the update is not signed by a trusted key")


def verify_pgp(sums: Path, signature: Path, keys: Sequence[str], folder: Path) -> None:
    key_files = [Path(key) for key in keys if key.startswith("/")]
    if not key_files:
        raise UntrustedUpdate("the update has an OpenPGP signature and no OpenPGP key file is trusted")
    _fresh(folder)
    env = {"GNUPGHOME": str(folder)}
    for key_file in key_files:
        if _run(["gpg", "--batch", "--quiet", "--import", str(key_file)], env=env).returncode != 0:
            raise UntrustedUpdate(f"cannot read the trusted key {key_file}")
    done = _run(["gpg", "--batch", "--status-fd", "1", "--verify", str(signature), str(sums)], env=env)
    revoked = any(f"[GNUPG:] {word} ".encode() in done.stdout for word in ("REVKEYSIG", "EXPKEYSIG", "EXPSIG"))
    if done.returncode != 0 or b"[GNUPG:] VALIDSIG " not in done.stdout or revoked:
        raise UntrustedUpdate("the update is not signed by a trusted key")


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o700)


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(command, capture_output=True, timeout=TOOL_S, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]
    except FileNotFoundError:
        raise UntrustedUpdate(f"{command[0]} is not installed: the update's signature cannot be checked") from None
    except subprocess.TimeoutExpired:
        raise UntrustedUpdate(f"{command[0]} took over {TOOL_S} s to check the signature") from None
