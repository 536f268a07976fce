"""`cortex build --format systemd`: load the Cortexfile with the systemd defaults layer, build the bundle,
print where it is. Baked models are found (or fetched) in the build host's own model store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ...cortexfile import formats
from ...cortexfile.hashing import config_hash
from ...cortexfile.loader import load_from_environment
from ...cortexfile.store import data_dir
from .bundle import BuildRequest, build
from .plan import DEFAULTS, FORMAT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", default="Cortexfile.yaml", help="the Cortexfile (default: %(default)s)")
    parser.add_argument("-o", "--output", default="dist", help="folder for the bundle and its tarball (%(default)s)")
    parser.add_argument("--platform", help="linux/amd64 or linux/arm64 (overrides target.architecture)")
    parser.add_argument("--wheels", type=Path, help="folder with a prebuilt llama-cpp-python wheel for the target")
    parser.add_argument(
        "--model-store", type=Path, help="build host's data folder holding models/<sha256>.gguf (default: data.path)"
    )


def run(args: argparse.Namespace) -> int:
    """`args` as `cortex build` parses it: file, and where present output, platform, wheels, model_store."""
    output = Path(getattr(args, "output", None) or "dist")
    model_store: Path | None = getattr(args, "model_store", None)
    wheels: Path | None = getattr(args, "wheels", None)
    host = load_from_environment(args.file)  # as `cortex pull` on this machine sees it: its model store
    resolved = load_from_environment(args.file, format_defaults=(FORMAT, DEFAULTS))
    # The quadlet runs the image `cortex build --format docker` tags by default for this Cortexfile.
    docker = load_from_environment(args.file, format_defaults=formats.get("docker").loader_argument())
    image = f"localhost/cortex-appliance:{config_hash(docker.config)[:12]}"
    store = model_store or Path(os.environ.get("CORTEX_MODEL_STORE") or data_dir(host.config))
    output.mkdir(parents=True, exist_ok=True)
    bundle = build(BuildRequest(resolved, output, store, wheels, getattr(args, "platform", None), image))
    size = sum(p.stat().st_size for p in bundle.folder.rglob("*") if p.is_file())
    print(f"{bundle.folder} ({size / 1e6:.0f} MB; install with: sudo {bundle.folder}/install.sh)")
    print(f"{bundle.tarball} sha256 {bundle.sha256}")
    return 0
