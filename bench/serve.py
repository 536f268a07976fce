"""Tokens/s and time to first token through `cortex start` (HTTP, streaming) versus llama-cpp-python called
directly, in the same run, with the same model settings, prompt and max_tokens. Greedy sampling, so both
paths generate the same tokens.

    .venv/bin/python bench/serve.py [--runs 5] [--max-tokens 64] [--json results.json]

Prints a table and one JSON document. Runs alternate between the two paths so that load from other
processes on the machine hits both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.store import find_local
from menlo_cortex.runtime.models.backends import load_backends
from menlo_cortex.runtime.models.engine import llama_arguments
from processes import free_port, stop  # bench/, the script's own folder

CORTEXFILE = """\
version: 1
models:
  - id: bench
    preset: gemma3-270m-q4km
    context_size: 2048
"""
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
READY_DEADLINE_S = 120.0


@dataclass
class Run:
    ttft_ms: float  # request sent -> first generated text
    tokens: int  # streamed chunks with text (one token each)
    decode_tokens_per_s: float  # after the first token
    total_s: float


def timed(chunks: Iterator[str], started: float) -> Run:
    stamps = [time.perf_counter() for text in chunks if text]
    if not stamps:
        raise RuntimeError("the model generated nothing")
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return Run((stamps[0] - started) * 1000, len(stamps), decode, stamps[-1] - started)


def request(max_tokens: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, "temperature": 0.0, "seed": 0}


class Direct:
    """llama-cpp-python in this process, built with the arguments the runtime's engine uses."""

    def __init__(self, config: Cortexfile, model_path: Path) -> None:
        from llama_cpp import Llama

        load_backends()  # the CPU variant the server would pick, so both sides run the same kernels
        model = config.models[0]
        arguments = {**llama_arguments(model, config.engines.llama_cpp), "verbose": False}
        self.llama = Llama(model_path=str(model_path), **arguments)

    def run(self, max_tokens: int) -> Run:
        started = time.perf_counter()
        stream: Any = self.llama.create_chat_completion(**request(max_tokens), stream=True)
        return timed((chunk["choices"][0]["delta"].get("content") or "" for chunk in stream), started)


class Served:
    """`cortex start` in a subprocess, read over HTTP with streaming (SSE)."""

    def __init__(self, cortexfile: Path, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "menlo_cortex", "start", "-f", str(cortexfile), "--port", str(self.port),
                   "--datapath", str(data_dir), "--loglevel", "warning"]  # fmt: skip
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=300)
        self._wait_ready(log)

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cortex start exited: {log.read_text(errors='replace')}")
            try:
                if self.http.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("cortex start did not become ready")

    def run(self, max_tokens: int) -> Run:
        body = {"model": "bench", "stream": True, **request(max_tokens)}
        started = time.perf_counter()
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            return timed(sse_texts(response.iter_lines()), started)

    def close(self) -> None:
        self.http.close()
        stop(self.process)


def sse_texts(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        choices = json.loads(line.removeprefix("data: ")).get("choices") or [{}]
        yield choices[0].get("delta", {}).get("content") or ""


def summary(runs: list[Run]) -> dict[str, float]:
    return {
        "ttft_ms": statistics.median(r.ttft_ms for r in runs),
        "decode_tokens_per_s": statistics.median(r.decode_tokens_per_s for r in runs),
        "tokens_per_s": statistics.median(r.tokens / r.total_s for r in runs),
        "tokens": statistics.median(r.tokens for r in runs),
    }


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    cortexfile = folder / "Cortexfile.yaml"
    cortexfile.write_text(CORTEXFILE, encoding="utf-8")
    config = load(cortexfile).config
    model_path = find_local(config.models[0], args.datapath)
    if model_path is None:
        raise SystemExit(f"test model not found in {args.datapath}: run `make setup`")
    direct, served = Direct(config, model_path), Served(cortexfile, args.datapath, folder / "server.log")
    runs: dict[str, list[Run]] = {"direct": [], "served": []}
    try:
        direct.run(args.max_tokens)  # warm-up: caches, first-call setup
        served.run(args.max_tokens)
        for _ in range(args.runs):
            runs["direct"].append(direct.run(args.max_tokens))
            runs["served"].append(served.run(args.max_tokens))
    finally:
        served.close()
    return report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[Run]]) -> dict[str, Any]:
    direct, served = summary(runs["direct"]), summary(runs["served"])
    return {
        "prompt": PROMPT,
        "max_tokens": args.max_tokens,
        "runs": args.runs,
        "cpu_count": os.cpu_count(),
        "direct": direct,
        "served": served,
        "ttft_overhead_ms": served["ttft_ms"] - direct["ttft_ms"],
        "tokens_per_s_ratio": served["tokens_per_s"] / direct["tokens_per_s"],
        "decode_tokens_per_s_ratio": served["decode_tokens_per_s"] / direct["decode_tokens_per_s"],
        "raw": {name: [asdict(run) for run in values] for name, values in runs.items()},
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{'':10}{'TTFT ms':>10}{'tok/s':>10}{'decode tok/s':>14}{'tokens':>8}")
    for name in ("direct", "served"):
        row = result[name]
        print(f"{name:10}{row['ttft_ms']:>10.1f}{row['tokens_per_s']:>10.1f}"
              f"{row['decode_tokens_per_s']:>14.1f}{row['tokens']:>8.0f}")  # fmt: skip
    print(f"HTTP overhead on TTFT: {result['ttft_overhead_ms']:+.1f} ms; "
          f"tokens/s served/direct: {result['tokens_per_s_ratio']:.3f} "
          f"(decode only: {result['decode_tokens_per_s_ratio']:.3f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--datapath", type=Path, default=Path.home() / ".cache" / "cortex" / "test-data")
    parser.add_argument("--json", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cortex-bench-") as folder:
        result = measure(args, Path(folder))
    print_table(result)
    document = json.dumps(result, indent=2)
    print(document)
    if args.json:
        args.json.write_text(document + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
