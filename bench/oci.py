"""Measure `cortex build --format oci` on this machine, each figure beside its baseline in the same run:

- build time: cold (empty layer cache), unchanged, and after an edit of the Cortexfile alone (aim < 2 s);
- the model's layer (253 MB test model) against a plain copy of the model file (aim: within 1.5x);
- image size per architecture, with and without the model, loaded into Podman; with --docker, next to
  the Dockerfile path's image of the same `debian` variant (built through Podman's API; minutes);
- the index digest over --builds builds, every other one with an empty layer cache (aim: one value).

    .venv/bin/python bench/oci.py [--platform linux/amd64,linux/arm64] [--builds 10] [--docker] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from menlo_cortex.images.reproducible import add_file  # noqa: E402
from menlo_cortex.images.targets.oci.layers import write_layer  # noqa: E402

from tests.conftest import TEST_MODEL_SHA256, cache_dir  # noqa: E402
from tests.images.docker_image.engine_parts import CONTAINERS_CONF, run_cortex  # noqa: E402

CORTEXFILE = "version: 1\nmodels:\n  - id: gemma\n    preset: gemma3-270m-q4km\n"
REPEATS = 3


def build(cortexfile: Path, out: Path, cache: Path, *extra: str) -> tuple[float, str]:
    """One `cortex build --format oci`: seconds, and the index digest it printed."""
    args = ["build", "-f", str(cortexfile), "--format", "oci", "-o", str(out), *extra]
    environ = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"} | {"CORTEX_OCI_CACHE": str(cache)}
    started = time.perf_counter()
    done = run_cortex([*args, "--datapath", str(cache_dir() / "test-data")], environ)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cortex build failed:\n{done.stderr}")
    return elapsed, done.stdout.split("index ", 1)[1].split(")", 1)[0]


def build_times(scratch: Path, platform: list[str]) -> dict[str, float]:
    cortexfile = scratch / "Cortexfile.yaml"
    cortexfile.write_text(CORTEXFILE, encoding="utf-8")
    cache = scratch / "cache"
    cold, _ = build(cortexfile, scratch / "cold", cache, *platform)
    unchanged = min(build(cortexfile, scratch / "again", cache, *platform)[0] for _ in range(REPEATS))
    edits = []
    for number in range(REPEATS):
        cortexfile.write_text(CORTEXFILE + f"# edit {number}\n", encoding="utf-8")
        edits.append(build(cortexfile, scratch / "edited", cache, *platform)[0])
    return {"cold_s": round(cold, 2), "unchanged_s": round(unchanged, 2), "config_edit_s": round(min(edits), 2)}


def model_layer_vs_copy(scratch: Path) -> dict[str, float]:
    model = cache_dir() / "test-data" / "models" / f"{TEST_MODEL_SHA256}.gguf"
    layers, copies = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        shutil.copyfile(model, scratch / "copy.gguf")
        copies.append(time.perf_counter() - started)
        started = time.perf_counter()
        write_layer(scratch / "layer.tar", lambda tar: add_file(tar, "model.gguf", model, 0), compress=False)
        layers.append(time.perf_counter() - started)
    layer, copy = min(layers), min(copies)
    return {
        "model_bytes": model.stat().st_size,
        "layer_s": round(layer, 3),
        "copy_s": round(copy, 3),
        "ratio": round(layer / copy, 2),
    }


def podman(environ: dict[str, str], *args: str) -> str:
    return subprocess.run(["podman", *args], env=environ, capture_output=True, text=True, check=True).stdout.strip()


def loaded_sizes(out: Path, environ: dict[str, str]) -> dict[str, int]:
    """Each architecture's archive loaded into Podman: its size as the engine counts it (uncompressed)."""
    sizes = {}
    for archive in sorted(out.glob("*.tar")):
        reference = podman(environ, "load", "-i", str(archive)).rpartition("Loaded image: ")[2].strip()
        architecture = archive.stem.rpartition("-")[2]
        sizes[architecture] = int(podman(environ, "image", "inspect", "--format", "{{.Size}}", reference))
        podman(environ, "rmi", "-f", reference)
    return sizes


