"""One loaded llama.cpp model, and the threads allowed to touch it.

A generation model's context belongs to its batch scheduler (batching/), which decodes every active
request together; each running request has a thread of its own for the work around that (the chat
template, tool-call parsing) and hands its chunks to the event loop through a Feed (feed.py). An
embedding model keeps llama-cpp-python's own context on the engine's one worker thread. The event
loop only awaits. Engines of different models share nothing, so no model waits for another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from menlo_cortex.cortexfile.schema import Model
from menlo_cortex.cortexfile.schema.models import LlamaCppEngine

from ..fetch.download import GGUF_MAGIC, read_magic
from ..ops.thread_names import name_this_thread
from .backends import BackendError, load_backends, route_llama_logs
from .batching.offload import OnGpu, gpu_room
from .batching.plan import SlotPlan, plan_slots
from .batching.scheduler import Scheduler
from .batching.view import LlamaView
from .feed import END, Feed
from .generation import Generation
from .gguf import GgufError, architecture_value, read_metadata

T = TypeVar("T")
CHAT_FORMAT_REFUSED = "The model's chat format refuses these messages (their roles in this order, for instance)."
log = logging.getLogger("cortex.llama")
MEAN_POOLING = 1  # llama_cpp.LLAMA_POOLING_TYPE_MEAN
RANK_POOLING = 4  # llama_cpp.LLAMA_POOLING_TYPE_RANK
FLASH_ATTENTION_TYPES = {"auto": -1, False: 0, True: 1}  # llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO, _DISABLED, _ENABLED
Chunk = dict[str, Any]
# Starts a llama-cpp-python call in stream mode on a request's view of the model -> chunk iterator.
StreamCall = Callable[[Any], Iterator[Chunk]]
HEADER_CONTEXT = 64  # tokens: llama-cpp-python's own context, unused once the scheduler has its own
Embedded = tuple[list[list[float]], int]  # one vector per input, tokens embedded
Ranked = tuple[list[float], int]  # one score per document, tokens read


class ModelLoadError(Exception):
    """A model could not be loaded; the message names the model and its file."""


class LlamaRefused(ModelLoadError):
    """llama.cpp could not load a readable model's weights or make its context: on a GPU, most often its memory."""


class TooManyTokens(ValueError):
    """An embedding request's inputs hold more tokens than it may embed; nothing was embedded."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"the inputs hold {tokens} tokens; at most {limit} are embedded per request (server limit)")


class Stopped(Exception):
    """The work was cancelled between two batches."""


def check_gguf(model: Model, path: Path) -> None:
    """Fail early, naming model and file, when the file is missing or not GGUF."""
    try:
        magic = read_magic(path)
    except OSError as exc:
        raise ModelLoadError(f"model `{model.id}`: cannot read {path}: {exc.strerror or 'I/O error'}") from None
    if magic != GGUF_MAGIC:  # its bytes are not shown: a file's content never reaches a client
        raise ModelLoadError(f"model `{model.id}`: {path} is not a GGUF file")


def check_reranker(model: Model, path: Path) -> None:
    """A model declared `rerank: true` is a reranker: its GGUF says rank pooling (a classification head)."""
    try:
        pooling = architecture_value(read_metadata(path), "pooling_type")
    except (OSError, GgufError) as exc:
        raise ModelLoadError(f"model `{model.id}`: cannot read {path}'s header ({exc})") from None
    if pooling != RANK_POOLING:
        raise ModelLoadError(
            f"models[{model.id}].rerank: {path} is not a reranker (its GGUF has no rank pooling, the classification "
            "head llama.cpp scores query and document pairs with): declare a reranking model, or leave rerank out"
        )


def check_head(model: Model, llama: Any) -> None:
    """A reranker's head gives at least one class: its first is the score."""
    import llama_cpp

    if llama_cpp.llama_model_n_cls_out(llama._model.model) < 1:
        llama.close()
        raise ModelLoadError(f"models[{model.id}].rerank: the model's classification head has no output")


