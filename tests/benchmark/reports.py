"""A report as `cortex bench` writes it, small enough to read: for the tests that need no server."""

from __future__ import annotations

import copy
from typing import Any

REPORT: dict[str, Any] = {
    "format": 1,
    "complete": True,
    "stopped": None,
    "started_at": "2026-11-28T12:00:00+00:00",
    "kinds": ["runtime", "load"],
    "target": {
        "mode": "url",
        "label": "edge|box <b>",
        "model": "gemma",
        "url": "http://127.0.0.1:1",
        "cortexfile": None,
        "model_sha256": None,
        "config_hash": None,
    },
    "host": {
        "cpu_model": "Test CPU",
        "cpu_flags": ["avx2"],
        "cores": 2,
        "memory_bytes": 8_000_000_000,
        "accelerators": [],
        "architecture": "x86_64",
        "kernel": "6.1",
        "os": "Debian",
        "cortex_version": "0.1.0",
        "llama_cpp_python_version": "0.3.36",
    },
    "workload": {},
    "results": {
        "runtime": {
            "short": {"ttft_ms": {"p50": 100.0}, "generation_tokens_per_s": 40.0},
            "token_gap_ms": {"p50": 25.0, "p95": 30.0, "p99": 40.0},
            "token_gaps_ms": [20.0, 25.0, 25.0, 40.0],
        },
        "load": {
            "levels": {
                "1": {
                    "aggregate_tokens_per_s": 40.0,
                    "per_stream_tokens_per_s": [40.0],
                    "completed": 1,
                    "rejected_429": 0,
                    "failed": 0,
                    "ttft_ms": {"p50": 100.0},
                    "queueing_ms": None,
                },
                "2": {
                    "aggregate_tokens_per_s": 70.0,
                    "per_stream_tokens_per_s": [36.0, 34.0],
                    "completed": 2,
                    "rejected_429": 0,
                    "failed": 0,
                    "ttft_ms": {"p50": 120.0},
                    "queueing_ms": 20.0,
                },
            }
        },
    },
    "memory": {"peak_bytes": 600_000_000, "samples": [[0.5, 500_000_000], [1.0, 590_000_000]]},
}


def report(**changes: Any) -> dict[str, Any]:
    made = copy.deepcopy(REPORT)
    made.update(changes)
    return made
