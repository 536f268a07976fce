"""POST /v1/rerank through `cortex start` on a real (tiny, written here) BERT reranker: scores from llama.cpp's
rank pooling, ordered, cut to top_n, each pair scored on its own; a model that cannot rank is refused where it is
declared (its load fails, naming the setting) and where it is asked (a 400)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runtime.cortex_server import MODEL_BLOCK, MODEL_ID, CortexServer, launch
from tests.runtime.tiny_reranker import write_reranker

QUERY = "what is the capital of france"
DOCUMENTS = ["paris is the capital of france", "the cat", "berlin is in germany", "the river is sunny"]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    folder = tmp_path_factory.mktemp("rerank")
    write_reranker(folder / "ranker.gguf")
    write_reranker(folder / "encoder.gguf", head=False)
    models = (MODEL_BLOCK + "  - id: ranker\n    source: ranker.gguf\n    rerank: true\n    context_size: 256\n"
              "  - id: encoder\n    source: encoder.gguf\n    rerank: true\n    load: on_demand\n")  # fmt: skip
    running = launch(folder, cortex_command, test_data_dir, models=models)
    try:
        running.wait_ready()
        yield running
    finally:
        running.terminate()


def rerank(server: CortexServer, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/rerank", json={"model": "ranker", "query": QUERY, **body}, timeout=60)


def test_documents_come_back_ordered_by_score_with_usage(server: CortexServer) -> None:
    answer = rerank(server, documents=DOCUMENTS, return_documents=True)
    assert answer.status_code == 200, answer.text
    said = answer.json()
    assert (said["object"], said["model"]) == ("list", "ranker")
    scores = [result["relevance_score"] for result in said["results"]]
    assert scores == sorted(scores, reverse=True)
    assert sorted(result["index"] for result in said["results"]) == list(range(len(DOCUMENTS)))
    assert all(result["document"]["text"] == DOCUMENTS[result["index"]] for result in said["results"])
    assert said["usage"]["prompt_tokens"] > len(DOCUMENTS) * 4  # each pair: the query, the document, the markers
    best = rerank(server, documents=[{"text": text} for text in DOCUMENTS], top_n=2).json()["results"]
    assert best == [{k: v for k, v in result.items() if k != "document"} for result in said["results"][:2]]


def test_each_pair_is_scored_on_its_own(server: CortexServer) -> None:
    together = {r["index"]: r["relevance_score"] for r in rerank(server, documents=DOCUMENTS).json()["results"]}
    for index, document in enumerate(DOCUMENTS):
        [alone] = rerank(server, documents=[document]).json()["results"]
        assert alone["relevance_score"] == pytest.approx(together[index], abs=1e-4)


def test_a_model_that_cannot_rank_is_refused(server: CortexServer) -> None:
    chat = rerank(server, documents=DOCUMENTS, model=MODEL_ID)
    assert (chat.status_code, chat.json()["error"]["param"]) == (400, "model")
    assert "Reranking models here: ranker, encoder" in chat.json()["error"]["message"]
    failed = rerank(server, documents=DOCUMENTS, model="encoder")
    assert failed.status_code == 503
    assert "models[encoder].rerank" in server.output()  # the load's error names the setting
    assert "is not a reranker" in server.output()
    asked = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=60,
                       json={"model": "ranker", "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
    assert asked.status_code == 400
    assert "use /v1/rerank" in asked.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"documents": []}, "documents"),
        ({"documents": ["x"] * 1001}, "documents"),
        ({"documents": ["x"], "query": ""}, "query"),
        ({"documents": ["x"], "top_n": 0}, "top_n"),
        ({"documents": ["paris " * 300]}, "documents"),  # longer than the model reads at once
    ],
)
def test_bad_requests_are_400s_naming_the_field(server: CortexServer, body: dict[str, Any], param: str) -> None:
    answer = rerank(server, **body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


def test_an_encoder_reads_a_whole_pair_at_once_whatever_the_batch_size(
    tmp_path: Path, cortex_command: list[str], test_data_dir: Path
) -> None:
    """A large batch_size (which the chat models share) must not let a pair past the encoder's micro-batch or its
    trained positions: llama.cpp aborts the process there. The pair is bounded by the model's trained context."""
    write_reranker(tmp_path / "ranker.gguf")
    body = "engines:\n  llama_cpp:\n    batch_size: 2048\n"
    models = "models:\n  - id: ranker\n    source: ranker.gguf\n    rerank: true\n    context_size: 4096\n"
    server = launch(tmp_path, cortex_command, test_data_dir, body, models=models)
    try:
        server.wait_ready()
        many = rerank(server, documents=["paris is the capital of france " * 30] * 4)  # 4 x ~190 tokens
        assert many.status_code == 200, many.text
        long = rerank(server, documents=["paris " * 400])  # past the 256 positions it was trained with
        assert (long.status_code, long.json()["error"]["param"]) == (400, "documents")
        assert "trained context" in long.json()["error"]["message"]
        assert rerank(server, documents=["the cat"]).status_code == 200  # still up
    finally:
        server.terminate()


def test_a_template_keeps_the_clients_text_plain(tmp_path: Path) -> None:
    """The GGUF's rerank template supplies the special tokens; a document that spells one is read as text."""
    from menlo_cortex.runtime.models.backends import load_backends
    from menlo_cortex.runtime.models.engine import RankPairs

    load_backends()
    from llama_cpp import Llama

    path = write_reranker(tmp_path / "templated.gguf", template="[CLS]{query}[SEP]{document}[SEP]")
    llama = Llama(str(path), embedding=True, pooling_type=4, n_ctx=256, verbose=False)
    try:
        pairs = RankPairs(llama, "the cat {document}")
        plain = pairs.pair("[SEP][CLS]")
        assert plain[0] == 2  # the template's [CLS]
        assert plain.count(2) == 1  # the document's "[CLS]" is text, not the special token
        assert plain.count(3) == 2  # the template's two [SEP]
        assert pairs.fixed == len(pairs.pair(""))
    finally:
        llama.close()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
TEXTS = st.text(max_size=40) | st.fixed_dictionaries({"text": st.text(max_size=40)}) | JSON


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(st.sampled_from(["query", "top_n", "return_documents", "model", "unknown"]), JSON,
                            max_size=2),
    documents=st.lists(TEXTS, max_size=4) | JSON,
)  # fmt: skip
def test_random_bodies_never_fail_the_server(server: CortexServer, changes: dict[str, Any], documents: Any) -> None:
    """Random documents and fields (unicode, empty texts, objects, wrong types): never a 5xx, OpenAI's error shape."""
    body = {"model": "ranker", "query": QUERY, "documents": documents, **changes}
    answer = httpx.post(
        f"{server.base_url}/v1/rerank",
        content=json.dumps(body).encode(),
        timeout=60,
        headers={"content-type": "application/json"},
    )  # json.dumps: Infinity too, as clients send
    assert answer.status_code < 500, (body, answer.text)
    if answer.status_code >= 400:
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    else:
        assert len(answer.json()["results"]) <= len(documents)
