"""A plain greedy chain reads the highest logit in place instead of asking llama.cpp to copy all 262k of them
into candidates first: the token must be llama.cpp's, on the model's real logits and on a NaN."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.runtime.models.backends import load_backends
from menlo_cortex.runtime.models.batching.sampling import GrammarBudget, SamplerChain, SamplerSpec, _plain_greedy

PROMPT = b"The lighthouse keeper opened the bottle and read"


@pytest.fixture(scope="module")
def llama(test_model_path: Path) -> Iterator[Any]:
    from llama_cpp import Llama

    load_backends()
    model = Llama(model_path=str(test_model_path), n_ctx=256, verbose=False)
    try:
        model.eval(model.tokenize(PROMPT))
        yield model
    finally:
        model.close()


def llama_cpps_pick(llama: Any, spec: SamplerSpec) -> int:
    """What llama_sampler_sample picks with the chain `spec` makes, the in-place read turned off."""
    import llama_cpp

    chain = SamplerChain(spec, llama._model.vocab, llama.n_vocab())
    try:
        return int(llama_cpp.llama_sampler_sample(chain.pointer, llama._ctx.ctx, -1))
    finally:
        chain.free()


def cortex_pick(llama: Any, spec: SamplerSpec) -> int:
    chain = SamplerChain(spec, llama._model.vocab, llama.n_vocab())
    try:
        return chain.sample(llama._ctx.ctx, -1, GrammarBudget())
    finally:
        chain.free()


def test_the_in_place_greedy_pick_is_llama_cpps(llama: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    greedy = SamplerSpec(temperature=0)
    expected = llama_cpps_pick(llama, greedy)
    with monkeypatch.context() as patched:  # the pick must not come from llama.cpp's sampler
        patched.setattr(llama_cpp, "llama_sampler_sample", lambda *_: pytest.fail("llama_sampler_sample was called"))
        assert cortex_pick(llama, greedy) == expected


def test_a_nan_logit_is_left_to_llama_cpp(llama: Any) -> None:
    import llama_cpp

    logits = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
    greedy = SamplerSpec(temperature=0)
    poisoned = (llama_cpps_pick(llama, greedy) + 1) % llama.n_vocab()  # not the highest
    kept = logits[poisoned]
    logits[poisoned] = math.nan  # numpy's argmax would take it; llama.cpp's greedy compares past it
    try:
        assert cortex_pick(llama, greedy) == llama_cpps_pick(llama, greedy) != poisoned
    finally:
        logits[poisoned] = kept


@pytest.mark.parametrize(
    "spec",
    [
        SamplerSpec(temperature=0.8),
        SamplerSpec(temperature=0, repeat_penalty=1.1),
        SamplerSpec(temperature=0, frequency_penalty=0.5),
        SamplerSpec(temperature=0, presence_penalty=0.5),
        SamplerSpec(temperature=0, logit_bias={42: 5.0}),
    ],
)
def test_a_chain_that_changes_a_logit_is_not_read_in_place(spec: SamplerSpec) -> None:
    assert not _plain_greedy(spec)


def seeded_draws(llama: Any, seed: int | None, count: int = 32) -> list[int]:
    """`count` draws at temperature 1 from the same logits, none cut off (top-k, top-p, min-p): two unseeded runs
    alike by chance would take 32 draws alike."""
    spec = SamplerSpec(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
    chain = SamplerChain(spec, llama._model.vocab, llama.n_vocab())
    try:
        return [chain.sample(llama._ctx.ctx, -1, GrammarBudget()) for _ in range(count)]
    finally:
        chain.free()


def test_a_seed_fixes_the_draws_and_another_seed_changes_them(llama: Any) -> None:
    assert seeded_draws(llama, 7) == seeded_draws(llama, 7)
    assert seeded_draws(llama, 7) != seeded_draws(llama, 8)
    assert seeded_draws(llama, None) != seeded_draws(llama, None)  # unseeded: a fresh seed each time
