"""A direct chat stream's chunks, made one piece at a time on the event loop, are what llama-cpp-python's plain
converter makes of the whole stream (the pinned version's own function, run over every chunk at once)."""

from __future__ import annotations

import functools

import pytest
from llama_cpp.llama_chat_format import _convert_text_completion_chunks_to_chat
from menlo_cortex.runtime.models.batching.sequence import Finished, Output
from menlo_cortex.runtime.models.batching.view import _chat_chunks, _text_chunks

pytestmark = pytest.mark.timeout(30)
HEAD = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gemma"}


@pytest.mark.parametrize("end", ["stop", "length"])
def test_piece_by_piece_equals_the_converter_over_the_whole_stream(end: str) -> None:
    items: list[Output] = ["Hel", "lo", "", " wor\u00e9ld", Finished(end)]
    started: list[bool] = []
    made = [chunk for item in items for chunk in _chat_chunks(HEAD, started, item)]
    text = [chunk for item in items for chunk in _text_chunks(HEAD, item)]
    assert made == list(_convert_text_completion_chunks_to_chat(iter(text)))  # type: ignore[arg-type]
    assert made[0]["choices"][0]["delta"] == {"role": "assistant"}


def test_a_cancelled_sequence_ends_with_no_finish_chunk() -> None:
    convert = functools.partial(_chat_chunks, HEAD, [])
    assert convert(Finished("cancelled")) == []
