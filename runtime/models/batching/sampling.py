"""One llama.cpp sampler chain per sequence, in the order llama-cpp-python builds it (so a request samples
the same tokens it did before batching): logit bias, penalties, then greedy, or top-k, typical, top-p, min-p,
temperature and a seeded draw.

A grammar is checked after the draw, as llama-server does: applying it to a 262k-token vocabulary costs tens
of milliseconds per token (seconds, for a grammar of thousands of alternatives), on the thread every
sequence's step waits for. The drawn token is tried against the grammar alone; only when the grammar refuses
it is the grammar applied to the candidates, best first, in growing chunks, until the tokens it allows are
all that can matter (the draw among them is then what the whole vocabulary would give), and the draw made
again. That work is paid from the model's GrammarBudget, bounded by shares of the step's own time: a grammar that
would take longer (many alternatives checked against a vocabulary where nothing likely is allowed) ends its
request with GrammarTooCostly, and the other sequences' steps go on.

A greedy chain with nothing before it that changes a logit (no bias, neutral penalties) is the highest logit:
read in place, it costs tens of microseconds, where llama_sampler_sample first copies every logit into a
candidate list (about 0.4 ms a token for Gemma 3's 262k, on the thread every sequence's step waits for).
"""

from __future__ import annotations

import ctypes
import functools
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

FIRST_CHUNK = 64  # candidates the grammar is first applied to; each further chunk is up to twice as large
TAIL_MASS = 1e-6  # probability the unchecked candidates may hold, at most, relative to the allowed ones
# What checking and accepting one token may cost a grammar, at least (else the step's floor, FLOOR_STEPS of a step):
# microseconds for a sane one; a recursive schema whose live alternatives multiply at each level of nesting
# (grammar_ambiguity.py) grows past it within a level or two, and its sequence ends there.
MIN_PARSE_S = 0.01


class GrammarRefused(ValueError):
    """llama.cpp's parser refused a grammar (grammars.py checks first; this is the backstop)."""


class GrammarTooCostly(ValueError):
    """The grammar allowed none of the tokens its budget could check, or checking one token took longer than
    a step may give it: going on would stall every stream."""

    @classmethod
    def none_allowed(cls, checked: int) -> GrammarTooCostly:
        return cls(
            f"the response format (grammar) allowed none of the {checked} most likely tokens checked in the time "
            "a step may take (server limit): a schema with fewer alternatives, or a logit_bias it allows, works"
        )

    @classmethod
    def too_slow(cls, seconds: float) -> GrammarTooCostly:
        return cls(
            f"the response format (grammar) took {seconds * 1000:.0f} ms to check one token, longer than a step may "
            "give it (server limit): nest fewer alternatives, or make them differ at their first character"
        )


