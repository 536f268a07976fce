"""One llama.cpp sampler chain per sequence, in the order llama-cpp-python builds it (so a request samples
the same tokens it did before batching): logit bias, penalties, grammar, then greedy, or top-k, typical,
top-p, min-p, temperature and a seeded draw."""

from __future__ import annotations

import ctypes
import functools
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
    """A sampler chain owned by one sequence; free() it once, on the scheduler's thread."""

    def __init__(self, spec: SamplerSpec, vocab: Any, n_vocab: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.pointer = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        try:
            for sampler in _samplers(spec, vocab, n_vocab):
                llama_cpp.llama_sampler_chain_add(self.pointer, sampler)
        except BaseException:
            self.free()
            raise

    def sample(self, context: Any, index: int) -> int:
        """Sample from the logits of batch position `index` and accept the token (llama_sampler_sample does)."""
        return int(self._lib.llama_sampler_sample(self.pointer, context, index))

    def free(self) -> None:
        if self.pointer:
            self._lib.llama_sampler_free(self.pointer)
            self.pointer = None


def _samplers(spec: SamplerSpec, vocab: Any, n_vocab: int) -> list[Any]:
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
    if spec.grammar is not None:
        grammar = lib.llama_sampler_init_grammar(vocab, spec.grammar.encode(), spec.grammar_root.encode())
        if not grammar:
            _free_all(samplers)
            raise GrammarRefused("llama.cpp cannot use this request's grammar")
        samplers.append(grammar)
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


def _free_all(samplers: list[Any]) -> None:
    import llama_cpp

    for sampler in samplers:
        llama_cpp.llama_sampler_free(sampler)


def draw_seed() -> int:
    return random.SystemRandom().randrange(2**32)
