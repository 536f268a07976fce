"""`cortex bench`: measure an appliance (started here from the Cortexfile, or running at --url), keep the run in
the data folder's database, and read stored runs back (`runs`, `card`, `compare`)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from menlo_cortex.benchmark.durations import parse_duration
from menlo_cortex.benchmark.errors import BenchError, ServerError, UsageError
from menlo_cortex.benchmark.kinds import KINDS, QUICK, REMOTE_QUICK
from menlo_cortex.benchmark.run_store import RunStore, StoredRun
from menlo_cortex.cortexfile.data_folder import data_dir, default_data_dir, find_local
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.preflight import Phase
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.secrets import Secret, SecretUnavailable
from menlo_cortex.cortexfile.sources import secret_flag
from menlo_cortex.runtime.ops.durable import write_atomically
from menlo_cortex.runtime.ops.text import printable

from .commands import load_checked
from .flags import add_setting_flags, given_flags
from .output import print_diagnostics

if TYPE_CHECKING:
    from menlo_cortex.benchmark.client import Client
    from menlo_cortex.benchmark.session import Bench, Options

DEFAULT_STABILITY = "10m"

FileOption = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, file_option: FileOption) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure an appliance on this hardware (or any OpenAI-compatible server with --url)",
        description="Measure the appliance the Cortexfile describes (started here with cortex start), or the "
        "server at --url, with one workload; print a table, keep the run in <data>/cortex.db. "
        "Exit codes: 0 complete; 2 bad usage (a Cortexfile error, an unknown model or kind, a bad duration); "
        "1 the server failed or could not be reached (what was measured is kept, marked incomplete); "
        "130 interrupted (kept, marked incomplete).",
    )
    file_option(bench)
    bench.add_argument("--url", help="measure the OpenAI-compatible server at this base URL instead")
    bench.add_argument("--model", help="the model id (default: the Cortexfile's first; with --url: required)")
    bench.add_argument("--type", dest="kinds", action="append", metavar="KIND[,KIND]",
                       help=f"what to measure: {', '.join(KINDS)} (default: init,runtime,load; with --url: "
                       "runtime,load)")  # fmt: skip
    bench.add_argument("--duration", help=f"how long `stability` runs: 90s, 15m, 24h (default {DEFAULT_STABILITY})")
    bench.add_argument("--max-tokens", type=_bounded(4096), default=64, help="tokens per answer (64; at most 4096)")
    bench.add_argument("--long-prompt-tokens", type=_bounded(32768), default=512, help="the long prompt's size (512)")
    bench.add_argument("--rounds", type=_bounded(100), default=3, help="requests per runtime figure (3; at most 100)")
    bench.add_argument("--streams", type=_levels, default=(1, 2, 4, 8), help="load levels (1,2,4,8; at most 64)")
    bench.add_argument("--pid", type=_bounded(1 << 22), help="with --url: the local server's process, for its memory")
    bench.add_argument("--api-key", metavar="@FILE|${env:NAME}",
                       help="the server's API key (with -f, default: the Cortexfile's own)")  # fmt: skip
    bench.add_argument("--label", help="name of this run in tables and cards (default: cortex, or the URL's host)")
    bench.add_argument("--json", type=Path, help="also write the whole report here")
    add_setting_flags(bench)
    bench.set_defaults(run=_guarded(run_bench))

    reads = bench.add_subparsers(dest="bench_command", metavar="[runs|card|compare]")
    runs = reads.add_parser("runs", help="list the stored runs")
    _store_options(runs, file_option)
    runs.set_defaults(run=_guarded(list_runs))
    card = reads.add_parser("card", help="render a BenchCard (markdown and SVG charts) from stored runs")
    card.add_argument("run_ids", nargs="+", type=int, metavar="RUN")
    card.add_argument("-o", "--output", type=Path, default=Path("benchcard"), help="folder (default: benchcard)")
    _store_options(card, file_option)
    card.set_defaults(run=_guarded(make_card))
    compare = reads.add_parser("compare", help="two stored runs side by side, with the ratios")
    compare.add_argument("run_ids", nargs=2, type=int, metavar="RUN")
    _store_options(compare, file_option)
    compare.set_defaults(run=_guarded(compare_runs))


def _store_options(parser: argparse.ArgumentParser, file_option: FileOption) -> None:
    file_option(parser)
    parser.add_argument("--datapath", dest="store_datapath", help="the data folder holding cortex.db")


def run_bench(args: argparse.Namespace) -> int:
    from menlo_cortex.benchmark.report import table
    from menlo_cortex.benchmark.run import run_kinds

    kinds, options = _kinds(args)
    bench, target, data = _remote(args, options) if args.url else _local(args, options)
    store = RunStore(data)
    store.check()  # before an hour of measuring, not after
    report, code = run_kinds(bench, kinds, target, debug=args.debug)
    bench.progress.done()
    code = _keep(report, store, args.json) or code
    print(table(report))
    if report["stopped"]:
        print(f"cortex bench: stopped: {report['stopped']}", file=sys.stderr)
    return code


def _keep(report: dict[str, Any], store: RunStore, json_path: Path | None) -> int:
    """Store the run, then write --json; each failure is one line and exit 1, and the other still happens."""
    code = 0
    try:
        print(f"stored as run {store.add(report)} in {store.path}", file=sys.stderr)
    except BenchError as exc:
        print(f"cortex bench: {exc}", file=sys.stderr)
        code = exc.exit_code
    if json_path is not None:
        try:
            write_atomically(json_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
        except (OSError, ValueError) as exc:
            print(f"cortex bench: cannot write {json_path}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            code = 1
    return code


def _remote(args: argparse.Namespace, options: Options) -> tuple[Bench, dict[str, Any], Path]:
    from menlo_cortex.benchmark.client import Client
    from menlo_cortex.benchmark.session import Bench, Progress
    from menlo_cortex.benchmark.workload import Workload

    url = _checked_url(args.url)
    client = Client(url, _api_key(args.api_key))
    model = _remote_model(client, args.model)
    workload = Workload(model, args.max_tokens, args.long_prompt_tokens)
    bench = Bench(workload, options, Progress(), client=client, pid=_checked_pid(args.pid))
    host = urllib.parse.urlsplit(url).hostname or "server"
    target = {"mode": "url", "label": args.label or host, "model": model, "url": url, "cortexfile": None,
              "model_sha256": None, "config_hash": None}  # fmt: skip
    return bench, target, _store_folder(args)


def _local(args: argparse.Namespace, options: Options) -> tuple[Bench, dict[str, Any], Path]:
    from menlo_cortex.benchmark.appliance import Launch
    from menlo_cortex.benchmark.session import Bench, Progress
    from menlo_cortex.benchmark.workload import Workload

    if args.pid:
        raise UsageError("--pid goes with --url (an appliance started here is measured by its own process)")
    config = load_checked(args, Phase.start).config
    ids = [model.id for model in config.models]
    model_id = args.model or ids[0]
    if model_id not in ids:
        raise UsageError(f"{args.file}: no model `{model_id}` (it has: {', '.join(ids)})")
    model, data = config.models[ids.index(model_id)], data_dir(config)
    flags = tuple(part for flag, value in given_flags(args).items() for part in (flag, value))
    launch = Launch(Path(args.file), flags, str(config.server.tls.cert) if config.server.tls.cert else None)
    workload = Workload(model_id, args.max_tokens, args.long_prompt_tokens)
    bench = Bench(workload, options, Progress(), launch=launch, api_key=_api_key(args.api_key, config),
                  model_file=find_local(model, data), other_models=[i for i in ids if i != model_id])  # fmt: skip
    target = {"mode": "cortexfile", "label": args.label or "cortex", "model": model_id, "url": None,
              "cortexfile": str(args.file), "model_sha256": model.sha256,
              "config_hash": config_hash(config)}  # fmt: skip
    return bench, target, data


def _kinds(args: argparse.Namespace) -> tuple[list[str], Options]:
    from menlo_cortex.benchmark.session import Options

    asked = [kind.strip() for value in args.kinds or [] for kind in value.split(",") if kind.strip()]
    unknown = [kind for kind in asked if kind not in KINDS]
    if unknown:
        raise UsageError(f"--type {unknown[0]}: not a kind (one of {', '.join(KINDS)})")
    kinds = [kind for kind in KINDS if kind in asked] or list(REMOTE_QUICK if args.url else QUICK)
    if args.url and "init" in kinds:
        raise UsageError("--type init starts the appliance itself: use -f Cortexfile.yaml, not --url")
    if args.duration and "stability" not in kinds:
        raise UsageError("--duration is how long --type stability runs: add --type stability")
    try:
        duration = parse_duration(args.duration or DEFAULT_STABILITY)
    except ValueError as exc:
        raise UsageError(f"--duration {exc}") from None
    return kinds, Options(rounds=args.rounds, streams=args.streams, duration_s=duration)


def _checked_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {url[:80]}: expected http(s)://HOST[:PORT][/PATH]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UsageError("--url: no user, password, query or fragment (use --api-key @FILE for a key)")
    return url.removesuffix("/").removesuffix("/v1")


def _checked_pid(pid: int | None) -> int | None:
    if pid is not None and not Path(f"/proc/{pid}/status").exists():
        raise UsageError(f"--pid {pid}: no such process here (--pid names a server on this machine)")
    return pid


def _remote_model(client: Client, model: str | None) -> str:
    try:
        listed = client.model_ids()
    except ServerError as exc:
        hint = " (pass --api-key @FILE)" if exc.status == 401 else ""
        raise ServerError(exc.status, f"{client.url}/v1/models: {exc}{hint}") from None
    shown = ", ".join(listed[:10]) + (f" and {len(listed) - 10} more" if len(listed) > 10 else "") or "nothing"
    if model is None:
        raise UsageError(f"--model is required with --url (the server lists: {shown})")
    if model not in listed:
        raise UsageError(f"the server does not list model `{printable(model, 80)}` (it lists: {shown})")
    return model


def _api_key(text: str | None, config: Cortexfile | None = None) -> str | None:
    try:
        if text:  # read as every secret flag is: @FILE, ${env:NAME}, or a literal with a warning
            reference, warnings = secret_flag("--api-key", text)
            print_diagnostics(warnings)
            return Secret.parse(reference).resolve()
        return _configured_key(config) if config else None
    except (SecretUnavailable, ValueError) as exc:
        raise UsageError(f"--api-key: {exc}") from None


def _configured_key(config: Cortexfile) -> str | None:
    """The appliance started here accepts its own keys: the first one it lists."""
    if config.server.auth.api_keys:
        return config.server.auth.api_keys[0].resolve()
    if config.server.auth.api_key_file:
        from menlo_cortex.runtime.http.auth import read_key_file

        return next(iter(read_key_file(config.server.auth.api_key_file)), None)
    return None


def _store_folder(args: argparse.Namespace) -> Path:
    """The data folder: --datapath, else the Cortexfile's (when there is one), else the default."""
    given = getattr(args, "store_datapath", None) or getattr(args, "setting_datapath", None)
    if given:
        return Path(given)
    if Path(args.file).is_file():
        return data_dir(load_checked(args).config)
    return default_data_dir()


