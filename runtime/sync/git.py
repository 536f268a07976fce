"""Git, run the careful way: no system or user config, no prompts, no hooks, only the transports the schema
allows, objects checked as they arrive, a deadline on every command, and output bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..ops.text import printable

FETCH_S = 180.0
LOCAL_S = 30.0
MAX_FILE = 1 << 20  # a Cortexfile larger than this is not one
SAFE_CONFIG = (
    "protocol.allow=never", "protocol.https.allow=always", "protocol.ssh.allow=always",
    "protocol.file.allow=always",  # never git:// or http:// (nor a redirect to http://): anyone on the path
    "gc.auto=0",  # no detached gc outliving the deadline: the mirror is pruned by prune(), under one
    "core.hooksPath=/dev/null", "transfer.fsckObjects=true", "core.fsmonitor=false", "credential.helper=",
    "http.lowSpeedLimit=1000", "http.lowSpeedTime=60",  # a remote that drips is dropped
    "fetch.unpackLimit=1",  # what a fetch brings lands in one pack file, whose growth is watched
    "http.followRedirects=false",  # git would send sync.token on to wherever a redirect points
)  # fmt: skip
MAX_OUTPUT = 1 << 20
APPLIED_REF = "refs/cortex/applied"
UNREADABLE_REMOTE = "fatal: Could not read from remote repository"
POLL_S = 0.2
Watch = Callable[[], str | None]  # a reason to stop a running git, or None


class GitError(Exception):
    """A git command that failed; its message is git's own last line, printable."""


class Git:
    def __init__(self, mirror: Path, environ: Mapping[str, str] | None = None, config: Sequence[str] = ()) -> None:
        self.mirror = mirror
        self.config = tuple(config)
        home = mirror.parent
        self.env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),  # no user config: ~/.gitconfig would be this folder's, and it has none
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=20 -o ServerAliveInterval=15 "
            "-o ServerAliveCountMax=4",
            "LC_ALL": "C",
            **(environ or {}),
        }

    def with_env(self, extra: Mapping[str, str]) -> Git:
        return Git(self.mirror, {**self.env, **extra}, self.config)

    def with_config(self, *items: str) -> Git:
        return Git(self.mirror, self.env, (*self.config, *items))

    def run(self, args: Sequence[str], timeout: float = LOCAL_S, stop_when: Watch | None = None) -> str:
        """git's output; GitError with git's own last line when it fails."""
        done = self._exec(args, timeout, stop_when)
        if done.returncode != 0:
            raise GitError(_last_line(done.stderr) or f"git {args[0]} failed ({done.returncode})")
        return done.stdout.decode("utf-8", "replace")

    def ensure_mirror(self) -> None:
        if not (self.mirror / "HEAD").is_file():
            self.mirror.mkdir(parents=True, exist_ok=True)
            self.run(["init", "--bare", "-q", str(self.mirror)])

    def fetch(self, url: str, branch: str, max_bytes: int) -> str:
        """The branch's tip after fetching it (history the remote rewrote is taken as it is now); stopped once
        the objects it brings pass `max_bytes`."""
        ref = f"refs/remotes/origin/{branch}"
        objects = self.mirror / "objects"
        limit = _folder_bytes(objects) + max_bytes

        def too_large() -> str | None:
            return None if _folder_bytes(objects) <= limit else f"it brought more than {max_bytes >> 20} MiB"

        args = ["fetch", "--quiet", "--no-tags", "--force", "--", url, f"+refs/heads/{branch}:{ref}"]
        try:
            self.run(args, FETCH_S, stop_when=too_large)
        except GitError as exc:
            _remove_partial_packs(objects / "pack")
            raise GitError(f"fetching {branch} from {url} failed: {exc}") from None
        return self.run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]).strip()

    def trailers(self, commit: str, keys: Sequence[str]) -> tuple[int, list[list[str]]]:
        """The commit's committer time (seconds since the epoch) and, for each key, the values of its message's
        trailers by that name, as git parses them."""
        fields = "%x00".join(f"%(trailers:key={key},valueonly,unfold,separator=%x1f)" for key in keys)
        out = self.run(["show", "-s", "--no-show-signature", f"--format=%ct%x00{fields}", commit, "--"])
        committed, *values = out.rstrip("\n").split("\x00")
        return int(committed), [[value.strip() for value in field.split("\x1f") if value.strip()] for field in values]

    def pin(self, commit: str) -> None:
        """Keep `commit` (the applied one) and its history through any prune."""
        self.run(["update-ref", APPLIED_REF, commit])

    def prune_above(self, max_bytes: int) -> None:
        """When the mirror's objects pass `max_bytes`, keep only what its refs reach (the applied commit's
        history and the last fetched branch): history a remote sent and then replaced goes."""
        if _folder_bytes(self.mirror / "objects") > max_bytes:
            self.run(["gc", "--quiet", "--prune=now"], FETCH_S)

    def descends(self, commit: str, ancestor: str) -> bool:
        return self._exec(["merge-base", "--is-ancestor", ancestor, commit], LOCAL_S).returncode == 0

    def file_at(self, commit: str, path: str) -> bytes:
        spec = f"{commit}:{path}"
        if self._exec(["cat-file", "-t", spec], LOCAL_S).stdout.strip() != b"blob":
            raise GitError(f"commit {commit[:12]} has no file {path}")
        if int(self.run(["cat-file", "-s", spec]).strip()) > MAX_FILE:
            raise GitError(f"{path} at {commit[:12]} is larger than 1 MiB")
        return self._exec(["cat-file", "blob", spec], LOCAL_S).stdout

    def _exec(
        self, args: Sequence[str], timeout: float, stop_when: Watch | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """git in a process group of its own: on timeout, or once `stop_when` gives a reason, the whole group
        goes (git's remote helpers and ssh too, which would otherwise outlive it)."""
        config = [part for item in (*SAFE_CONFIG, *self.config) for part in ("-c", item)]
        command = ["git", *config, "--git-dir", str(self.mirror), *args]
        deadline = time.monotonic() + timeout
        with subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True) as process:  # fmt: skip
            while True:
                try:
                    out, err = process.communicate(timeout=min(POLL_S, max(deadline - time.monotonic(), 0)))
                    break
                except subprocess.TimeoutExpired:
                    reason = f"took longer than {timeout:.0f} s" if time.monotonic() >= deadline else None
                    reason = reason or (stop_when() if stop_when else None)
                    if reason:
                        os.killpg(process.pid, signal.SIGKILL)
                        process.communicate()
                        raise GitError(f"git {args[0]} stopped: {reason}") from None
        return subprocess.CompletedProcess(command, process.returncode, out[: MAX_FILE + MAX_OUTPUT], err[-MAX_OUTPUT:])


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a temporary file git renamed meanwhile
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _remove_partial_packs(folder: Path) -> None:
    """What a stopped fetch left (git removes its own on a clean failure, not when killed)."""
    for partial in folder.glob("tmp_*"):
        partial.unlink(missing_ok=True)


def _last_line(stderr: bytes) -> str:
    """git's own reason: its first `fatal:` or `error:` line, else its last line; printable, bounded."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith(("fatal:", "error:"))]
    text = (reasons or lines or [""])[0 if reasons else -1]
    said_before = lines.index(text) - 1 if text in lines else -1
    if text.startswith(UNREADABLE_REMOTE) and said_before >= 0:  # ssh's own reason is the line above git's
        text = f"{lines[said_before]} ({text})"
    return printable(text, 300)
