"""The commands on the Cortexfile itself: validate, config show, schema, migrate; and start."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from menlo_cortex.cortexfile import format_rules
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.loader import Resolved, load_from_environment
from menlo_cortex.cortexfile.migrate import migrate as migrate_text
from menlo_cortex.cortexfile.preflight import Phase, preflight
from menlo_cortex.cortexfile.schema_doc import schema_document
from menlo_cortex.cortexfile.show import as_json, as_text
from menlo_cortex.runtime.ops.durable import write_atomically

from .defaults import loader_options, mount_point_warning, require_file
from .flags import given_flags
from .output import print_diagnostics

if TYPE_CHECKING:
    from menlo_cortex.cortexfile.schema import Cortexfile
    from menlo_cortex.runtime.models.backends import Backends


def load_checked(args: argparse.Namespace, phase: Phase | None = None, *, build_rules: bool = False) -> Resolved:
    """Load with env and flags, print warnings, run a phase's preflight (and, with `build_rules`, what
    each format of build.formats refuses from the file alone); ConfigError on failure."""
    flags = given_flags(args) if hasattr(args, "setting_host") else {}
    require_file(args)
    resolved = load_from_environment(args.file, flags, **loader_options(args))
    problems = preflight(resolved, phase) if phase else []
    problems += format_rules.build_problems(resolved) if build_rules else []
    if problems:
        raise ConfigError(resolved.warnings + problems)
    print_diagnostics(resolved.warnings)
    return resolved


def validate(args: argparse.Namespace) -> int:
    phase = Phase(args.preflight) if args.preflight else None
    resolved = load_checked(args, phase, build_rules=True)
    models = len(resolved.config.models)
    backends = start_backends(resolved.config) if phase is Phase.start else None
    if backends:
        print_diagnostics(memory_warnings(resolved, backends))
    checked = f", {phase.value} preflight passed" if phase else ""
    print(f"{args.file}: valid ({models} model{'s' if models != 1 else ''}{checked})")
    if backends:
        print(f"llama.cpp backends: {backends.describe()}")
    return 0


def memory_warnings(resolved: Resolved, backends: Backends) -> list[Diagnostic]:
    """Models that will not fit the memory available here, or the budget, or their GPU's
    (runtime/models/memory_check.py), run by these backends."""
    from menlo_cortex.cortexfile.data_folder import data_dir
    from menlo_cortex.runtime.models.batching.offload import gpu_room
    from menlo_cortex.runtime.models.batching.plan import available_memory, memory_room
    from menlo_cortex.runtime.models.memory_check import found_in
    from menlo_cortex.runtime.models.memory_check import memory_warnings as check
    from menlo_cortex.runtime.models.model_store import ModelStore

    config = resolved.config
    budget_mb = config.server.limits.memory_budget_mb
    room, budget = memory_room(budget_mb, available_memory())
    store = ModelStore(config, data_dir(config), resolved.path)
    named = "server.limits.memory_budget_mb" if budget else "available here"
    gpus, integrated = gpu_room(backends.gpu_free()), backends.integrated_gpu
    return check(resolved, (room, named), budget_mb, found_in(store), backends.kernels, gpu_room=gpus,
                 integrated=integrated)  # fmt: skip


def start_backends(config: Cortexfile) -> Backends:
    """The backends `cortex start` would compute with here, its CPU variant self-tested as start does."""
    try:
        from menlo_cortex.runtime.main import self_test_cache
        from menlo_cortex.runtime.models.backends import load_backends

        return load_backends(cache=self_test_cache(config))  # BackendError (a RuntimeError): none runs here
    except (ImportError, OSError) as exc:  # no runtime, or llama-cpp-python's libraries missing or broken
        needed = "pip install 'menlo-cortex[runtime]'"
        raise RuntimeError(f"cortex start needs the runtime here: {exc} ({needed})") from None


def config_show(args: argparse.Namespace) -> int:
    resolved = load_checked(args)
    print(as_json(resolved) if args.json else as_text(resolved))
    return 0


def schema(args: argparse.Namespace) -> int:
    print(json.dumps(schema_document(), indent=2))
    return 0


def migrate(args: argparse.Namespace) -> int:
    source = Path(args.path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Diagnostic(Origin(str(source)), "", f"cannot read: {exc}")]) from exc
    migration = migrate_text(text, str(source))
    output = migration.to_yaml()
    if args.output:
        write_atomically(Path(args.output), output)
    else:
        sys.stdout.write(output)
    for note in migration.notes:
        print(f"{source}: {note}", file=sys.stderr)
    return 0


def start(args: argparse.Namespace) -> int:
    resolved = load_checked(args, Phase.start)
    print_diagnostics(filter(None, [mount_point_warning(Path(args.file))]))
    from menlo_cortex.runtime.main import serve  # the runtime's dependencies load only here

    return serve(resolved, debug=args.debug)


def pull(args: argparse.Namespace) -> int:
    resolved = load_checked(args)
    from menlo_cortex.runtime.pull import run_pull

    return run_pull(resolved)


def update_run(args: argparse.Namespace) -> int:
    resolved = load_checked(args)
    from menlo_cortex.runtime.update.service import run_update

    return run_update(resolved)


def update_check(args: argparse.Namespace) -> int:
    from menlo_cortex.runtime.update.service import run_boot_check

    return run_boot_check(lambda: load_checked(args))


def update_status(args: argparse.Namespace) -> int:
    from menlo_cortex.runtime.update.service import print_status

    return print_status()


def sync(args: argparse.Namespace) -> int:
    resolved = load_checked(args)
    from menlo_cortex.runtime.sync.service import run_sync

    return run_sync(resolved, once=args.once)