def list_runs(args: argparse.Namespace) -> int:
    from menlo_cortex.benchmark.report import listing

    store = RunStore(_store_folder(args))
    runs = store.runs()
    print(listing(runs) if runs else f"no bench runs in {store.path}")
    return 0


def make_card(args: argparse.Namespace) -> int:
    from menlo_cortex.benchmark.card import write_card

    written = write_card(_stored(args), args.output)
    print(f"BenchCard written: {', '.join(str(path) for path in written)}")
    return 0


def compare_runs(args: argparse.Namespace) -> int:
    from menlo_cortex.benchmark.report import comparison

    first, second = _stored(args)
    print(comparison(first, second))
    return 0


def _stored(args: argparse.Namespace) -> list[StoredRun]:
    store = RunStore(_store_folder(args))
    return [store.get(run_id) for run_id in args.run_ids]


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A bench failure is one line and its exit code (2 for usage, 1 for the server), never a traceback."""

    def guarded(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except BenchError as exc:
            if args.debug:
                raise
            print(f"cortex bench: {exc}", file=sys.stderr)
            return exc.exit_code

    return guarded


def _bounded(most: int) -> Callable[[str], int]:
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {most}, got `{text[:20]}`")
        return value

    return whole_number


def _levels(text: str) -> tuple[int, ...]:
    """Sorted, each once: the lowest level is the others' queueing baseline."""
    return tuple(sorted({_bounded(64)(part) for part in text.split(",")}))
