"""Which of a model's layers llama.cpp puts on the GPU, and the GPU memory they take.

llama.cpp counts `n_gpu_layers` from the output back: 1 puts the output matrix on the GPU, 2 the last layer too,
and `n_layer + 1` (or -1) every layer; the token embeddings stay in host memory. A layer's KV cache lives where
the layer does, and with any layer on the GPU its compute buffer is there too. Sized from the GGUF header, as the
rest of the plan is, so `gpu_layers: auto` (as many as fit) is decided before a weight is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..gguf import Tensor
from ..weight_copies import TIED_OUTPUT, output_tied, tensor_bytes

MIB = 1024 * 1024
# Left free on each GPU, as llama.cpp's own fit leaves by default (--fit-target): the driver's and CUDA's own
# allocations, another process's, and what the plan does not count.
GPU_MARGIN = 1024 * MIB
_LAYER = re.compile(r"^blk\.\d+\.")
_OUTPUT = ("output.weight", "output.bias", "output_norm.weight", "output_norm.bias")


@dataclass(frozen=True)
class Layout:
    """A model's weight bytes by where llama.cpp may place them."""

    layers: int  # the repeating layers' (blk.N.*), all together
    output: int  # the output matrix and norm; tied, the token embeddings again (a copy on the output's device)
    tied: bool = False  # no output.weight: the GPU's output copy frees nothing in host memory


NO_LAYOUT = Layout(0, 0)


def layout_of(tensors: Iterable[Tensor]) -> Layout:
    found = list(tensors)
    layers = sum(tensor_bytes(tensor) for tensor in found if _LAYER.match(tensor.name))
    output = sum(tensor_bytes(tensor) for tensor in found if tensor.name in _OUTPUT)
    tied = output_tied(found)
    if tied:
        output += sum(tensor_bytes(tensor) for tensor in found if tensor.name == TIED_OUTPUT)
    return Layout(layers, output, tied)


@dataclass(frozen=True)
class OnGpu:
    """What a model puts on the GPUs (bytes), and the host memory that frees."""

    layers: int  # n_gpu_layers as llama.cpp will apply it: 0 (none) to n_layer + 1 (all)
    weights: int = 0
    kv: int = 0
    work: int = 0  # the compute buffer
    freed: int = 0  # the weights' pages in the host's mapping, unmapped once copied
    # A large batch's work sent to the GPU with the host's weights (llama.cpp's op_offload, on by default): off
    # where `auto` found no room there, as that work's buffer would not fit either.
    batches: bool = True
    shared: bool = False  # an integrated GPU's: its buffers are the host's memory, counted there

    @property
    def runtime(self) -> int:
        """What an integrated GPU's runtime takes beside the buffers (its context, libraries, the backend's pool):
        the margin a discrete GPU keeps free."""
        return GPU_MARGIN if self.shared else 0

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.work + self.runtime

    @property
    def device(self) -> int:
        """What it takes of the GPU's own memory: none of an integrated GPU's."""
        return 0 if self.shared else self.total

    @property
    def in_host(self) -> int:
        """What it takes of the host's memory besides the plan's own counts: an integrated GPU's all."""
        return self.total if self.shared else 0


NOTHING = OnGpu(0)
NO_ROOM = OnGpu(0, batches=False)


def on_gpu(asked: int, n_layer: int, layout: Layout, kv_bytes: int, work_bytes: int, *, shared: bool = False) -> OnGpu:
    """`asked` layers (-1: all) of a model of `n_layer` layers; `kv_bytes` its whole KV cache, `work_bytes` what
    llama.cpp reserves for a step's buffers; `shared`: on an integrated GPU."""
    if asked == 0 or n_layer <= 0:
        return NOTHING
    layers = n_layer + 1 if asked < 0 else min(asked, n_layer + 1)
    repeating = layers - 1
    moved = layout.layers * repeating // n_layer
    freed = moved + (0 if layout.tied else layout.output)
    return OnGpu(layers, moved + layout.output, kv_bytes * repeating // n_layer, work_bytes, freed, shared=shared)


def gpu_room(free: Sequence[int]) -> int | None:
    """What the models may take of discrete GPUs with this much free memory each: all but GPU_MARGIN of each;
    None with no GPU."""
    return sum(max(bytes_free - GPU_MARGIN, 0) for bytes_free in free) if free else None