def plan_engine(
    model: Model, path: Path, settings: LlamaCppEngine, budget_mb: int | None, gpu_cap: int | None = None
) -> SlotPlan:
    """The model's slots and memory, read from its header: before any weight is loaded, so the memory
    budget can refuse it or make room for it first. `gpu_cap`: at most this much GPU memory for `auto`."""
    prepare_llama(model, path)
    backends = load_backends()
    room, integrated = gpu_room(backends.gpu_free()), backends.integrated_gpu
    if room is not None and gpu_cap is not None:
        room = min(room, gpu_cap)
    elif integrated and gpu_cap == 0:
        room = 0  # the retry with none there: planned as a GPU without room, no large batch's work goes to it
    try:
        return plan_slots(model, path, settings, budget_mb, backends.kernels, gpu_room=room, integrated=integrated)
    except ValueError as exc:
        raise ModelLoadError(f"model `{model.id}`: llama.cpp failed to load {path}: {exc}") from None


def prepare_llama(model: Model, path: Path) -> None:
    """A readable GGUF file, llama.cpp's logs routed and its backends loaded (once per process)."""
    check_gguf(model, path)
    route_llama_logs()
    try:
        load_backends().check_model(path)
    except BackendError as exc:
        raise ModelLoadError(f"model `{model.id}`: {exc}") from None


def llama_arguments(model: Model, settings: LlamaCppEngine, gpu: OnGpu) -> dict[str, Any]:
    """Keyword arguments of `llama_cpp.Llama` for one model of the Cortexfile; `gpu`: what its plan puts there."""
    # Unset: every core this process may run on. llama-cpp-python's own default is half of os.cpu_count(),
    # which `cortex bench` measured at 0.7x the tokens/s of native llama-server on a 2-core machine.
    threads = model.threads or len(os.sched_getaffinity(0))
    return {
        "n_ctx": model.context_size,
        "n_threads": threads,
        "n_threads_batch": threads,
        "n_gpu_layers": gpu.layers,
        "op_offload": gpu.batches,
        "n_batch": settings.batch_size,
        # An encoder (BERT) reads a whole batch in one micro-batch: llama.cpp aborts the process otherwise.
        **({"n_ubatch": settings.batch_size} if model.pooled else {}),
        "flash_attn": settings.flash_attention is True,  # the scheduler's context takes `auto` (_start_scheduler)
        "use_mmap": settings.use_mmap,
        "use_mlock": settings.use_mlock,
        "embedding": model.pooled,
        # Mean pooling gives one vector per input; decoder models default to none (a vector per token); a
        # reranker's rank pooling one score per query and document pair (its classification head).
        **({"pooling_type": MEAN_POOLING} if model.embeddings else {}),
        **({"pooling_type": RANK_POOLING} if model.rerank else {}),
        "chat_format": model.chat_format,
        "verbose": True,  # see route_llama_logs; turned off once loaded
    }


def _chat_handler(model: Model, llama: Any) -> Any:
    """A handler from the model's Jinja `chat_template`, or None to keep `chat_format`/the GGUF's own."""
    if model.chat_template is None:
        return None

    return _jinja_formatter(model.chat_template, llama).to_chat_handler()


def _jinja_formatter(template: str, llama: Any) -> Any:
    """llama-cpp-python's formatter of a Jinja chat template, with this model's own BOS and EOS."""
    from llama_cpp import llama_chat_format

    vocab = llama._model
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=vocab.token_get_text(llama.token_eos()),
        bos_token=vocab.token_get_text(llama.token_bos()),
        stop_token_ids=[llama.token_eos()],
    )


