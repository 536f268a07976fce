"""The small pure parts of downloading: progress lines, no_proxy matching, URL redaction."""

from __future__ import annotations

import io

import pytest
from menlo_cortex.runtime.fetch.netsettings import ProxyRoute, redact
from menlo_cortex.runtime.fetch.progress import StreamProgress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_in_a_log_is_one_line_per_interval() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = StreamProgress(stream, tty=False, interval=5.0, clock=clock)

    progress.begin("tiny", 4_000_000)
    for second in range(1, 5):
        clock.now = 100.0 + second * 2  # updates every 2 s: shown at most every 5 s
        progress.update(second * 1_000_000)
    progress.end(ok=True)

    assert stream.getvalue().splitlines() == [
        "tiny: downloading (4.0 MB)",
        "tiny:  75.0% 3.0 MB of 4.0 MB, 500.0 KB/s",
        "tiny: 100.0% 4.0 MB of 4.0 MB, 500.0 KB/s done",
    ]


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = StreamProgress(stream, tty=True, clock=clock)

    progress.begin("tiny", None)
    clock.now += 1
    progress.update(2048)
    progress.end(ok=False)

    assert stream.getvalue() == (
        "tiny: downloading\n\r\x1b[Ktiny: 2.0 KB, 2.0 KB/s\r\x1b[Ktiny: 2.0 KB, 2.0 KB/s failed\n"
    )


@pytest.mark.parametrize(
    ("host", "bypassed"),
    [
        ("example.com", True),
        ("cdn.example.com", True),
        ("badexample.com", False),
        ("10.1.2.3", True),
        ("10.2.0.1", False),
        ("internal", True),
        ("other", False),
    ],
)
def test_no_proxy_matches_domains_and_networks(host: str, bypassed: bool) -> None:
    route = ProxyRoute("http", "proxy", 3128, None, None, (".example.com", "10.1.0.0/16", "internal"))

    assert route.bypasses(host) is bypassed


def test_redact_drops_user_info_and_query() -> None:
    assert redact("https://user:pw@host.example:8443/a/b.gguf?sig=1") == "https://host.example:8443/a/b.gguf?..."
    assert redact("https://host/a.gguf") == "https://host/a.gguf"
