"""`cortex view logs` in a real terminal: tmux runs it, send-keys types, capture-pane reads the screen."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
SCREEN_WAIT_S = 30
LINES = [
    "2026-12-05 10:00:00,001 INFO cortex.models [-] model `gemma` loaded",
    "2026-12-05 10:00:01,000 INFO cortex.usage [req-one] model `gemma`: 10 prompt tokens, 5 generated",
    "2026-12-05 10:00:02,000 ERROR cortex.errors [req-two] unhandled error in GET /v1/x",
    "Traceback (most recent call last):",
    "RuntimeError: boom",
    '2026-12-05 10:00:02,001 INFO cortex.access [req-two] 127.0.0.1:5001 "GET /v1/x HTTP/1.1" 500 1.0ms',
    "2026-12-05 10:00:03,000 INFO cortex.access [-] [bold red]markup[/] \x1b[31mescape",
    '2026-12-05 10:00:04,000 INFO cortex.access [req-one] 127.0.0.1:5000 "POST /v1/chat/completions HTTP/1.1" 200 9ms',
]


class Terminal:
    """One viewer in a tmux server of its own (`-L`): a server that exits as another test's last session closes
    cannot refuse the next test's session (a CI run saw `tmux new-session` fail so)."""

    def __init__(self, command: list[str], exit_file: Path, stderr: Path | None = None) -> None:
        self.name = f"cortex-view-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        shell = " ".join(f"'{part}'" for part in command) + (f" 2> '{stderr}'" if stderr else "")
        shell += f"; echo EXIT=$? > '{exit_file}'"
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", "200", "-y", "30", shell], check=True,
                       env={**os.environ, "TERM": "xterm-256color"})  # fmt: skip

    def screen(self) -> str:
        captured = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], check=False, capture_output=True,
                                  text=True)  # fmt: skip
        return captured.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run([*self.tmux, "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.15)  # one key at a time, as typed: textual reads escape sequences with a short timeout

    def until(self, condition: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + SCREEN_WAIT_S
        while time.monotonic() < deadline:
            screen = self.screen()
            if condition(screen):
                return screen
            time.sleep(0.1)
        pytest.fail(f"the viewer never showed {what}; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True)
        Path(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", self.name).unlink(missing_ok=True)


@pytest.fixture
def terminals() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(*arguments: str, exit_file: Path, stderr: Path | None = None) -> Terminal:
        terminal = Terminal([sys.executable, "-m", "menlo_cortex", "view", "logs", *arguments], exit_file, stderr)
        opened.append(terminal)
        return terminal

    yield open_terminal
    for terminal in opened:
        terminal.close()


def exit_line(done: Path) -> str:
    """The `EXIT=N` line the terminal's shell writes when the viewer ends. The shell makes the file before `echo`
    writes to it: wait for the whole line, not for the file."""
    deadline = time.monotonic() + SCREEN_WAIT_S
    while not (done.exists() and done.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return done.read_text().strip()


def rows(screen: str) -> list[str]:
    return [line for line in screen.splitlines() if line.startswith(" 10:00:") or " 10:00:" in line[:12]]


def test_follow_filter_jump_to_a_request_and_quit(tmp_path: Path, terminals: Callable[..., Terminal]) -> None:
    log = tmp_path / "cortex.log"
    log.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    done = tmp_path / "exit"
    viewer = terminals("--log-file", str(log), exit_file=done)
    screen = viewer.until(lambda s: "POST /v1/chat/completions" in s, "the log")
    assert "following" in screen
    assert "[bold red]markup[/]" in screen  # log text is never markup, and an escape is shown, not sent
    assert "?[31mescape" in screen

    with log.open("a", encoding="utf-8") as file:  # follow: a line written now appears
        file.write("2026-12-05 10:00:05,000 WARNING cortex.reload [-] config reload refused\n")
    viewer.until(lambda s: "config reload refused" in s, "the new line")
    log.rename(tmp_path / "cortex.log.1")  # rotation: the new file is read from its start
    log.write_text("2026-12-05 10:00:06,000 INFO cortex.server [-] after rotation\n", encoding="utf-8")
    viewer.until(lambda s: "after rotation" in s, "the rotated file's line")

    viewer.keys("/", *"boom")  # the text filter searches a record's traceback too
    viewer.until(lambda s: len(rows(s)) == 1 and "unhandled error" in s, "only the matching line")
    viewer.keys("C-u", "Escape")
    viewer.until(lambda s: "after rotation" in s and "unhandled error" in s, "every line again")

    viewer.keys("Up", "Up", "Enter")  # on the req-one access line: only its request's lines
    screen = viewer.until(lambda s: len(rows(s)) == 2, "the request's lines")
    assert all("req-one" in row for row in rows(screen))
    viewer.keys("Escape")
    viewer.until(lambda s: len(rows(s)) > 2, "every request again")

    viewer.keys("q")
    assert exit_line(done) == "EXIT=0"


def test_options_start_filtered_and_paused(tmp_path: Path, terminals: Callable[..., Terminal]) -> None:
    log = tmp_path / "cortex.log"
    log.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    viewer = terminals("--log-file", str(log), "--model", "gemma", "--no-follow", exit_file=tmp_path / "exit")
    screen = viewer.until(lambda s: "POST /v1/chat/completions" in s, "the model's lines")
    assert "paused" in screen
    assert len(rows(screen)) == 3  # loaded, and req-one's usage and access lines; req-two named no model
    viewer.keys(*["BTab"] * 4, "Enter", *["Down"] * 5, "Enter")  # back to the level list; pick "error"
    viewer.until(lambda s: not rows(s), "no line of the model at ERROR")


def test_an_unreadable_log_is_a_clear_error(tmp_path: Path, terminals: Callable[..., Terminal]) -> None:
    missing = tmp_path / "none.log"
    done = tmp_path / "exit"
    output = tmp_path / "stderr"
    terminals("--log-file", str(missing), exit_file=done, stderr=output)
    assert exit_line(done) == "EXIT=1"
    assert f"{missing}: cannot read the log file" in output.read_text()


def test_without_a_terminal_it_says_so() -> None:
    command = [sys.executable, "-m", "menlo_cortex", "view", "logs", "--log-file", "/dev/null"]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr
