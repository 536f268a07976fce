"""The thread that owns a model's llama.cpp context and advances every active sequence in one decode per step.

Each step decodes one token for every sequence that is generating, and fills the rest of the batch with
prompt chunks of sequences still reading their prompt (oldest first), so a long prompt is read a chunk at a
time between other sequences' tokens instead of freezing them. Sequences wait, in arrival order, for one of
`parallel` slots; a slot keeps its KV cache after its sequence ends, and the next sequence whose prompt
starts the same way (a shared system prompt, a chat's earlier turns) goes to that slot and skips that part.
Cancelled and timed-out sequences leave at the next step.
"""

from __future__ import annotations

import collections
import ctypes
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ...ops.thread_names import name_this_thread
from . import wake_ups
from .sampling import GrammarBudget, GrammarTooCostly
from .sequence import Finished, Sequence

log = logging.getLogger("cortex.batching")
IDLE_POLL_S = 0.5  # how often an idle scheduler looks at its waiting sequences' deadlines


class SchedulerClosed(RuntimeError):
    """A sequence arrived after the scheduler stopped taking new ones."""


class DecodeError(RuntimeError):
    """llama_decode failed; the sequences in that step end with it, the others go on."""


@dataclass(eq=False)
class Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens in the KV cache for this seq_id, in order
    sequence: Sequence | None = None
    owner: str = ""  # Generation.owner of the sequence that filled the cache
    last_used: float = 0.0


@dataclass
class Step:
    """The tokens of one llama_decode, and which batch positions each sequence samples from."""

    entries: list[tuple[Slot, int, bool]] = field(default_factory=list)  # (slot, token, wants logits)

    def add(self, slot: Slot, token: int, logits: bool) -> None:
        self.entries.append((slot, token, logits))


