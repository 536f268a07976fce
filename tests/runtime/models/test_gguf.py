"""The GGUF header reader: the test model's shape as llama.cpp itself reads it, and hostile headers refused
before anything large is read or allocated."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from menlo_cortex.runtime.models.batching.plan import Shape, read_shape
from menlo_cortex.runtime.models.gguf import Array, GgufError, Tensor, architecture_value, read_header, read_metadata


def test_the_test_models_shape_is_what_llama_cpp_reads(test_model_path: Path) -> None:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(test_model_path).encode(), params)
    buffer = ctypes.create_string_buffer(256)

    def llama_reads(key: str) -> str:
        assert llama_cpp.llama_model_meta_val_str(model, key.encode(), buffer, len(buffer)) >= 0, key
        return str(buffer.value.decode())

    try:
        metadata = read_metadata(test_model_path)
        for key in ("block_count", "attention.head_count", "attention.head_count_kv", "context_length"):
            assert str(architecture_value(metadata, key)) == llama_reads(f"gemma3.{key}")
        assert metadata["general.architecture"] == llama_reads("general.architecture") == "gemma3"
    finally:
        llama_cpp.llama_model_free(model)
    # 15 of its 18 layers attend to a window of 512 tokens (llama.cpp's gemma3 pattern: every 6th is global)
    expected = Shape(18, 1, 256, 256, 32768, embedding=640, vocab=262144, heads=4, window=512, window_layers=15)
    assert read_shape(test_model_path) == expected


def header(*pairs: bytes, keys: int | None = None, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, len(pairs) if keys is None else keys) + b"".join(pairs)


def text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("<Q", len(data)) + data


def pair(key: str, kind: int, payload: bytes) -> bytes:
    return text(key) + struct.pack("<I", kind) + payload


LAYERS = pair("llama.block_count", 4, struct.pack("<I", 2))


def test_scalars_strings_and_skipped_arrays(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    tokens = struct.pack("<IQ", 8, 2) + text("a") + text("bc")
    nested = struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 2) + struct.pack("<II", 1, 2)
    path.write_bytes(
        header(
            pair("general.architecture", 8, text("llama")),
            pair("tokenizer.ggml.tokens", 9, tokens),
            pair("llama.nested", 9, nested),
            pair("llama.block_count", 4, struct.pack("<I", 32)),
            pair("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
            pair("llama.flag", 7, b"\x01"),
        )
    )
    metadata = read_metadata(path)
    assert metadata["tokenizer.ggml.tokens"] == Array(2, of_strings=True)
    assert metadata["llama.nested"] == Array(1, of_strings=False)
    assert architecture_value(metadata, "block_count") == 32
    assert architecture_value(metadata, "rope.freq_base") is None  # not a whole number
    assert architecture_value(metadata, "flag") is None
    assert architecture_value(metadata, "absent") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"GGML" + bytes(20), "does not start with `GGUF`"),
        (header(version=9), "GGUF version 9"),
        (header(keys=1 << 40), "claims 1099511627776 metadata keys"),
        (header(keys=1), "runs past the end"),
        (header(struct.pack("<Q", 1 << 62)), "a metadata key of"),
        (header(pair("k", 8, struct.pack("<Q", 1 << 62))), "runs past the end"),
        (header(pair("k", 9, struct.pack("<IQ", 8, 1 << 60))), "runs past the end"),
        (header(pair("k", 9, struct.pack("<IQ", 4, 1 << 60))), "runs past the end"),
        (header(pair("k", 13, b"")), "unknown type 13"),
        (header(pair("k", 9, struct.pack("<IQ", 9, 1) * 6)), "an array of type 9"),  # nested too deep
    ],
)
def test_a_hostile_header_is_refused_before_it_costs_anything(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(content)
    with pytest.raises(GgufError, match=message):
        read_metadata(path)
    with pytest.raises(ValueError, match=message):  # what the slot plan reports for the model
        read_shape(path)


def test_a_header_with_implausible_sizes_is_refused_and_a_byte_array_is_no_vocabulary(tmp_path: Path) -> None:
    lying = tmp_path / "lying.gguf"
    lying.write_bytes(
        header(pair("general.architecture", 8, text("llama")), pair("llama.vocab_size", 10, struct.pack("<Q", 1 << 40)))
    )
    with pytest.raises(ValueError, match="implausible vocab"):
        read_shape(lying)
    bytes_as_tokens = tmp_path / "bytes.gguf"
    tokens = struct.pack("<IQ", 0, 3) + b"abc"  # an array of uint8, not of strings
    bytes_as_tokens.write_bytes(
        header(pair("general.architecture", 8, text("llama")), LAYERS, pair("tokenizer.ggml.tokens", 9, tokens))
    )
    assert read_shape(bytes_as_tokens).vocab == 0


@pytest.mark.parametrize("layers", [0, 513, 1 << 31])
def test_a_layer_count_llama_cpp_would_abort_on_is_refused_first(tmp_path: Path, layers: int) -> None:
    lying = tmp_path / "layers.gguf"
    count = pair("llama.block_count", 4, struct.pack("<I", layers))
    lying.write_bytes(header(pair("general.architecture", 8, text("llama")), count))
    with pytest.raises(ValueError, match=r"no layers|implausible layers"):
        read_shape(lying)


def with_tensors(count: int, *descriptions: bytes) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, count, 0) + b"".join(descriptions)


def tensor(name: str, dims: tuple[int, ...], kind: int = 12) -> bytes:
    return (
        text(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", kind, 0)
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (with_tensors(1 << 17), "claims 131072 tensors"),
        (with_tensors(1000, tensor("a.weight", (256, 8))), "runs past the end"),  # a thousand claimed, one there
        (with_tensors(1, tensor("n" * 64, (256, 8))), "a tensor name of 64 bytes"),  # llama.cpp's limit: 63
        (with_tensors(1, tensor("a.weight", (1, 1, 1, 1, 1))), "a tensor of 5 dimensions"),
    ],
)
def test_a_hostile_tensor_list_is_refused_before_it_costs_anything(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(content)
    with pytest.raises(GgufError, match=message):
        read_header(path)


def test_the_test_models_tensors_are_read_as_listed(test_model_path: Path) -> None:
    _, tensors = read_header(test_model_path)
    assert len(tensors) == 236
    assert tensors[1] == Tensor("token_embd.weight", 8, (640, 262144))
