"""One loaded llama.cpp model and the single worker thread allowed to touch it.

llama.cpp contexts are not thread-safe, so every call on a `Llama` runs on the engine's own
thread; the event loop only awaits futures and reads chunks from an asyncio queue. Engines of
different models share nothing, so a generation on one never waits for another.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from menlo_cortex.cortexfile.schema import Model
from menlo_cortex.cortexfile.schema.models import LlamaCppEngine

from ..fetch.download import GGUF_MAGIC, read_magic
from .backends import BackendError, load_backends

T = TypeVar("T")
log = logging.getLogger("cortex.llama")
GGML_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}  # ggml: 1 debug, 2 info, 3 warn, 4 error
MEAN_POOLING = 1  # llama_cpp.LLAMA_POOLING_TYPE_MEAN
Chunk = dict[str, Any]
# Starts a llama-cpp-python call in stream mode: (llama, logits_processor list) -> chunk iterator.
StreamCall = Callable[[Any, Any], Iterator[Chunk]]
Embedded = tuple[list[list[float]], int]  # one vector per input, tokens embedded


class ModelLoadError(Exception):
    """A model could not be loaded; the message names the model and its file."""


class TooManyTokens(ValueError):
    """An embedding request's inputs hold more tokens than it may embed; nothing was embedded."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"the inputs hold {tokens} tokens; at most {limit} are embedded per request (server limit)")


class Stopped(Exception):
    """The work was cancelled between two batches."""


@dataclass
class TokenStats:
    """Counted on the worker thread, read by the event loop after the generation ends."""

    started: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    completion_tokens: int = 0
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
    cancel: threading.Event = field(default_factory=threading.Event)
    stats: TokenStats = field(default_factory=TokenStats)
    timed_out: bool = False

    def should_stop(self) -> bool:
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return self.timed_out or self.cancel.is_set()


_END = object()


def check_gguf(model: Model, path: Path) -> None:
    """Fail early, naming model and file, when the file is missing or not GGUF."""
    try:
        magic = read_magic(path)
    except OSError as exc:
        raise ModelLoadError(f"model `{model.id}`: cannot read {path}: {exc.strerror or 'I/O error'}") from None
    if magic != GGUF_MAGIC:  # its bytes are not shown: a file's content never reaches a client
        raise ModelLoadError(f"model `{model.id}`: {path} is not a GGUF file")


def llama_arguments(model: Model, settings: LlamaCppEngine) -> dict[str, Any]:
    """Keyword arguments of `llama_cpp.Llama` for one model of the Cortexfile."""
    return {
        "n_ctx": model.context_size,
        "n_threads": model.threads,
        "n_threads_batch": model.threads,
        "n_gpu_layers": model.gpu_layers,
        "n_batch": settings.batch_size,
        "flash_attn": settings.flash_attention,
        "use_mmap": settings.use_mmap,
        "use_mlock": settings.use_mlock,
        "embedding": model.embeddings,
        # Mean pooling gives one vector per input; decoder models default to none (a vector per token).
        **({"pooling_type": MEAN_POOLING} if model.embeddings else {}),
        "chat_format": model.chat_format,
        "verbose": True,  # see route_llama_logs; turned off once loaded
    }


@functools.cache
def route_llama_logs() -> Any:
    """Send llama.cpp's warnings and errors to logging, once per process (the cache keeps the callback alive).

    llama-cpp-python's own quiet mode (verbose=False) silences loads by pointing file descriptors 1 and 2
    at /dev/null for the whole process, which would swallow the server's logs and is not thread-safe.
    """
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def forward(level: int, text: bytes, user_data: Any) -> None:
        if level in GGML_LOG_LEVELS:
            log.log(GGML_LOG_LEVELS[level], "%s", text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    return forward


def _chat_handler(model: Model, llama: Any) -> Any:
    """A handler from the model's Jinja `chat_template`, or None to keep `chat_format`/the GGUF's own."""
    if model.chat_template is None:
        return None
    from llama_cpp import llama_chat_format

    vocab = llama._model
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=model.chat_template,
        eos_token=vocab.token_get_text(llama.token_eos()),
        bos_token=vocab.token_get_text(llama.token_bos()),
        stop_token_ids=[llama.token_eos()],
    )
    return formatter.to_chat_handler()


