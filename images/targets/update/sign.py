"""Signing an update's SHA256SUMS with `--sign-key`: an OpenSSH private key (ssh-keygen -Y sign, namespace
cortex-update) or an armored OpenPGP secret key (gpg --detach-sign), the kinds device.updates.trusted_keys and
sync.trusted_keys take the public halves of. The key is read once, kept in a private folder only while it signs."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.secrets import Secret, SecretUnavailable
from menlo_cortex.runtime.update.manifest import NAMESPACE, PGP_SIGNATURE, SSH_SIGNATURE

SSH_PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----"
PGP_PRIVATE = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
SIGN_S = 120


class SigningError(RuntimeError):
    """The update cannot be signed; the message says why, never the key."""


@dataclass(frozen=True, repr=False)
class SigningKey:
    text: str
    kind: str  # ssh | pgp

    @classmethod
    def load(cls, given: str | None, environ: Mapping[str, str]) -> SigningKey:
        """`given`: a file path or a ${env:NAME} / ${file:PATH} reference."""
        if not given:
            raise SigningError("an update is signed: give the private key with --sign-key FILE (or a secret reference)")
        reference = given if given.strip().startswith("${") else f"${{file:{Path(given).resolve()}}}"
        try:
            text = Secret.parse(reference).resolve(dict(environ), lines=True)
        except (SecretUnavailable, ValueError) as exc:
            raise SigningError(f"--sign-key: {exc}") from None
        stripped = text.strip()
        if stripped.startswith(SSH_PRIVATE):
            return cls(stripped + "\n", "ssh")
        if stripped.startswith(PGP_PRIVATE):
            return cls(stripped + "\n", "pgp")
        raise SigningError("--sign-key is neither an OpenSSH private key nor an armored OpenPGP secret key")

    def sign(self, sums: Path) -> Path:
        """The signature file beside `sums`."""
        with tempfile.TemporaryDirectory(prefix="cortex-sign-") as private:
            folder = Path(private)
            os.chmod(folder, 0o700)
            return self._ssh(sums, folder) if self.kind == "ssh" else self._pgp(sums, folder)

    def _ssh(self, sums: Path, folder: Path) -> Path:
        key = folder / "key"
        key.touch(mode=0o600)
        key.write_text(self.text, encoding="utf-8")
        _run(["ssh-keygen", "-q", "-Y", "sign", "-n", NAMESPACE, "-f", str(key), str(sums)], {})
        signature = sums.with_name(SSH_SIGNATURE)
        os.replace(sums.with_name(sums.name + ".sig"), signature)
        return signature

    def _pgp(self, sums: Path, folder: Path) -> Path:
        env = {"GNUPGHOME": str(folder)}
        _run(["gpg", "--batch", "--quiet", "--import"], env, self.text)
        signature = sums.with_name(PGP_SIGNATURE)
        signature.unlink(missing_ok=True)
        _run(["gpg", "--batch", "--quiet", "--detach-sign", "-o", str(signature), str(sums)], env)
        return signature


def _run(command: list[str], env: dict[str, str], stdin: str | None = None) -> None:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=SIGN_S, check=False,
                              env={**os.environ, **env})  # fmt: skip
    except FileNotFoundError:
        raise SigningError(f"{command[0]} is not installed: it signs the update") from None
    except subprocess.TimeoutExpired:
        raise SigningError(f"{command[0]} took over {SIGN_S} s to sign (a key with a passphrase?)") from None
    if done.returncode != 0:
        raise SigningError(f"{command[0]} could not sign the update with --sign-key (a key with a passphrase?)")
