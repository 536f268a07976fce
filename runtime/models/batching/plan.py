"""How many sequences a model decodes together, and the memory the model, their KV cache and llama.cpp's
working buffers take.

The shape comes from the GGUF's header (read in plain Python, no weight touched), so the budget is known
before the weights are mapped, and a build host without llama.cpp can size a pod the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.schema import Model
from menlo_cortex.cortexfile.schema.models import LlamaCppEngine

from ..gguf import Array, architecture_value, read_metadata

MIB = 1024 * 1024
AUTO_MAX = 4  # llama-server's default number of slots
KV_BYTES = 2  # f16 keys and values, llama.cpp's default cache type
F32 = 4  # logits and activations
MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Shape:
    """What the KV cache size depends on, read from the model's header."""

    layers: int
    kv_heads: int
    key_length: int
    value_length: int
    context_trained: int
    embedding: int = 0
    vocab: int = 0

    @property
    def kv_bytes_per_token(self) -> int:
        return self.layers * self.kv_heads * (self.key_length + self.value_length) * KV_BYTES

    def work_bytes(self, parallel: int, micro_batch: int, *, pooled: bool = False) -> int:
        """What llama.cpp's working buffers hold resident beside weights and KV cache: a step's activations (two
        per token, f32) and the logits rows it writes, one per sequence in the compute buffer and again in the
        output buffer. The compute buffer reserves rows for a whole micro-batch (`reserved_work_bytes`), but
        the scheduler asks for the last token's logits only, and pages never written take no memory."""
        row = self.embedding if pooled else self.vocab
        rows = micro_batch if pooled else parallel  # an embedding per token of the batch
        return 2 * self.embedding * micro_batch * F32 + 2 * row * rows * F32

    def reserved_work_bytes(self, parallel: int, micro_batch: int, *, pooled: bool = False) -> int:
        """The address space llama.cpp reserves for those buffers: the compute buffer holds a whole
        micro-batch's logits (a vocabulary row per token, f32: 512 MiB for Gemma 3 270M at 512 tokens a step)
        and activations, the output buffer a row per sequence. tests/runtime/models/test_footprint.py checks it
        against llama.cpp's own figures."""
        row = self.embedding if pooled else self.vocab
        return (row + 2 * self.embedding) * micro_batch * F32 + row * parallel * F32


@dataclass(frozen=True)
class SlotPlan:
    parallel: int  # sequences decoded together
    context: int  # tokens per sequence
    file_bytes: int
    kv_bytes: int  # all slots
    work_bytes: int = 0  # llama.cpp's compute and output buffers

    @property
    def total_mb(self) -> float:
        return (self.file_bytes + self.kv_bytes + self.work_bytes) / MIB

    @property
    def n_ctx(self) -> int:
        """The context llama.cpp is given: one KV cache that every slot shares (unified, as llama-server's)."""
        return self.context * self.parallel


def plan_slots(model: Model, path: Path, settings: LlamaCppEngine, budget_mb: int | None) -> SlotPlan:
    shape = read_shape(path)
    context = model.context_size or shape.context_trained
    per_slot = shape.kv_bytes_per_token * context
    file_bytes = path.stat().st_size
    if model.pooled:
        parallel = 1  # embeddings and ranks run one batch at a time on llama-cpp-python's own context
    elif settings.parallel == "auto":
        room = budget_mb * MIB if budget_mb is not None else available_memory()
        fits = (room - file_bytes - shape.work_bytes(1, settings.batch_size)) // max(per_slot, 1)
        parallel = max(1, min(AUTO_MAX, settings.batch_size, fits))  # a step holds one token per slot
    else:
        parallel = settings.parallel
    work = shape.work_bytes(parallel, settings.batch_size, pooled=model.pooled)
    return SlotPlan(parallel, context, file_bytes, kv_bytes=per_slot * parallel, work_bytes=work)


def read_shape(path: Path) -> Shape:
    """The model's layer and head sizes from its GGUF header; ValueError when the header cannot be read."""
    try:
        metadata = read_metadata(path)
    except OSError as exc:
        raise ValueError(f"its header cannot be read ({exc.strerror or 'I/O error'})") from None

    def value(key: str) -> int | None:
        return architecture_value(metadata, key)

    heads = value("attention.head_count") or 1
    embedding = value("embedding_length") or 0
    tokens = metadata.get("tokenizer.ggml.tokens")
    return Shape(
        layers=value("block_count") or 0,
        kv_heads=value("attention.head_count_kv") or heads,
        key_length=value("attention.key_length") or embedding // heads,
        value_length=value("attention.value_length") or embedding // heads,
        context_trained=value("context_length") or 0,
        embedding=embedding,
        vocab=value("vocab_size") or (tokens.length if isinstance(tokens, Array) else 0),
    )


def available_memory() -> int:
    """Bytes this process may still use: the kernel's MemAvailable, or less under a cgroup limit."""
    known = [room for room in (_meminfo_available(), _cgroup_room()) if room is not None]
    return min(known, default=0)


def _meminfo_available() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """cgroup v2: memory.max minus memory.current for this process's group, None when unlimited or unknown."""
    try:
        group = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        folder = CGROUP / group.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int((folder / "memory.current").read_text()), 0)
    except (OSError, ValueError, IndexError):
        return None
