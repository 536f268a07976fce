"""Layers on the GPU: llama.cpp's placement, `gpu_layers: auto` and the memory each side takes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.schema import Model
from menlo_cortex.cortexfile.schema.models import LlamaCppEngine
from menlo_cortex.runtime.models.backends import Backends
from menlo_cortex.runtime.models.batching.offload import GPU_MARGIN, NOTHING, Layout, gpu_room, layout_of, on_gpu
from menlo_cortex.runtime.models.batching.plan import MIB, Shape, Sizes, SlotPlan, plan_placed, plan_slots, read_sizes
from menlo_cortex.runtime.models.engine import llama_arguments
from menlo_cortex.runtime.models.ggml import Device
from menlo_cortex.runtime.models.gguf import Tensor
from menlo_cortex.runtime.models.weight_copies import NONE, Kernels, Matrix, tensor_bytes
from pydantic import ValidationError

F32, Q4_K = 0, 12
SHAPE = Shape(layers=4, kv_heads=2, key_length=64, value_length=64, context_trained=8192, embedding=512,
              vocab=32000, heads=8)  # fmt: skip
LAYER = 4 * MIB  # one layer's weights in LAYOUT
LAYOUT = Layout(layers=4 * LAYER, output=16 * MIB)
SIZES = Sizes(SHAPE, 40 * MIB, (), LAYOUT)


def model(**fields: object) -> Model:
    return Model.model_validate({"id": "m", "source": "m.gguf", "context_size": 1024, **fields})


def test_the_layers_and_the_output_are_told_apart_and_a_tied_output_is_the_embeddings() -> None:
    layer = [Tensor(f"blk.{index}.ffn_up.weight", Q4_K, (512, 2048)) for index in range(3)]
    embeddings = Tensor("token_embd.weight", Q4_K, (512, 32000))
    norm = Tensor("output_norm.weight", F32, (512,))
    tied = layout_of([*layer, embeddings, norm])
    assert tied == Layout(3 * tensor_bytes(layer[0]), tensor_bytes(embeddings) + 512 * 4, tied=True)
    output = Tensor("output.weight", Q4_K, (512, 32000))
    assert layout_of([*layer, embeddings, norm, output]) == Layout(tied.layers, tied.output, tied=False)


def test_layers_are_counted_from_the_output_back_as_llama_cpp_offloads_them() -> None:
    assert on_gpu(0, 4, LAYOUT, 8 * MIB, MIB) == NOTHING
    output_only = on_gpu(1, 4, LAYOUT, 8 * MIB, MIB)
    assert (output_only.layers, output_only.weights, output_only.kv, output_only.work) == (1, 16 * MIB, 0, MIB)
    two = on_gpu(3, 4, LAYOUT, 8 * MIB, MIB)
    assert (two.weights, two.kv, two.freed) == (16 * MIB + 2 * LAYER, 4 * MIB, 16 * MIB + 2 * LAYER)
    every = on_gpu(-1, 4, LAYOUT, 8 * MIB, MIB)
    assert every == on_gpu(99, 4, LAYOUT, 8 * MIB, MIB)
    assert (every.layers, every.weights, every.kv) == (5, 32 * MIB, 8 * MIB)


def test_a_tied_output_copied_to_the_gpu_frees_no_host_memory() -> None:
    tied = Layout(LAYOUT.layers, LAYOUT.output, tied=True)
    assert on_gpu(-1, 4, tied, 0, 0).freed == 4 * LAYER
    assert on_gpu(-1, 4, tied, 0, 0).weights == 4 * LAYER + 16 * MIB


def test_each_gpu_keeps_llama_cpps_margin_free() -> None:
    assert gpu_room([]) is None  # no discrete GPU
    assert gpu_room([GPU_MARGIN // 2, GPU_MARGIN + 5 * MIB, GPU_MARGIN + 7 * MIB]) == 12 * MIB


def test_auto_offloads_every_layer_that_fits_and_no_more() -> None:
    auto = model()
    plan = plan_placed(auto, SIZES, LlamaCppEngine(parallel=1), None, kernels=NONE, gpu_room=10_000 * MIB)
    assert plan.gpu_layers == 5  # every layer and the output
    for room_mb in (0, 20, 30, 40):
        plan = plan_placed(auto, SIZES, LlamaCppEngine(parallel=1), None, kernels=NONE, gpu_room=room_mb * MIB)
        assert plan.gpu.total <= room_mb * MIB
        if plan.gpu_layers < 5:  # one more would not fit
            more = plan_placed(model(gpu_layers=plan.gpu_layers + 1), SIZES, LlamaCppEngine(parallel=1), None,
                               kernels=NONE, gpu_room=room_mb * MIB)  # fmt: skip
            assert more.gpu.total > room_mb * MIB


def test_parallel_auto_gives_up_slots_before_layers() -> None:
    one = plan_placed(model(), SIZES, LlamaCppEngine(parallel=1), None, kernels=NONE, gpu_room=10_000 * MIB)
    assert one.gpu_layers == 5
    squeezed = plan_placed(model(), SIZES, LlamaCppEngine(), None, kernels=NONE, gpu_room=one.gpu.total + MIB)
    assert (squeezed.gpu_layers, squeezed.parallel) == (5, 1)
    roomy = plan_placed(model(), SIZES, LlamaCppEngine(), None, kernels=NONE, gpu_room=10_000 * MIB)
    assert (roomy.gpu_layers, roomy.parallel) == (5, 4)
    short = plan_placed(model(), SIZES, LlamaCppEngine(), None, kernels=NONE, gpu_room=one.gpu.total - LAYER)
    assert short.parallel == 4  # not all fit even with one slot: the slots stay, and what fits goes
    assert 0 < short.gpu_layers < 5


def test_what_goes_to_the_gpu_leaves_host_memory() -> None:
    settings = LlamaCppEngine(parallel=1)
    on_cpu = plan_placed(model(), SIZES, settings, None, kernels=NONE, gpu_room=None)
    offloaded = plan_placed(model(), SIZES, settings, None, kernels=NONE, gpu_room=10_000 * MIB)
    assert on_cpu.gpu_layers == 0
    assert on_cpu.gpu == NOTHING
    assert on_cpu.weights_bytes - offloaded.weights_bytes == offloaded.gpu.freed == LAYOUT.layers + LAYOUT.output
    assert offloaded.host_kv_bytes == 0
    assert offloaded.host_bytes < on_cpu.host_bytes


def test_without_a_discrete_gpu_auto_offloads_nothing_and_a_number_still_reaches_llama_cpp() -> None:
    settings = LlamaCppEngine(parallel=1)
    on_cpu = plan_placed(model(gpu_layers=0), SIZES, settings, None, kernels=NONE, gpu_room=None)
    assert plan_placed(model(), SIZES, settings, None, kernels=NONE, gpu_room=None) == on_cpu
    asked = plan_placed(model(gpu_layers=-1), SIZES, settings, None, kernels=NONE, gpu_room=None)
    assert asked.gpu_layers == -1  # with no GPU at all llama.cpp ignores it
    assert asked.host_bytes == on_cpu.host_bytes
    assert asked.gpu.total == 0


def test_auto_puts_every_layer_on_an_integrated_gpu_in_the_hosts_memory() -> None:
    """A Jetson's or an APU's GPU: the buffers a discrete GPU would hold, and the margin its runtime takes, are host
    memory; the CPU kernels copy nothing (here an AMX Xeon's would copy 4 MiB of this model's matrices)."""
    settings, amx = LlamaCppEngine(parallel=1), Kernels(frozenset({"AMX_INT8", "AVX512_VNNI"}))
    sizes = dataclasses.replace(SIZES, matrices=(Matrix(Q4_K, columns=2048, rows=1024, count=4),))

    def planned(integrated: bool, gpu_room: int | None = None, **fields: object) -> SlotPlan:
        return plan_placed(model(**fields), sizes, settings, None, kernels=amx, gpu_room=gpu_room,
                           integrated=integrated)  # fmt: skip

    on_cpu, integrated, discrete = planned(False), planned(True), planned(False, gpu_room=10_000 * MIB)
    assert (on_cpu.gpu_layers, integrated.gpu_layers, discrete.gpu_layers) == (0, 5, 5)  # every layer, the output
    assert on_cpu.copied.bytes > 0
    assert integrated.copied.bytes == integrated.gpu.device == 0
    assert integrated.host_bytes == discrete.host_bytes + discrete.gpu.total + GPU_MARGIN
    tied = dataclasses.replace(sizes, layout=Layout(LAYOUT.layers, LAYOUT.output, tied=True))
    tied_plan = plan_placed(model(), tied, settings, None, kernels=amx, gpu_room=None, integrated=True)
    assert tied_plan.host_bytes - integrated.host_bytes == LAYOUT.output  # the embeddings, and their output copy
    assert llama_arguments(model(), settings, integrated.gpu)["n_gpu_layers"] == 5
    assert planned(True, gpu_layers=0) == on_cpu  # a number is the operator's: 0 is none
    assert planned(True, gpu_layers=2).gpu_layers == 2


def test_flash_attention_auto_is_counted_on_the_gpu_as_llama_cpp_chooses_it() -> None:
    scores = plan_placed(model(), SIZES, LlamaCppEngine(parallel=1, flash_attention=False), None, kernels=NONE,
                         gpu_room=10_000 * MIB)  # fmt: skip
    fused = plan_placed(model(), SIZES, LlamaCppEngine(parallel=1), None, kernels=NONE, gpu_room=10_000 * MIB)
    assert fused.gpu.work < scores.gpu.work


def test_only_discrete_gpus_give_room() -> None:
    def backends(*kinds: str) -> Backends:
        return Backends(("CPU",), False, gpus=tuple(Device(f"D{n}", "", kind, 8 << 30, 4 << 30) for n, kind in
                                                      enumerate(kinds)))  # fmt: skip

    assert backends().gpu_free() == ()
    assert backends("igpu").gpu_free() == ()  # its memory is the host's: the plan counts it there
    assert [backends(*kinds).integrated_gpu for kinds in [(), ("igpu",), ("igpu", "gpu"), ("gpu",)]] == [
        False, True, False, False  # llama.cpp takes an integrated GPU only where there is no discrete one
    ]  # fmt: skip


def test_a_number_of_layers_is_kept_even_where_it_does_not_fit() -> None:
    plan = plan_placed(model(gpu_layers=-1), SIZES, LlamaCppEngine(parallel=1), None, kernels=NONE, gpu_room=0)
    assert plan.gpu_layers == 5
    assert plan.gpu.total > 0
    assert llama_arguments(model(gpu_layers=-1), LlamaCppEngine(), plan.gpu)["n_gpu_layers"] == 5


def test_auto_with_no_room_on_the_gpu_sends_it_no_batch_either() -> None:
    """llama.cpp would still send a large batch's work to the GPU (op_offload): a buffer the full GPU lacks."""
    full = plan_placed(model(), SIZES, LlamaCppEngine(parallel=1), None, kernels=NONE, gpu_room=0)
    assert (full.gpu_layers, full.gpu.total, full.gpu.batches) == (0, 0, False)
    assert llama_arguments(model(), LlamaCppEngine(), full.gpu)["op_offload"] is False
    no_gpu = plan_placed(model(), SIZES, LlamaCppEngine(parallel=1), None, kernels=NONE, gpu_room=None)
    asked = plan_placed(model(gpu_layers=0), SIZES, LlamaCppEngine(parallel=1), None, kernels=NONE, gpu_room=0)
    assert no_gpu.gpu.batches  # llama.cpp's default where auto did not choose
    assert asked.gpu.batches