@dataclass
class GrammarBudget:
    """Seconds the grammars of one model's sequences may hold the step they all wait for, shared by every
    sequence (a flood of new requests brings no fresh time). Each step allows FLOOR_STEPS times its own decode,
    plus a credit for longer passes (a cheap grammar's pass over the whole vocabulary, a first token far down the
    ranking): INITIAL_S at first, then SHARE of each step, up to CAP_S. Both scale with the machine, as a step is
    as slow as the CPU that runs it; in the long run the other sequences' steps take at most 1 + FLOOR_STEPS +
    SHARE times as long."""

    FLOOR_STEPS = 0.5
    SHARE = 0.5
    INITIAL_S = 0.25
    CAP_S = 0.5
    credit_s: float = INITIAL_S
    floor_s: float = 0.0

    def new_step(self, step_s: float) -> None:
        self.floor_s = self.FLOOR_STEPS * step_s
        self.credit_s = min(self.CAP_S, self.credit_s + self.SHARE * step_s)

    def allowance(self) -> float:
        return self.credit_s + self.floor_s

    def spend(self, seconds: float) -> None:
        from_floor = min(seconds, self.floor_s)
        self.floor_s -= from_floor
        self.credit_s -= seconds - from_floor


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

        self._lib, self.n_vocab, self.spec = llama_cpp, n_vocab, spec
        self.pointer = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        self.grammar: Any = None
        self._candidates: Any = None  # numpy llama_token_data[n_vocab], made on the first grammar sample
        self._argmax = _plain_greedy(spec)
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

    @property
    def costly(self) -> bool:
        """Whether sampling runs in C without the GIL for long: a grammar's parse, or the full chain, which copies and
        sorts every logit (a plain greedy chain reads the highest in place)."""
        return self.grammar is not None or not self._argmax

    def sample(self, context: Any, index: int, budget: GrammarBudget) -> int:
        """Sample from the logits of batch position `index` and accept the token; a grammar's extra work is paid
        from `budget`, the model's (GrammarTooCostly when it is spent and nothing allowed was found)."""
        if self.grammar is None:
            if self._argmax and (token := self._highest(context, index)) is not None:
                return token  # not accepted: greedy keeps nothing, and neutral penalties never read what they keep
            return int(self._lib.llama_sampler_sample(self.pointer, context, index))  # accepts it too
        limit = max(budget.floor_s, MIN_PARSE_S)
        logits = self._lib.llama_get_logits_ith(context, index)
        token = self._draw(self._fresh_candidates(logits))
        started = time.monotonic()
        allowed = self._grammar_allows(token)
        parse_s = time.monotonic() - started
        if not allowed:  # paid from the budget inside
            token = self._draw(self._allowed_candidates(logits, budget))
        started = time.monotonic()
        self._lib.llama_sampler_accept(self.grammar, token)
        parse_s += time.monotonic() - started
        self._lib.llama_sampler_accept(self.pointer, token)
        budget.spend(parse_s)
        if parse_s > limit:  # a C call cannot be stopped: the next one, likely dearer, is not made
            raise GrammarTooCostly.too_slow(parse_s)
        return token

    def _highest(self, context: Any, index: int) -> int | None:
        """The first highest logit, as llama.cpp's greedy sampler picks it; None when that is NaN, left to
        llama.cpp (whose greedy compares past a NaN)."""
        import numpy as np

        pointer = self._lib.llama_get_logits_ith(context, index)
        if not pointer:  # llama_sampler_sample would abort the process on it
            raise RuntimeError(f"llama.cpp has no logits for batch position {index}")
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        token = int(logits.argmax())  # a NaN counts as the highest here, not in llama.cpp
        return None if math.isnan(logits[token]) else token

    def _draw(self, candidates: Any) -> int:
        lib = self._lib
        pointer = candidates.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
        array = lib.llama_token_data_array(pointer, len(candidates), -1, False)
        lib.llama_sampler_apply(self.pointer, ctypes.byref(array))
        return int(array.data[array.selected].id)

    def _allowed_candidates(self, logits: Any, budget: GrammarBudget) -> Any:
        """Every candidate, the ones the grammar refuses at -inf. Checked best first (by logit and bias), in
        growing chunks, until the unchecked ones cannot change the draw; when the rest costs no more than the
        budget allows (a cheap grammar), all of it at once. GrammarTooCostly when the budget ends with none
        allowed. All of it, the ranking included, is paid from the budget."""
        import numpy as np

        started = time.monotonic()
        allowance = budget.allowance()
        candidates = self._fresh_candidates(logits)
        ranking = Ranking(self._biased(candidates["logit"]))
        allowed = np.zeros(self.n_vocab, dtype=bool)
        checked, chunk = 0, FIRST_CHUNK
        try:
            while checked < self.n_vocab:
                chunk_started = time.monotonic()
                ids = ranking.next(checked, chunk)
                allowed[ids] = self._grammar_allows_each(candidates[ids])
                checked += len(ids)
                now = time.monotonic()
                left, each = allowance - (now - started), (now - chunk_started) / len(ids)
                if self._settled(candidates, ranking, allowed, checked) or left <= 0:
                    break
                if each * (self.n_vocab - checked) <= left:  # the rest at once, in vocabulary order: no full sort
                    rest = ranking.unchecked(checked)
                    allowed[rest] = self._grammar_allows_each(candidates[rest])
                    checked = self.n_vocab
                    break
                chunk = _next_chunk(chunk, each, left)
        finally:
            budget.spend(time.monotonic() - started)
        if not allowed.any():
            raise GrammarTooCostly.none_allowed(checked)
        candidates["logit"][~allowed] = -np.inf
        return candidates

    def _biased(self, logits: Any) -> Any:
        biased = logits.copy()
        for token, bias in self.spec.logit_bias.items():
            biased[token] += bias
        return biased

    def _grammar_allows_each(self, part: Any) -> Any:
        """Which of `part` (a copy of some candidates) the grammar allows."""
        import numpy as np

        lib = self._lib
        part = np.array(part)  # the grammar sets what it refuses to -inf, in place
        pointer = part.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
        lib.llama_sampler_apply(self.grammar, ctypes.byref(lib.llama_token_data_array(pointer, len(part), -1, False)))
        return np.isfinite(part["logit"])

    def _settled(self, candidates: Any, ranking: Ranking, allowed: Any, checked: int) -> bool:
        """Whether the candidates not yet checked cannot change the draw among the allowed ones."""
        import numpy as np

        spec = self.spec
        if not allowed.any() or checked >= self.n_vocab:
            return checked >= self.n_vocab
        if spec.repeat_penalty < 1 or spec.frequency_penalty < 0 or spec.presence_penalty < 0:
            return False  # a penalty may raise a token past the checked ones
        if spec.temperature == 0:
            return True  # the best allowed token is among the checked: every other ranks lower
        if spec.temperature > 0 and 0 < spec.top_k <= allowed.sum():
            return True  # top_k keeps the best allowed tokens, which are all checked
        temperature = spec.temperature if spec.temperature > 0 else 1.0
        best = ranking.scores[allowed].max()
        kept = np.exp((ranking.scores[allowed] - best) / temperature).sum()
        tail = np.exp((ranking.scores[ranking.unchecked(checked)] - best) / temperature).sum()
        return bool(tail <= TAIL_MASS * kept)

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


