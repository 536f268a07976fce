"""`sync:` a device that follows a Git repository: `cortex sync` fetches it, applies a commit only when a trusted
key signed it and its Cortexfile passes the checks a reload makes, and keeps serving the last good one."""

from __future__ import annotations

import re
import ssl
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, model_validator

from ..secrets import Secret
from .base import Applies, Section, setting, word_rule

# What git may fetch from: https, ssh, and file for a local mirror. Never `git://` or `http://` (anyone on the
# path could withhold commits or serve old ones unseen), `ext::` (runs a command) or any other transport: git is
# also told so (protocol.allow) when it runs.
_URL = r"(https|ssh|file)://[^\s\x00-\x1f\x7f]{1,2000}"
_PLAIN = re.compile(r"(git|http)://", re.IGNORECASE)
_PEM_CERTIFICATES = re.compile(
    r"(\s*-----BEGIN CERTIFICATE-----\s*[A-Za-z0-9+/=\s]{1,16000}-----END CERTIFICATE-----\s*){1,16}"
)
_KEY_TYPE = r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com)"
_SSH_KEY = re.compile(_KEY_TYPE + r" [A-Za-z0-9+/]+={0,3}( [\x20-\x7e]{0,200})?")


# A known_hosts line: host patterns ([host]:port, hashed |1|..., wildcards), a key type and the key. No marker
# (@cert-authority, @revoked) and nothing after the key: ssh reads this file, and one line pins one host key.
_KNOWN_HOST = re.compile(r"[A-Za-z0-9.:\[\]*?!,|=/+_-]{1,1000} " + _KEY_TYPE + r" [A-Za-z0-9+/]+={0,3}")


def _known_host(value: str) -> str:
    if not _KNOWN_HOST.fullmatch(value):
        raise ValueError(
            "a known_hosts line: `HOST KEYTYPE KEY`, such as `[git.example]:2222 ssh-ed25519 AAAA...` (ssh-keyscan's "
            "output, checked out of band), with no marker and no comment"
        )
    return value


def _trusted_key(value: str) -> str:
    """An SSH public key line, or the absolute path of an armored OpenPGP public key file."""
    if _SSH_KEY.fullmatch(value):
        return value
    if re.fullmatch(r"/[A-Za-z0-9._/@+-]{1,500}", value) and ".." not in PurePosixPath(value).parts:
        return value
    raise ValueError(
        "a trusted key is an SSH public key line (ssh-ed25519 AAAA... comment) or the absolute path of an "
        "armored OpenPGP public key file"
    )


def _repository_path(value: str) -> str:
    parts = PurePosixPath(value).parts
    if value.startswith(("/", "-")) or ".." in parts or not re.fullmatch(r"[A-Za-z0-9._/@+-]{1,500}", value):
        raise ValueError(f"`{value[:80]}`: a relative path inside the repository (letters, digits, `._/@+-`)")
    return value


def _encrypted_transport(value: str) -> str:
    if _PLAIN.match(value):
        raise ValueError(
            f"`{value[:80]}`: git:// and http:// are not encrypted, so anyone on the path could hold the device at an "
            "old commit or feed it another branch's; use https://, ssh:// or file://"
        )
    return value


def _ca_certificates(value: str) -> str:
    """PEM certificates only (not, say, a key pasted by mistake), that TLS can load."""
    if not _PEM_CERTIFICATES.fullmatch(value):
        raise ValueError("PEM certificates only: one or more -----BEGIN CERTIFICATE----- blocks, nothing else")
    try:
        ssl.create_default_context(cadata=value)
    except (ssl.SSLError, ValueError):
        raise ValueError("these PEM blocks are not certificates TLS can load") from None
    return value


def _no_credentials(value: str) -> str:
    """A token in the URL would reach /health, state.json, the journal and any ConfigMap made of this file."""
    parts = urlsplit(value)
    if parts.password or parts.query or parts.fragment or (parts.username and parts.scheme != "ssh"):
        raise ValueError("no password, token, query or fragment in the repository URL (a user name is for ssh:// only)")
    return value


