"""Tokens/s of every llama.cpp CPU variant this machine can run, against the x64 baseline, in one run.

A portable build carries all the variants and the runtime loads the best at start
(runtime/llama_backends.py). Without that dispatch a build must pin CPU features, and then fails on
older CPUs, or settle for a baseline; this shows what the choice is worth on this machine. Each
variant runs in its own process (ggml registers one CPU backend per process), with the same model,
prompt, threads and greedy sampling; the `auto` row is the runtime's own choice.

    .venv/bin/python bench/cpu_variants.py [--runs 3] [--max-tokens 64] [--json results.json]

Prints a table and one JSON document; medians of the runs, ratios against x64.
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

from menlo_cortex.runtime.llama_backends import ggml_library, llama_lib_dir, load_backends

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


def child(variant: str, model: Path, runs: int, max_tokens: int) -> dict[str, Any]:
    """In a fresh process: register one CPU variant (or the runtime's choice), then time generations."""
    from llama_cpp import Llama

    if variant == "auto":
        variant = load_backends().cpu_variant or "linked-in"
    else:
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
    return {"variant": variant, "tokens_per_s": statistics.median(rates), "runs": rates}


def measure(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", variant, "--model", str(args.model)]
    command += ["--runs", str(args.runs), "--max-tokens", str(args.max_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant}: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
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
    variants = runnable_variants()
    if "x64" not in variants:
        raise SystemExit(f"no CPU variants in {llama_lib_dir()}: this llama-cpp-python was built without dispatch")
    rows = {name: measure(name, args) for name in [*variants, "auto"]}
    baseline = rows["x64"]["tokens_per_s"]
    report = {
        "cpu_count": os.cpu_count(),
        "max_tokens": args.max_tokens,
        "runs": args.runs,
        "chosen": rows["auto"]["variant"],
        "variants": {name: {**row, "ratio_to_x64": row["tokens_per_s"] / baseline} for name, row in rows.items()},
    }
    print(f"{'variant':16}{'tok/s':>10}{'vs x64':>10}")
    for name, row in report["variants"].items():
        label = f"auto ({row['variant']})" if name == "auto" else name
        print(f"{label:16}{row['tokens_per_s']:>10.1f}{row['ratio_to_x64']:>9.2f}x")
    document = json.dumps(report, indent=2)
    print(document)
    if args.json:
        args.json.write_text(document + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
