"""What llama-cpp-python's chat handlers see as a `Llama`: everything is the loaded model's, except that
a completion runs as a sequence of the batch scheduler, on behalf of one request.

Chat templates, JSON-schema and tool grammars and tool-call parsing stay llama-cpp-python's: a handler
formats the prompt and calls `create_completion`, which lands here.
"""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .sampling import SamplerChain, SamplerSpec
from .sequence import Finished, Output, Sequence
from .text import TextStream

if TYPE_CHECKING:
    from ..generation import Generation
    from .scheduler import Scheduler

Chunk = dict[str, Any]


@dataclass(frozen=True)
class Stream:
    """A streamed completion not yet started: its chunk generator, and what the event loop needs to read the
    sequence itself instead (Direct)."""

    chunks: Iterator[Chunk]
    sequence: Sequence
    head: Chunk
    echoed: str


@dataclass(frozen=True)
class Direct:
    """A stream whose chunks are its text pieces one for one (a text completion, or a chat completion through
    llama-cpp-python's plain converter): the event loop can make them itself, as `convert` does, from the pieces
    the scheduler's thread hands it, with no request thread in between."""

    sequence: Sequence
    first: list[Chunk]  # before any piece (an echoed prompt)
    convert: Callable[[Output], list[Chunk]]  # a piece or the Finished -> the chunks the stream would yield


class LlamaView:
    def __init__(self, llama: Any, scheduler: Scheduler, context: int, generation: Generation) -> None:
        self._llama, self._scheduler, self._context, self._generation = llama, scheduler, context, generation
        self._last: Stream | None = None  # the last streamed completion made

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
        if not stream:
            return _whole(chunks, head, sequence)
        self._last = Stream(chunks, sequence, head, echoed)
        return chunks

    def direct(self, iterator: Iterator[Chunk]) -> Direct | None:
        """`iterator` (what a chat handler or a text completion returned) as a Direct stream, when it is, unstarted,
        the last streamed completion itself or llama-cpp-python's plain chat converter over it; else None (a
        handler that parses tool calls, say, keeps its request thread)."""
        last = self._last
        if last is None or inspect.getgeneratorstate(last.chunks) != inspect.GEN_CREATED:  # type: ignore[arg-type]
            return None
        first = [_chunk(last.head, last.echoed, None)] if last.echoed else []
        if iterator is last.chunks:
            return Direct(last.sequence, first, functools.partial(_text_chunks, last.head))
        if _over_plain_chat_converter(iterator, last.chunks):
            started: list[bool] = []
            return Direct(last.sequence, _chat(first, started), functools.partial(_chat_chunks, last.head, started))
        return None

    def submit(self, direct: Direct) -> None:
        """Hand `direct`'s sequence to the scheduler; its pieces go to its sink from now on."""
        _submit(self._scheduler, direct.sequence)

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
    _submit(scheduler, sequence)
    try:
        if echoed:
            yield _chunk(head, echoed, None)
        while True:
            item = sequence.output.get()
            if isinstance(item, BaseException):
                raise item
            yield from _text_chunks(head, item)
            if isinstance(item, Finished):
                return
    finally:
        sequence.abandoned.set()


def _submit(scheduler: Scheduler, sequence: Sequence) -> None:
    """The scheduler frees a sequence's sampler once it has it; one it refused is freed here."""
    try:
        scheduler.submit(sequence)
    except BaseException:
        sequence.sampler.free()
        raise


def _text_chunks(head: Chunk, item: Output) -> list[Chunk]:
    """The stream chunks of one piece, or of the end (a cancelled sequence did not finish: no finish reason)."""
    if isinstance(item, Finished):
        return [] if item.reason == "cancelled" else [_chunk(head, "", item.reason)]
    assert isinstance(item, str)
    return [_chunk(head, item, None)]


def _chat(chunks: list[Chunk], started: list[bool]) -> list[Chunk]:
    """Text chunks as llama-cpp-python's plain converter turns them into chat chunks: its own function, given
    one at a time (the first also brings the assistant's role)."""
    from llama_cpp.llama_chat_format import _convert_text_completion_chunks_to_chat

    converted: list[Chunk] = []
    for chunk in chunks:
        made: list[Any] = list(_convert_text_completion_chunks_to_chat(iter([chunk])))  # type: ignore[list-item]
        converted += made if not started else made[1:]
        started[:] = [True]
    return converted


def _chat_chunks(head: Chunk, started: list[bool], item: Output) -> list[Chunk]:
    return _chat(_text_chunks(head, item), started)


def _over_plain_chat_converter(iterator: Iterator[Chunk], chunks: Iterator[Chunk]) -> bool:
    """Whether `iterator` is llama-cpp-python's _convert_text_completion_chunks_to_chat over `chunks`, unstarted
    (the pinned version's generator: its argument is in its frame until it starts)."""
    from llama_cpp.llama_chat_format import _convert_text_completion_chunks_to_chat

    frame = getattr(iterator, "gi_frame", None)
    return (
        getattr(iterator, "gi_code", None) is _convert_text_completion_chunks_to_chat.__code__
        and frame is not None
        and inspect.getgeneratorstate(iterator) == inspect.GEN_CREATED  # type: ignore[arg-type]
        and frame.f_locals.get("chunks") is chunks
    )


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
