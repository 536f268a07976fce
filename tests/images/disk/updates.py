"""Signed A/B updates for the boot test: updates built by the real `cortex build --format update` from the
image's Cortexfile at a later build.version, served over http from the host's loopback (10.0.2.2 to the guest)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from .fixtures import VERSION, Image, run_build

UPDATE_S = 2400  # download, unpack into the other slot, reboot, load and answer: under emulation, tens of minutes
BROKEN_MODELS = "models:\n  - id: missing\n    source: /nonexistent/model.gguf\n"
SECOND, THIRD = "1.4.3", "1.4.4"  # the versions of the updates after the image's


def build_update(image: Image, folder: Path, store: Path, version: str, models: str | None = None) -> Path:
    """The image's Cortexfile at `version` (other `models`: not baked, a model that cannot load), as a signed update."""
    text = image.cortexfile.read_text().replace(f"version: {VERSION}", f"version: {version}")
    if models is not None:
        head, tail = text.split("models:\n", 1)
        text = head + models + tail[tail.index("target:") :]
        text = text.replace("\nbuild:\n", "\nbuild:\n  bake_models: false\n", 1)
    folder.mkdir(parents=True)
    cortexfile = folder / "Cortexfile.yaml"
    cortexfile.write_text(text)
    out = folder / "update"
    done = run_build(cortexfile, out, store, "--sign-key", str(image.ssh_key), cortex=image.command, format="update")
    assert done.returncode == 0, done.stderr[-3000:]
    return out


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(folder: Path, port: int) -> Iterator[None]:
    """`folder` over http on the loopback `port` while the context lasts."""
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def health(port: int, key: str) -> dict[str, Any]:
    answer = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Authorization": f"Bearer {key}"}, timeout=60)
    body: dict[str, Any] = answer.json()
    return body


def wait_for_health(port: int, key: str, wanted: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any]:
    """/health (as a key holder sees it) once `wanted` holds; through reboots (no answer meanwhile)."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            seen = health(port, key)
            if wanted(seen):
                return seen
        except (httpx.HTTPError, ValueError):
            pass  # rebooting, or loading
        time.sleep(5)
    raise AssertionError(f"/health after {timeout_s:.0f}s: {seen}")


def tampered(update: Path, folder: Path) -> Path:
    """`update`'s files, SHA256SUMS signed by a key the device does not trust: what it must refuse."""
    shutil.copytree(update, folder)
    stranger = folder.parent / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=60)
    (folder / "SHA256SUMS.sig").unlink()
    command = ["ssh-keygen", "-q", "-Y", "sign", "-n", "cortex-update", "-f", str(stranger), str(folder / "SHA256SUMS")]
    subprocess.run(command, check=True, timeout=60)
    return folder
