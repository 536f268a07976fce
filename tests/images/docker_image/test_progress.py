"""The build display reads both engines' step lines and keeps a failing step's last output."""

from __future__ import annotations

import io

from menlo_cortex.images.targets.docker.progress import TAIL_LINES, BuildDisplay


def test_docker_and_podman_step_lines() -> None:
    out = io.StringIO()
    display = BuildDisplay(out=out)
    display.feed("Step 3/12 : RUN apt-get update && apt-get install -y x\n ---> Running in abc\n")
    assert display.failed_step() == "step 3/12 `RUN apt-get update`"
    display.feed("[2/3] STEP 5/5: RUN . /tmp/cortex-build/env.sh && python3 -m venv /opt/cortex\n")
    assert display.failed_step() == "stage 2/3 step 5/5 `RUN . /tmp/cortex-build/env.sh`"
    assert out.getvalue().splitlines() == [
        "step 3/12              RUN apt-get update",
        "stage 2/3 step 5/5     RUN . /tmp/cortex-build/env.sh",
    ]


def test_output_is_kept_back_and_only_the_last_lines_are_shown_on_failure() -> None:
    out = io.StringIO()
    display = BuildDisplay(out=out)
    display.feed("STEP 1/1: RUN make\n" + "".join(f"line {n}\n" for n in range(100)))
    assert "line" not in out.getvalue()
    shown = display.last_output().splitlines()
    assert len(shown) == TAIL_LINES
    assert shown[-1] == "  | line 99"


def test_verbose_shows_every_line() -> None:
    out = io.StringIO()
    display = BuildDisplay(out=out, verbose=True)
    display.feed("STEP 1/1: RUN make\nhello\n")
    display.finish()
    assert "      hello" in out.getvalue().splitlines()
    assert "done in" in out.getvalue()
