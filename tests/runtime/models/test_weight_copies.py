"""The weight copies llama.cpp's CPU kernels make, from the header: the rules for each kind of CPU module and build.
What the kernels of this machine's CPU module copy is checked against llama.cpp's own figures in
test_footprint.py; these check the other kinds of CPU from the same header."""

from __future__ import annotations

from pathlib import Path

import pytest
from menlo_cortex.runtime.models.gguf import Tensor, read_header
from menlo_cortex.runtime.models.weight_copies import (
    NONE,
    Kernels,
    Matrix,
    bytes_read_per_token,
    copies,
    kernels_for_build,
    kernels_from_cpu_flags,
    kernels_from_features,
    matrices,
)

MIB = 1024 * 1024
Q8_0, Q4_K, Q6_K, Q5_0 = 8, 12, 14, 6


def kernels(*features: str) -> Kernels:
    return Kernels(frozenset({"REPACK", *features}))


@pytest.fixture(scope="module")
def test_matrices(test_model_path: Path) -> tuple[Matrix, ...]:
    return matrices(read_header(test_model_path)[1], test_model_path.stat().st_size)


def test_the_test_models_matrices_and_its_tied_output(test_matrices: tuple[Matrix, ...]) -> None:
    tied = [matrix for matrix in test_matrices if matrix.tied]
    assert tied == [Matrix(Q8_0, 640, 262144, 1, tied=True)]  # the token embeddings, multiplied for the logits
    q5_0 = [matrix for matrix in test_matrices if matrix.type == Q5_0]
    assert q5_0
    every = kernels("AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8", "DOTPROD", "MATMUL_INT8")
    assert copies(q5_0, every).bytes == 0  # no kernel's


