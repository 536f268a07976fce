"""A BenchCard of Cortex beside native llama-server (built from the llama.cpp sources vendored in the pinned
llama-cpp-python, scripts/llama-server.sh) and, with --llama-cpp-python, llama-cpp-python's own server: the
same model, machine, threads, KV cache and run, each measured by `cortex bench` with the same workload.

    .venv/bin/python bench/compare.py [--model FILE] [--out docs/benchcards/NAME] [--type init,runtime,load]
    make bench-compare          (builds llama-server and the llama-cpp-python server's venv once)

Cortex is measured through `cortex bench -f` (it starts the appliance itself), the others through
`cortex bench --url ... --pid ...`. Every run lands in one data folder's cortex.db; the card (markdown and SVG)
and `cortex bench compare` (Cortex's ratios to llama-server) are made from there. Slots: `--slots` sequences of
`--context` tokens on every server (4 by default, llama-server's own default); `--gpu-layers` layers on the GPU
(-1: all) on both Cortex and llama-server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from processes import free_port, stop  # bench/, the script's own folder

HERE = Path(__file__).resolve().parent
READY_S = 180.0
SLOTS = 4

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


def library_path(args: argparse.Namespace) -> str:
    """llama-server's libraries first, before what the loader was told already (device-check.sh's CUDA runtime)."""
    return os.pathsep.join(filter(None, [args.llama_server, os.environ.get("LD_LIBRARY_PATH")]))


def cortex(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "menlo_cortex", *args], check=True)


def write_cortexfile(args: argparse.Namespace) -> Path:
    digest = hashlib.sha256(args.model.read_bytes()).hexdigest()
    slots, gpu_layers = placement(args)
    connections = max(64, slots + 16)  # a stream per slot, and the bench's own /health and /metrics readings
    named = {
        "id": args.name,
        "source": args.model,
        "chat_format": args.chat_format,
        "data": args.data,
        "sha256": digest,
    }
    quoted = {key: json.dumps(str(value)) for key, value in named.items()}  # JSON strings are YAML's: a path stays one
    path: Path = args.data / "Cortexfile.yaml"
    path.write_text(
        "version: 1\n"
        f"engines:\n  llama_cpp:\n    parallel: {slots}\n"
        f"models:\n  - id: {quoted['id']}\n    source: {quoted['source']}\n    sha256: {quoted['sha256']}\n"
        f"    context_size: {args.context}\n    threads: {args.threads}\n    chat_format: {quoted['chat_format']}\n"
        f"    gpu_layers: {gpu_layers}\n"
        f"data:\n  path: {quoted['data']}\n"
        f"logs:\n  path: {json.dumps(str(args.data / 'cortex-logs'))}\n"  # the start's lines: backends, GPUs, layers
        f"server:\n  limits:\n    queue_size: {connections}\n    max_connections: {connections}\n"
        f"    max_connections_per_client: {connections}\n",
        encoding="utf-8",
    )
    return path


def placement(args: argparse.Namespace) -> tuple[int, int]:
    """Slots, and layers on the GPU (-1: all): the same on every server (per_token.py has neither option)."""
    return getattr(args, "slots", SLOTS), getattr(args, "gpu_layers", 0)


def serve(
    name: str, command: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(process)
    raise SystemExit(f"{name} did not start in {READY_S:.0f} s (log: {log})")


def llama_server(args: argparse.Namespace, port: int) -> list[str]:
    # --no-jinja: with jinja on, --chat-template takes template text, and `gemma` would be the whole prompt.
    folder = Path(args.llama_server)
    slots, gpu_layers = placement(args)
    return [str(folder / "llama-server"), "-m", str(args.model), "-c", str(args.context * slots), "-np", str(slots),
            "-ngl", str(gpu_layers if gpu_layers >= 0 else 999), "-t", str(args.threads), "-tb", str(args.threads),
            "--alias", args.name, "--no-jinja", "--chat-template", args.chat_format, "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip


def llama_cpp_python_server(args: argparse.Namespace, port: int) -> list[str]:
    # --interrupt_requests False: its default ends the running request when a new one comes.
    return [args.llama_cpp_python, "-c", LOAD_BACKENDS_THEN_SERVE, "--model", str(args.model), "--model_alias",
            args.name, "--chat_format", args.chat_format, "--n_ctx", str(args.context), "--n_threads",
            str(args.threads), "--n_threads_batch", str(args.threads), "--host", "127.0.0.1", "--port", str(port),
            "--interrupt_requests", "False"]  # fmt: skip


def bench_url(args: argparse.Namespace, name: str, command: list[str], port: int, env: dict[str, str]) -> None:
    process = serve(name, command, port, args.data / f"{name}.log", env)
    try:
        kinds = ",".join(kind for kind in args.type.split(",") if kind != "init")
        cortex("bench", "--url", f"http://127.0.0.1:{port}", "--model", args.name, "--pid", str(process.pid),
               "--label", name, "--type", kinds, "--datapath", str(args.data), *args.workload)  # fmt: skip
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the test model)")
    parser.add_argument("--chat-format", default="gemma", help="the model's chat format (the test model's: gemma)")
    parser.add_argument("--context", type=int, default=2048, help="tokens per slot")
    parser.add_argument("--slots", type=int, default=SLOTS, help="sequences decoded together, on every server")
    parser.add_argument("--gpu-layers", type=int, default=0, help="layers on the GPU, on every server (-1: all)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--type", default="init,runtime,load", help="kinds, as cortex bench --type")
    parser.add_argument("--out", type=Path, help="the BenchCard's folder (default: docs/benchcards/<model>-<cores>)")
    parser.add_argument("--data", type=Path, default=HERE.parent / "build" / "bench-data", help="runs' data folder")
    parser.add_argument("--llama-server", help="folder with llama-server (default: scripts/llama-server.sh's)")
    parser.add_argument("--llama-cpp-python", help="a python with llama-cpp-python[server]; omitted: not measured")
    args, workload = parser.parse_known_args()
    args.workload = workload  # the rest goes to every `cortex bench`
    resolve_inputs(args)
    before = {line.split()[0] for line in runs(args)}
    cortex("bench", "-f", str(write_cortexfile(args)), "--label", "cortex", "--type", args.type, *args.workload)
    port = free_port()
    bench_url(args, "llama-server", llama_server(args, port), port, {"LD_LIBRARY_PATH": library_path(args)})
    if args.llama_cpp_python:
        port = free_port()
        bench_url(args, "llama-cpp-python", llama_cpp_python_server(args, port), port, {})
    ids = [line.split()[0] for line in runs(args) if line.split()[0] not in before]
    out = args.out or HERE.parent / "docs" / "benchcards" / f"{args.name}-{args.threads}-threads"
    cortex("bench", "card", ids[1], ids[0], *ids[2:], "-o", str(out), "--datapath", str(args.data))  # baseline first
    cortex("bench", "compare", ids[1], ids[0], "--datapath", str(args.data))


def resolve_inputs(args: argparse.Namespace) -> None:
    """The model (the test model by default) and its id, the data folder, llama-server's folder (built once)."""
    args.name = "gemma3-270m-q4km" if args.model is None else args.model.stem[:40]  # the model's id everywhere
    args.model = (args.model or test_model()).resolve()
    args.data = args.data.resolve()
    args.data.mkdir(parents=True, exist_ok=True)
    args.llama_server = (
        args.llama_server
        or subprocess.check_output([str(HERE.parent / "scripts" / "llama-server.sh")], text=True).strip()
    )


def runs(args: argparse.Namespace) -> list[str]:
    listed = subprocess.run([sys.executable, "-m", "menlo_cortex", "bench", "runs", "--datapath", str(args.data)],
                            capture_output=True, text=True, check=True).stdout.splitlines()  # fmt: skip
    return [line for line in listed[1:] if line.split() and line.split()[0].isdigit()]


def test_model() -> Path:
    found = sorted((Path.home() / ".cache" / "cortex" / "test-data" / "models").glob("*.gguf"))
    if not found:
        raise SystemExit("no test model: run `make setup` (or pass --model)")
    return found[0]


if __name__ == "__main__":
    main()
