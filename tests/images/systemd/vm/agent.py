"""A command channel into the VM without ssh: the guest polls the test's HTTP server on the host
(slirp's 10.0.2.2 is the host's loopback) for a command, runs it, and posts the result back."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GUEST_SCRIPT = """\
import json, subprocess, sys, time, urllib.request
base = sys.argv[1]
while True:
    try:
        with urllib.request.urlopen(base + "/next", timeout=10) as response:
            job = json.load(response) if response.status == 200 else None
    except OSError:
        job = None
    if job is None:
        time.sleep(1)
        continue
    done = subprocess.run(job["argv"], capture_output=True, text=True)
    result = {"id": job["id"], "rc": done.returncode, "stdout": done.stdout[-20000:], "stderr": done.stderr[-20000:]}
    request = urllib.request.Request(base + "/result", data=json.dumps(result).encode(), method="POST")
    urllib.request.urlopen(request, timeout=30).close()
"""

GUEST_UNIT = """\
[Unit]
Description=Test agent: runs the host test's commands
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/cortex-test-agent.py http://10.0.2.2:{port}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


def install_guest_agent(root: Path, port: int) -> None:
    (root / "usr/local/lib").mkdir(parents=True, exist_ok=True)
    (root / "usr/local/lib/cortex-test-agent.py").write_text(GUEST_SCRIPT, encoding="utf-8")
    (root / "etc/systemd/system/cortex-test-agent.service").write_text(GUEST_UNIT.format(port=port), encoding="utf-8")
    wants = root / "etc/systemd/system/multi-user.target.wants/cortex-test-agent.service"
    wants.symlink_to("/etc/systemd/system/cortex-test-agent.service")


class Agent:
    """The host side: `run(argv, timeout)` hands a command to the guest and waits for its result."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[dict[str, Any]] = queue.Queue()
        self._results: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> Agent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def run(self, argv: list[str], timeout: float) -> Result:
        self._next_id += 1
        self._jobs.put({"id": self._next_id, "argv": argv})
        while True:
            try:
                result = self._results.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"the guest did not finish {argv} within {timeout:.0f}s") from None
            if result["id"] == self._next_id:
                return Result(result["rc"], result["stdout"], result["stderr"])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        jobs, results = self._jobs, self._results

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    body = json.dumps(jobs.get(timeout=5)).encode()
                except queue.Empty:
                    self.send_response(204)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                results.put(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
