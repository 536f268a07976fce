"""`cortex build`: make the Cortexfile's outputs (container images here), and `cortex probe`,
the health check those images run. The builder's dependencies load only when building."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from menlo_cortex.cortexfile import recipes
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.loader import load

from . import probe as probe_command

FORMATS = ("docker", "oci", "systemd", "disk")
VARIANT_REPOSITORY = "menloltd/cortex-{name}"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], file_option: object) -> None:
    """Add `build` and `probe` to the CLI. `file_option` adds the shared -f/--file option."""
    build = sub.add_parser("build", help="build the Cortexfile's outputs (container images)")
    file_option(build)  # type: ignore[operator]
    _build_options(build)
    build.set_defaults(run=run_build)

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
        choices=FORMATS,
        action="append",
        help="output to make (repeatable; default: the file's build.formats)",
    )
    add("--tag", "-t", help="image reference (default: cortex-appliance:<config hash>, or menloltd/cortex-VARIANT)")
    add("--platform", help="linux/amd64 or linux/arm64 (overrides target.architecture)")
    add("--push", action="store_true", help="push the tagged image (credentials from the usual config.json)")
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
    add("--output", "-o", default="dist", help="folder for file outputs: the systemd bundle (default: %(default)s)")
    add("--model-store", type=Path, metavar="DIR", help="systemd: build host's data folder with models/<sha256>.gguf")


def run_build(args: argparse.Namespace) -> int:
    from menlo_cortex.images.docker import DockerBuild, build_docker  # builder-only dependencies

    file, bake_cortexfile, tag = _source(args)
    formats = _formats(args, file)
    if "systemd" in formats:
        from menlo_cortex.images.systemd.command import run as build_systemd

        build_systemd(args)
        formats = [f for f in formats if f != "systemd"]
        if not formats:
            return 0
    if formats != ["docker"]:
        unsupported = ", ".join(f for f in formats if f != "docker")
        print(f"cortex build: format(s) {unsupported}: not made by this command yet", file=sys.stderr)
        if "docker" not in formats:
            return 2
    if args.context_only and args.context_dir is None:
        raise ConfigError([Diagnostic(Origin("flag --context-only"), "", "needs --context-dir DIR")])
    request = DockerBuild(
        file=file,
        bake_cortexfile=bake_cortexfile,
        tag=tag,
        platform=args.platform,
        push=args.push,
        context_dir=args.context_dir,
        wheels_dir=args.wheels,
        base_image=args.base_image,
        builder_image=args.builder_image,
        network_mode=args.network_mode,
        context_only=args.context_only,
        no_cache=args.no_cache,
        verbose=args.verbose,
    )
    built = build_docker(request, dict(os.environ))
    _report(built.reference, built.image_id, args.context_dir)
    return 0


def _source(args: argparse.Namespace) -> tuple[Path, bool, str | None]:
    """(Cortexfile, bake it into the image, tag): a variant image waits for a mounted Cortexfile."""
    if not args.variant:
        return Path(args.file), True, args.tag
    if args.variant not in recipes.names("variants"):
        diagnostic = recipes.unknown("variants", args.variant, Origin("flag --variant"), "")
        raise ConfigError([diagnostic])
    file = recipes.RECIPES_DIR / "variants" / f"{args.variant}.yaml"
    return file, False, args.tag or VARIANT_REPOSITORY.format(name=args.variant) + ":latest"


def _formats(args: argparse.Namespace, file: Path) -> list[str]:
    if args.format:
        return sorted(set(args.format))
    return sorted({f.value for f in load(file).config.build.formats})


def _report(reference: str | None, image_id: str | None, context_dir: Path | None) -> None:
    if context_dir is not None:
        print(f"build context written to {context_dir}")
    if reference is not None:
        print(f"built {reference} ({image_id})")
