"""Serving throughput side by side: `cortex start`, native llama-server (built from the llama.cpp sources
vendored in the pinned llama-cpp-python, scripts/llama-server.sh) and llama-cpp-python's own server, on
the same model, machine and run, at 1, 2, 4 and 8 concurrent streams.

    .venv/bin/python bench/compare.py [--rounds 3] [--max-tokens 128] [--json results.json]
    make bench-compare          (builds llama-server and the llama-cpp-python server's venv once)

Every stream sends its own prompt to /v1/completions, greedy, streamed, and counts the chunks that carry
text (one per token on all three servers). Per level: aggregate tokens/s (all streams' tokens over the
round's wall time), tokens/s per stream (after its first token) and time to first token p50/p95. Then the
time to first token of a short prompt while three other streams decode. Rounds alternate between the
servers so that noise from other processes hits all alike; medians are reported, with Cortex's ratio to
llama-server. All servers get the same threads and the same KV cache: `slots` sequences of `context`
tokens each (llama-server with its default slot count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from processes import free_port, stop  # bench/, the script's own folder

HERE = Path(__file__).resolve().parent
PROMPTS = [
    "Once upon a time, in a kingdom by the sea, there lived",
    "The history of the printing press begins",
    "Here is a detailed recipe for a vegetable soup:",
    "The most important lessons I learned as a lighthouse keeper were",
    "A travel guide to the mountains of northern Italy:",
    "The engineer opened the old machine and found",
    "Chapter one. The rain had not stopped for three days when",
    "An essay on why cities need more trees:",
]
SHORT_PROMPT = "The capital of France is"
READY_S = 180.0


@dataclass
class Stream:
    ttft_s: float
    tokens: int
    decode_s: float  # first token to last


@dataclass
class Round:
    wall_s: float
    streams: list[Stream]

    @property
    def tokens(self) -> int:
        return sum(stream.tokens for stream in self.streams)


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path) -> None:
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {log.read_text(errors='replace')[-2000:]}")
            if _answers(f"{self.url}/v1/models"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start in {READY_S:.0f} s (log: {log})")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def cortex_server(args: argparse.Namespace, folder: Path) -> Server:
    cortexfile = folder / "Cortexfile.yaml"
    cortexfile.write_text(
        "version: 1\n"
        "engines:\n  llama_cpp:\n"
        f"    parallel: {args.slots}\n"
        "models:\n  - id: bench\n"
        f"    source: {args.model}\n"
        f"    context_size: {args.context}\n"
        f"    threads: {args.threads}\n"
        "server:\n  limits:\n    queue_size: 64\n",
        encoding="utf-8",
    )
    port = free_port()
    command = [sys.executable, "-m", "menlo_cortex", "start", "-f", str(cortexfile), "--port", str(port),
               "--datapath", str(folder / "data"), "--loglevel", "warning"]  # fmt: skip
    return Server("cortex", command, port=port)


def llama_server(args: argparse.Namespace) -> Server:
    port = free_port()
    folder = Path(args.llama_server)
    threads = ["-t", str(args.threads), "-tb", str(args.threads)]
    command = [str(folder / "llama-server"), "-m", str(args.model), "-c", str(args.context * args.slots), *threads,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return Server("llama-server", command, env={"LD_LIBRARY_PATH": str(folder)}, port=port)


# llama-cpp-python's server never loads ggml's backend modules, which a portable wheel (GGML_BACKEND_DL) needs.
LOAD_BACKENDS_THEN_SERVE = """
import ctypes, glob, os, runpy, sys, llama_cpp
lib = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
# The copy libllama linked (by soname, never loaded anew): see runtime/models/backends.py.
ggml = ctypes.CDLL(min((os.path.basename(p) for p in glob.glob(lib + "/libggml.so.*")), key=len), os.RTLD_NOLOAD)
ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
ggml.ggml_backend_load_all_from_path(lib.encode())
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__")
"""


def llama_cpp_python_server(args: argparse.Namespace) -> Server:
    port = free_port()
    command = [
        args.llama_cpp_python,
        "-c",
        LOAD_BACKENDS_THEN_SERVE,
        "--model",
        str(args.model),
        "--n_ctx",
        str(args.context),
        "--n_threads",
        str(args.threads),
        "--n_threads_batch",
        str(args.threads),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--interrupt_requests",
        "False",
    ]  # fmt: skip  (its default: a new request ends the running one)
    return Server("llama-cpp-python", command, port=port)


async def one_stream(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> Stream:
    body = {"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    sent = time.perf_counter()
    stamps: list[float] = []
    async with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line.removeprefix("data: ")).get("choices") or [{}]
            if choices[0].get("text"):
                stamps.append(time.perf_counter())
    if not stamps:
        raise RuntimeError("the server generated nothing")
    return Stream(stamps[0] - sent, len(stamps), stamps[-1] - stamps[0])


async def one_round(server: Server, streams: int, max_tokens: int) -> Round:
    async with httpx.AsyncClient(base_url=server.url, timeout=600) as client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(one_stream(client, PROMPTS[index % len(PROMPTS)], max_tokens) for index in range(streams))
        )
        return Round(time.perf_counter() - started, list(results))


async def ttft_beside_three(server: Server, max_tokens: int) -> float:
    """Time to first token of a short prompt sent while three long streams are decoding."""
    async with httpx.AsyncClient(base_url=server.url, timeout=600) as client:
        started = [asyncio.Event() for _ in range(3)]

        async def long_stream(index: int) -> None:
            body = {"model": "bench", "prompt": PROMPTS[index], "max_tokens": max_tokens * 4, "temperature": 0,
                    "stream": True}  # fmt: skip
            async with client.stream("POST", "/v1/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and '"text":""' not in line.replace(" ", ""):
                        started[index].set()

        background = [asyncio.ensure_future(long_stream(index)) for index in range(3)]
        try:
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), 300)
            await asyncio.sleep(0.5)  # all three in their decode phase
            short = await one_stream(client, SHORT_PROMPT, 8)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        await asyncio.sleep(1.0)  # the servers notice the disconnects and free their slots
        return short.ttft_s


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def level_summary(rounds: list[Round]) -> dict[str, float]:
    streams = [stream for run in rounds for stream in run.streams]
    ttfts = [stream.ttft_s * 1000 for stream in streams]
    return {
        "aggregate_tokens_per_s": statistics.median(run.tokens / run.wall_s for run in rounds),
        "per_stream_tokens_per_s": statistics.median(
            (s.tokens - 1) / s.decode_s for s in streams if s.decode_s > 0 and s.tokens > 1
        ),
        "ttft_ms_p50": percentile(ttfts, 0.5),
        "ttft_ms_p95": percentile(ttfts, 0.95),
        "tokens_per_stream": statistics.median(s.tokens for s in streams),
    }


def measure(args: argparse.Namespace, servers: list[Server]) -> dict[str, Any]:
    for server in servers:  # warm-up: first-call allocations, page cache
        asyncio.run(one_round(server, 1, 16))
    results: dict[str, Any] = {server.name: {} for server in servers}
    for streams in args.streams:
        rounds: dict[str, list[Round]] = {server.name: [] for server in servers}
        for _ in range(args.rounds):
            for server in servers:
                rounds[server.name].append(asyncio.run(one_round(server, streams, args.max_tokens)))
        for server in servers:
            results[server.name][str(streams)] = level_summary(rounds[server.name])
        print(f"  {streams} stream(s) done", file=sys.stderr)
    for server in servers:
        values = [asyncio.run(ttft_beside_three(server, args.max_tokens)) * 1000 for _ in range(args.rounds)]
        results[server.name]["ttft_ms_beside_three_decoding"] = statistics.median(values)
    return results


def ratios(results: dict[str, Any], streams: list[int]) -> dict[str, float]:
    cortex, native = results.get("cortex"), results.get("llama-server")
    if not cortex or not native:
        return {}
    found = {
        f"aggregate_{n}": cortex[str(n)]["aggregate_tokens_per_s"] / native[str(n)]["aggregate_tokens_per_s"]
        for n in streams
    }
    found["ttft_beside_three_decoding"] = (
        cortex["ttft_ms_beside_three_decoding"] / native["ttft_ms_beside_three_decoding"]
    )
    return found


def print_table(report: dict[str, Any]) -> None:
    results = report["results"]
    print(f"{'server':18}{'streams':>8}{'aggregate tok/s':>17}{'per stream':>12}{'TTFT p50 ms':>13}{'p95 ms':>9}")
    for name, levels in results.items():
        for streams in report["streams"]:
            row = levels[str(streams)]
            print(f"{name:18}{streams:>8}{row['aggregate_tokens_per_s']:>17.1f}{row['per_stream_tokens_per_s']:>12.1f}"
                  f"{row['ttft_ms_p50']:>13.0f}{row['ttft_ms_p95']:>9.0f}")  # fmt: skip
    for name, levels in results.items():
        print(f"{name}: short prompt's TTFT beside 3 decoding streams {levels['ttft_ms_beside_three_decoding']:.0f} ms")
    for key, value in report["ratios"].items():
        print(f"cortex / llama-server, {key}: {value:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the test model)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--slots", type=int, default=4, help="parallel sequences (llama-server's default: 4)")
    parser.add_argument("--context", type=int, default=2048, help="tokens per slot")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--llama-server", help="folder with llama-server (default: scripts/llama-server.sh's)")
    parser.add_argument("--llama-cpp-python", help="a python with llama-cpp-python[server]; omitted: not measured")
    parser.add_argument("--json", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    args.model = args.model or test_model()
    args.llama_server = (
        args.llama_server
        or subprocess.check_output([str(HERE.parent / "scripts" / "llama-server.sh")], text=True).strip()
    )
    with tempfile.TemporaryDirectory(prefix="cortex-compare-") as tmp:
        folder = Path(tmp)
        servers = [cortex_server(args, folder), llama_server(args)]
        if args.llama_cpp_python:
            servers.append(llama_cpp_python_server(args))
        try:
            for server in servers:
                server.start(folder / f"{server.name}.log")
            results = measure(args, servers)
        finally:
            for server in servers:
                server.stop()
    report = {
        "model": str(args.model),
        "cpu_count": len(os.sched_getaffinity(0)),
        "threads": args.threads,
        "slots": args.slots,
        "context_per_slot": args.context,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "streams": args.streams,
        "results": results,
        "ratios": ratios(results, args.streams),
    }
    print_table(report)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def test_model() -> Path:
    found = sorted((Path.home() / ".cache" / "cortex" / "test-data" / "models").glob("*.gguf"))
    if not found:
        raise SystemExit("no test model: run `make setup` (or pass --model)")
    return found[0]


if __name__ == "__main__":
    main()
