"""`cortex build` and `cortex lock` as one sequence of checks, then each format, as apko's build runs: the CLI
only parses and reports. Every check that can refuse runs for every format before any format writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from menlo_cortex.cortexfile import format_rules, formats
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin

from . import lock
from .targets import (
    BuildOptions,
    check_formats,
    check_host,
    check_options,
    device_memory_warnings,
    locking_target,
    read_views,
    target,
)


def build(
    options: BuildOptions,
    asked: list[str] | None,
    environ: Mapping[str, str],
    warn: Callable[[list[Diagnostic]], None] = lambda found: None,
) -> Iterator[str]:
    """Build each format asked (else the Cortexfile's build.formats); the lines to print, as each finishes.
    `warn` reports what does not stop the build (a model too large for the device's memory)."""
    check_options(options)
    views = read_views(options.file, environ)  # the one read of the Cortexfile
    names = asked or views.host.config.build.formats
    check_formats(options, names)
    refused = format_rules.build_problems(views.host, names)
    if refused:
        raise ConfigError(views.host.warnings + refused)
    check_host(views, options, environ)
    warn(device_memory_warnings(views, options, environ))
    if options.locked:  # every format's inputs against the lock
        for name in names:
            locking_target(name).check_locked(views, options, environ)
    for name in names:
        yield from target(name).make(views, options, environ)


def write_lock(options: BuildOptions, asked: list[str] | None, environ: Mapping[str, str]) -> tuple[Path, list[str]]:
    """Record the inputs of each locking format asked (else of build.formats) in Cortexfile.lock."""
    check_options(options)
    views = read_views(options.file, environ)
    names = [name for name in asked or views.host.config.build.formats if formats.get(name).locks]
    if not names:
        message = f"nothing to lock: `cortex lock` records the inputs of {' and '.join(formats.locking())} images"
        raise ConfigError([Diagnostic(Origin("flag --format"), "", message)])
    check_host(views, options, environ)
    found: dict[str, object] = {}
    for name in names:
        found |= locking_target(name).lock_sections(views, options, environ)
    path = lock.lock_path(options.file)
    lock.write(path, lock.merged(path, found, lock.declared(views.host)))
    return path, names
