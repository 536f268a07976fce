"""POST /v1/rerank: documents ordered by their relevance to a query, scored by a reranking model (`rerank: true`),
in the shape Jina's and Cohere's rerank APIs share (llama-server's too)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..http.errors import ApiError
from ..models.engine import Engine, Ranked, TooManyTokens
from ..models.manager import ModelManager
from .generate import CLIENT_CLOSED_REQUEST
from .requests import WHOLE, Loose, Strict
from .routes import not_served
from .streaming import ClientGone, unless_disconnected
from .validation import parse_body

MAX_DOCUMENTS = 1000  # Cohere's limit
MAX_RANK_TOKENS = 300_000  # per request, every pair together: as embeddings


class Document(Loose):
    text: str


class RerankRequest(Strict):
    model: str = Field(description="A model id declared with `rerank: true`.")
    query: str = Field(min_length=1)
    documents: Annotated[list[str | Document], Field(min_length=1, max_length=MAX_DOCUMENTS, fail_fast=True)]
    top_n: Annotated[int, Field(ge=1), WHOLE] | None = Field(None, description="Return the best this many.")
    return_documents: bool | None = Field(None, description="Give each result its document's text.")


def rerank_routes(manager: ModelManager) -> list[BaseRoute]:
    return [Route("/v1/rerank", _rerank(manager), methods=["POST"])]


def _rerank(manager: ModelManager) -> Any:
    async def rerank(request: Request) -> Response:
        body = await parse_body(request, RerankRequest)
        model = manager.model(body.model)
        if not model.rerank:
            raise not_served(manager, model.id, "rank documents", "rerank", "Reranking")
        texts = [document if isinstance(document, str) else document.text for document in body.documents]
        async with manager.use(model.id) as engine:  # left only once the engine thread has stopped
            try:
                ranked = _ranked(engine, body.query, texts)
                scores, tokens = await unless_disconnected(request, ranked, manager.limits.request_timeout_s)
            except ClientGone:
                return Response(status_code=CLIENT_CLOSED_REQUEST)
        best = sorted(range(len(texts)), key=lambda index: -scores[index])[: body.top_n]
        results = [_result(index, scores[index], texts[index] if body.return_documents else None) for index in best]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "model": model.id, "results": results, "usage": usage})

    return rerank


async def _ranked(engine: Engine, query: str, texts: list[str]) -> Ranked:
    try:
        return await engine.rank(query, texts, MAX_RANK_TOKENS)
    except TooManyTokens as exc:
        raise ApiError(400, f"Invalid value for 'documents': {exc}.", param="documents", code="invalid_value") from None
    except ValueError as exc:
        raise ApiError(400, f"Cannot rank these documents: {exc}.", param="documents", code="invalid_value") from None


def _result(index: int, score: float, text: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"index": index, "relevance_score": score}
    if text is not None:
        result["document"] = {"text": text}
    return result