def sizes(scratch: Path, platform: list[str], environ: dict[str, str]) -> dict[str, Any]:
    cortexfile = scratch / "Cortexfile.yaml"
    cortexfile.write_text(CORTEXFILE, encoding="utf-8")
    build(cortexfile, scratch / "with-model", scratch / "cache", *platform)
    variant = ["--variant", "debian", "--tag", "localhost/cortex-bench-oci:debian"]
    build(cortexfile, scratch / "variant", scratch / "cache", *variant, *platform)
    return {
        "with_model": loaded_sizes(scratch / "with-model", environ),
        "debian_variant": loaded_sizes(scratch / "variant", environ),
    }


def docker_variant_size(scratch: Path) -> int:
    """The Dockerfile path's `debian` variant, as bench/image.py builds it, measured by the same engine."""
    sys.path.insert(0, str(ROOT / "bench"))
    from image import TAG, timed_build, wheels  # bench/image.py

    from tests.images.docker_image.engine_parts import start_podman_service
    from tests.images.docker_image.localbase import BaseSpec, ensure_base_image
    from tests.processes import stop

    (scratch / "podman").mkdir()
    process, api = start_podman_service(scratch / "podman", "unqualified-search-registries = []\n")
    try:
        base = ensure_base_image(BaseSpec(), cache_dir() / "bases")
        timed_build(api, base, wheels(scratch / "wheels"))
        size = int(api.client().images.get(TAG).attrs["Size"])
        api.podman("image", "rm", "--force", TAG)
        return size
    finally:
        api.close()
        stop(process)


def digests(scratch: Path, builds: int, platform: list[str]) -> list[str]:
    cortexfile = scratch / "Cortexfile.yaml"
    cortexfile.write_text(CORTEXFILE, encoding="utf-8")
    found = []
    for number in range(builds):
        cache = scratch / (f"fresh-{number}" if number % 2 else "shared")
        found.append(build(cortexfile, scratch / f"out-{number}", cache, *platform)[1])
        shutil.rmtree(scratch / f"out-{number}")
        if number % 2:
            shutil.rmtree(cache)
    return found


def report(result: dict[str, Any]) -> str:
    times, model = result["build"], result["model_layer"]
    lines = [
        f"build: cold {times['cold_s']} s, unchanged {times['unchanged_s']} s, "
        f"Cortexfile edit {times['config_edit_s']} s (aim < 2 s)",
        f"model layer {model['layer_s']} s vs plain copy {model['copy_s']} s of {model['model_bytes'] / 1e6:.0f} MB: "
        f"{model['ratio']}x (aim <= 1.5x)",
    ]
    for kind, per_arch in result["size_bytes"].items():
        if isinstance(per_arch, dict):
            lines += [f"size {kind} {arch}: {size / 1e6:.1f} MB" for arch, size in per_arch.items()]
    if "docker_variant" in result["size_bytes"]:
        oci = result["size_bytes"]["debian_variant"].get("amd64", 0)
        docker = result["size_bytes"]["docker_variant"]
        lines.append(
            f"debian variant amd64: oci {oci / 1e6:.1f} MB, Dockerfile path {docker / 1e6:.1f} MB: {oci / docker:.2f}x"
        )
    unique = sorted(set(result["digests"]))
    lines.append(
        f"{len(result['digests'])} builds (every other with an empty layer cache): {len(unique)} digest(s) {unique}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--builds", type=int, default=10)
    parser.add_argument("--docker", action="store_true", help="also build the Dockerfile path's debian variant")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    platform = ["--platform", args.platform]
    with tempfile.TemporaryDirectory(prefix="cortex-bench-oci-") as folder:
        scratch = Path(folder)
        (scratch / "containers.conf").write_text(CONTAINERS_CONF, encoding="utf-8")
        environ = dict(os.environ, CONTAINERS_CONF=str(scratch / "containers.conf"))
        parts = {name: scratch / name for name in ("times", "model", "sizes", "digests")}
        for part in parts.values():
            part.mkdir()
        result: dict[str, Any] = {
            "build": build_times(parts["times"], platform),
            "model_layer": model_layer_vs_copy(parts["model"]),
            "size_bytes": sizes(parts["sizes"], platform, environ),
            "digests": digests(parts["digests"], args.builds, platform),
        }
        if args.docker:
            result["size_bytes"]["docker_variant"] = docker_variant_size(scratch)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
