"""Tokens/s of every llama.cpp CPU variant this machine can run, against the x64 baseline, in one run.

A portable build carries all the variants and the runtime loads the best at start
(runtime/llama_backends.py). Without that dispatch a build must pin CPU features, and then fails on
older CPUs, or settle for a baseline; this shows what the choice is worth on this machine. Each
variant runs in its own process (ggml registers one CPU backend per process), with the same model,
prompt, threads and greedy sampling; the table marks the variant the runtime chooses.

    .venv/bin/python bench/cpu_variants.py [--rounds 3] [--runs 2] [--max-tokens 64] [--json results.json]

Prints a table and one JSON document; medians over all runs, ratios against x64.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from menlo_cortex.runtime.models.backends import ggml_library, llama_lib_dir, load_backends

TEST_MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PROMPT = "Write one sentence about the sea."


def runnable_variants() -> list[str]:
    """The variant modules in the wheel whose own score says they run on this CPU, in file order."""
    names = []
    for module in sorted(llama_lib_dir().glob("libggml-cpu-*.so")):
        handle = ctypes.CDLL(str(module))
        handle.ggml_backend_score.restype = ctypes.c_int
        if handle.ggml_backend_score() > 0:
            names.append(module.name.removeprefix("libggml-cpu-").removesuffix(".so"))
    return names


def child(variant: str, model: Path, runs: int, max_tokens: int) -> list[float]:
    """In a fresh process: register one CPU variant, then time greedy generations (tokens/s each)."""
    from llama_cpp import Llama

    lib_dir = llama_lib_dir()
    if not ggml_library(lib_dir).ggml_backend_load(str(lib_dir / f"libggml-cpu-{variant}.so").encode()):
        raise SystemExit(f"ggml could not load the {variant} variant")
    llama = Llama(model_path=str(model), n_ctx=512, n_threads=os.cpu_count(), verbose=False)
    llama.create_completion(PROMPT, max_tokens=4, temperature=0)  # warm-up
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        done: Any = llama.create_completion(PROMPT, max_tokens=max_tokens, temperature=0)
        rates.append(done["usage"]["completion_tokens"] / (time.perf_counter() - started))
    return rates


def measure(variant: str, args: argparse.Namespace) -> list[float]:
    command = [sys.executable, __file__, "--child", variant, "--model", str(args.model)]
    command += ["--runs", str(args.runs), "--max-tokens", str(args.max_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant}: {done.stderr.strip()[-2000:]}")
    rates: list[float] = json.loads(done.stdout.splitlines()[-1])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2, help="generations per variant per round")
    parser.add_argument("--max-tokens", type=int, default=64)
    default_model = Path.home() / ".cache" / "cortex" / "test-data" / "models" / f"{TEST_MODEL_SHA256}.gguf"
    parser.add_argument("--model", type=Path, default=default_model)
    parser.add_argument("--json", type=Path, help="also write the JSON result here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.runs, args.max_tokens)))
        return
    if not args.model.is_file():
        raise SystemExit(f"model not found: {args.model} (run `make setup`)")
    chosen = load_backends().cpu_variant  # first: scoring the others maps them into this process too
    variants = runnable_variants()
    if "x64" not in variants:
        raise SystemExit(f"no CPU variants in {llama_lib_dir()}: this llama-cpp-python was built without dispatch")
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # rounds interleave the variants, so load from elsewhere hits all alike
        for name in variants:
            rates[name] += measure(name, args)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    report = {
        "cpu_count": os.cpu_count(),
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "chosen": chosen,
        "variants": {
            name: {"tokens_per_s": medians[name], "ratio_to_x64": medians[name] / medians["x64"], "runs": rates[name]}
            for name in variants
        },
    }
    print(f"{'variant':14}{'tok/s':>10}{'vs x64':>10}")
    for name, row in report["variants"].items():
        mark = "  <- chosen at start" if name == report["chosen"] else ""
        print(f"{name:14}{row['tokens_per_s']:>10.1f}{row['ratio_to_x64']:>9.2f}x{mark}")
    document = json.dumps(report, indent=2)
    print(document)
    if args.json:
        args.json.write_text(document + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
