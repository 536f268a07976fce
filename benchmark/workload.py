"""The workload every target gets, so that runs compare: the prompts, the request bodies, the sizes."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

SHORT_PROMPTS = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Describe, step by step, how to repair a bicycle tyre.",
    "Explain to a child why the sky is blue.",
    "Write a travel guide to a small mountain village.",
    "Tell the history of the printing press.",
    "Describe a day in the life of a warehouse robot.",
    "Write a letter from a sailor to his family.",
    "Explain how a refrigerator keeps food cold.",
)
# About 60 tokens per copy with common tokenizers; the long prompt repeats it to its size.
PARAGRAPH = (
    "Shipment log. The morning crew unloaded pallets of tinned tomatoes, rice, olive oil and paper towels. "
    "Two pallets were damaged by forklift tines and set aside for inspection. The cold room held steady at "
    "three degrees. A driver reported a delay on the coast road because of fog. "
)
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Workload:
    model: str
    max_tokens: int = 64
    long_prompt_tokens: int = 512

    def short(self, index: int, *, stream: bool = True) -> dict[str, Any]:
        return self.body(SHORT_PROMPTS[index % len(SHORT_PROMPTS)], stream=stream)

    def long(self, *, stream: bool = True) -> dict[str, Any]:
        copies = max(1, self.long_prompt_tokens * CHARS_PER_TOKEN // len(PARAGRAPH))
        notes = "".join(itertools.repeat(PARAGRAPH, copies))
        return self.body(f"Summarise these notes in three sentences.\n\n{notes}", stream=stream)

    def body(self, prompt: str, *, stream: bool, max_tokens: int | None = None) -> dict[str, Any]:
        """A greedy chat request. The first line is new every time, so no server answers from a prompt cache."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": f"[{secrets.token_hex(4)}] {prompt}"}],
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": 0.0,
            "seed": 0,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body
