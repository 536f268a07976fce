"""A Git remote for `cortex sync` tests: a bare repository, a clone that commits to it (signed with an SSH key,
or not, with the trailers that bind a commit to its branch), and `git http-backend` serving it over https with a
certificate of the test's own (what a device on another machine fetches from)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.http_servers import serving


def git(*args: str, env: Mapping[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=60,
                          env=None if env is None else {**os.environ, **env}).stdout  # fmt: skip


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
        self,
        text: str,
        signing_key: Path | None,
        *,
        path: str = "Cortexfile.yaml",
        message: str = "change",
        trailers: Sequence[str] = ("Cortex-Branch: main",),
        date: str | None = None,
    ) -> str:
        """Commits `text` as `path` (signed by the SSH key `signing_key`, or unsigned; committed at `date`, or
        now), force-pushed to the bare repository's main; the commit id."""
        (self.work / path).write_text(text, encoding="utf-8")
        git("-C", str(self.work), "add", path)
        sign = ["-c", f"user.signingkey={signing_key}", "commit", "-S"] if signing_key else ["commit"]
        added = [part for trailer in trailers for part in ("--trailer", trailer)]
        dates = {"GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date} if date else {}
        git("-C", str(self.work), *sign, "-q", "--allow-empty", "-m", message, *added, env=dates)
        git("-C", str(self.work), "push", "-q", "--force", str(self.bare), "HEAD:main")
        return git("-C", str(self.work), "rev-parse", "HEAD").strip()

    @contextmanager
    def https(
        self, port: int, certificate: Certificate, bytes_per_s: int | None = None, basic_auth: str | None = None
    ) -> Iterator[str]:
        """Smart HTTP over TLS on loopback `port` (a qemu guest reaches it as 10.0.2.2), until the block ends;
        the repository's URL. `bytes_per_s`: answers sent that slowly (a remote that sends a lot); `basic_auth`:
        `user:password` every request must carry (else 401, as a private repository answers)."""
        expected = None if basic_auth is None else "Basic " + base64.b64encode(basic_auth.encode()).decode()
        handler = type("Handler", (_Backend,), {"root": self.root, "bytes_per_s": bytes_per_s, "expected": expected})
        with serving(handler, port, tls=(certificate.cert, certificate.key)) as url:
            yield f"{url}/{self.bare.name}"


class Certificate:
    """A self-signed certificate for loopback as the host and a qemu guest see it (127.0.0.1, 10.0.2.2)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = folder / "git-cert.pem", folder / "git-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=cortex-test-git", "-keyout", str(self.key), "-out",
                        str(self.cert), "-addext", "subjectAltName=IP:127.0.0.1,IP:10.0.2.2"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip

    @property
    def pem(self) -> str:
        return self.cert.read_text(encoding="ascii")


class _Backend(BaseHTTPRequestHandler):
    """`git http-backend` as CGI: the smart HTTP protocol, as a git server speaks it."""

    root: Path
    bytes_per_s: int | None
    expected: str | None  # the Authorization header a private repository requires

    def do_GET(self) -> None:
        self._run()

    def do_POST(self) -> None:
        self._run()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _run(self) -> None:
        if self.expected is not None and self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="fleet"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(self.root),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}  # fmt: skip
        done = subprocess.run(
            ["git", "http-backend"], check=False, input=body, env=env, capture_output=True, timeout=120
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        fields = [line.decode("latin-1").partition(":") for line in head.split(b"\r\n") if line]
        status = next((int(value.split()[0]) for name, _, value in fields if name.lower() == "status"), 200)
        self.send_response(status)
        for name, _, value in fields:
            if name.lower() != "status":
                self.send_header(name, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self._send(payload)

    def _send(self, payload: bytes) -> None:
        if self.bytes_per_s is None:
            self.wfile.write(payload)
            return
        piece = max(self.bytes_per_s // 20, 1)
        try:
            for start in range(0, len(payload), piece):
                self.wfile.write(payload[start : start + piece])
                time.sleep(0.05)
        except OSError:  # the client gave up: what the test wants
            pass


SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey /etc/ssh/test/host
AuthorizedKeysFile /etc/ssh/test/authorized
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
"""


@contextmanager
def ssh_server(
    bare: Path, device_root: Path, authorized_key: str, folder: Path, port: int
) -> Iterator[tuple[str, str]]:
    """A real OpenSSH server (the device root's own sshd and git, run in a private mount namespace over an overlay
    of that root, which stays as it is) serving `bare` on loopback `port` to the holder of `authorized_key`; the
    repository's ssh:// URL and the known_hosts line that pins the server's host key."""
    folder.mkdir(parents=True)
    key = folder / "host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=60)
    upper, work, merged = (folder / name for name in ("upper", "work", "merged"))
    test_dir = upper / "etc" / "ssh" / "test"
    test_dir.mkdir(parents=True)
    (upper / "run" / "sshd").mkdir(parents=True)
    (upper / "srv" / "fleet.git").mkdir(parents=True)
    shutil.copy(key, test_dir / "host")
    (test_dir / "authorized").write_text(authorized_key + "\n", encoding="utf-8")
    (test_dir / "sshd_config").write_text(SSHD_CONFIG.format(port=port), encoding="utf-8")
    script = (
        f"set -e; mount -t overlay overlay -o lowerdir={device_root},upperdir={upper},workdir={work} {merged}; "
        f"mount --bind {bare} {merged}/srv/fleet.git; mount --rbind /dev {merged}/dev; "
        f"mount -t proc proc {merged}/proc; "
        f"exec chroot {merged} /usr/sbin/sshd -D -e -f /etc/ssh/test/sshd_config"
    )
    work.mkdir()
    merged.mkdir()
    log = (folder / "sshd.log").open("wb")
    # setpriv: sshd (this very process, after the execs) ends with the test run, even a killed one
    command = ["setpriv", "--pdeathsig", "TERM", "unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, folder / "sshd.log")
        kind, public = (folder / "host.pub").read_text(encoding="ascii").split()[:2]
        yield f"ssh://root@127.0.0.1:{port}/srv/fleet.git", f"[127.0.0.1]:{port} {kind} {public}"
    finally:
        process.terminate()
        log.close()
        process.wait(timeout=30)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("sshd did not listen within 30 s")
