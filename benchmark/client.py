"""An OpenAI-compatible chat client that times every streamed token (urllib3: pooled, thread-safe, no retries)."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any

import urllib3

from .errors import ServerError, Unreachable

CONNECT_S = 5.0
MESSAGE_CHARS = 200


@dataclass
class Completion:
    """One chat completion as the client saw it; times from time.perf_counter()."""

    sent: float
    done: float
    stamps: list[float] = field(default_factory=list)  # arrival of every chunk that carried text
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def tokens(self) -> int:
        return self.completion_tokens if self.completion_tokens is not None else len(self.stamps)

    @property
    def ttft_s(self) -> float:
        return (self.stamps[0] if self.stamps else self.done) - self.sent

    @property
    def total_s(self) -> float:
        return self.done - self.sent

    @property
    def gaps_s(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.stamps, self.stamps[1:], strict=False)]

    @property
    def generation_tokens_per_s(self) -> float | None:
        """Tokens after the first over the time from the first text to the end of the answer (not to the last
        chunk: a server may hold a few tokens back, for stop strings, and send them at once)."""
        if not self.stamps or self.tokens < 2 or self.done <= self.stamps[0]:
            return None
        return (self.tokens - 1) / (self.done - self.stamps[0])

    @property
    def prompt_tokens_per_s(self) -> float | None:
        if not self.prompt_tokens or not self.stamps:
            return None
        return self.prompt_tokens / self.ttft_s


class Client:
    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 300.0, ca_file: str | None = None):
        self.url = url.rstrip("/")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        timeout = urllib3.Timeout(connect=CONNECT_S, read=timeout_s)
        self.pool = urllib3.PoolManager(maxsize=32, block=False, retries=False, timeout=timeout)
        if ca_file:  # the appliance started here, on loopback, with its own certificate
            self.pool = urllib3.PoolManager(maxsize=32, retries=False, timeout=timeout, ca_certs=ca_file,
                                            assert_hostname=False)  # fmt: skip

    def get(self, path: str, timeout_s: float | None = None) -> urllib3.BaseHTTPResponse:
        try:
            timeout = urllib3.Timeout(connect=CONNECT_S, read=timeout_s) if timeout_s else None
            return self.pool.request("GET", self.url + path, headers=self.headers, timeout=timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(f"{self.url} does not answer ({_reason(exc)})") from None

    def answers(self, path: str) -> int | None:
        """The status of GET `path`, or None when nothing answers (a poll)."""
        try:
            return self.get(path, timeout_s=2.0).status
        except Unreachable:
            return None

    def model_ids(self) -> list[str]:
        response = self.get("/v1/models")
        _raise_for_status(response)
        try:
            return [str(entry["id"]) for entry in json.loads(response.data)["data"]]
        except (ValueError, KeyError, TypeError):
            raise ServerError(response.status, "/v1/models is not an OpenAI model list") from None

    def chat(self, body: dict[str, Any]) -> Completion:
        """POST /v1/chat/completions; streamed when body says so. ServerError / Unreachable on failure."""
        for attempt in (1, 2):
            sent = time.perf_counter()
            try:
                response = self.pool.request(
                    "POST", self.url + "/v1/chat/completions", body=json.dumps(body).encode(),
                    headers=self.headers, preload_content=False,
                )  # fmt: skip
                _raise_for_status(response)
                return _read_stream(response, sent) if body.get("stream") else _read_whole(response, sent)
            except urllib3.exceptions.HTTPError as exc:
                if attempt == 1 and _closed_while_idle(exc):
                    continue
                raise Unreachable(f"{self.url} stopped answering ({_reason(exc)})") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.pool.clear()


def _read_stream(response: urllib3.BaseHTTPResponse, sent: float) -> Completion:
    completion = Completion(sent, sent)
    try:
        for raw in response:
            line = raw.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if "error" in chunk:
                raise ServerError(200, _message(chunk))
            if _chunk_text(chunk):
                completion.stamps.append(time.perf_counter())
            _take_usage(completion, chunk)
    except ValueError:
        raise ServerError(response.status, "the stream holds a chunk that is not JSON") from None
    finally:
        response.release_conn()
    completion.done = time.perf_counter()
    if not completion.stamps:
        raise ServerError(response.status, "the answer carried no text (a model without a chat template?)")
    return completion


def _read_whole(response: urllib3.BaseHTTPResponse, sent: float) -> Completion:
    data = response.data
    completion = Completion(sent, time.perf_counter())
    try:
        _take_usage(completion, json.loads(data))
    except ValueError:
        raise ServerError(response.status, "the answer is not JSON") from None
    return completion


def _chunk_text(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices") or [{}]
    delta = choices[0].get("delta") or {}
    return bool(delta.get("content") or delta.get("reasoning_content"))


def _take_usage(completion: Completion, document: dict[str, Any]) -> None:
    usage = document.get("usage")
    if isinstance(usage, dict):
        completion.prompt_tokens = _count(usage.get("prompt_tokens"))
        completion.completion_tokens = _count(usage.get("completion_tokens"))


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _raise_for_status(response: urllib3.BaseHTTPResponse) -> None:
    if response.status == 200:
        return
    try:
        message = _message(json.loads(response.data))
    except ValueError:
        message = ""
    response.release_conn()
    raise ServerError(response.status, message)


def _message(document: object) -> str:
    """The error's own message, one line, printable characters only, bounded."""
    error = document.get("error") if isinstance(document, dict) else None
    text = error.get("message") if isinstance(error, dict) else error
    if not isinstance(text, str):
        return ""
    printable = "".join(char if char.isprintable() else " " for char in text)
    return printable[:MESSAGE_CHARS]


def _closed_while_idle(exc: urllib3.exceptions.HTTPError) -> bool:
    """The server closed a kept-alive connection before reading the request (it sent no status line): the
    request never reached it, so one retry on a new connection is safe. llama-server does this now and then."""
    return isinstance(exc, urllib3.exceptions.ProtocolError) and any(
        isinstance(arg, http.client.RemoteDisconnected) for arg in exc.args
    )


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    """The kind of failure, without the library's repr of its pool and URL."""
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.NewConnectionError) or "refused" in str(reason).lower():
        return "connection refused"
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(reason, urllib3.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(reason, urllib3.exceptions.ProtocolError):
        return "connection lost"
    return type(reason).__name__