def _warm_up(llama: Any, model: Model) -> None:
    """The first decode allocates buffers and repacks weights (seconds on a small busy CPU): pay it while
    loading, not in the first request, which could not be cancelled or time out during it."""
    if model.embeddings:
        llama.create_embedding("warm up")
        return
    llama.eval(llama.tokenize(b"warm up " * 16))
    llama.reset()


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
    """A model resident in memory, with its own worker thread."""

    def __init__(self, model: Model, path: Path, settings: LlamaCppEngine) -> None:
        self.model, self.path, self.settings = model, path, settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{model.id}")
        self._llama: Any = None

    async def load(self) -> None:
        await self._call(self._load_blocking)

    async def close(self) -> None:
        """Free the model after the running and queued work of this engine, then end its thread."""
        try:
            await self._call(self._close_blocking)
        finally:
            self._executor.shutdown(wait=False)

    async def embed(self, texts: list[str], max_tokens: int) -> Embedded:
        """One vector per text and the tokens embedded. Cancelling this stops the work at the next batch, and
        returns only once the engine thread has let go: the caller's place in the queue is held until then."""
        cancel = threading.Event()
        future = self._executor.submit(self._embed_blocking, texts, max_tokens, cancel)
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        finally:
            cancel.set()
            if not future.cancel():  # still queued: it never runs; running: it stops at the next batch
                with contextlib.suppress(Exception):
                    await asyncio.shield(asyncio.wrap_future(future))

    async def tokenize(self, text: str) -> int:
        tokens = await self._call(lambda: self._llama.tokenize(text.encode("utf-8", "ignore"), special=True))
        return len(tokens)

    async def stream(self, start: StreamCall, generation: Generation) -> AsyncIterator[Chunk]:
        """Chunks of one generation; closing the iterator early cancels the generation between tokens."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[object] = asyncio.Queue()

        def put(item: object) -> None:
            loop.call_soon_threadsafe(chunks.put_nowait, item)

        future = self._executor.submit(self._produce, start, generation, put)
        try:
            while (item := await chunks.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            generation.cancel.set()
            if not future.cancel():  # still queued: it never runs; running: it stops at the next token
                await asyncio.shield(asyncio.wrap_future(future))

    def _produce(self, start: StreamCall, generation: Generation, put: Callable[[object], None]) -> None:
        try:
            if not generation.should_stop():
                self._run_stream(start, generation, put)
        except Exception as exc:  # crosses to the event loop, which decides the HTTP status
            put(exc)
        finally:
            put(_END)

    def _run_stream(self, start: StreamCall, generation: Generation, put: Callable[[object], None]) -> None:
        from llama_cpp import LogitsProcessorList

        def count(input_ids: Any, scores: Any) -> Any:
            generation.stats.on_sample(len(input_ids))
            return scores

        iterator = start(self._llama, LogitsProcessorList([count]))
        try:
            for chunk in iterator:
                put(chunk)
                if generation.should_stop():
                    break
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

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

    async def _call(self, function: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self._executor.submit(function))

    def _load_blocking(self) -> None:
        check_gguf(self.model, self.path)
        route_llama_logs()
        try:
            load_backends()
        except BackendError as exc:
            raise ModelLoadError(f"model `{self.model.id}`: {exc}") from None
        from llama_cpp import Llama

        try:
            llama = Llama(model_path=str(self.path), **llama_arguments(self.model, self.settings))
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"model `{self.model.id}`: llama.cpp failed to load {self.path}: {exc}") from None
        llama.verbose = False  # no per-request timing prints on stderr
        _warm_up(llama, self.model)
        handler = _chat_handler(self.model, llama)
        if handler is not None:
            llama.chat_handler = handler
        self._llama = llama

    def _close_blocking(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None
