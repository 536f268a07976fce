"""CPU time per generated token, by thread, in Cortex and in native llama-server: what everything that is not
llama_decode costs (the scheduler's Python, the request threads' chunks, the event loop's HTTP and SSE).

    .venv/bin/python bench/per_token.py [--streams 1,4] [--tokens 128] [--rounds 3] [--json FILE]
        [--baseline-python OTHER/.venv/bin/python]

Each server serves the same model (the test model by default) with the same threads and 4 slots; each round
sends `streams` streaming /v1/completions at once (greedy, `tokens` each) and reads every thread's CPU time from
/proc before and after. Threads are told apart by their kernel names (runtime/ops/thread_names.py): the main
thread (the event loop: HTTP, JSON, SSE), `cortex-request` (a request's chunks), `cortex-batch` (the
scheduler: its Python, and its own share of each decode) and llama.cpp's workers (the decode). The Python cost
per token is the main and request threads' CPU, plus the batch thread's less the busiest worker's (its share of
a decode is a worker's); beside it, the kernel's part of the main and request threads' (each SSE write to a
loopback client runs the client's TCP receive there too, a cost llama-server pays for its own writes). Rounds
alternate between the servers; the median of the rounds is printed, with JSON.

The event loop's part (LOOP) is measured directly; the batch thread's is an estimate, and a poor one: a decode
worker spends more than the batch thread's share of each decode, so at one stream it reads anywhere from nothing to
a few hundred µs. bench/scheduler_cpu.py measures the scheduler's part directly, in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from compare import (
    SLOTS,
    library_path,
    llama_server,
    resolve_inputs,
    serve,
    write_cortexfile,
)  # bench/, the script's own folder
from processes import free_port, stop

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
PROMPT = "Write a long story about a lighthouse keeper who finds a map in a bottle. Once upon a time,"


def thread_times(pid: int) -> dict[int, tuple[str, float, float]]:
    """tid -> (kernel name, CPU seconds, of which in the kernel) of every thread of `pid`. The CPU time is the
    scheduler's own count (schedstat, nanoseconds): the 10 ms ticks of /proc's user and system times made the batch
    thread's Python, a difference of two large figures, noise at one stream. The kernel's part has only ticks."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
            on_cpu = on_cpu_s(task)
        except OSError:  # the thread ended meanwhile
            continue
        system = int(stat[stat.rindex(")") + 2 :].split()[12]) / TICKS
        found[int(task.name)] = (name, on_cpu, system)
    return found


def on_cpu_s(task: Path) -> float:
    """A thread's CPU seconds by the scheduler's own count; `task`: its /proc/PID/task/TID folder."""
    return int((task / "schedstat").read_text().split()[0]) / 1e9


def groups(
    pid: int, before: dict[int, tuple[str, float, float]], after: dict[int, tuple[str, float, float]]
) -> dict[str, Any]:
    """CPU seconds between two readings, by kind of thread; `system`: the part spent in the kernel (a socket
    write to a loopback client runs the client's TCP receive there too)."""
    spent: dict[str, list[float]] = {}
    system: dict[str, float] = {}
    for tid, (name, seconds, kernel) in after.items():
        kind = "main" if tid == pid else name if name.startswith("cortex-") else "worker"
        _, seconds_before, kernel_before = before.get(tid, (name, 0.0, 0.0))
        spent.setdefault(kind, []).append(seconds - seconds_before)
        system[kind] = system.get(kind, 0.0) + kernel - kernel_before
    return {kind: {"seconds": sum(spent_by), "system": system[kind], "threads": len(spent_by),
                   "busiest": max(spent_by)} for kind, spent_by in spent.items()}  # fmt: skip


