"""One completion as the scheduler runs it: its prompt, sampling, limits and what it has produced.

Output crosses threads through `output`: text pieces, then one `Finished` (or the exception that ended it). A
sequence whose reader is the event loop itself (its chunks are its text pieces, one for one) has a `sink` instead,
set before it is submitted: the scheduler's thread hands each piece there.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .sampling import SamplerChain
from .text import TextStream

if TYPE_CHECKING:
    from ..generation import Generation


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop" (end of generation or a stop string) | "length" | "cancelled"


Output = str | Finished | BaseException


@dataclass(eq=False)
class Sequence:
    prompt: list[int]
    sampler: SamplerChain  # made by the request's thread (a grammar is parsed there); the scheduler frees it
    max_tokens: int
    text: TextStream
    generation: Generation
    output: queue.SimpleQueue[Output] = field(default_factory=queue.SimpleQueue)
    abandoned: threading.Event = field(default_factory=threading.Event)  # its reader went away
    sink: Callable[[Output], None] | None = None  # instead of `output`: set before submission, never after
    # Scheduler state, touched on the scheduler's thread only.
    fed: int = 0  # prompt tokens in the KV cache
    generated: list[int] = field(default_factory=list)
    pending: int | None = None  # sampled, not yet decoded
    arrival: int = 0  # submission order: prompts are read oldest first

    def should_stop(self) -> bool:
        return self.abandoned.is_set() or self.generation.should_stop()

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.prompt)

    def emit(self, text: str) -> None:
        if text:
            self.deliver(text)

    def deliver(self, item: Output) -> None:
        if self.sink is not None:
            self.sink(item)
        else:
            self.output.put(item)