class Ranking:
    """The candidates best first, sorted only as far as asked: the first TOP by a partition, all of them only
    when more are needed (a full sort of a 262k vocabulary costs a grammar-heavy step tens of milliseconds)."""

    TOP = 4096

    def __init__(self, scores: Any) -> None:
        self.scores = scores
        self._order: Any = None

    def next(self, start: int, count: int) -> Any:
        return self._sorted(start + count)[start : start + count]

    def checked(self, count: int) -> Any:
        return self._sorted(count)[:count]

    def unchecked(self, count: int) -> Any:
        """The candidates not among the first `count`, in vocabulary order."""
        import numpy as np

        rest = np.ones(len(self.scores), dtype=bool)
        rest[self.checked(count)] = False
        return np.flatnonzero(rest)

    def _sorted(self, needed: int) -> Any:
        import numpy as np

        if self._order is None or (len(self._order) < needed and len(self._order) < len(self.scores)):
            if needed <= self.TOP < len(self.scores):
                top = np.argpartition(-self.scores, self.TOP)[: self.TOP]
                self._order = top[np.argsort(-self.scores[top], kind="stable")]
            else:
                self._order = np.argsort(-self.scores, kind="stable")
        return self._order


def _next_chunk(chunk: int, seconds_each: float, left_s: float) -> int:
    """Twice the last chunk, but no more than the budget left can check at the cost measured so far."""
    affordable = int(left_s / seconds_each) if seconds_each > 0 else 2 * chunk
    return max(FIRST_CHUNK, min(2 * chunk, affordable))


def _plain_greedy(spec: SamplerSpec) -> bool:
    """The chain _samplers builds is greedy over the model's own logits: no bias, penalties that change none."""
    neutral = spec.repeat_penalty == 1.0 and spec.frequency_penalty == 0.0 and spec.presence_penalty == 0.0
    return spec.temperature == 0 and not spec.logit_bias and neutral


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
