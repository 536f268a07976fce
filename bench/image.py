"""Measure the Debian CPU image built on this machine: its size without a model, layer by layer,
and its cold (no layer cache) and warm (everything cached) build times through `cortex build`.

    .venv/bin/python bench/image.py [--json]

Uses the same real parts as the tests: Podman's Docker-API service, the debootstrap base
(cached), the llama-cpp-python wheel compiled once (scripts/llama-wheel.sh). Builds the official
`debian` variant (no Cortexfile, no model inside). Everything it starts is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from menlo_cortex.images.project_wheel import build_project_wheel  # noqa: E402

from tests.conftest import cache_dir  # noqa: E402
from tests.images.docker_image.engine_parts import PodmanApi, run_cortex, start_podman_service  # noqa: E402
from tests.images.docker_image.localbase import BaseSpec, ensure_base_image  # noqa: E402
from tests.processes import stop  # noqa: E402

TAG = "localhost/cortex-bench:debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
AIM_BYTES = 250 * 1000 * 1000


def wheels(folder: Path) -> Path:
    """The cached llama-cpp-python wheel plus this checkout's wheel, built once for both builds
    (so a teammate's edit between them cannot make the warm build re-run pip)."""
    environ = dict(os.environ, PYTHON=str(ROOT / ".venv" / "bin" / "python"))
    script = [str(ROOT / "scripts" / "llama-wheel.sh")]
    done = subprocess.run(script, env=environ, capture_output=True, text=True, check=True)
    folder.mkdir()
    for wheel in Path(done.stdout.strip()).glob("*.whl"):
        (folder / wheel.name).symlink_to(wheel)
    build_project_wheel(folder)
    return folder


def timed_build(api: PodmanApi, base: str, wheels: Path, *extra: str) -> float:
    args = ["build", "--variant", "debian", "--tag", TAG, "--wheels", str(wheels), "--base-image", base, *extra]
    started = time.monotonic()
    environ = {**os.environ, "DOCKER_HOST": api.docker_host}
    if HOST_CA_BUNDLE.is_file():  # this machine reaches PyPI through a TLS-inspecting proxy
        environ["CORTEX_BUILD__NETWORK__CA_CERTIFICATES"] = str(HOST_CA_BUNDLE)
    done = run_cortex(args, environ)
    if done.returncode != 0:
        raise SystemExit(f"cortex build failed:\n{done.stderr}")
    return time.monotonic() - started


def layers(api: PodmanApi) -> list[dict[str, Any]]:
    history = api.client().api.history(TAG)
    return [
        {"bytes": int(h.get("Size") or 0), "step": (h.get("CreatedBy") or "")[-90:]} for h in history if h.get("Size")
    ]


def measure(api: PodmanApi, scratch: Path) -> dict[str, Any]:
    base = ensure_base_image(BaseSpec(), cache_dir() / "bases")
    folder = wheels(scratch / "wheels")
    cold = timed_build(api, base, folder, "--no-cache")
    # Podman does not keep a --no-cache build's steps as cache: the next build fills it.
    refill = timed_build(api, base, folder)
    warm = timed_build(api, base, folder)
    size = int(api.client().images.get(TAG).attrs["Size"])
    base_size = int(api.client().images.get(base).attrs["Size"])
    return {
        "image": TAG,
        "engine": "podman (Docker API) on this machine",
        "size_bytes": size,
        "base_bytes": base_size,
        "aim_bytes": AIM_BYTES,
        "under_aim": size < AIM_BYTES,
        "cold_build_s": round(cold, 1),
        "rebuild_after_cold_s": round(refill, 1),
        "warm_build_s": round(warm, 1),
        "layers": layers(api),
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['image']}: {result['size_bytes'] / 1e6:.1f} MB without a model "
        f"(aim {result['aim_bytes'] / 1e6:.0f} MB: {'met' if result['under_aim'] else 'MISSED'}); "
        f"base {result['base_bytes'] / 1e6:.1f} MB",
        f"cold build {result['cold_build_s']} s (no layer cache, prebuilt llama-cpp-python wheel), "
        f"warm build {result['warm_build_s']} s (every step cached; the first rebuild after the cold one: "
        f"{result['rebuild_after_cold_s']} s)",
    ]
    lines += [f"  {layer['bytes'] / 1e6:8.1f} MB  {layer['step']}" for layer in result["layers"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cortex-bench-") as folder:
        process, api = start_podman_service(Path(folder), "unqualified-search-registries = []\n")
        before = set(api.podman("images", "--all", "--quiet", "--no-trunc", check=True).stdout.split())
        try:
            result = measure(api, Path(folder))
        finally:
            after = set(api.podman("images", "--all", "--quiet", "--no-trunc", check=True).stdout.split())
            for image_id in after - before:
                api.podman("image", "rm", "--force", image_id)
            api.close()
            stop(process)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