GitUrl = Annotated[
    str,
    AfterValidator(_encrypted_transport),
    word_rule(_URL, "a repository URL: https://, ssh:// or file://"),
    AfterValidator(_no_credentials),
]
GitBranch = Annotated[
    str, word_rule(r"(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![/.])", "a branch name (no `..`, no `-` first)")
]
TrustedKey = Annotated[str, AfterValidator(_trusted_key)]
KnownHost = Annotated[str, AfterValidator(_known_host)]
RepositoryPath = Annotated[str, AfterValidator(_repository_path)]
CaCertificates = Annotated[str, AfterValidator(_ca_certificates)]


class Rewrite(StrEnum):
    refuse = "refuse"
    follow = "follow"


class Sync(Section):
    applies = Applies.inert  # read by `cortex sync` at each round, not by the server
    repository: GitUrl | None = setting(None, "Git repository the device follows; unset: no sync.")
    branch: GitBranch = setting("main", "Branch followed.")
    path: RepositoryPath = setting("Cortexfile.yaml", "The Cortexfile's path inside the repository.")
    interval_s: int = setting(60, "Seconds between fetches.", ge=10)
    trusted_keys: list[TrustedKey] = setting(
        [], "Keys whose signed commits are applied: SSH public key lines, or paths of OpenPGP public key files."
    )
    on_rewrite: Rewrite = setting(
        Rewrite.refuse,
        "When the branch no longer descends from the applied commit (a force-push): refuse it and keep "
        "serving, or follow it: a signed commit committed later than the applied one is then applied (never "
        "an older one: a rollback is a new commit).",
    )
    require_not_after: bool = setting(
        False,
        "Apply only commits whose signed message carries a `Cortex-Not-After:` time, and report the applied "
        "one once it passes: a repository that withholds newer commits is then seen (re-sign before it).",
    )
    ca_certificates: CaCertificates | None = setting(
        None, "PEM certificates an https:// repository's certificate may chain to (a private CA), not the system's."
    )
    max_fetch_mb: int = setting(256, "Most megabytes one fetch may bring; a larger one is stopped.", ge=1, le=65536)
    ssh_key: Secret | None = setting(
        None,
        "The deploy key (an OpenSSH private key) of an ssh:// repository: `${file:/etc/cortex/sync-key}`, read "
        "at each fetch and given to ssh alone.",
        lines=True,
    )
    known_hosts: list[KnownHost] = setting(
        [],
        "The ssh:// server's host keys as known_hosts lines: pinned (ssh never learns one on first use).",
        max_length=32,
    )
    token: Secret | None = setting(
        None,
        "An access token for an https:// repository (`${file:...}` or `${env:...}`), sent as the password of "
        "HTTP basic auth to that repository's URL only; never in the URL, the logs or /health.",
    )
    token_user: str = setting(
        "git",
        "The user name sent with `token` (x-access-token for a GitHub App token, oauth2 for GitLab OAuth).",
        pattern=r"^[A-Za-z0-9._@+-]{1,100}$",
    )

    @model_validator(mode="after")
    def _keys_with_a_repository(self) -> Sync:
        if self.repository is not None and not self.trusted_keys:
            raise ValueError("sync.trusted_keys: a repository needs at least one trusted key (no unsigned config)")
        return self

    @model_validator(mode="after")
    def _credentials_for_the_transport(self) -> Sync:
        scheme = urlsplit(self.repository or "").scheme
        if scheme == "ssh" and not self.known_hosts:
            raise ValueError(
                "sync.known_hosts: an ssh:// repository needs its host keys pinned (`ssh-keyscan HOST`, checked out "
                "of band): the device never trusts a host key on first use"
            )
        if scheme != "ssh" and (self.ssh_key is not None or self.known_hosts):
            raise ValueError("sync.ssh_key and sync.known_hosts are for an ssh:// repository")
        if scheme != "https" and self.token is not None:
            raise ValueError("sync.token is for an https:// repository (over ssh://, use sync.ssh_key)")
        return self