def complete(url: str, model: str, tokens: int) -> int:
    """One streaming completion; the text chunks it got (one per token on both servers)."""
    body = {"model": model, "prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "stream": True}
    chunks = 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                chunks += bool(choices[0].get("text"))
    return chunks


def measure(url: str, pid: int, model: str, streams: int, tokens: int) -> dict[str, Any]:
    before, started = thread_times(pid), time.monotonic()
    with ThreadPoolExecutor(streams) as pool:
        generated = sum(pool.map(lambda _: complete(url, model, tokens), range(streams)))
    wall, spent = time.monotonic() - started, groups(pid, before, thread_times(pid))
    total = sum(group["seconds"] for group in spent.values())
    python = _python_seconds(spent)
    loop = _loop_seconds(spent)
    kernel = _kernel_seconds(spent)
    return {"tokens": generated, "tokens_per_s": generated / wall, "cpu_us_per_token": 1e6 * total / generated,
            "python_us_per_token": None if python is None else 1e6 * python / generated,
            "loop_us_per_token": None if loop is None else 1e6 * loop / generated,
            "kernel_us_per_token": None if kernel is None else 1e6 * kernel / generated,
            "threads": spent}  # fmt: skip


def _python_seconds(spent: dict[str, Any]) -> float | None:
    """Cortex's threads that are not decoding: the main and request threads, and the batch thread less its
    share of each decode (a worker's). None for a server whose threads are not named (llama-server)."""
    loop = _loop_seconds(spent)
    if loop is None:
        return None
    one_worker = spent.get("worker", {}).get("busiest", 0.0)  # a decode worker: the other threads are idle ones
    return float(loop + max(0.0, spent["cortex-batch"]["seconds"] - one_worker))


def _loop_seconds(spent: dict[str, Any]) -> float | None:
    """The event loop's and the request threads' CPU: measured directly, where the batch thread's part is a
    difference of two large figures (at one stream it swings by a few hundred µs a token from round to round)."""
    if "cortex-batch" not in spent:
        return None
    return float(sum(spent.get(kind, {}).get("seconds", 0.0) for kind in ("main", "cortex-request")))


def _kernel_seconds(spent: dict[str, Any]) -> float | None:
    """The kernel's part of the main and request threads' CPU (socket writes, wake-ups): llama-server pays for its
    own writes too, so this part of the cost above is not Python's."""
    if "cortex-batch" not in spent:
        return None
    return float(sum(spent.get(kind, {}).get("system", 0.0) for kind in ("main", "cortex-request")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the test model)")
    parser.add_argument("--chat-format", default="gemma")
    parser.add_argument("--context", type=int, default=2048, help="tokens per slot")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--streams", default="1,4", help="concurrent streams per round, comma separated")
    parser.add_argument("--tokens", type=int, default=128, help="tokens each stream generates")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=HERE.parent / "build" / "per-token-data")
    parser.add_argument("--llama-server", help="folder with llama-server (default: scripts/llama-server.sh's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cortex-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for Cortex only (OpenMP settings, say); repeatable")  # fmt: skip
    parser.add_argument("--baseline-python", metavar="PYTHON",
                        help="also measure the Cortex this Python runs (another commit's venv)")  # fmt: skip
    args = parser.parse_args()
    resolve_inputs(args)
    results = run(args)
    print(json.dumps(results, indent=2) if args.json is None else "")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for line in table(results):
        print(line)


def run(args: argparse.Namespace) -> dict[str, Any]:
    pythons = {"cortex": sys.executable, **({"cortex-baseline": args.baseline_python} if args.baseline_python else {})}
    ports = {name: free_port() for name in [*pythons, "llama-server"]}
    cortexfile = str(write_cortexfile(args))
    # -P: `python -m` would put the working folder first on sys.path, and from a checkout's root another commit's
    # venv (--baseline-python) would import this checkout's package instead of its own.
    commands = {name: [python, "-P", "-m", "menlo_cortex", "start", "-f", cortexfile, "--port", str(ports[name])]
                for name, python in pythons.items()}  # fmt: skip
    commands["llama-server"] = llama_server(args, ports["llama-server"])
    cortex_env = dict(item.split("=", 1) for item in args.cortex_env)
    env = {**dict.fromkeys(pythons, cortex_env), "llama-server": {"LD_LIBRARY_PATH": library_path(args)}}
    processes = {name: serve(name, commands[name], ports[name], args.data / f"{name}.log", env[name])
                 for name in commands}  # fmt: skip
    try:
        levels = [int(level) for level in args.streams.split(",")]
        rounds: dict[str, dict[int, list[dict[str, Any]]]] = {name: {level: [] for level in levels} for name in ports}
        for port in ports.values():  # warm: the first requests allocate and repack
            complete(f"http://127.0.0.1:{port}", args.name, 16)
        for _ in range(args.rounds):
            for level in levels:
                for name, port in ports.items():
                    url = f"http://127.0.0.1:{port}"
                    rounds[name][level].append(measure(url, processes[name].pid, args.name, level, args.tokens))
        peaks = {name: peak_rss_mib(process.pid) for name, process in processes.items()}
    finally:
        for process in processes.values():
            stop(process)
    medians = {name: {str(level): median(runs) for level, runs in by.items()} for name, by in rounds.items()}
    return {"cpu": cpu_model(), "threads": args.threads, "slots": SLOTS, "tokens": args.tokens, "results": medians,
            "peak_rss_mib": peaks}  # fmt: skip


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    middle = sorted(runs, key=lambda run: run["cpu_us_per_token"])[len(runs) // 2]
    found = {key: round(statistics.median(run[key] for run in runs), 1) for key in ("tokens_per_s", "cpu_us_per_token")}
    keys = ("python_us_per_token", "loop_us_per_token", "kernel_us_per_token")
    medians = {key: _median_of_known(runs, key) for key in keys}
    each = {key: [None if run[key] is None else round(run[key], 1) for run in runs] for key in keys[:2]}
    return {**found, **medians, "rounds": each, "threads": middle["threads"]}


def _median_of_known(runs: list[dict[str, Any]], key: str) -> float | None:
    known = [run[key] for run in runs if run[key] is not None]
    return round(statistics.median(known), 1) if known else None


def table(results: dict[str, Any]) -> list[str]:
    lines = [f"{results['cpu']}, {results['threads']} threads, {results['slots']} slots, {results['tokens']} tokens"]
    peaks = results["peak_rss_mib"]
    lines.append("peak resident memory: " + ", ".join(f"{name} {mib} MiB" for name, mib in peaks.items()))
    lines.append(f"{'SERVER':<16} {'STREAMS':>7} {'TOKENS/S':>9} {'CPU µs/TOKEN':>13} {'NOT DECODE µs/TOKEN':>20} "
                 f"{'LOOP+REQUESTS':>14} {'OF WHICH KERNEL':>16}")  # fmt: skip
    for name, by_level in results["results"].items():
        for level, found in by_level.items():
            python, loop, kernel = (_shown(found[key]) for key in ("python_us_per_token", "loop_us_per_token",
                                                                    "kernel_us_per_token"))  # fmt: skip
            lines.append(f"{name:<16} {level:>7} {found['tokens_per_s']:>9.1f} {found['cpu_us_per_token']:>13.0f} "
                         f"{python:>20} {loop:>14} {kernel:>16}")  # fmt: skip
    return lines


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