def _chat_formatter(model: Model, llama: Any) -> Any:
    """As llama-cpp-python's chat handlers format a prompt: the model's Jinja template, else its named chat format's
    own formatter, else the GGUF's template; ValueError when there is none."""
    from llama_cpp import llama_chat_format

    name = llama.chat_format or ""
    template = model.chat_template
    if template is None and (not name or name.startswith("chat_template.")):  # the GGUF's own, as Llama took it
        template = llama.metadata.get("tokenizer.chat_template")
    if template is not None:
        return _jinja_formatter(template, llama)
    named = getattr(llama_chat_format, f"format_{name.replace('-', '_')}", None)
    if named is None:
        raise ValueError(f"model `{model.id}`: its chat format `{name}` cannot count a prompt here")
    return named


async def _until_let_go(future: Future[T], stop: Callable[[], None] | None = None) -> T:
    """The engine thread's result; when the caller is cancelled, `stop` is called, a call still queued never
    runs, and a running one is waited for: the caller's place in the queue is held until the thread lets go."""
    try:
        return await asyncio.shield(asyncio.wrap_future(future))
    finally:
        if stop is not None:
            stop()
        if not future.cancel():
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wrap_future(future))


class RankPairs:
    """The tokens of query and document pairs, as llama-server pairs them: the model's own rerank template when
    its GGUF has one, else [BOS] query [EOS] [SEP] document [EOS], each special token where the vocabulary adds
    it. The query is read once; a client's text never becomes special tokens (only the template's own are)."""

    def __init__(self, llama: Any, query: str) -> None:
        import llama_cpp

        self.llama = llama
        template = llama.metadata.get("tokenizer.chat_template.rerank")
        if isinstance(template, str):
            pieces = re.split(r"(\{query\}|\{document\})", template)
            self.parts: list[list[int] | None] = [
                self._text(query) if piece == "{query}" else None if piece == "{document}" else self._special(piece)
                for piece in pieces
            ]
            return
        vocab = llama._model.vocab
        sep = llama_cpp.llama_vocab_sep(vocab)
        eos = llama.token_eos() if llama.token_eos() != -1 else sep
        end = [eos] if llama_cpp.llama_vocab_get_add_eos(vocab) else []
        bos = [llama.token_bos()] if llama_cpp.llama_vocab_get_add_bos(vocab) else []
        between = end + ([sep] if llama_cpp.llama_vocab_get_add_sep(vocab) else [])
        self.parts = [bos + self._text(query) + between, None, end]

    def pair(self, document: str) -> list[int]:
        text = self._text(document)
        return [token for part in self.parts for token in (text if part is None else part)]

    @property
    def fixed(self) -> int:
        """The tokens every pair has: the query's and the markers'."""
        return sum(len(part) for part in self.parts if part is not None)

    def _text(self, value: str) -> list[int]:
        return list(self.llama.tokenize(value.encode("utf-8", "ignore"), add_bos=False, special=False))

    def _special(self, value: str) -> list[int]:
        return list(self.llama.tokenize(value.encode("utf-8", "ignore"), add_bos=False, special=True)) if value else []


LIMIT_NAMES = "the smallest of context_size, engines.llama_cpp.batch_size and the model's trained context"


def _score(pointer: Any) -> float:
    """A pair's score: the first value of its pooled output (the head's one class)."""
    if not pointer:
        raise RuntimeError("llama.cpp gave no score for a pair")
    score = float(pointer[0])
    if not math.isfinite(score):
        raise RuntimeError("the model gave a score that is not a finite number")
    return score


def _batches(counts: list[int], batch_tokens: int, batch_inputs: int) -> Iterator[tuple[int, int]]:
    """Runs of consecutive inputs that llama.cpp decodes at once: at most `batch_tokens` tokens and `batch_inputs`
    inputs (one input over the token size is a run of its own)."""
    start, tokens = 0, 0
    for index, count in enumerate(counts):
        if index > start and (tokens + count > batch_tokens or index - start >= batch_inputs):
            yield start, index
            start, tokens = index, 0
        tokens += count
    if start < len(counts):
        yield start, len(counts)


