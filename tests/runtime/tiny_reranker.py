"""A tiny BERT cross-encoder in GGUF, written with gguf-py: llama.cpp's `bert` architecture with a
classification head (`cls`, `cls.output`) and rank pooling, as real rerankers (bge-reranker, jina-reranker) are
converted. Its weights are random (seeded): the scores it gives mean nothing, but every step a real reranker takes
runs for real (the WordPiece tokenizer, the query/document pair, rank pooling, the head), at a size a test
writes in milliseconds. No reranking model can be downloaded here, and none ships on PyPI."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

WORDS = ("the", "is", "of", "in", "and", "to", "paris", "capital", "france", "berlin", "germany", "city",
         "river", "weather", "sunny", "cat", "dog", "what", "which")  # fmt: skip
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
EMBD, FF, LAYERS, HEADS, CONTEXT = 32, 64, 2, 2, 256


def write_reranker(path: Path, *, head: bool = True, seed: int = 7, template: str | None = None) -> Path:
    """`head`: the classification head and rank pooling; without, a plain BERT encoder (mean pooling), which
    cannot rank. `template`: a rerank prompt template (`{query}`, `{document}`), as some rerankers' GGUFs carry."""
    rng = np.random.default_rng(seed)
    # As convert_hf_to_gguf.py writes a WordPiece vocabulary: a word's start marked with U+2581, `##` dropped.
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = [*SPECIAL, *(f"\u2581{c}" for c in letters), *letters, *(f"\u2581{word}" for word in WORDS)]
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_name("tiny-reranker" if head else "tiny-encoder")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBD)
    writer.add_feed_forward_length(FF)
    writer.add_block_count(LAYERS)
    writer.add_head_count(HEADS)
    writer.add_layer_norm_eps(1e-12)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.RANK if head else gguf.PoolingType.MEAN)
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] * len(SPECIAL) + [gguf.TokenType.NORMAL] * (len(tokens) - 5))
    writer.add_token_type_count(2)
    if template is not None:
        writer.add_string("tokenizer.chat_template.rerank", template)
    for name, token in (("pad", 0), ("unk", 1), ("bos", 2), ("sep", 3), ("mask", 4), ("eos", 3)):
        getattr(writer, f"add_{name}_token_id")(token)

    def tensor(name: str, *shape: int, scale: float = 0.2) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def norm(name: str) -> None:
        writer.add_tensor(f"{name}.weight", np.ones(EMBD, dtype=np.float32))
        writer.add_tensor(f"{name}.bias", np.zeros(EMBD, dtype=np.float32))

    tensor("token_embd.weight", len(tokens), EMBD)
    tensor("token_types.weight", 2, EMBD)
    tensor("position_embd.weight", CONTEXT, EMBD)
    norm("token_embd_norm")
    for block in range(LAYERS):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensor(f"blk.{block}.{part}.weight", EMBD, EMBD)
        norm(f"blk.{block}.attn_output_norm")
        tensor(f"blk.{block}.ffn_up.weight", FF, EMBD)
        tensor(f"blk.{block}.ffn_down.weight", EMBD, FF)
        norm(f"blk.{block}.layer_output_norm")
    if head:
        tensor("cls.weight", EMBD, EMBD)
        tensor("cls.bias", EMBD)
        tensor("cls.output.weight", 1, EMBD, scale=1.0)
        tensor("cls.output.bias", 1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
