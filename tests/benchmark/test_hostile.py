"""`cortex bench --url` against a server that misbehaves: every answer is bounded and checked, and what the
server says reaches the terminal only as printable text."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from menlo_cortex.benchmark.client import Client
from menlo_cortex.benchmark.errors import ServerError
from menlo_cortex.benchmark.workload import Workload

from menlo_cortex.cli import main

from .hostile_server import EVIL_ID, hostile_server


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with hostile_server() as found:
        yield found


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    made = Client(url, timeout_s=30)
    yield made
    made.close()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("shapes", "the answer is not an OpenAI chat completion"),
        ("choices-string", "the answer is not an OpenAI chat completion"),
        ("nested", "the answer is not an OpenAI chat completion"),
        ("endless-line", "a stream line longer than 1 MiB"),
        ("ignores-max-tokens", "more than 96 chunks of text: max_tokens is not being kept"),
        ("error-escape", "bad  [2J  thing"),
        ("status-500", "HTTP 500:  [31mboom"),
    ],
)
def test_a_misbehaving_answer_is_one_clear_error(client: Client, model: str, message: str) -> None:
    with pytest.raises(ServerError) as caught:
        client.chat(Workload(model, max_tokens=8).short(0))
    assert message in str(caught.value)
    assert "\x1b" not in str(caught.value)


def test_counts_beyond_any_real_one_are_ignored(client: Client) -> None:
    completion = client.chat(Workload("huge-usage").short(0))
    assert (completion.prompt_tokens, completion.completion_tokens, completion.tokens) == (None, None, 2)


def test_a_stream_without_chunked_encoding_is_timed_as_it_arrives(client: Client) -> None:
    """HTTP/1.0, the body ends with the connection: each token is stamped when it comes, not all at the end."""
    completion = client.chat(Workload("slow-tokens").short(0))
    assert len(completion.stamps) == 3
    assert completion.stamps[0] < completion.stamps[1] < completion.stamps[2] < completion.done
    assert completion.tokens == 3


def test_a_whole_answer_dripped_for_ever_ends_at_the_request_timeout(url: str) -> None:
    """Before: each byte came within the read timeout, so a non-streamed answer could take for ever."""
    client = Client(url, timeout_s=2)
    try:
        started = time.monotonic()
        with pytest.raises(ServerError, match="the answer took longer than the request timeout"):
            client.chat(Workload("drip-whole").short(0, stream=False))
        assert time.monotonic() - started < 10
    finally:
        client.close()


def test_model_ids_are_shown_printable_and_few(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--url", url, "--model", "\x1b]0;title\x07"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\x07" not in err
    assert EVIL_ID.replace("\x1b", " ").replace("\x07", " ") in err
    assert "and 22 more" in err


def test_a_run_that_fails_is_kept_as_incomplete(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    args = ["bench", "--url", url, "--model", "m", "--type", "runtime", "--json", str(report), "--datapath"]
    assert main([*args, str(tmp_path)]) == 1  # model `m` answers with no text at all
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["complete"] is False
    assert written["stopped"] == "HTTP 200: the answer carried no text (a model without a chat template?)"
    assert main(["bench", "runs", "--datapath", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[-1] == "incomplete"
