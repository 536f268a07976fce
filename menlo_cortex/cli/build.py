"""`cortex build`: make the Cortexfile's outputs (one target per format in cortexfile/formats.py),
and `cortex probe`, the health check those images run. The builder's dependencies load only when
building; the targets see a typed `BuildOptions`, never this module's argparse namespace."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from menlo_cortex.cortexfile import formats, recipes
from menlo_cortex.cortexfile.errors import ConfigError, Origin

from . import probe as probe_command
from .output import print_diagnostics

if TYPE_CHECKING:
    from menlo_cortex.images.targets import BuildOptions

VARIANT_REPOSITORY = "menloltd/cortex-{name}"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], file_option: object) -> None:
    """Add `build` and `probe` to the CLI. `file_option` adds the shared -f/--file option."""
    build = sub.add_parser("build", help="build the Cortexfile's outputs (images, bundles, disk images)")
    file_option(build)  # type: ignore[operator]
    _build_options(build)
    build.set_defaults(run=run_build)

    lock = sub.add_parser(
        "lock", help="write Cortexfile.lock: the models, Debian packages and wheels an OCI image uses"
    )
    file_option(lock)  # type: ignore[operator]
    lock.add_argument(
        "--format",
        choices=formats.locking(),
        action="append",
        help="the images whose inputs to record (repeatable; default: those of the file's build.formats)",
    )
    lock.add_argument("--platform", help="oci: linux/amd64, linux/arm64 or both, comma-separated")
    lock.add_argument("--base-image", help="docker: the final stage's base, as for build")
    lock.add_argument("--builder-image", help="docker: the builder stage's base, as for build")
    lock.add_argument("--wheels", type=Path, metavar="DIR", help="prebuilt llama-cpp-python wheels, as for build")
    add_datapath(lock, "as for build")
    lock.set_defaults(run=run_lock)

    health = sub.add_parser("probe", help="health check: exit 0 when the Cortexfile's server answers /health")
    file_option(health)  # type: ignore[operator]
    from .defaults import add_defaults_option

    add_defaults_option(health)
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default: %(default)s)")
    health.set_defaults(run=probe_command.probe)


def _build_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--format",
        choices=formats.names(),
        action="append",
        help="output to make (repeatable; default: the file's build.formats): "
        + "; ".join(f"{f.name}: {f.summary}" for f in formats.FORMATS.values()),
    )
    add("--tag", "-t", help="image reference (default: cortex-appliance:<config hash>, or menloltd/cortex-VARIANT)")
    add("--platform", help="linux/amd64 or linux/arm64 (overrides target.architecture)")
    add(
        "--push",
        nargs="?",
        const="",
        metavar="REF",
        help="push the image to REF (default: the tag); credentials from the usual config.json / auth.json",
    )
    add("--locked", action="store_true", help="refuse inputs that differ from Cortexfile.lock (--format oci)")
    add("--context-dir", type=Path, help="also write the build context here, for inspection")
    add("--context-only", action="store_true", help="write the context (--context-dir) and stop; no engine needed")
    add(
        "--variant",
        help=f"build an official image variant from recipes/variants ({', '.join(recipes.names('variants'))})",
    )
    add(
        "--wheels",
        type=Path,
        metavar="DIR",
        help="prebuilt wheels the builder stage uses (llama-cpp-python instead of compiling it; a menlo_cortex wheel "
        "instead of building this checkout's)",
    )
    add("--base-image", help="base of the final stage (and of the builder, unless --builder-image)")
    add("--builder-image", help="base of the builder stage")
    add("--network", dest="network_mode", help="network of the build steps (engine's names, e.g. host)")
    add("--no-cache", action="store_true", help="re-run every build step (the engine's layer cache unused)")
    add("--verbose", "-v", action="store_true", help="show every line of build output")
    add(
        "--sign-key",
        metavar="KEY",
        help="update: the private key that signs it, a file (OpenSSH or armored OpenPGP) or a ${env:NAME} / "
        "${file:PATH} reference; the devices trust its public half (device.updates.trusted_keys)",
    )
    add(
        "--output",
        "-o",
        default="dist",
        help="folder for file outputs: the systemd bundle, the disk image (default: %(default)s)",
    )
    add_datapath(parser, "where models/<sha256>.gguf are found or fetched: to bake, to size (default: "
                 "CORTEX_MODEL_STORE, else data.path as this host sees it, else the default data folder)")  # fmt: skip


def add_datapath(parser: argparse.ArgumentParser, what: str) -> None:
    """The build host's data folder, named as `cortex start --datapath` names the server's; `--model-store`, its
    first name, is kept for scripts that use it."""
    parser.add_argument("--datapath", "--model-store", dest="model_store", type=Path, metavar="DIR",
                        help=f"build host's data folder, {what}")  # fmt: skip


def run_build(args: argparse.Namespace) -> int:
    from menlo_cortex.images import sequence  # builder-only dependencies

    for line in sequence.build(_options(args), args.format, dict(os.environ), print_diagnostics):
        print(line)
    return 0


def run_lock(args: argparse.Namespace) -> int:
    from menlo_cortex.images import sequence
    from menlo_cortex.images.targets import BuildOptions

    options = BuildOptions(
        file=Path(args.file),
        platform=args.platform,
        wheels_dir=args.wheels,
        model_store=args.model_store,
        base_image=args.base_image,
        builder_image=args.builder_image,
    )
    path, names = sequence.write_lock(options, args.format, dict(os.environ))
    print(f"wrote {path} ({', '.join(names)})")
    return 0


def _options(args: argparse.Namespace) -> BuildOptions:
    from menlo_cortex.images.targets import BuildOptions

    file, bake_cortexfile, tag = _source(args)
    return BuildOptions(
        file=file,
        bake_cortexfile=bake_cortexfile,
        output=Path(args.output),
        platform=args.platform,
        wheels_dir=args.wheels,
        model_store=args.model_store,
        tag=tag,
        push=args.push is not None,
        push_to=args.push or None,
        locked=args.locked,
        context_dir=args.context_dir,
        context_only=args.context_only,
        base_image=args.base_image,
        builder_image=args.builder_image,
        network_mode=args.network_mode,
        no_cache=args.no_cache,
        verbose=args.verbose,
        sign_key=args.sign_key,
    )


def _source(args: argparse.Namespace) -> tuple[Path, bool, str | None]:
    """(Cortexfile, bake it into the image, tag): a variant image waits for a mounted Cortexfile."""
    if not args.variant:
        return Path(args.file), True, args.tag
    if args.variant not in recipes.names("variants"):
        diagnostic = recipes.unknown("variants", args.variant, Origin("flag --variant"), "")
        raise ConfigError([diagnostic])
    file = recipes.RECIPES_DIR / "variants" / f"{args.variant}.yaml"
    return file, False, args.tag or VARIANT_REPOSITORY.format(name=args.variant) + ":latest"
