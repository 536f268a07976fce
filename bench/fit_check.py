"""`cortex models fit`'s estimates beside what `cortex bench` measures on this machine, for one model: memory
(the plan's total, with the copied weights' original pages, against the server's peak resident memory) and
single-stream generation tokens/s.

    .venv/bin/python bench/fit_check.py [--model FILE] [--context 1024] [--slots 4] [--json OUT]

Prints the figures and their ratios (measured / estimated) as JSON. The estimate of tokens/s is bandwidth over
bytes read per token, so a ratio well under 1 says compute, not memory, bounds the model here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=_test_model(), help="a GGUF file (default: the test model)")
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cortex-fit-check-") as folder:
        cortexfile = _cortexfile(Path(folder), args)
        estimate = _fit(cortexfile)
        report = _bench(cortexfile, Path(folder))
    figures = _figures(estimate, report)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


def _test_model() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cortex" / "test-data" / "models"
    return next(iter(sorted(cache.glob("*.gguf"))), cache / "missing.gguf")


def _cortexfile(folder: Path, args: argparse.Namespace) -> Path:
    with args.model.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    path = folder / "Cortexfile.yaml"
    path.write_text(
        f"version: 1\nengines:\n  llama_cpp:\n    parallel: {args.slots}\n"
        f"models:\n  - id: m\n    source: {json.dumps(str(args.model))}\n    sha256: {digest}\n"
        f"    context_size: {args.context}\n"
        f"    chat_format: gemma\ndata:\n  path: {folder / 'data'}\n",
        encoding="utf-8",
    )
    return path


def _cortex(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "menlo_cortex", *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)


def _fit(cortexfile: Path) -> dict[str, Any]:
    done = _cortex("models", "fit", "-f", str(cortexfile), "--json")
    if done.returncode not in (0, 1):
        sys.exit(f"cortex models fit failed: {done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _bench(cortexfile: Path, folder: Path) -> dict[str, Any]:
    out = folder / "bench.json"
    done = _cortex("bench", "-f", str(cortexfile), "--type", "runtime", "--rounds", "5", "--max-tokens", "128",
                   "--json", str(out))  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"cortex bench failed: {done.stderr}")
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


def _figures(estimate: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    (model,) = estimate["models"]
    runtime = report["results"]["runtime"]
    measured_tps = runtime["short"]["generation_tokens_per_s"]  # one stream, a short prompt: mostly decode
    peak = (report.get("memory") or {}).get("peak_bytes")
    # The peak: with memory to spare, the kernel keeps the copied weights' original pages mapped as well.
    expected = model["memory"]["total"] + model["memory"]["reclaimable"] + estimate["machine"]["server_memory"]
    return {
        "cpu": estimate["machine"]["cpu_model"],
        "cores": estimate["machine"]["cores"],
        "architecture": platform.machine(),
        "memory_bandwidth_gb_s": round(estimate["machine"]["memory_bandwidth"] / 1e9, 2),
        "memory_estimate_mib": round(expected / MIB),  # the model's and the server's
        "weight_copies_mib": round(model["memory"]["weight_copies"] / MIB),
        "memory_peak_rss_mib": round(peak / MIB) if peak else None,
        "memory_ratio": round(peak / expected, 2) if peak else None,
        "tokens_per_s_estimate": model["tokens_per_s"],
        "tokens_per_s_measured": measured_tps,
        "tokens_per_s_ratio": round(measured_tps / model["tokens_per_s"], 2) if model["tokens_per_s"] else None,
    }


if __name__ == "__main__":
    main()
