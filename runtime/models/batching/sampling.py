"""One llama.cpp sampler chain per sequence, in the order llama-cpp-python builds it (so a request samples
the same tokens it did before batching): logit bias, penalties, then greedy, or top-k, typical, top-p, min-p,
temperature and a seeded draw.

A grammar is checked after the draw, as llama-server does: applying it to a 262k-token vocabulary costs tens
of milliseconds per token, on the thread every sequence's step waits for. The drawn token is tried against
the grammar alone; only when the grammar refuses it is the grammar applied to every candidate and the draw
made again. A greedy pick is the same either way (the best token, if allowed, is the best allowed token).
"""

from __future__ import annotations

import ctypes
import functools
import math
import random
from dataclasses import dataclass, field
from typing import Any


class GrammarRefused(ValueError):
    """llama.cpp's parser refused a grammar (grammars.py checks first; this is the backstop)."""


@dataclass(frozen=True)
class SamplerSpec:
    """llama-cpp-python's create_completion sampling arguments, with its defaults."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    penalty_window: int = 4096  # tokens the penalties look back over: the whole context, see _penalties
    logit_bias: dict[int, float] = field(default_factory=dict)
    grammar: str | None = None
    grammar_root: str = "root"


class SamplerChain:
    """A sequence's samplers; free() it once, on the scheduler's thread."""

    def __init__(self, spec: SamplerSpec, vocab: Any, n_vocab: int) -> None:
        import llama_cpp

        self._lib, self.n_vocab = llama_cpp, n_vocab
        self.pointer = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        self.grammar: Any = None
        self._candidates: Any = None  # numpy llama_token_data[n_vocab], made on the first grammar sample
        try:
            for sampler in _samplers(spec, n_vocab):
                llama_cpp.llama_sampler_chain_add(self.pointer, sampler)
            if spec.grammar is not None:
                self.grammar = llama_cpp.llama_sampler_init_grammar(
                    vocab, spec.grammar.encode(), spec.grammar_root.encode()
                )
                if not self.grammar:
                    raise GrammarRefused("llama.cpp cannot use this request's grammar")
        except BaseException:
            self.free()
            raise

    def sample(self, context: Any, index: int) -> int:
        """Sample from the logits of batch position `index` and accept the token."""
        if self.grammar is None:
            return int(self._lib.llama_sampler_sample(self.pointer, context, index))  # accepts it too
        logits = self._lib.llama_get_logits_ith(context, index)
        token = self._draw(logits, grammar_first=False)
        if not self._grammar_allows(token):
            token = self._draw(logits, grammar_first=True)
        self._lib.llama_sampler_accept(self.grammar, token)
        self._lib.llama_sampler_accept(self.pointer, token)
        return token

    def _draw(self, logits: Any, grammar_first: bool) -> int:
        lib = self._lib
        candidates = self._fresh_candidates(logits)
        pointer = candidates.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
        array = lib.llama_token_data_array(pointer, self.n_vocab, -1, False)
        if grammar_first:
            lib.llama_sampler_apply(self.grammar, ctypes.byref(array))
        lib.llama_sampler_apply(self.pointer, ctypes.byref(array))
        return int(array.data[array.selected].id)

    def _fresh_candidates(self, logits: Any) -> Any:
        import numpy as np

        if self._candidates is None:
            layout = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
            self._candidates = np.zeros(self.n_vocab, dtype=layout)
        self._candidates["id"] = np.arange(self.n_vocab, dtype=np.int32)  # samplers sort and cut in place
        self._candidates["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self._candidates["p"] = 0.0
        return self._candidates

    def _grammar_allows(self, token: int) -> bool:
        lib = self._lib
        single = (lib.llama_token_data * 1)(lib.llama_token_data(token, 1.0, 0.0))
        array = lib.llama_token_data_array(single, 1, -1, False)
        lib.llama_sampler_apply(self.grammar, ctypes.byref(array))
        return bool(math.isfinite(single[0].logit))

    def free(self) -> None:
        if self.pointer:
            self._lib.llama_sampler_free(self.pointer)
            self.pointer = None
        if self.grammar:
            self._lib.llama_sampler_free(self.grammar)
            self.grammar = None


def _samplers(spec: SamplerSpec, n_vocab: int) -> list[Any]:
    import llama_cpp as lib

    samplers = []
    if spec.logit_bias:
        biases = (lib.llama_logit_bias * len(spec.logit_bias))(
            *(lib.llama_logit_bias(token, bias) for token, bias in spec.logit_bias.items())
        )
        samplers.append(lib.llama_sampler_init_logit_bias(n_vocab, len(biases), biases))
    samplers.append(
        _penalties()(spec.penalty_window, spec.repeat_penalty, spec.frequency_penalty, spec.presence_penalty)
    )
    seed = draw_seed() if spec.seed is None else spec.seed
    if spec.temperature < 0:
        samplers.append(lib.llama_sampler_init_dist(seed))
    elif spec.temperature == 0:
        samplers.append(lib.llama_sampler_init_greedy())
    else:
        samplers += [
            lib.llama_sampler_init_top_k(spec.top_k),
            lib.llama_sampler_init_typical(spec.typical_p, 1),
            lib.llama_sampler_init_top_p(spec.top_p, 1),
            lib.llama_sampler_init_min_p(spec.min_p, 1),
            lib.llama_sampler_init_temp(spec.temperature),
            lib.llama_sampler_init_dist(seed),
        ]
    return samplers


@functools.cache
def _penalties() -> Any:
    """llama_sampler_init_penalties as the C library declares it (window, repeat, frequency, presence).

    llama-cpp-python's binding declares a leading n_vocab that the C function reads as its window (the
    next int is lost), so its penalties have always looked back over the whole context; the window here
    says so on purpose.
    """
    import llama_cpp

    function = llama_cpp.llama_cpp._lib["llama_sampler_init_penalties"]  # a new pointer: the binding's stays
    function.argtypes = [ctypes.c_int32, ctypes.c_float, ctypes.c_float, ctypes.c_float]
    function.restype = llama_cpp.llama_sampler_p_ctypes
    return function


def draw_seed() -> int:
    return random.SystemRandom().randrange(2**32)
