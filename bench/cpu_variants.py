"""Prompt processing and generation tokens/s of every llama.cpp CPU variant this machine can run, against
the x64 baseline and the best variant, in one run.

A portable build carries all the variants and the runtime loads the best that passes its self-test at
start (runtime/models/cpu_variants.py). Without that dispatch a build must pin CPU features, and then
fails on older CPUs, or settle for a baseline; this shows what the choice is worth on this machine (on
an Intel Xeon with AMX: what the AMX variant's tile kernels give over zen4/icelake, mostly in prompt
processing). Each variant runs in its own process (ggml registers one CPU backend per process), with the
same model, prompt, threads and greedy sampling; the table marks the variant the runtime chooses.

    .venv/bin/python bench/cpu_variants.py [--rounds 3] [--runs 2] [--max-tokens 64] [--json results.json]

Prints a table and one JSON document; medians over all runs, ratios against x64.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from menlo_cortex.runtime.models.backends import llama_lib_dir, load_backends
from menlo_cortex.runtime.models.cpu_variants import cpu_model, rank, variant_files
from menlo_cortex.runtime.models.ggml import loaded_ggml

TEST_MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PROMPT = "Write one sentence about the sea."
LONG_PROMPT = "The history of the Mediterranean sea, its ports, its trade and its wars. " * 16  # ~256 tokens
KINDS = ("prompt", "generation")


def child(variant: str, model: Path, runs: int, max_tokens: int) -> dict[str, list[float]]:
    """In a fresh process: register one CPU variant, then time prompt reads and greedy generations."""
    from llama_cpp import Llama

    lib_dir = llama_lib_dir()
    ggml = loaded_ggml(lib_dir)
    if ggml is None or not ggml.ggml_backend_load(str(lib_dir / f"libggml-cpu-{variant}.so").encode()):
        raise SystemExit(f"ggml could not load the {variant} variant")
    threads = len(os.sched_getaffinity(0))
    llama = Llama(model_path=str(model), n_ctx=1024, n_batch=512, n_threads=threads, verbose=False)
    llama.create_completion(PROMPT, max_tokens=4, temperature=0)  # warm-up
    tokens = llama.tokenize(LONG_PROMPT.encode())
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(runs):
        llama.reset()  # type: ignore[no-untyped-call]
        started = time.perf_counter()
        llama.eval(tokens)
        rates["prompt"].append(len(tokens) / (time.perf_counter() - started))
        started = time.perf_counter()
        done: Any = llama.create_completion(PROMPT, max_tokens=max_tokens, temperature=0)
        rates["generation"].append(done["usage"]["completion_tokens"] / (time.perf_counter() - started))
    return rates


def measure(variant: str, args: argparse.Namespace) -> dict[str, list[float]]:
    command = [sys.executable, __file__, "--child", variant, "--model", str(args.model)]
    command += ["--runs", str(args.runs), "--max-tokens", str(args.max_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant}: {done.stderr.strip()[-2000:]}")
    rates: dict[str, list[float]] = json.loads(done.stdout.splitlines()[-1])
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
    chosen = load_backends().cpu_variant  # the runtime's own choice, self-test included
    variants = [variant.name for variant in rank(variant_files(llama_lib_dir()))]
    if "x64" not in variants:
        raise SystemExit(f"no CPU variants in {llama_lib_dir()}: this llama-cpp-python was built without dispatch")
    rates: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in KINDS} for name in variants}
    for _ in range(args.rounds):  # rounds interleave the variants, so load from elsewhere hits all alike
        for name in variants:
            for kind, values in measure(name, args).items():
                rates[name][kind] += values
    medians = {name: {kind: statistics.median(rates[name][kind]) for kind in KINDS} for name in variants}
    best = variants[0]  # ggml's own ranking: the variant it would load without a self-test
    report = {
        "cpu": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)),
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "chosen": chosen,
        "ranked_best": best,
        "variants": {
            name: {
                **{f"{kind}_tokens_per_s": medians[name][kind] for kind in KINDS},
                **{f"{kind}_ratio_to_x64": medians[name][kind] / medians["x64"][kind] for kind in KINDS},
                **{f"{kind}_ratio_to_{best}": medians[name][kind] / medians[best][kind] for kind in KINDS},
                "runs": rates[name],
            }
            for name in variants
        },
    }
    print(f"{'variant':16}{'prompt tok/s':>14}{'vs x64':>9}{'gen tok/s':>12}{'vs x64':>9}")
    for name, row in report["variants"].items():
        mark = "  <- chosen at start" if name == report["chosen"] else ""
        print(
            f"{name:16}{row['prompt_tokens_per_s']:>14.1f}{row['prompt_ratio_to_x64']:>8.2f}x"
            f"{row['generation_tokens_per_s']:>12.1f}{row['generation_ratio_to_x64']:>8.2f}x{mark}"
        )
    document = json.dumps(report, indent=2)
    print(document)
    if args.json:
        args.json.write_text(document + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
