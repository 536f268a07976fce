"""An OpenAI-compatible chat client that times every streamed token (urllib3: pooled, thread-safe, no retries).

The server may be anyone's: every answer is bounded (line and body size, chunks per request, a deadline per
request), every JSON shape is checked, and what it says reaches the user only as printable text, cut short."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import urllib3
from menlo_cortex.runtime.ops.text import printable

from .errors import ServerError, Unreachable

CONNECT_S = 5.0
MESSAGE_CHARS = 200
MAX_LINE = 1 << 20  # one SSE line
MAX_BODY = 4 << 20  # a whole answer, an error body, the model list
MAX_COUNT = 1 << 31  # a token count from `usage` beyond this is not one
READ_SIZE = 1 << 16
BAD_SHAPE = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


@dataclass
class Completion:
    """One chat completion as the client saw it; times from time.perf_counter()."""

    sent: float
    done: float
    stamps: list[float] = field(default_factory=list)  # arrival of every chunk that carried text
    prompt_tokens: int | None = None
    completion_tokens: int | None = None  # from `usage`; without it, the chunks are counted

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
        if not self.prompt_tokens or not self.stamps or self.ttft_s <= 0:
            return None
        return self.prompt_tokens / self.ttft_s


class Client:
    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 300.0, ca_file: str | None = None):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # identity: a compressed body could expand past every bound below before it is counted
        self.headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        # ca_file: the appliance started here, on loopback, with its own certificate (named for another host)
        tls: dict[str, Any] = {"ca_certs": ca_file, "assert_hostname": False} if ca_file else {}
        timeout = urllib3.Timeout(connect=CONNECT_S, read=timeout_s)
        self.pool = urllib3.PoolManager(maxsize=64, retries=False, timeout=timeout, **tls)

    def answers(self, path: str) -> int | None:
        """The status of GET `path`, or None when nothing answers (a poll)."""
        try:
            response = self.pool.request("GET", self.url + path, headers=self.headers, preload_content=False,
                                         timeout=urllib3.Timeout(connect=CONNECT_S, read=2.0))  # fmt: skip
            response.drain_conn()
            return response.status
        except urllib3.exceptions.HTTPError:
            return None

    def model_ids(self) -> list[str]:
        try:
            asked = time.perf_counter()
            response = self.pool.request("GET", self.url + "/v1/models", headers=self.headers, preload_content=False)
            _raise_for_status(response)
            listed = json.loads(_body(response, asked + self.timeout_s))["data"]
            return [printable(str(entry["id"]), 80) for entry in listed[:100]]
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(f"{self.url} does not answer ({_reason(exc)})") from None
        except BAD_SHAPE:
            raise ServerError(200, "/v1/models is not an OpenAI model list") from None

    def chat(self, body: dict[str, Any]) -> Completion:
        """POST /v1/chat/completions; streamed when body says so. ServerError / Unreachable on failure."""
        for attempt in (1, 2):
            try:
                return self._chat(body)
            except urllib3.exceptions.HTTPError as exc:
                if attempt == 1 and _closed_while_idle(exc):
                    continue
                raise Unreachable(f"{self.url} stopped answering ({_reason(exc)})") from None
        raise AssertionError("not reached")

    def close(self) -> None:
        self.pool.clear()

    def _chat(self, body: dict[str, Any]) -> Completion:
        sent = time.perf_counter()
        response = self.pool.request("POST", self.url + "/v1/chat/completions", body=json.dumps(body).encode(),
                                     headers=self.headers, preload_content=False)  # fmt: skip
        try:
            _raise_for_status(response)
            if not body.get("stream"):
                return _whole(_body(response, sent + self.timeout_s), sent)
            chunks = 4 * int(body.get("max_tokens") or 0) + 64
            return _streamed(_events(response, sent + self.timeout_s), sent, chunks)
        except BAD_SHAPE:
            response.close()
            raise ServerError(response.status, "the answer is not an OpenAI chat completion") from None
        except BaseException:
            response.close()  # unread data on it: never back into the pool
            raise
        finally:
            response.release_conn()


def _events(response: urllib3.BaseHTTPResponse, deadline: float) -> Iterator[dict[str, Any]]:
    """The JSON of each `data:` line, read as it arrives (read1: a stream without chunked encoding too)."""
    pending = b""
    for data in _arriving(response, deadline):
        pending += data
        *lines, pending = pending.split(b"\n")
        if len(pending) > MAX_LINE:
            raise ServerError(response.status, "a stream line longer than 1 MiB")
        for line in lines:
            text = line.strip()
            if text == b"data: [DONE]":
                _read_to_end(response)
                return
            if text.startswith(b"data:"):
                yield _object(json.loads(text[5:]))


def _read_to_end(response: urllib3.BaseHTTPResponse) -> None:
    """What follows [DONE] (the end of the chunked body), so that the connection can serve the next request;
    more than a little, and it is closed instead."""
    for _ in range(4):
        if not response.read1(READ_SIZE, decode_content=False):
            return
    response.close()


def _streamed(events: Iterator[dict[str, Any]], sent: float, max_chunks: int) -> Completion:
    completion = Completion(sent, sent)
    for chunk in events:
        if "error" in chunk:
            raise ServerError(200, _message(chunk))
        if _carries_text(chunk):
            completion.stamps.append(time.perf_counter())
            if len(completion.stamps) > max_chunks:
                raise ServerError(200, f"more than {max_chunks} chunks of text: max_tokens is not being kept")
        _take_usage(completion, chunk)
    completion.done = time.perf_counter()
    if not completion.stamps:
        raise ServerError(200, "the answer carried no text (a model without a chat template?)")
    return completion


def _whole(data: bytes, sent: float) -> Completion:
    completion = Completion(sent, time.perf_counter())
    _take_usage(completion, _object(json.loads(data)))
    return completion


def _body(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
    """The whole answer, by the request's deadline however slowly it comes, and at most MAX_BODY."""
    data = b""
    for chunk in _arriving(response, deadline):
        data += chunk
        if len(data) > MAX_BODY:
            raise ServerError(response.status, "an answer larger than 4 MiB")
    return data


def _arriving(response: urllib3.BaseHTTPResponse, deadline: float) -> Iterator[bytes]:
    """The body as it comes, until its end; past the request's deadline an error, however slowly it drips."""
    while data := response.read1(READ_SIZE, decode_content=False):
        if time.perf_counter() > deadline:
            raise ServerError(response.status, "the answer took longer than the request timeout")
        yield data


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("not a JSON object")
    return value


def _carries_text(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices") or [{}]
    delta = _object(_object(choices[0]).get("delta") or {})
    return any(isinstance(delta.get(key), str) and delta[key] for key in ("content", "reasoning_content"))


def _take_usage(completion: Completion, document: dict[str, Any]) -> None:
    usage = document.get("usage")
    if isinstance(usage, dict):
        completion.prompt_tokens = _count(usage.get("prompt_tokens"))
        completion.completion_tokens = _count(usage.get("completion_tokens"))


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT:
        return value
    return None


def _raise_for_status(response: urllib3.BaseHTTPResponse) -> None:
    if response.status == 200:
        return
    try:
        message = _message(json.loads(response.read(64 << 10, decode_content=False)))
    except (*BAD_SHAPE, urllib3.exceptions.HTTPError):
        message = ""
    raise ServerError(response.status, message)


def _message(document: object) -> str:
    error = document.get("error") if isinstance(document, dict) else None
    text = error.get("message") if isinstance(error, dict) else error
    return printable(text, MESSAGE_CHARS) if isinstance(text, str) else ""


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