class Scheduler:
    def __init__(self, context: Any, vocab: Any, *, parallel: int, batch_size: int, name: str, window: int = 0) -> None:
        import llama_cpp

        self._lib, self._context, self._vocab = llama_cpp, context, vocab
        self._window = window  # sliding-window attention (0: none): cells older than it may be overwritten
        self._memory = llama_cpp.llama_get_memory(context)
        self._batch = llama_cpp.llama_batch_init(batch_size, 0, 1)
        self._piece_buffer = ctypes.create_string_buffer(64)  # one token's text, reused every step
        self.batch_size = batch_size
        self._grammar_budget = GrammarBudget()  # what grammars may add to a step, shared by its sequences
        self._slots = [Slot(seq_id) for seq_id in range(parallel)]
        self._inbox: queue.SimpleQueue[Sequence | None] = queue.SimpleQueue()
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._closing = False
        self._accepting, self._accept_lock = True, threading.Lock()  # no submit lands after the final drain
        self._arrivals = itertools.count()
        self._warm_up_tokens: list[int] = []
        self._warm_up_error: Exception | None = None
        self._warmed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"llama-{name}-batch", daemon=True)

    def start(self, warm_up: list[int]) -> None:
        """Start the thread and return once it has decoded `warm_up` (raising what that raised).

        The first decode allocates buffers and repacks weights (seconds on a small busy CPU): paid while
        loading, not in the first request. It runs on the scheduler's own thread because llama.cpp's CPU
        threads are an OpenMP team per calling thread: a second team, even idle, makes libgomp throttle its
        spinning once there are more of its threads than cores, and every decode then ran ~30% slower here.
        """
        self._warm_up_tokens = warm_up[: self.batch_size]
        self._thread.start()
        self._warmed.wait()
        if self._warm_up_error is not None:
            self._thread.join()
            raise self._warm_up_error

    def _warm_up(self) -> bool:
        slot, step = self._slots[0], Step()
        for index, token in enumerate(self._warm_up_tokens):
            step.add(slot, token, index == len(self._warm_up_tokens) - 1)
        try:
            self._decode(step)
            self._forget(slot)
        except Exception as exc:
            self._warm_up_error = exc
        self._warmed.set()
        return self._warm_up_error is None

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, sequence: Sequence) -> None:
        with self._accept_lock:
            if not self._accepting:
                raise SchedulerClosed("the model was unloaded while this request was starting")
            sequence.arrival = next(self._arrivals)
            self._inbox.put(sequence)

    def close(self) -> None:
        """End every sequence (each reader gets SchedulerClosed), stop the thread, free the batch."""
        with self._accept_lock:
            self._accepting = False
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()
        else:
            self._end_all(SchedulerClosed("the model was unloaded"))
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None

    # The thread.

    def _run(self) -> None:
        if not self._warm_up():
            return
        name_this_thread("cortex-batch")  # after the warm-up started llama.cpp's workers, which keep theirs
        with wake_ups.held():
            self._serve()

    def _serve(self) -> None:
        try:
            while not self._closing:
                self._take_arrivals(block=not self._active())
                self._drop_stopped()
                self._assign_slots()
                if self._active():
                    self._step()
        except Exception as exc:  # a bug here must leave no reader waiting, now or later (logged, not raised)
            log.exception("the batch scheduler stopped")
            with self._accept_lock:
                self._accepting = False
            self._end_all(RuntimeError(f"the batch scheduler stopped: {type(exc).__name__}"))
            return
        self._end_all(SchedulerClosed("the model was unloaded"))

    def _take_arrivals(self, block: bool) -> None:
        if block:
            wake_ups.send()
        try:
            item = self._inbox.get(timeout=IDLE_POLL_S) if block else self._inbox.get_nowait()
            while True:
                if item is None:
                    self._closing = True
                    return
                self._waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return

    def _active(self) -> list[Slot]:
        return [slot for slot in self._slots if slot.sequence is not None]

    def _drop_stopped(self) -> None:
        for sequence in [s for s in self._waiting if s.should_stop()]:
            self._waiting.remove(sequence)
            sequence.sampler.free()
            sequence.deliver(Finished("cancelled"))
        for slot in self._active():
            assert slot.sequence is not None
            if slot.sequence.should_stop():
                self._finish(slot, Finished("cancelled"))

    def _assign_slots(self) -> None:
        while self._waiting and (free := [slot for slot in self._slots if slot.sequence is None]):
            sequence = self._waiting.popleft()
            reusable = {id(slot): self._reusable(slot, sequence) for slot in free}
            slot = max(free, key=lambda s: (reusable[id(s)], -s.last_used))
            self._seat(slot, sequence, reusable[id(slot)])

    def _reusable(self, slot: Slot, sequence: Sequence) -> int:
        """Prompt tokens this slot's cache already holds. Only a cache the same client filled is reused:
        another client's would tell, by the time saved and by usage.cached_tokens, what it sent."""
        if slot.owner != sequence.generation.owner:
            return 0
        return min(_common_prefix(slot.cached, sequence.prompt), len(sequence.prompt) - 1)  # one token to decode

    def _seat(self, slot: Slot, sequence: Sequence, keep: int) -> None:
        # The window is looked at before anything is removed: the removal may empty the sliding-window cache.
        if self._window_lost(slot, keep) or not self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, keep, -1):
            self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)  # a recurrent or sliding-window cache
            keep = 0
        del slot.cached[keep:]
        sequence.fed = keep
        if not sequence.generation.stats.completion_tokens:  # a chat's later calls (tool handlers) do not count
            sequence.generation.stats.cached_tokens = keep
        slot.sequence, slot.owner = sequence, sequence.generation.owner

    def _window_lost(self, slot: Slot, keep: int) -> bool:
        """A sliding-window cache may have overwritten cells the kept prefix's last window needs (llama-server's
        check): then the prompt is read again from the start. A cache that holds none of the slot's cells
        (`pos_min` -1) has lost them all."""
        if keep == 0 or self._window == 0:
            return False
        oldest = self._lib.llama_memory_seq_pos_min(self._memory, slot.seq_id)
        return bool(oldest < 0 or oldest > max(0, keep - self._window))

    def _step(self) -> None:
        step = self._plan_step()
        started = time.monotonic()
        try:
            self._decode(step)
        except DecodeError as exc:
            for slot in {slot for slot, _, _ in step.entries}:
                self._forget(slot)
                self._finish(slot, exc)
            return
        self._grammar_budget.new_step(time.monotonic() - started)
        for slot, token, _ in step.entries:
            slot.cached.append(token)
        for index, (slot, _, logits) in enumerate(step.entries):
            if logits:  # at most one per slot: its last token of the step
                self._sample(slot, index)

    def _plan_step(self) -> Step:
        """Every generating sequence's next token first, then prompt chunks, oldest sequence first."""
        step = Step()
        active = sorted(self._active(), key=lambda slot: slot.sequence.arrival if slot.sequence else 0)
        for slot in active:
            sequence = slot.sequence
            if sequence is not None and sequence.pending is not None and len(step.entries) < self.batch_size:
                step.add(slot, sequence.pending, True)
                sequence.pending = None
        room = self.batch_size - len(step.entries)
        for slot in active:
            sequence = slot.sequence
            if room <= 0:
                break
            if sequence is None or not sequence.prefilling:
                continue
            chunk = sequence.prompt[sequence.fed : sequence.fed + room]
            sequence.fed += len(chunk)
            for offset, token in enumerate(chunk):
                step.add(slot, token, not sequence.prefilling and offset == len(chunk) - 1)
            room -= len(chunk)
        return step

    def _decode(self, step: Step) -> None:
        batch = self._batch
        positions: dict[int, int] = {}
        for index, (slot, token, logits) in enumerate(step.entries):
            position = positions.get(slot.seq_id, len(slot.cached))
            positions[slot.seq_id] = position + 1
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = slot.seq_id
            batch.logits[index] = logits
        batch.n_tokens = len(step.entries)
        wake_ups.send()  # the readers wake as the GIL is let go, not before
        result = self._lib.llama_decode(self._context, batch)
        if result != 0:
            what = "no room in the KV cache" if result == 1 else f"error {result}"
            raise DecodeError(f"llama_decode failed ({what})")

    def _sample(self, slot: Slot, index: int) -> None:
        sequence = slot.sequence
        assert sequence is not None
        if sequence.sampler.costly:  # long in C without the GIL: the tokens sampled before it go now
            wake_ups.send()
        try:
            token = sequence.sampler.sample(self._context, index, self._grammar_budget)
        except GrammarTooCostly as exc:  # this sequence ends; every other one goes on
            self._finish(slot, exc)
            return
        sequence.generation.stats.on_sample(len(sequence.prompt))
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            sequence.emit(sequence.text.flush())
            self._finish(slot, Finished("stop"))
            return
        sequence.generated.append(token)
        text, stopped = sequence.text.add(self._piece(token))
        sequence.emit(text)
        if stopped:
            self._finish(slot, Finished("stop"))
        elif len(sequence.generated) >= sequence.max_tokens:
            sequence.emit(sequence.text.flush())
            self._finish(slot, Finished("length"))
        else:
            sequence.pending = token

    def _piece(self, token: int) -> bytes:
        buffer = self._piece_buffer
        size = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if size < 0:  # longer than the buffer: -size is the length it needs
            buffer = ctypes.create_string_buffer(-size)
            size = self._lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:size]

    def _finish(self, slot: Slot, end: Finished | BaseException) -> None:
        sequence = slot.sequence
        slot.sequence, slot.last_used = None, time.monotonic()
        if sequence is None:
            return
        sequence.sampler.free()
        sequence.deliver(end)

    def _forget(self, slot: Slot) -> None:
        self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        slot.cached.clear()

    def _end_all(self, end: BaseException) -> None:
        for slot in self._active():
            self._finish(slot, end)
        waiting = list(self._waiting)
        self._waiting.clear()
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                waiting.append(item)
        for sequence in waiting:
            sequence.sampler.free()
            sequence.deliver(end)


def _common_prefix(cached: list[int], prompt: list[int]) -> int:
    size = min(len(cached), len(prompt))
    for index in range(size):
        if cached[index] != prompt[index]:
            return index
    return size