@pytest.mark.parametrize(("given", "expected"), [("auto", "auto"), ("12", 12), (" -1 ", -1), (0, 0), (40, 40)])
def test_gpu_layers_takes_auto_or_a_number(given: object, expected: object) -> None:
    assert model(gpu_layers=given).gpu_layers == expected
    assert model().gpu_layers == "auto"


@pytest.mark.parametrize("given", [-2, "all", True, 1.5, "9999999", None])
def test_a_bad_gpu_layers_gets_one_message(given: object) -> None:
    with pytest.raises(ValidationError) as raised:
        model(gpu_layers=given)
    errors = raised.value.errors()
    assert len(errors) == 1
    assert "expected `auto`, a number of layers" in errors[0]["msg"]


def test_the_test_models_layers_fit_a_gpu_of_its_size(test_model_path: Path) -> None:
    sizes = read_sizes(test_model_path)
    assert sizes.layout.tied
    assert 0 < sizes.layout.layers < sizes.file_bytes
    assert sizes.layout.layers + sizes.layout.output <= sizes.file_bytes  # the embeddings counted once in the file
    settings = LlamaCppEngine(parallel=2)
    every = plan_slots(model(), test_model_path, settings, None, gpu_room=64 << 30)
    assert every.gpu_layers == sizes.shape.layers + 1
    room = every.gpu.total - sizes.layout.layers // 2  # about half the layers' weights less
    half = plan_slots(model(), test_model_path, settings, None, gpu_room=room)
    assert 0 < half.gpu_layers < every.gpu_layers
    assert half.gpu.total <= room
    assert plan_slots(model(), test_model_path, settings, None).gpu_layers == 0
