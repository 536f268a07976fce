"""`runtime`: one request at a time. Time to first token and tokens/s for a short and a long prompt (prompt
processing and generation apart), the gaps between tokens, streamed against whole answers, and how resident
memory grows with the context a request fills."""

from __future__ import annotations

from typing import Any

from ..client import Completion
from ..session import Bench
from ..stats import median, spread


def measure(bench: Bench, out: dict[str, Any]) -> None:
    rounds, workload = bench.options.rounds, bench.workload
    short = _series(bench, out, "short", [workload.short(index) for index in range(rounds)])
    before = bench.resident()
    long = _series(bench, out, "long", [workload.long() for _ in range(rounds)])
    _check_prompt_size(out, workload.long_prompt_tokens)
    out["context_memory"] = _context_memory(before, bench.resident(), long)
    gaps = [gap for completion in short + long for gap in completion.gaps_s]
    out["token_gap_ms"] = spread(gaps, 1000) | {"gaps": len(gaps)}
    out["token_gaps_ms"] = [round(gap * 1000, 2) for gap in gaps]  # the BenchCard's distribution
    whole = _series(bench, out, "whole", [workload.short(index, stream=False) for index in range(rounds)])
    out["streaming"] = {
        "streamed_total_ms": median([c.total_s * 1000 for c in short]),
        "whole_total_ms": median([c.total_s * 1000 for c in whole]),
        "streamed_tokens": median([c.tokens for c in short]),
        "whole_tokens": median([c.tokens for c in whole]),
    }


def _check_prompt_size(out: dict[str, Any], asked: int) -> None:
    """A server that counts far fewer prompt tokens than were sent is not reading the prompt (a chat template
    that drops the messages): its figures would mislead, so the report says so."""
    counted = out["long"]["prompt_tokens"]
    if counted is not None and counted < asked / 4:
        out["warning"] = (f"the server counted {counted:.0f} prompt tokens for a prompt of about {asked}: "
                          "is its chat template applied to the messages?")  # fmt: skip


def summary(completions: list[Completion]) -> dict[str, Any]:
    return {
        "requests": len(completions),
        "prompt_tokens": median([c.prompt_tokens for c in completions]),
        "completion_tokens": median([c.tokens for c in completions]),
        "ttft_ms": spread([c.ttft_s for c in completions], 1000),
        "prompt_tokens_per_s": median([c.prompt_tokens_per_s for c in completions]),
        "generation_tokens_per_s": median([c.generation_tokens_per_s for c in completions]),
        # usage: the server's token counts; chunks: it sent none, chunks of text were counted instead
        "tokens_from": "usage" if all(c.completion_tokens is not None for c in completions) else "chunks",
    }


def _series(bench: Bench, out: dict[str, Any], name: str, bodies: list[dict[str, Any]]) -> list[Completion]:
    """One request after the other; `out[name]` summarises those done so far (a run that stops keeps them)."""
    found: list[Completion] = []
    for index, body in enumerate(bodies):
        bench.progress("runtime", f"{name} prompt {index + 1}/{len(bodies)}")
        found.append(bench.chat(body))
        out[name] = summary(found)
    return found


def _context_memory(before: int | None, after: int | None, long: list[Completion]) -> dict[str, Any]:
    """Resident growth over the long prompts, per token the longest held (llama.cpp's KV cache is touched as
    it fills; a server that clears it at load shows about 0 here and the cost in `init` instead)."""
    tokens = max((c.prompt_tokens or 0) + c.tokens for c in long)
    if before is None or after is None or not tokens:
        return {"growth_bytes": None, "per_token_bytes": None, "tokens": tokens}
    return {"growth_bytes": after - before, "per_token_bytes": (after - before) / tokens, "tokens": tokens}
