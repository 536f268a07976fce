"""How many sequences a model decodes together, and the memory the model, their KV cache and llama.cpp's
working buffers take.

The shape comes from the GGUF's header (read in plain Python, no weight touched), so the budget is known
before the weights are mapped, and a build host without llama.cpp can size a pod the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.schema import Model
from menlo_cortex.cortexfile.schema.models import LlamaCppEngine

from ..gguf import Array, Tensor, Value, architecture_value, read_header
from ..weight_copies import NO_COPIES, NONE, Copies, Kernels, Matrix, copies, matrices, untied
from .offload import NO_LAYOUT, NO_ROOM, NOTHING, Layout, OnGpu, layout_of, on_gpu

MIB = 1024 * 1024
AUTO_MAX = 4  # llama-server's default number of slots
# `cortex start` itself with no model: Python, the server and llama.cpp's libraries (74 MiB resident, measured
# on x86-64 with Python 3.11), counted once beside the models when deciding whether they fit.
SERVER_BYTES = 80 * MIB
KV_BYTES = 2  # f16 keys and values, llama.cpp's default cache type
KV_PAD = 256  # llama.cpp pads a KV cache's cells to a multiple of this (a context of 1000 tokens holds 1024)
# Architectures whose layers slide but every Nth: llama.cpp's own pattern, which GGUF headers do not carry.
# Another architecture with a window is planned as if every layer kept the whole context: more, never less.
SWA_PATTERNS = {"gemma3": 6}
F32 = 4  # logits and activations
LLAMA_MAX_LAYERS = 512  # llama.cpp asserts 0 < block_count <= this: past it, its load would abort the process
# Beyond these a header is lying: no model comes near them, and the plan's arithmetic would be nonsense.
PLAUSIBLE = {"layers": LLAMA_MAX_LAYERS, "kv_heads": 1 << 12, "heads": 1 << 12, "key_length": 1 << 16,
             "value_length": 1 << 16, "context_trained": 1 << 26, "embedding": 1 << 20, "vocab": 1 << 24,
             "window": 1 << 24}  # fmt: skip
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
    heads: int = 1
    window: int = 0  # tokens a sliding-window layer attends to (0: none)
    window_layers: int = 0  # the layers that slide (SWA_PATTERNS); the others attend to the whole context

    @property
    def kv_bytes_per_token(self) -> int:
        return self.layers * self._bytes_per_cell

    def kv_bytes(self, step: Step) -> int:
        """The KV cache of a context of `step.n_kv` cells, as llama.cpp sizes it: a sliding-window layer keeps
        only the cells its window can still see (`swa_full` off, as llama-server), every slot's window and a
        micro-batch, padded; a pooled model's own context keeps the whole context in every layer."""
        if step.pooled or not self.window_layers:
            return self.kv_bytes_per_token * step.n_kv
        sliding = min(step.n_kv, -(-(self.window * step.parallel + step.micro_batch) // KV_PAD) * KV_PAD)
        return self._bytes_per_cell * ((self.layers - self.window_layers) * step.n_kv + self.window_layers * sliding)

    @property
    def _bytes_per_cell(self) -> int:
        return self.kv_heads * (self.key_length + self.value_length) * KV_BYTES

    def work_bytes(self, step: Step) -> int:
        """What llama.cpp's working buffers hold resident beside weights and KV cache: a step's activations (two
        per token, f32), the logits rows it writes (one per sequence, in the compute buffer and again in the
        output buffer) and, without flash attention, its attention scores. The compute buffer reserves rows for
        a whole micro-batch (`reserved_work_bytes`), but the scheduler asks for the last token's logits only, and
        pages never written take no memory."""
        row = self.embedding if step.pooled else self.vocab
        rows = step.micro_batch if step.pooled else step.parallel  # a pooled model: an embedding per token
        return self._activations(step) + 2 * row * rows * F32 + self._scores(step)

    def reserved_work_bytes(self, step: Step) -> int:
        """At most what llama.cpp reserves for those buffers: the compute buffer holds a whole micro-batch's
        logits (a vocabulary row per token, f32: 512 MiB for Gemma 3 270M at 512 tokens a step), activations
        and attention scores, the output buffer a row per sequence. llama.cpp's allocator reuses one tensor's
        memory for a later one, so the scores may fit inside the logits' room (tests/runtime/models/
        test_footprint.py checks this bound against llama.cpp's own figures)."""
        row = self.embedding if step.pooled else self.vocab
        return row * step.micro_batch * F32 + self._activations(step) + self._scores(step) + row * step.parallel * F32

    def _activations(self, step: Step) -> int:
        return 2 * self.embedding * step.micro_batch * F32

    def _scores(self, step: Step) -> int:
        """Without flash attention: a score per head, token of the step and cell of the (shared) KV cache."""
        return 0 if step.flash_attention else self.heads * step.micro_batch * step.n_kv * F32


@dataclass(frozen=True)
class Step:
    """One llama_decode's shape: what llama.cpp's working buffers depend on."""

    parallel: int
    micro_batch: int  # tokens decoded together (n_ubatch)
    n_kv: int  # cells of the KV cache every slot shares
    flash_attention: bool = False
    pooled: bool = False


@dataclass(frozen=True)
class SlotPlan:
    parallel: int  # sequences decoded together
    context: int  # tokens per sequence
    file_bytes: int
    kv_bytes: int  # all slots
    work_bytes: int = 0  # llama.cpp's compute and output buffers
    copied: Copies = NO_COPIES  # the weights the CPU kernels copy into their own layout (weight_copies.py)
    gpu: OnGpu = NOTHING  # the layers on the GPUs, and the GPU memory they take (offload.py)

    @property
    def gpu_layers(self) -> int:
        """n_gpu_layers for llama.cpp: `gpu_layers: auto` decided."""
        return self.gpu.layers

    @property
    def weights_bytes(self) -> int:
        """In host memory: the file's mapping and the kernels' copies, less the copied originals (read once, then
        the kernel's to drop) and the layers copied to the GPU."""
        return self.file_bytes + self.copied.bytes - self.copied.reclaimable - self.gpu.freed

    @property
    def host_kv_bytes(self) -> int:
        return self.kv_bytes - self.gpu.kv

    @property
    def host_bytes(self) -> int:
        return self.weights_bytes + self.host_kv_bytes + self.work_bytes + self.gpu.in_host

    @property
    def total_mb(self) -> float:
        """Host memory, the figure the memory budget counts (the GPUs' is `gpu`)."""
        return self.host_bytes / MIB

    @property
    def n_ctx(self) -> int:
        """The context llama.cpp is given: one KV cache that every slot shares (unified, as llama-server's)."""
        return self.context * self.parallel


def uses_flash_attention(settings: LlamaCppEngine, model: Model) -> bool:
    """Whether the plan may leave the attention scores out. `auto` is llama.cpp's own choice: on where the device
    that holds a layer has a kernel for it, which the CPU's always has and CUDA's has for the common head sizes
    (one without makes llama.cpp turn it off: the scores then take some of the GPU's margin). A pooled model runs
    on llama-cpp-python's context, which takes only on or off."""
    if settings.flash_attention != "auto":
        return settings.flash_attention
    return not model.pooled


@dataclass(frozen=True)
class Sizes:
    """What the plan reads of a model's GGUF header."""

    shape: Shape
    file_bytes: int
    matrices: tuple[Matrix, ...] = ()  # the weight matrices the CPU kernels may copy
    layout: Layout = NO_LAYOUT  # the weights' bytes by where llama.cpp may place them


def plan_slots(
    model: Model,
    path: Path,
    settings: LlamaCppEngine,
    budget_mb: int | None,
    kernels: Kernels = NONE,
    *,
    gpu_room: int | None = None,
    integrated: bool = False,
) -> SlotPlan:
    """`kernels`: what the CPU module that will run the model can use (the weight copies it makes); `gpu_room`:
    the GPU memory `gpu_layers: auto` may fill (offload.gpu_room), None where llama.cpp has no discrete GPU;
    `integrated`: it has an integrated one (Backends.integrated_gpu)."""
    sizes = read_sizes(path)
    return plan_placed(model, sizes, settings, budget_mb, kernels=kernels, gpu_room=gpu_room, integrated=integrated)


def read_sizes(path: Path) -> Sizes:
    """The model's sizes from its GGUF header; ValueError when the header cannot be read or lies."""
    metadata, tensors = _header(path, with_tensors=True)
    return sizes_of(metadata, tensors, path.stat().st_size)


def sizes_of(metadata: dict[str, Value], tensors: list[Tensor], file_bytes: int) -> Sizes:
    """The sizes a header gives, of a file of `file_bytes`; ValueError when it lies."""
    return Sizes(shape_of(metadata), file_bytes, matrices(tensors, file_bytes), layout_of(tensors))


def plan_placed(
    model: Model,
    sizes: Sizes,
    settings: LlamaCppEngine,
    budget_mb: int | None,
    *,
    kernels: Kernels,
    gpu_room: int | None,
    integrated: bool = False,
) -> SlotPlan:
    """The plan with `gpu_layers` as the model asks, or with `auto` as many layers as `gpu_room` holds: the
    output first, then the layers from the last back, as llama.cpp offloads them. `parallel: auto` gives up slots
    for every layer to fit (all on the GPU with one slot is many times faster than most with four), and only for
    that: where not all fit, the slots stay and the layers that fit go. Without a discrete GPU (`gpu_room` None)
    the host's memory holds it all, and a number still goes to llama.cpp (with no GPU at all it ignores it)."""
    if gpu_room is None:
        return _in_host_memory(model, sizes, settings, budget_mb, kernels=kernels, integrated=integrated)

    def placed(layers: int, slots_for_gpu: bool = True) -> SlotPlan:
        copied = weight_copies(model, settings, sizes.matrices, kernels, layers)
        room = gpu_room if slots_for_gpu else None
        return plan_shape(model, sizes, settings, budget_mb, copied=copied, gpu_layers=layers, gpu_room=room)

    if model.gpu_layers != "auto":
        return placed(model.gpu_layers)
    every = placed(sizes.shape.layers + 1)
    if every.gpu.total <= gpu_room:
        return every
    for layers in range(sizes.shape.layers, 0, -1):
        plan = placed(layers, slots_for_gpu=False)
        if plan.gpu.total <= gpu_room:
            return plan
    return dataclasses.replace(placed(0, slots_for_gpu=False), gpu=NO_ROOM)


def _in_host_memory(
    model: Model, sizes: Sizes, settings: LlamaCppEngine, budget_mb: int | None, *, kernels: Kernels, integrated: bool
) -> SlotPlan:
    """The plan where no GPU has memory of its own. An integrated GPU computes in the host's memory: `auto` puts
    every layer there, as llama.cpp's own default does, or the GPU a Jetson is bought for sits idle; its buffers
    (which hold the weights in place of the CPU kernels' copies) and its runtime count as host memory. Without
    one, `auto` offloads nothing, and a number goes to llama.cpp, which ignores it."""
    layers = model.gpu_layers if model.gpu_layers != "auto" else sizes.shape.layers + 1 if integrated else 0
    copied = weight_copies(model, settings, sizes.matrices, kernels, layers if integrated else 0)
    if integrated:
        return plan_shape(model, sizes, settings, budget_mb, copied=copied, gpu_layers=layers, shared=True)
    plan = plan_shape(model, sizes, settings, budget_mb, copied=copied)
    return dataclasses.replace(plan, gpu=OnGpu(layers)) if layers else plan


def weight_copies(
    model: Model, settings: LlamaCppEngine, found: tuple[Matrix, ...], kernels: Kernels, gpu_layers: int
) -> Copies:
    """What the CPU kernels copy of this model's matrices. None with layers on a GPU (its buffers hold them; a
    partly offloaded model's CPU layers are not counted). An embedding model multiplies by no output matrix; with
    use_mlock the copied originals stay locked in memory, not the kernel's to drop."""
    if gpu_layers != 0:
        return NO_COPIES
    copied = copies(untied(found) if model.pooled else found, kernels)
    return dataclasses.replace(copied, reclaimable=0) if settings.use_mlock else copied


def plan_shape(
    model: Model,
    sizes: Sizes,
    settings: LlamaCppEngine,
    budget_mb: int | None,
    *,
    copied: Copies = NO_COPIES,
    gpu_layers: int = 0,
    gpu_room: int | None = None,
    shared: bool = False,
) -> SlotPlan:
    """The plan of a model of these sizes, weight copies and layers on the GPU (-1: all; `shared`: an integrated
    one's); `parallel: auto` takes as many slots as the memory holds, the host's and `gpu_room`."""
    shape = sizes.shape
    context = model.context_size or shape.context_trained
    flash_attention = uses_flash_attention(settings, model)

    def plan(parallel: int) -> SlotPlan:
        cells = -(-context * parallel // KV_PAD) * KV_PAD
        step = Step(parallel, settings.batch_size, cells, flash_attention, model.pooled)
        kv_bytes = shape.kv_bytes(step)
        gpu = on_gpu(gpu_layers, shape.layers, sizes.layout, kv_bytes, shape.reserved_work_bytes(step), shared=shared)
        return SlotPlan(parallel, context, sizes.file_bytes, kv_bytes, shape.work_bytes(step), copied, gpu)

    if model.pooled:
        return plan(1)  # embeddings and ranks run one batch at a time on llama-cpp-python's own context
    if settings.parallel != "auto":
        return plan(settings.parallel)
    room = budget_mb * MIB if budget_mb is not None else available_memory()

    def fits(planned: SlotPlan) -> bool:
        return planned.host_bytes <= room and (gpu_room is None or planned.gpu.total <= gpu_room)

    parallel = min(AUTO_MAX, settings.batch_size)  # a step holds one token per slot
    while parallel > 1 and not fits(plan(parallel)):
        parallel -= 1
    return plan(parallel)


def read_shape(path: Path) -> Shape:
    """The model's layer and head sizes from its GGUF header; ValueError when the header cannot be read."""
    return shape_of(_header(path, with_tensors=False)[0])


def _header(path: Path, with_tensors: bool) -> tuple[dict[str, Value], list[Tensor]]:
    try:
        return read_header(path, with_tensors)
    except OSError as exc:
        raise ValueError(f"its header cannot be read ({exc.strerror or 'I/O error'})") from None


def shape_of(metadata: dict[str, Value]) -> Shape:
    """The shape a header's metadata gives; ValueError when it is implausible."""

    def value(key: str) -> int | None:
        return architecture_value(metadata, key)

    heads = value("attention.head_count") or 1
    embedding = value("embedding_length") or 0
    tokens = metadata.get("tokenizer.ggml.tokens")
    layers, window = value("block_count") or 0, value("attention.sliding_window") or 0
    pattern = SWA_PATTERNS.get(str(metadata.get("general.architecture")), 0) if window else 0
    shape = Shape(
        layers=layers,
        kv_heads=value("attention.head_count_kv") or heads,
        key_length=value("attention.key_length") or embedding // heads,
        value_length=value("attention.value_length") or embedding // heads,
        context_trained=value("context_length") or 0,
        embedding=embedding,
        vocab=value("vocab_size") or (tokens.length if isinstance(tokens, Array) and tokens.of_strings else 0),
        heads=heads,
        window=window if pattern else 0,
        window_layers=layers - layers // pattern if pattern else 0,
    )
    return checked(shape)


def checked(shape: Shape) -> Shape:
    """The shape; ValueError naming each size past what any model has (a header that lies)."""
    implausible = [name for name, most in PLAUSIBLE.items() if getattr(shape, name) > most]
    if implausible:
        raise ValueError(f"its header gives an implausible {', '.join(implausible)}")
    if shape.layers < 1:
        raise ValueError("its header gives no layers (block_count)")
    return shape


def memory_room(budget_mb: int | None, available: int) -> tuple[int, bool]:
    """The memory the models may take here: what is available, or the budget where it is smaller (True)."""
    if budget_mb is not None and budget_mb * MIB < available:
        return budget_mb * MIB, True
    return available, False


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
