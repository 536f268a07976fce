"""What llama-cpp-python's chat handlers see as a `Llama`: everything is the loaded model's, except that
a completion runs as a sequence of the batch scheduler, on behalf of one request.

Chat templates, JSON-schema and tool grammars and tool-call parsing stay llama-cpp-python's: a handler
formats the prompt and calls `create_completion`, which lands here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .sampling import SamplerChain, SamplerSpec
from .sequence import Finished, Sequence
from .text import TextStream

if TYPE_CHECKING:
    from ..generation import Generation
    from .scheduler import Scheduler

Chunk = dict[str, Any]


class LlamaView:
    def __init__(self, llama: Any, scheduler: Scheduler, context: int, generation: Generation) -> None:
        self._llama, self._scheduler, self._context, self._generation = llama, scheduler, context, generation

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llama, name)

    def n_ctx(self) -> int:
        """A request's context: one slot's."""
        return self._context

    def create_chat_completion(self, **arguments: Any) -> Any:
        from llama_cpp import Llama

        return Llama.create_chat_completion(self, **arguments)  # type: ignore[arg-type]

    def create_completion(
        self,
        prompt: str | list[int],
        *,
        suffix: str | None = None,
        max_tokens: int | None = 16,
        temperature: float = 0.8,
        top_p: float = 0.95,
        min_p: float = 0.05,
        typical_p: float = 1.0,
        logprobs: int | None = None,
        echo: bool = False,
        stop: str | list[str] | None = None,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        repeat_penalty: float = 1.0,
        top_k: int = 40,
        stream: bool = False,
        seed: int | None = None,
        model: str | None = None,
        grammar: Any = None,
        logit_bias: dict[int, float] | None = None,
        **ignored: Any,  # tfs_z, mirostat_*, stopping_criteria, logits_processor: never set by the API
    ) -> Any:
        if logprobs is not None:
            raise ValueError("log probabilities are not returned by this server")
        tokens = self._prompt_tokens(prompt, suffix)
        if len(tokens) >= self._context:
            raise ValueError(f"Requested tokens ({len(tokens)}) exceed context window of {self._context}")
        room = self._context - len(tokens)
        spec = SamplerSpec(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_p=min_p,
            typical_p=typical_p,
            repeat_penalty=repeat_penalty,
            frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
            seed=seed,
            penalty_window=self._context,
            logit_bias=dict(logit_bias or {}),
            grammar=None if grammar is None else grammar._grammar,
            grammar_root="root" if grammar is None else grammar._root,
        )
        sequence = Sequence(
            prompt=tokens,
            sampler=SamplerChain(spec, self._llama._model.vocab, self._llama.n_vocab()),  # its grammar parsed here
            max_tokens=room if not max_tokens or max_tokens <= 0 else min(max_tokens, room),
            text=TextStream([stop] if isinstance(stop, str) else list(stop or [])),
            generation=self._generation,
        )
        head = {"id": f"cmpl-{uuid.uuid4()}", "object": "text_completion", "created": int(time.time())}
        head["model"] = model or self._llama.model_path
        echoed = self._echo(prompt) if echo else ""
        chunks = _chunks(self._scheduler, sequence, head, echoed)
        return chunks if stream else _whole(chunks, head, sequence)

    def _prompt_tokens(self, prompt: str | list[int], suffix: str | None) -> list[int]:
        """As llama-cpp-python's: a text prompt gets the model's BOS (and EOS) markers; a token list is used as is."""
        llama = self._llama
        if suffix is not None:
            return self._infill_tokens(prompt, suffix)
        if isinstance(prompt, list):
            tokens = list(prompt)
        else:
            text = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) if prompt else []
            bos = [llama.token_bos()] if llama._model.add_bos_token() and llama.token_bos() != -1 else []
            eos = [llama.token_eos()] if llama._model.add_eos_token() else []
            tokens = bos + text + eos
        if not tokens:
            raise ValueError("the prompt is empty")
        return tokens

    def _infill_tokens(self, prompt: str | list[int], suffix: str) -> list[int]:
        """Fill in the middle with the model's own FIM tokens: prefix marker, prompt, suffix marker, suffix, middle."""
        import llama_cpp

        vocab = self._llama._model.vocab
        markers = [llama_cpp.llama_vocab_fim_pre(vocab), llama_cpp.llama_vocab_fim_suf(vocab)]
        markers.append(llama_cpp.llama_vocab_fim_mid(vocab))
        if -1 in markers:
            raise ValueError("`suffix` needs a model trained to fill in the middle; this one has no FIM tokens")
        before = prompt if isinstance(prompt, list) else self._llama.tokenize(prompt.encode(), add_bos=False)
        after = self._llama.tokenize(suffix.encode(), add_bos=False)
        return [markers[0], *before, markers[1], *after, markers[2]]

    def _echo(self, prompt: str | list[int]) -> str:
        if isinstance(prompt, str):
            return prompt
        return str(self._llama.detokenize(prompt).decode("utf-8", "replace"))


def _chunks(scheduler: Scheduler, sequence: Sequence, head: Chunk, echoed: str) -> Iterator[Chunk]:
    """The sequence's text as llama-cpp-python's stream chunks; leaving early (close) frees its slot.
    A cancelled sequence (its client left, its time ran out) ends with no finish reason: it did not finish."""
    try:
        scheduler.submit(sequence)
    except BaseException:
        sequence.sampler.free()
        raise
    try:
        if echoed:
            yield _chunk(head, echoed, None)
        while True:
            item = sequence.output.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Finished):
                if item.reason != "cancelled":
                    yield _chunk(head, "", item.reason)
                return
            yield _chunk(head, item, None)
    finally:
        sequence.abandoned.set()


def _chunk(head: Chunk, text: str, finish_reason: str | None) -> Chunk:
    return {**head, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}]}


def _whole(chunks: Iterator[Chunk], head: Chunk, sequence: Sequence) -> Chunk:
    """A non-streamed completion (some chat handlers ask for one)."""
    texts, finish_reason = [], None
    for chunk in chunks:
        choice = chunk["choices"][0]
        texts.append(choice["text"])
        finish_reason = choice["finish_reason"] or finish_reason
    prompt, completion = len(sequence.prompt), len(sequence.generated)
    choice = {"text": "".join(texts), "index": 0, "logprobs": None, "finish_reason": finish_reason}
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return {**head, "choices": [choice], "usage": usage}
