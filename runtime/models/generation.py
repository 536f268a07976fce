"""One request's generation as the model layer runs it: its deadline, its cancellation, its owner and the
token counts measured on the worker thread. Below the engine and the batch scheduler, which both use it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class TokenStats:
    """Counted on the worker thread, read by the event loop after the generation ends."""

    started: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens found in a slot's KV cache, not computed again
    first_token_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)
    _last: float = 0.0

    def on_sample(self, context_length: int) -> None:
        now = time.monotonic()
        if self.completion_tokens == 0:
            self.prompt_tokens = context_length
            self.first_token_s = now - self.started
        else:
            self.gaps_s.append(now - self._last)
        self._last = now
        self.completion_tokens += 1


@dataclass
class Generation:
    """One request's run: its chunks cross from the worker thread to the event loop."""

    deadline: float
    owner: str = ""  # who asked (an API key's digest; "" without keys): caches are reused within one owner only
    cancel: threading.Event = field(default_factory=threading.Event)
    stats: TokenStats = field(default_factory=TokenStats)
    timed_out: bool = False

    def should_stop(self) -> bool:
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return self.timed_out or self.cancel.is_set()
