"""`--push REF`: the OCI layout's image index, every platform, to a registry, by skopeo (the registry
protocol and its authentication are skopeo's: credentials from the usual auth files, never from us).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

PUSH_TIMEOUT_S = 3600


class PushError(RuntimeError):
    """The registry refused the image, or could not be reached; the message says which."""


def push(layout: Path, tag: str, destination: str, environ: Mapping[str, str]) -> str:
    """Copy the index tagged `tag` in `layout` to `destination`; the line to print."""
    skopeo = shutil.which("skopeo", path=environ.get("PATH"))
    if skopeo is None:
        raise PushError("pushing an OCI image needs skopeo (apt-get install skopeo)")
    command = [skopeo, "copy", "--all", "--preserve-digests", "--retry-times", "2"]
    command += [*_auth_file(environ), f"oci:{layout}:{tag}", f"docker://{destination}"]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=dict(environ), timeout=PUSH_TIMEOUT_S
    )
    if done.returncode != 0:
        raise PushError(f"pushing to {destination} failed: {_reason(done.stderr)}")
    return f"pushed {destination}"


def _auth_file(environ: Mapping[str, str]) -> list[str]:
    """Docker's config.json where DOCKER_CONFIG points (skopeo reads its own places and ~/.docker itself)."""
    folder = environ.get("DOCKER_CONFIG")
    if folder and (Path(folder) / "config.json").is_file():
        return ["--authfile", str(Path(folder) / "config.json")]
    return []


def _reason(stderr: str) -> str:
    """skopeo's last error line, without its log prefix: the registry's own words (never a credential)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "skopeo gave no reason"
    return last.split("msg=", 1)[-1].strip('"')[-600:]
