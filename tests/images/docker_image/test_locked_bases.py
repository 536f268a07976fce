"""`cortex lock` records the Dockerfile's base images by digest, and `cortex build --format docker
--locked` builds FROM those digests (through Podman's API, re-using the session image's layers)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from .conftest import E2EBuild
from .engine_parts import run_cortex

pytestmark = pytest.mark.slow


def test_locked_builds_name_their_bases_by_digest(e2e_build: E2EBuild, tmp_path: Path) -> None:
    base = e2e_build.args[e2e_build.args.index("--base-image") + 1]
    lock_command = ["lock", "-f", str(e2e_build.cortexfile), "--format", "docker", "--base-image", base]
    written = run_cortex(lock_command, e2e_build.environ)
    assert written.returncode == 0, written.stderr
    lock_file = e2e_build.cortexfile.with_name("Cortexfile.lock")
    locked = tomllib.loads(lock_file.read_text())
    pinned = locked["docker"]["images"][base]
    assert pinned.startswith(base.rsplit(":", 1)[0] + "@sha256:")
    assert "platforms" not in locked  # only what was asked for: no Debian root was built

    context = tmp_path / "context"
    built = run_cortex([*e2e_build.args, "--locked", "--context-dir", str(context)], e2e_build.environ)
    assert built.returncode == 0, built.stderr[-3000:]
    froms = [line for line in (context / "Dockerfile").read_text().splitlines() if line.startswith("FROM ")]
    assert froms
    assert all(line.split()[1] == pinned for line in froms), froms

    del locked["docker"]["images"][base]
    lock_file.write_text(tomli_w.dumps(locked))
    refused = run_cortex(
        [*e2e_build.args, "--locked", "--context-only", "--context-dir", str(tmp_path / "c2")], e2e_build.environ
    )
    assert refused.returncode == 2
    assert f"Cortexfile.lock: docker.images: no digest for {base}: run `cortex lock`" in refused.stderr
    lock_file.unlink()