def test_a_token_reads_every_matrix_or_its_copy(test_matrices: tuple[Matrix, ...], test_model_path: Path) -> None:
    plain = bytes_read_per_token(test_matrices, NONE)
    assert 0.95 * test_model_path.stat().st_size < plain < test_model_path.stat().st_size  # all but norms
    amx = kernels("AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8")
    assert (
        bytes_read_per_token(test_matrices, amx)
        == plain
        + copies(test_matrices, amx).bytes
        - sum(matrix.rows * matrix.columns // 32 * 34 for matrix in test_matrices if matrix.tied)
        - copies(test_matrices, amx).reclaimable
    )  # the copies instead of the originals, the output's too


@pytest.mark.parametrize(
    ("cpu", "copied_mib", "reclaimable_mib"),
    [
        (kernels("AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8"), 213.90625, 23.37890625),  # llama.cpp's on a Xeon
        (kernels("AVX2", "AVX512"), 12.65625, 12.65625),  # the Q4_K matrices, repacked at the same size
        (kernels("DOTPROD"), 193.37890625, 23.37890625),  # a Pi 5: Q4_K, Q6_K and Q8_0, the tied output too
        (kernels(), 0, 0),  # a Pi 4, or x86 without AVX2
        (NONE, 0, 0),
    ],
)
def test_each_kind_of_cpu_copies_its_own(
    test_matrices: tuple[Matrix, ...], cpu: Kernels, copied_mib: float, reclaimable_mib: float
) -> None:
    found = copies(test_matrices, cpu)
    assert (found.bytes / MIB, found.reclaimable / MIB) == (copied_mib, reclaimable_mib)


def test_amx_takes_only_whole_tiles() -> None:
    cpu = kernels("AVX512_VNNI", "AMX_INT8")
    assert copies([Matrix(Q4_K, 1024, 64, 1)], kernels("AMX_INT8")).bytes == 0  # ggml's AMX needs VNNI too
    assert copies([Matrix(Q4_K, 640, 640, 1)], cpu).bytes == 0  # 640 is no multiple of Q4_K's 256-value blocks
    assert copies([Matrix(Q4_K, 1024, 48, 1)], cpu).bytes == 0  # 48 rows are not two tiles of 16
    assert copies([Matrix(Q4_K, 1024, 64, 1)], cpu).bytes == 64 * 4 * (144 + 4)
    assert copies([Matrix(Q4_K, 1024, 64, 2, experts=True)], cpu).bytes == 0  # experts: repacking only


def test_a_header_with_more_weights_than_its_file_is_refused() -> None:
    tensors = [Tensor("blk.0.ffn_up.weight", Q4_K, (4096, 4096))]
    with pytest.raises(ValueError, match="more weights than the file holds"):
        matrices(tensors, 1 << 20)
    assert matrices(tensors, 4096 * 16 * 144) == (Matrix(Q4_K, 4096, 4096, 1, tied=False),)
    with pytest.raises(ValueError, match="more weights than the file holds"):  # looked up, and tied: counted too
        matrices([Tensor("token_embd.weight", 1, (1 << 63, 1 << 63))], 100)
    with pytest.raises(ValueError, match="names a tensor twice"):
        matrices([*tensors, *tensors], 1 << 30)
    assert matrices([Tensor("scalar", 0, ())], 1 << 20) == ()  # no dimensions: as llama.cpp, not refused


def test_looked_up_and_untyped_tensors_are_not_matrices() -> None:
    tensors = [
        Tensor("token_embd.weight", Q8_0, (640, 1024)),
        Tensor("output.weight", Q6_K, (640, 1024)),  # untied: the embeddings are only looked up
        Tensor("blk.0.attn_norm.weight", 0, (640,)),
        Tensor("blk.0.ffn_up.bias", Q8_0, (640, 64)),
        Tensor("blk.0.ffn_up_exps.weight", Q4_K, (256, 64, 8)),
        Tensor("blk.3.nextn.embed_tokens.weight", Q8_0, (640, 1024)),  # multi-token prediction's, looked up
    ]
    assert matrices(tensors, 1 << 30) == (
        Matrix(Q4_K, 256, 64, 8, experts=True),
        Matrix(Q6_K, 640, 1024, 1),
    )


@pytest.mark.parametrize(
    ("architecture", "flags", "expected"),
    [
        ("amd64", ["-DGGML_NATIVE=OFF"], {"REPACK", "AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8"}),  # the most
        ("amd64", ["-DGGML_AVX:BOOL=ON", "-DGGML_AVX512:BOOL=TRUE"], {"REPACK", "AVX2", "AVX512"}),
        ("amd64", ["-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON", "-DGGML_AVX=ON"], {"REPACK", "AVX2"}),
        ("amd64", ["-DGGML_AVX2=ON", "-DGGML_CPU_REPACK=OFF"], {"AVX2"}),
        ("arm64", ["-DGGML_NATIVE=OFF", "-DGGML_CPU_ARM_ARCH=armv8-a"], {"REPACK"}),  # Pi 4
        ("arm64", ["-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16"], {"REPACK", "DOTPROD"}),  # Pi 5, Orin
        ("arm64", ["-DGGML_CPU_ARM_ARCH=armv8.6-a"], {"REPACK", "DOTPROD", "MATMUL_INT8"}),
        ("arm64", ["-DGGML_CPU_ARM_ARCH=armv9-a"], {"REPACK", "DOTPROD"}),
        ("arm64", ["-DGGML_CPU_ARM_ARCH=armv8.2-a+i8mm"], {"REPACK", "MATMUL_INT8"}),
        ("arm64", ["-DGGML_CPU_ARM_ARCH:STRING=armv8.2-a+dotprod", "-DGGML_CPU_REPACK=0"], {"DOTPROD"}),
    ],
)
def test_a_builds_kernels_come_from_its_flags(architecture: str, flags: list[str], expected: set[str]) -> None:
    assert kernels_for_build(architecture, flags).features == expected


def test_a_cpu_modules_features_are_those_it_turns_on() -> None:
    found = kernels_from_features({"AVX2": "1", "AMX_INT8": "0", "REPACK": "1", "OPENMP": ""})
    assert found.features == {"AVX2", "REPACK"}
    assert not found.amx


def test_without_llama_cpp_the_cpus_flags_say_what_a_module_for_it_would_use() -> None:
    xeon = kernels_from_cpu_flags(["avx", "avx2", "avx512f", "avx512_vnni", "amx_int8", "fma"])
    assert xeon.features == {"REPACK", "AVX2", "AVX512", "AVX512_VNNI", "AMX_INT8"}
    assert xeon.amx
    assert kernels_from_cpu_flags(["neon", "asimd", "asimddp"]).features == {"REPACK", "DOTPROD"}  # a Pi 5