class Engine:
    """A model resident in memory, with its own threads."""

    def __init__(self, model: Model, path: Path, settings: LlamaCppEngine, plan: SlotPlan) -> None:
        self.model, self.path, self.settings, self.plan = model, path, settings, plan
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{model.id}")
        self._requests = ThreadPoolExecutor(
            max_workers=plan.parallel,
            thread_name_prefix=f"llama-{model.id}-request",
            initializer=name_this_thread,
            initargs=("cortex-request",),
        )
        self._llama: Any = None
        self._formatter: Any = None  # the chat prompt's formatter, for counting (made at the first count)
        self._context: Any = None
        self._scheduler: Scheduler | None = None

    @property
    def healthy(self) -> bool:
        """False once a generation model's scheduler thread has died (every request would fail)."""
        return self._scheduler is None or self._scheduler.alive

    async def load(self) -> None:
        await self._call(self._load_blocking)

    async def close(self) -> None:
        """End the running generations, wait for their request threads, free the model, end the threads."""
        try:
            await self._call(self._close_blocking)
        finally:
            self._executor.shutdown(wait=False)
            self._requests.shutdown(wait=False)

    async def embed(self, texts: list[str], max_tokens: int) -> Embedded:
        """One vector per text and the tokens embedded. Cancelling this stops the work at the next batch, and
        returns only once the engine thread has let go: the caller's place in the queue is held until then."""
        cancel = threading.Event()
        future = self._executor.submit(self._embed_blocking, texts, max_tokens, cancel)
        return await _until_let_go(future, stop=cancel.set)  # running: it stops at the next batch

    async def rank(self, query: str, documents: list[str], max_tokens: int) -> Ranked:
        """A relevance score per document for the query, and the tokens read; as embed: stops at the next batch
        when cancelled, and the caller's place is held until the engine thread lets go."""
        cancel = threading.Event()
        future = self._executor.submit(self._rank_blocking, query, documents, max_tokens, cancel)
        return await _until_let_go(future, stop=cancel.set)

    async def tokenize(self, text: str) -> int:
        tokens = await self._call(lambda: self._llama.tokenize(text.encode("utf-8", "ignore"), special=True))
        return len(tokens)

    async def count_chat_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        """The tokens of the prompt these chat messages (and tools) make, formatted as a chat completion formats
        them; ValueError when the model's chat format refuses them. As for embed: the caller's place in the queue
        is held until the engine thread has let go."""
        return await _until_let_go(self._executor.submit(self._count_chat_blocking, messages, tools))

    def _count_chat_blocking(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        if self._formatter is None:  # made once: a Jinja template compiles in Python, under the GIL
            self._formatter = _chat_formatter(self.model, self._llama)
        try:
            formatted = self._formatter(messages=messages, tools=tools)
        except Exception as exc:  # the template's own raise_exception, or Jinja choking on what it was given
            raise ValueError(CHAT_FORMAT_REFUSED) from exc
        prompt = formatted.prompt.encode("utf-8", "ignore")
        return len(self._llama.tokenize(prompt, add_bos=not formatted.added_special, special=True))

    def stream(
        self, start: StreamCall, generation: Generation, on_end: Callable[[], Awaitable[None]] | None = None
    ) -> Feed:
        """Chunks of one generation, as they come; aclose() cancels it at the next step. `on_end` runs once the
        generation has ended and its thread let go, whether or not its chunks were read."""
        feed = Feed(generation.cancel.set, on_end)
        feed.start(self._requests.submit(self._produce, start, generation, feed))
        return feed

    def _produce(self, start: StreamCall, generation: Generation, feed: Feed) -> None:
        direct = False
        try:
            if not generation.should_stop():
                direct = self._run_stream(start, generation, feed)
        except Exception as exc:  # crosses to the event loop, which decides the HTTP status
            feed.put(exc)
        finally:
            if not direct:
                feed.put(END)

    def _run_stream(self, start: StreamCall, generation: Generation, feed: Feed) -> bool:
        """The chat handler's work on this thread (template, tokens, grammar), then its chunks; True when the
        sequence was handed to the event loop to read itself (its chunks its text pieces, one for one), so this
        thread ends at once and the loop's feed ends with the sequence."""
        assert self._scheduler is not None, "an embedding model does not generate"
        view = LlamaView(self._llama, self._scheduler, self.plan.context, generation)
        iterator = start(view)
        direct = view.direct(iterator)
        if direct is not None:
            direct.sequence.sink = feed.sink(direct.first, direct.convert)
            view.submit(direct)
            feed.submitted()
            return True
        try:
            for chunk in iterator:
                feed.put(chunk)
                if generation.should_stop():
                    break
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        return False

    def _embed_blocking(self, texts: list[str], max_tokens: int, cancel: threading.Event) -> Embedded:
        """Count first (llama-cpp-python cuts each input at n_batch tokens), then embed a batch at a time."""
        llama = self._llama
        counts = [min(len(llama.tokenize(text.encode("utf-8"))), llama.n_batch) for text in texts]
        if sum(counts) > max_tokens:
            raise TooManyTokens(sum(counts), max_tokens)
        vectors: list[list[float]] = []
        for start, end in _batches(counts, llama.n_batch, llama.context_params.n_seq_max):
            if cancel.is_set():
                raise Stopped()
            vectors += llama.embed(texts[start:end])
        return vectors, sum(counts)

    def _rank_blocking(self, query: str, documents: list[str], max_tokens: int, cancel: threading.Event) -> Ranked:
        """Each (query, document) pair read as one sequence and scored by the model's head; several pairs per
        decode, each pooled on its own. Every pair and the whole request are bounded as they are read."""
        import llama_cpp

        llama = self._llama
        limit = llama.n_batch  # at most the trained context (_pooled_arguments): an encoder's positions end there
        prompts = RankPairs(llama, query)
        if prompts.fixed >= limit:
            raise ValueError(f"the query is {prompts.fixed} tokens with the pair's markers, more than this model reads "
                             f"at once ({limit}: {LIMIT_NAMES})")  # fmt: skip
        pairs, total = [], 0
        for index, document in enumerate(documents):
            if cancel.is_set():
                raise Stopped()
            pair = prompts.pair(document)
            if not 0 < len(pair) <= limit:
                raise ValueError(f"documents[{index}] with the query is {len(pair)} tokens; this model reads 1 to "
                                 f"{limit} at once ({LIMIT_NAMES})")  # fmt: skip
            total += len(pair)
            if total > max_tokens:
                raise TooManyTokens(total, max_tokens)
            pairs.append(pair)
        scores: list[float] = []
        for start, end in _batches([len(pair) for pair in pairs], limit, llama.context_params.n_seq_max):
            if cancel.is_set():
                raise Stopped()
            llama._batch.reset()
            for sequence, pair in enumerate(pairs[start:end]):
                llama._batch.add_sequence(pair, sequence, True)  # pooled: llama.cpp wants every token out
            llama._ctx.kv_cache_clear()
            llama._ctx.decode(llama._batch)
            scores += [_score(llama_cpp.llama_get_embeddings_seq(llama._ctx.ctx, n)) for n in range(end - start)]
        return scores, total

    async def _call(self, function: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self._executor.submit(function))

    def _load_blocking(self) -> None:
        prepare_llama(self.model, self.path)
        if self.model.rerank:
            check_reranker(self.model, self.path)
            llama = self._open_llama(self._pooled_arguments())
            self._llama = llama
            check_head(self.model, llama)
            self._rank_blocking("warm up", ["warm up"], llama.n_batch, threading.Event())
        elif self.model.embeddings:
            llama = self._open_llama(self._pooled_arguments())
            llama.create_embedding("warm up")  # see Scheduler.warm_up
        else:
            arguments = llama_arguments(self.model, self.settings, self.plan.gpu)
            llama = self._open_llama({**arguments, "n_ctx": HEADER_CONTEXT})
            self._start_scheduler(llama)
        handler = _chat_handler(self.model, llama)
        if handler is not None:
            llama.chat_handler = handler
        self._llama = llama

    def _pooled_arguments(self) -> dict[str, Any]:
        """An encoder's batch (read whole, in one micro-batch) ends at its trained context: its positions do."""
        arguments = llama_arguments(self.model, self.settings, self.plan.gpu)
        trained = architecture_value(read_metadata(self.path), "context_length")
        if trained:
            arguments["n_batch"] = arguments["n_ubatch"] = min(arguments["n_batch"], trained)
        return arguments

    def _open_llama(self, arguments: dict[str, Any]) -> Any:
        """The model, loaded on a thread that ends with the load. Loading may run OpenMP work (AMX and repacked
        weights are converted in parallel on Intel Xeons), and OpenMP keeps a team per calling thread while that
        thread lives: a second team beside the scheduler's makes libgomp throttle its spinning (more of its
        threads than cores), and every decode then waits on futexes: 36 instead of 66 tokens/s, measured."""
        from llama_cpp import Llama

        loaded: list[Any] = []
        failed: list[BaseException] = []

        def load() -> None:
            try:
                name_this_thread("cortex-load")  # and the OpenMP workers it starts: a test checks none outlive it
                loaded.append(Llama(model_path=str(self.path), **arguments))
            except BaseException as exc:
                failed.append(exc)

        loader = threading.Thread(target=load, name=f"llama-{self.model.id}-load")
        loader.start()
        loader.join()
        if failed:
            error = failed.pop()
            if not isinstance(error, (ValueError, RuntimeError, OSError)):
                raise error
            message = f"model `{self.model.id}`: llama.cpp failed to load {self.path}: {error}"
            # Its traceback holds the half-made Llama (a loaded model whose context failed): let it go now.
            error.__traceback__ = None
            del error
            raise LlamaRefused(message) from None
        llama = loaded[0]
        llama.verbose = False  # no per-request timing prints on stderr
        return llama

    def _start_scheduler(self, llama: Any) -> None:
        """Replace llama-cpp-python's one-sequence context with the scheduler's: one KV cache for every slot."""
        import llama_cpp

        llama._ctx.close()  # llama-cpp-python's own, made with HEADER_CONTEXT tokens; its exit stack skips it later
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx, params.n_seq_max, params.kv_unified = self.plan.n_ctx, self.plan.parallel, True
        params.swa_full = False  # a sliding-window layer keeps only the cells it can see, as llama-server's do
        params.n_batch = params.n_ubatch = self.settings.batch_size
        params.flash_attn_type = FLASH_ATTENTION_TYPES[self.settings.flash_attention]
        self._context = llama_cpp.llama_init_from_model(llama._model.model, params)
        if not self._context:
            llama.close()
            raise LlamaRefused(
                f"model `{self.model.id}`: llama.cpp could not make a context of {self.plan.n_ctx} tokens "
                f"({self.plan.parallel} slots of {self.plan.context})"
            )
        scheduler = Scheduler(
            self._context,
            llama._model.vocab,
            parallel=self.plan.parallel,
            batch_size=self.settings.batch_size,
            name=self.model.id,
            window=llama_cpp.llama_model_n_swa(llama._model.model),
        )
        try:
            scheduler.start(warm_up=llama.tokenize(b"warm up " * 16))
        except BaseException:
            scheduler.close()
            llama_cpp.llama_free(self._context)
            self._context = None
            llama.close()
            raise
        self._scheduler = scheduler

    def _close_blocking(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()  # every sequence ends; a request thread that submits again is refused
            self._requests.shutdown(wait=True)  # none of them touches the model once it is freed
            self._scheduler = None
        if self._context is not None:
            import llama_cpp

            llama_cpp.llama_free(self._context)
            self._context = None
        if self._llama is not None:
            self._llama.close()
            self._llama = None
