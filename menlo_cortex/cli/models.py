"""`cortex models list|fit`: the model catalogue and the store, and which models fit this machine, with their
memory and speed estimates."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from menlo_cortex.cortexfile import catalogue
from menlo_cortex.cortexfile.loader import Resolved, load_from_environment
from menlo_cortex.exits import Exit

from .commands import load_checked, start_backends
from .defaults import add_defaults_option, loader_options
from .flags import add_setting_flags, given_flags

if TYPE_CHECKING:
    from menlo_cortex.benchmark.fit import Board
    from menlo_cortex.runtime.models.backends import Backends
    from menlo_cortex.runtime.models.weight_copies import Kernels

MIB = 1024 * 1024


def register(sub: Any) -> None:
    models = sub.add_parser("models", help="the model catalogue, the store, and what fits this machine")
    verbs = models.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    listing = verbs.add_parser(
        "list",
        help="the catalogue (recipes/models) and the model files in the store",
        description="The catalogue's presets (use one with `preset: NAME`), and each file in the data folder's "
        "store with the catalogue entries and Cortexfile models it holds.",
    )
    fit = verbs.add_parser(
        "fit",
        help="memory each model takes here (weights, KV cache, buffers), whether it fits, and its tokens/s estimate",
        description="Reads this machine (memory available and its cgroup limit, cores, CPU flags, the llama.cpp "
        "backends and CPU variant start would use, self-tested as start does, GPUs and their memory) and "
        "measures its memory bandwidth once (a few seconds, then cached); sizes each model from its GGUF header "
        "(its file here, else the first megabytes of its remote file) at its context and slots. Without -f: every "
        "catalogue model. With -f, exit 0 when every model fits and 1 when one does not or is not here.",
    )
    fit.add_argument("--hardware", metavar="NAME", help="a board's recipe (recipes/hardware): fit its memory")
    for command, run in ((listing, models_list), (fit, models_fit)):
        command.add_argument("-f", "--file", help="a Cortexfile: its models and data folder (default: none)")
        command.add_argument("--json", action="store_true", help="machine-readable output")
        add_setting_flags(command)
        add_defaults_option(command)
        command.set_defaults(run=run)


def resolved_or_bare(args: argparse.Namespace) -> Resolved:
    """The Cortexfile given with -f, else one with no models (the env and the flags still apply)."""
    if getattr(args, "file", None):
        return load_checked(args)
    with tempfile.TemporaryDirectory(prefix="cortex-") as folder:
        path = Path(folder) / "Cortexfile.yaml"
        path.write_text("version: 1\n", encoding="utf-8")
        return load_from_environment(path, given_flags(args), **loader_options(args))


def models_list(args: argparse.Namespace) -> int:
    from menlo_cortex.runtime.models.store_listing import store_files

    resolved = resolved_or_bare(args)
    entries = [_entry_json(entry) for entry in catalogue.entries()]
    files = store_files(resolved, dict(os.environ))
    if args.json:
        print(json.dumps({"catalogue": entries, "store": files}, indent=2))
        return Exit.OK
    print(f"{'PRESET':<28} {'KIND':<9} {'PARAMS':>7} {'QUANT':<7} {'SIZE':>9} {'CONTEXT':>8}  LICENSE")
    for entry in entries:
        print(f"{entry['name']:<28} {entry['kind']:<9} {_count(entry['parameters']):>7} {entry['quantization']:<7} "
              f"{entry['size_bytes'] / MIB:>5.0f} MiB {entry['context_length']:>8}  {entry['license']}")  # fmt: skip
    print(f"\nstore: {files['folder']}" + ("" if files["files"] else " (empty)"))
    for found in files["files"]:
        print(f"  {found['sha256'][:16]}  {found['size'] / MIB:>7.0f} MiB  {', '.join(found['holds']) or '-'}")
    return Exit.OK


def models_fit(args: argparse.Namespace) -> int:
    from menlo_cortex.benchmark.fit import fit_catalogue, fit_models, machine_summary, this_machine

    resolved = resolved_or_bare(args)
    board = board_of(args.hardware) if args.hardware and not args.file else None  # -f: this machine's models
    machine = this_machine(bandwidth_needed=board is None, gpus_needed=board is None)
    gpu_free, integrated = None, False  # without the runtime: the machine's GPUs
    if board is None:
        here = backends_here(resolved)
        kernels, llama_cpp = kernels_of(here, machine.cpu_flags), llama_cpp_status(here)
        if not isinstance(here, RuntimeError):  # the GPUs start would use
            gpu_free, integrated = here.gpu_free(), here.integrated_gpu
    else:
        kernels, llama_cpp = board.kernels, None
    summary = machine_summary(machine) | {"llama_cpp": llama_cpp}
    if args.file:
        rows = fit_models(resolved.config, machine, kernels, cortexfile=resolved.path, gpu_free=gpu_free,
                          integrated=integrated)  # fmt: skip
    else:
        rows = fit_catalogue(resolved.config, machine, kernels, board=board, gpu_free=gpu_free, integrated=integrated)
    if args.json:
        print(json.dumps({"machine": summary, "models": rows}, indent=2))
    else:
        _print_table(summary, rows, args.hardware)
    return Exit.OK if args.file is None or all(row["fits"] for row in rows) else Exit.FAILURE


def backends_here(resolved: Resolved) -> Backends | RuntimeError:
    """The backends and CPU variant `cortex start` would compute with here (its self-test, cached as start
    caches it), or why there are none."""
    try:
        return start_backends(resolved.config)
    except RuntimeError as exc:  # start_backends' own: no runtime, a broken llama.cpp, no CPU variant runs
        return exc


def llama_cpp_status(here: Backends | RuntimeError) -> dict[str, Any]:
    return {"error": str(here)} if isinstance(here, RuntimeError) else here.status()


def kernels_of(here: Backends | RuntimeError, cpu_flags: list[str]) -> Kernels:
    """What the CPU module here can use: the loaded one's, or without the runtime what this CPU's flags allow."""
    from menlo_cortex.runtime.models.weight_copies import kernels_from_cpu_flags

    return kernels_from_cpu_flags(cpu_flags) if isinstance(here, RuntimeError) else here.kernels


def board_of(name: str) -> Board:
    """A hardware recipe's memory, name and CPU kernels; ConfigError when there is no such recipe or it names no
    memory."""
    from menlo_cortex.benchmark.fit import Board
    from menlo_cortex.cortexfile import recipes
    from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
    from menlo_cortex.cortexfile.schema.target import Target
    from menlo_cortex.runtime.models.weight_copies import kernels_for_build

    try:
        recipe = recipes.load("hardware", name, "config")
    except KeyError:
        raise ConfigError([recipes.unknown("hardware", name, Origin("flag --hardware"), "")]) from None
    memory = recipe.body.get("target", {}).get("memory_mb") if isinstance(recipe.body.get("target"), dict) else None
    if not isinstance(memory, int):
        message = f"the {name} recipe names no memory (target.memory_mb): boards of that kind differ too much"
        raise ConfigError([Diagnostic(Origin(str(recipe.path)), "target.memory_mb", message)])
    target = Target.model_validate(recipe.body.get("target") or {})
    return Board(memory, name, kernels_for_build(target.architecture, target.llama_cmake_args), target.integrated_gpu)


def _entry_json(entry: catalogue.Entry) -> dict[str, Any]:
    model = entry.model.model_dump(mode="json", exclude_defaults=True, exclude={"id"})
    return {"name": entry.name, "description": entry.description, **entry.facts.model_dump(mode="json"),
            "model": model}  # fmt: skip


def _count(parameters: int) -> str:
    return f"{parameters / 1e9:.1f}B" if parameters >= 995e6 else f"{parameters / 1e6:.0f}M"


def _print_table(machine: dict[str, Any], rows: list[dict[str, Any]], board: str | None) -> None:
    memory = f"{machine['memory_available'] / MIB:.0f} MiB of {machine['memory_total'] / MIB:.0f} MiB available"
    where = f"; sized for a {board}'s memory" if board else f", memory bandwidth {_gb_s(machine['memory_bandwidth'])}"
    print(f"{machine['cpu_model']}, {machine['cores']} cores, {memory}{where}")
    for line in _compute_lines(machine):
        print(line)
    print(f"{'MODEL':<28} {'FITS':<5} {'MEMORY':>10} {'GPU':>16} {'CONTEXT':>8} {'SLOTS':>6} {'TOKENS/S':>9}  WHY NOT")
    for row in rows:
        total = f"{row['memory']['total'] / MIB:.0f} MiB" if row["memory"] else "-"
        speed = f"~{row['tokens_per_s']:g}" if row["tokens_per_s"] else "-"
        print(f"{row['id'][:28]:<28} {'yes' if row['fits'] else 'no':<5} {total:>10} {_on_gpu(row):>16} "
              f"{row['context'] or '-':>8} {row['slots'] or '-':>6} {speed:>9}  {row['reason'] or ''}")  # fmt: skip


def _on_gpu(row: dict[str, Any]) -> str:
    """The layers on the GPU and the GPU memory they take: `19 (1210 MiB)`, `19 (integrated)` where that memory is
    the host's, or `-` with none."""
    if not row["gpu_layers"]:
        return "-"
    if row["memory"]["integrated_gpu"]:
        return f"{row['gpu_layers']} (integrated)"
    return f"{row['gpu_layers']} ({row['memory']['gpu'] / MIB:.0f} MiB)"


def _compute_lines(machine: dict[str, Any]) -> list[str]:
    """What llama.cpp computes with here (none on a board) and each GPU's memory."""
    llama, lines = machine["llama_cpp"], []
    if llama is not None and "error" in llama:
        lines.append(f"llama.cpp: {llama['error']}")
    elif llama is not None:
        lines.append(f"llama.cpp: {', '.join(llama['names'])}, CPU variant {llama['cpu_variant'] or 'built in'}")
    for gpu in machine["gpus"]:
        known = gpu["memory_total"] is not None
        memory = f"{_mib(gpu['memory_free'])} of {_mib(gpu['memory_total'])} free" if known else "memory unknown"
        lines.append(f"GPU {gpu['name']}: {memory}" + ("" if known else f" ({gpu['why_unknown']})"))
    return lines


def _mib(size: int) -> str:
    return f"{size / MIB:.0f} MiB"


def _gb_s(bandwidth: int | None) -> str:
    return f"{bandwidth / 1e9:.1f} GB/s" if bandwidth else "not measured (numpy is missing)"
