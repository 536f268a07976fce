"""Is a commit signed by one of the Cortexfile's trusted keys? `git verify-commit` decides, with a keyring made
of those keys alone: an allowed-signers file for SSH keys, a private GnuPG home for OpenPGP key files."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .git import LOCAL_S, Git, GitError


def verify(git: Git, commit: str, keys: Sequence[str], folder: Path) -> None:
    """GitError naming the commit when no trusted key signed it."""
    ssh_keys = [key for key in keys if not key.startswith("/")]
    pgp_files = [Path(key) for key in keys if key.startswith("/")]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o700)
    allowed = folder / "allowed_signers"
    allowed.write_text("".join(f'* namespaces="git" {key}\n' for key in ssh_keys), encoding="utf-8")
    gnupg = folder / "gnupg"
    gnupg.mkdir(mode=0o700)
    for key_file in pgp_files:
        _import(key_file, gnupg)
    env = {"GNUPGHOME": str(gnupg)}
    done = git.with_env(env)._exec(["-c", "gpg.ssh.allowedSignersFile=" + str(allowed), "verify-commit", "--raw",
                                    commit], LOCAL_S)  # fmt: skip
    if done.returncode != 0:
        raise GitError(f"commit {commit[:12]} is not signed by a trusted key")


def _import(key_file: Path, gnupg: Path) -> None:
    try:
        done = subprocess.run(["gpg", "--batch", "--quiet", "--import", str(key_file)], env={"GNUPGHOME": str(gnupg)},
                              capture_output=True, timeout=LOCAL_S, check=False)  # fmt: skip
    except FileNotFoundError:
        raise GitError("an OpenPGP trusted key needs gpg, which is not installed") from None
    if done.returncode != 0:
        raise GitError(f"cannot read the trusted key {key_file}")
