"""A Git remote for `cortex sync` tests: a bare repository, a clone that commits to it (signed with an SSH key,
or not), and `git daemon` serving it over git:// (what a device on another machine fetches from)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .processes import stop


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=60).stdout


class GitRemote:
    def __init__(self, root: Path, name: str = "fleet.git") -> None:
        self.root = root
        self.bare = root / name
        self.work = root / "work"
        git("init", "-q", "--bare", str(self.bare))
        git("init", "-q", "-b", "main", str(self.work))
        for key, value in (("user.email", "ops@example"), ("user.name", "ops"), ("gpg.format", "ssh")):
            git("-C", str(self.work), "config", key, value)

    def commit(
        self, text: str, signing_key: Path | None, *, path: str = "Cortexfile.yaml", message: str = "change"
    ) -> str:
        """Commits `text` as `path` (signed by the SSH key `signing_key`, or unsigned), force-pushed to the bare
        repository's main; the commit id."""
        (self.work / path).write_text(text, encoding="utf-8")
        git("-C", str(self.work), "add", path)
        sign = ["-c", f"user.signingkey={signing_key}", "commit", "-S"] if signing_key else ["commit"]
        git("-C", str(self.work), *sign, "-q", "--allow-empty", "-m", message)
        git("-C", str(self.work), "push", "-q", "--force", str(self.bare), "HEAD:main")
        return git("-C", str(self.work), "rev-parse", "HEAD").strip()

    @contextmanager
    def daemon(self, port: int) -> Iterator[None]:
        """git:// on loopback `port` (a qemu guest reaches it as 10.0.2.2), until the block ends."""
        command = ["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", f"--port={port}",
                   f"--base-path={self.root}", str(self.root)]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield
        finally:
            stop(process, grace_s=10)
