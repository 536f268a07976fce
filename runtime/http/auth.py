"""Bearer API keys: from the Cortexfile (Secret references) and a key file that may change while serving."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import os
import time
from pathlib import Path

from menlo_cortex.cortexfile.schema.server import Auth
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .anthropic_errors import ANTHROPIC_PATHS
from .connections import CONNECTION
from .errors import error_response

KEY_FILE_CHECK_S = 1.0
AUTHENTICATED = "cortex.authenticated"  # scope key: did this request present a valid key?
CALLER = "cortex.caller"  # scope key: a digest of the key it presented ("" without keys), never the key itself
log = logging.getLogger("cortex.auth")


def read_key_file(path: Path) -> tuple[str, ...]:
    """One key per line; blank lines and `#` comments ignored; an editor's BOM is not part of the first key."""
    lines = path.read_bytes().decode("utf-8-sig").splitlines()
    keys = (line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    return tuple(key for key in keys if key.isprintable())  # a control character cannot be sent in a header


class ApiKeys:
    """The accepted keys. The key file is looked at again at most once a second, off the event loop, and
    read again when its mtime or size changed (live rotation); when it cannot be read, no file key is
    accepted (fail closed)."""

    def __init__(self, auth: Auth) -> None:
        self._static = tuple(secret.resolve() for secret in auth.api_keys)
        self._file = auth.api_key_file
        self._file_stamp: tuple[int, int] | None = None
        self._file_keys: tuple[str, ...] = ()
        self._checked = -math.inf
        if self._file is not None:
            self._reload_file()

    async def refresh(self) -> None:
        """Look at the key file again when a second has passed since the last look."""
        if self._file is not None and time.monotonic() - self._checked >= KEY_FILE_CHECK_S:
            self._checked = time.monotonic()
            await asyncio.to_thread(self._reload_file)

    @property
    def configured(self) -> bool:
        return bool(self._static) or self._file is not None

    def accepts(self, token: str) -> bool:
        given = token.encode()
        matched = False
        for key in self.current():  # no early exit: the time taken must not tell which key was close
            matched |= hmac.compare_digest(given, key.encode())
        return matched

    def current(self) -> tuple[str, ...]:
        return self._static + self._file_keys

    def _reload_file(self) -> tuple[str, ...]:
        if self._file is None:
            return ()
        try:
            stat = os.stat(self._file)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._file_stamp:
                self._file_keys, self._file_stamp = read_key_file(self._file), stamp
        except (OSError, UnicodeDecodeError) as exc:
            if self._file_stamp is not None or self._file_keys:
                log.warning("API key file %s unreadable (%s): refusing its keys", self._file, type(exc).__name__)
            self._file_keys, self._file_stamp = (), None
        return self._file_keys


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def request_key(scope: Scope) -> str | None:
    """`Authorization: Bearer <key>`; on Anthropic's routes also `x-api-key: <key>` (what its SDKs send). Only
    there: shared caches keep answers to requests without an Authorization header."""
    headers = Headers(scope=scope)
    token = bearer_token(headers)
    if token is None and scope["path"].startswith(ANTHROPIC_PATHS):
        token = headers.get("x-api-key", "").strip() or None
    return token


def caller_digest(token: str | None) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()[:32]


def cache_owner(scope: Scope, prompt_cache_key: str | None) -> str:
    """Whose cached prompt a request may reuse (reuse shows, in usage.cached_tokens and in time, what was sent).
    With API keys: its key's. Without: its connection's, or, across connections, the requests that send the
    same `prompt_cache_key` (a value other local processes do not know); never one cache for every client."""
    if caller := scope.get(CALLER, ""):
        return str(caller)
    if prompt_cache_key:
        return "prompt_cache_key:" + caller_digest(prompt_cache_key)
    connection = scope.get("state", {}).get(CONNECTION)
    return f"connection:{connection}" if connection else f"request:{id(scope)}"


class ApiKeyMiddleware:
    """Marks each request authenticated or not; refuses non-public paths without a valid key."""

    def __init__(
        self, app: ASGIApp, keys: ApiKeys, public_paths: frozenset[str], public_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.keys = keys
        self.public_paths = public_paths
        self.public_prefixes = public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = request_key(scope)
        await self.keys.refresh()
        scope[AUTHENTICATED] = not self.keys.configured or (token is not None and self.keys.accepts(token))
        scope[CALLER] = caller_digest(token) if self.keys.configured and scope[AUTHENTICATED] else ""
        if scope[AUTHENTICATED] or self.is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        message = "missing or invalid API key: send the header `Authorization: Bearer <key>`"
        response = error_response(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def is_public(self, path: str) -> bool:
        return path in self.public_paths or path.startswith(self.public_prefixes)
