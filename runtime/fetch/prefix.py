"""The first bytes of a remote file by HTTP Range: enough of a GGUF to read its header without the weights."""

from __future__ import annotations

import re
import time

from urllib3.exceptions import HTTPError

from .download import CHUNK_BYTES
from .http_get import HttpFailure, Response, failure_reason, http_get
from .netsettings import NetSettings

_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,20})-[0-9]{1,20}/([0-9]{1,20})")
_DIGITS = re.compile(r"[0-9]{1,20}")
DEADLINE_S = 60.0  # for one read of a few megabytes


class PrefixFailed(Exception):
    """The server did not give the bytes asked for; the message holds no credentials."""


def read_prefix(
    url: str, net: NetSettings, start: int, end: int, deadline_s: float = DEADLINE_S
) -> tuple[bytes, int | None]:
    """Bytes `start` to `end` (exclusive) of the file at `url`, fewer where it is shorter, and its whole size
    when the server says. A server that ignores Range is read up to `end` and then left; one that drips is
    given up on after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    try:
        with http_get(url, net, {"Range": f"bytes={start}-{end - 1}"}) as response:
            if response.status == 416:  # it starts past the end of the file
                return b"", start
            total, skip = _extent(response, start)
            body = bytearray()
            while len(body) < skip + end - start and (chunk := response.read1(CHUNK_BYTES)):
                body += chunk
                if time.monotonic() > deadline:
                    raise HttpFailure(f"the server sent {len(body)} bytes in {deadline_s:.0f} s: too slow, given up")
            return bytes(body[skip : skip + end - start]), total
    except (OSError, HTTPError, HttpFailure) as exc:
        reason = str(exc) if isinstance(exc, HttpFailure) else failure_reason(exc)
        raise PrefixFailed(reason) from None


def _extent(response: Response, start: int) -> tuple[int | None, int]:
    """(the file's whole size if known, bytes of the body to skip before `start`)."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match is None or int(match[1]) != start:
            raise HttpFailure("the server answered another range than the one asked for")
        return int(match[2]), 0
    length = response.headers.get("Content-Length") or ""
    return (int(length) if _DIGITS.fullmatch(length) else None), start
