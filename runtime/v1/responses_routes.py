"""The Responses API's endpoints: create (whole or streamed), and, for stored responses, read, delete and list
the input items. A stored response belongs to the API key that made it: any other key is told it does not exist."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..conversations.store import BrokenConversation, ConversationStore, ConversationTooLong, StoredResponse
from ..http.auth import CALLER
from ..http.errors import ApiError
from ..models.manager import ModelManager
from ..ops.database import DatabaseError
from .generate import Job, respond
from .offload import Offload
from .responses import Envelope
from .responses_api import Keep, Responses, chat_request, checked_input
from .responses_api_request import RESPONSE_ID, ResponseRequest
from .routes import chat_start
from .sampling import chat_arguments
from .validation import parse_body

T = TypeVar("T")
Endpoint = Callable[[Request], Awaitable[Response]]
MAX_PAGE = 100
MAX_STORE_WORKERS = 2
log = logging.getLogger("cortex.responses")


class Storage:
    """The store, used off the event loop, by at most MAX_STORE_WORKERS threads at once: SQLite work waits for
    the file's lock, and the threads asyncio lends are shared with the key file's refresh and model loads."""

    def __init__(self, store: ConversationStore | None) -> None:
        self.store = store
        self.workers = asyncio.Semaphore(MAX_STORE_WORKERS)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """A database that cannot be used is a 503 (the file and reason only in the log)."""
        try:
            async with self.workers:
                return await asyncio.to_thread(work, *args)
        except (DatabaseError, OSError) as exc:
            log.error("stored responses: %s", exc if isinstance(exc, DatabaseError) else type(exc).__name__)
            raise ApiError(503, "Stored responses cannot be used right now.", code="storage_unavailable") from None


def responses_routes(manager: ModelManager, offload: Offload, store: ConversationStore | None) -> list[BaseRoute]:
    """`store`: where responses are kept; None when the Cortexfile keeps none (data.conversations.enabled)."""
    storage = Storage(store)
    return [
        Route("/v1/responses", _create(manager, offload, storage), methods=["POST"]),
        Route("/v1/responses/{response_id}", _get_or_delete(storage), methods=["GET", "DELETE"]),
        Route("/v1/responses/{response_id}/input_items", _input_items(storage), methods=["GET"]),
    ]


def _owner(request: Request) -> str:
    return str(request.scope.get(CALLER, ""))


def _create(manager: ModelManager, offload: Offload, storage: Storage) -> Endpoint:
    async def create_response(request: Request) -> Response:
        body = await parse_body(request, ResponseRequest)
        items = checked_input(body)
        manager.model(body.model)  # refusals that cost nothing come before the stored conversation is read
        history = await _history(storage, body.previous_response_id, _owner(request))
        arguments = chat_arguments(chat_request(body, history, items), manager.limits)
        start = await chat_start(manager, offload, body.model, arguments)
        keep = _keeper(storage, _owner(request)) if storage.store is not None and body.store is not False else None
        param = "previous_response_id" if history else "input"  # what made the prompt too long, if it is
        job = Job(Envelope("chat", body.model), start, bool(body.stream), False, param, body.prompt_cache_key,
                  dialect=Responses(body, keep, items))  # fmt: skip
        return await respond(request, manager, job)

    return create_response


async def _history(storage: Storage, previous: str | None, owner: str) -> list[dict[str, Any]]:
    """The items of the stored conversation `previous` ends, its first response's first."""
    if previous is None:
        return []
    if storage.store is None:
        raise ApiError(400, "Invalid value for 'previous_response_id': this server does not store responses "
                       "(data.conversations.enabled).", param="previous_response_id", code="invalid_value")  # fmt: skip
    try:
        chain = await storage.run(storage.store.conversation, previous, owner)
    except ConversationTooLong:
        raise ApiError(400, "Invalid value for 'previous_response_id': the conversation is longer than this server "
                       "continues; start a new one.", param="previous_response_id",
                       code="context_length_exceeded") from None  # fmt: skip
    except BrokenConversation as broken:
        message = f"an earlier response of this conversation ({broken.missing}) is no longer stored."
        raise ApiError(400, f"Invalid value for 'previous_response_id': {message}", param="previous_response_id",
                       code="previous_response_not_found") from None  # fmt: skip
    if not chain:
        raise ApiError(400, f"Previous response with id '{previous}' not found.", param="previous_response_id",
                       code="previous_response_not_found")  # fmt: skip
    return [item for response in chain for item in response.input_items + response.output_items]


def _keeper(storage: Storage, owner: str) -> Keep:
    async def keep(response: dict[str, Any], items: list[dict[str, Any]]) -> bool:
        assert storage.store is not None
        stored = StoredResponse(response["id"], owner, response["created_at"], response["previous_response_id"],
                                response, items)  # fmt: skip
        try:
            return await storage.run(storage.store.add, stored)
        except ApiError:
            log.warning("response %s answered but not stored (see the error above)", response["id"])
            return False

    return keep


async def _stored(storage: Storage, request: Request) -> StoredResponse:
    response_id = request.path_params["response_id"]
    if storage.store is not None and re.fullmatch(RESPONSE_ID, response_id):
        found = await storage.run(storage.store.get, response_id, _owner(request))
        if found is not None:
            return found
    shown = f" with id '{response_id}'" if re.fullmatch(RESPONSE_ID, response_id) else ""
    raise ApiError(404, f"No response found{shown}.", param="response_id", code="not_found")


def _get_or_delete(storage: Storage) -> Endpoint:
    """One route for both methods, so that its 405s name them both (Allow)."""

    async def stored_response(request: Request) -> Response:
        found = await _stored(storage, request)
        if request.method != "DELETE":  # GET, or the HEAD starlette adds to it: never a deletion
            return JSONResponse(found.body)
        assert storage.store is not None  # _stored found it there
        await storage.run(storage.store.delete, found.id, found.owner)
        return JSONResponse({"id": found.id, "object": "response", "deleted": True})

    return stored_response


def _input_items(storage: Storage) -> Endpoint:
    async def list_input_items(request: Request) -> Response:
        found = await _stored(storage, request)
        limit, order, after = _page_query(request)
        items = found.input_items if order == "asc" else found.input_items[::-1]
        ids = [item.get("id") for item in items]
        start = (ids.index(after) + 1 if after in ids else len(ids)) if after is not None else 0  # unknown: the end
        page = items[start : start + limit]
        return JSONResponse({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                             "last_id": page[-1]["id"] if page else None,
                             "has_more": start + limit < len(items)})  # fmt: skip

    return list_input_items


def _page_query(request: Request) -> tuple[int, str, str | None]:
    query = request.query_params
    limit_text, order = query.get("limit", "20"), query.get("order", "desc")
    if not re.fullmatch(r"[0-9]{1,3}", limit_text) or not 1 <= int(limit_text) <= MAX_PAGE:
        raise ApiError(400, f"Invalid value for 'limit': a whole number from 1 to {MAX_PAGE}.", param="limit",
                       code="invalid_value")  # fmt: skip
    if order not in ("asc", "desc"):
        raise ApiError(400, "Invalid value for 'order': `asc` or `desc`.", param="order", code="invalid_value")
    return int(limit_text), order, query.get("after")
