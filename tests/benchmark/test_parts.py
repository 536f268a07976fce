"""The parts of `cortex bench` that need no server: durations, statistics, the run store, the table, the
comparison, the BenchCard and its SVG, and the CLI's refusals (exit 2) and an unreachable URL (exit 1)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from xml.etree import ElementTree

import pytest
from menlo_cortex.benchmark.card import CHARTS, render_card, write_card
from menlo_cortex.benchmark.client import Completion
from menlo_cortex.benchmark.durations import parse_duration
from menlo_cortex.benchmark.errors import BenchError, UsageError
from menlo_cortex.benchmark.figures import Figure, figures, ratio
from menlo_cortex.benchmark.host import host_facts
from menlo_cortex.benchmark.report import comparison, table
from menlo_cortex.benchmark.run_store import RunStore
from menlo_cortex.benchmark.stats import percentile, slope, spread
from menlo_cortex.runtime.ops.database import SCHEMA_VERSION

from menlo_cortex.cli import main

from ..conftest import find_free_port
from .reports import report


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("24h", 86400), ("1h30m", 5400),
                                               ("2d", 172800), ("1.5h", 5400)])  # fmt: skip
def test_durations_read_as_written(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "h", "-5s", "1h 30m", "0s", "31d", "5s5"])
def test_a_duration_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_statistics() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert spread([0.010, 0.020, 0.030], 1000) == {"p50": 20.0, "p95": 30.0, "p99": 30.0}
    assert slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)
    assert slope([(0, 1.0), (1, 2.0)]) is None


def test_the_store_keeps_runs_and_versions_its_schema(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "data")
    assert store.runs() == []
    first, second = store.add(report()), store.add(report(complete=False, stopped="interrupted (Ctrl-C)"))
    assert (first, second) == (1, 2)
    assert [run.complete for run in store.runs()] == [True, False]
    assert store.get(2).report["stopped"] == "interrupted (Ctrl-C)"
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(BenchError, match="made by a newer cortex"):
        store.runs()


def test_an_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no bench run 7"):
        RunStore(tmp_path).get(7)


def test_a_damaged_database_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "cortex.db").write_bytes(b"not a database" * 100)
    with pytest.raises(BenchError, match=r"cortex\.db: file is not a database"):
        RunStore(tmp_path).runs()


def test_the_table_names_what_stopped_a_run() -> None:
    text = table(report(complete=False, stopped="the appliance stopped during the run"))
    assert "short prompt: generation" in text
    assert "INCOMPLETE: the appliance stopped during the run" in text
    assert [line.split()[:2] for line in text.splitlines() if line.strip().startswith(("1 ", "2 "))] == [
        ["1", "40"], ["2", "70"]]  # fmt: skip


def test_compare_prints_each_shared_figure_with_its_ratio(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    faster = report()
    faster["results"]["load"]["levels"]["2"]["aggregate_tokens_per_s"] = 140.0
    store.add(report())
    store.add(faster)
    lines = comparison(store.get(1), store.get(2)).splitlines()
    row = next(line for line in lines if "2 streams: aggregate" in line)
    assert row.split()[-1] == "2.00"
    shared = list(figures(report()))
    assert sum(1 for line in lines if line.startswith(tuple({f.kind for f in shared}))) == len(shared)


@pytest.mark.parametrize(("first", "second", "shown"), [(10.0, 5.0, "0.50"), (-3.5, 53.1, ""), (53.1, -3.5, ""),
                                                       (0.0, 4.0, ""), (4.0, 0.0, "")])  # fmt: skip
def test_a_ratio_is_shown_only_between_figures_above_zero(first: float, second: float, shown: str) -> None:
    """Queueing, a difference, comes out below 0 in noise: its ratio read -0.07 in a comparison."""
    assert ratio(Figure("load", "2 streams: queueing", first, "ms", False),
                 Figure("load", "2 streams: queueing", second, "ms", False)) == shown  # fmt: skip


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        ("edge|box <b>", "edge&#124;box &#60;b&#62;"),
        ("![x](http://t/p.png)", "&#33;&#91;x&#93;&#40;http://t/p.png&#41;"),
        ("esc\x1b[31mred\nline", "esc &#91;31mred line"),
    ],
)
def test_the_card_escapes_labels_and_draws_valid_svg(label: str, shown: str, tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.add(report(target=report()["target"] | {"label": label}))
    files = render_card([store.get(1)])
    assert set(files) == {"README.md", "runs.json", *CHARTS}
    assert json.loads(files["runs.json"])["1"]["target"]["label"] == label
    for name in CHARTS:
        root = ElementTree.fromstring(files[name])  # well-formed XML: markup escaped, control characters gone
        assert root.tag.endswith("svg")
        assert label.replace("\x1b", " ").replace("\n", " ") in "".join(root.itertext())
    assert f"run 1: {shown}" in files["README.md"]
    throughput = ElementTree.fromstring(files[CHARTS[0]])
    assert len([e for e in throughput.iter() if e.tag.endswith("circle")]) == 2  # one point per load level
    written = write_card([store.get(1)], tmp_path / "card")
    assert sorted(path.name for path in written) == sorted(files)
    assert not [path for path in (tmp_path / "card").iterdir() if path.name.startswith(".")]


def test_a_damaged_run_is_named(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.add(report())
    store.add(report())
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE bench_runs SET report = ? WHERE id = 2", ('{"kinds": [1], "target": {}}',))
    assert store.get(1).report["kinds"] == ["runtime", "load"]
    with pytest.raises(BenchError, match=r"run 2 is damaged \(not a bench report\)"):
        store.get(2)


def test_host_facts() -> None:
    facts = host_facts()
    assert isinstance(facts["cores"], int)
    assert facts["cores"] >= 1
    assert isinstance(facts["memory_bytes"], int)
    assert facts["memory_bytes"] > 0
    assert facts["cortex_version"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "fast"], "--type fast: not a kind (one of init, runtime, load, stability)"),
        (["--type", "stability", "--duration", "5x"], "--duration `5x` is not a duration"),
        (["--duration", "5m"], "--duration is how long --type stability runs: add --type stability"),
        (["--url", "ftp://host/", "--model", "m"], "--url ftp://host/: expected http(s)://HOST[:PORT][/PATH]"),
        (["--url", "http://user:pw@host/"], "--url: no user, password, query or fragment"),
        (["--url", "http://host/", "--type", "init"], "--type init starts the appliance itself"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_url_exits_1_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    port = find_free_port()
    assert main(["bench", "--url", f"http://127.0.0.1:{port}", "--model", "m"]) == 1
    err = capsys.readouterr().err
    assert f"cortex bench: http://127.0.0.1:{port} does not answer (connection refused)" in err
    assert "Traceback" not in err
    assert "object at 0x" not in err


def test_reading_runs_from_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--datapath", str(tmp_path)]
    assert main(["bench", "runs", *data]) == 0
    assert "no bench runs in" in capsys.readouterr().out
    assert main(["bench", "compare", "1", "2", *data]) == 2
    assert "no bench run 1" in capsys.readouterr().err


def test_a_completions_rates_count_held_back_tokens() -> None:
    """Eight tokens, the last four sent in one chunk (held back for a stop string): the rate runs to the end."""
    held_back = Completion(sent=0.0, done=0.5, stamps=[0.1, 0.15, 0.2, 0.25, 0.5], prompt_tokens=20,
                           completion_tokens=8)  # fmt: skip
    assert held_back.ttft_s == pytest.approx(0.1)
    assert held_back.generation_tokens_per_s == pytest.approx(7 / 0.4)
    assert held_back.prompt_tokens_per_s == pytest.approx(200)
    assert held_back.gaps_s == pytest.approx([0.05, 0.05, 0.05, 0.25])
    assert Completion(sent=0.0, done=0.2, stamps=[0.2], completion_tokens=1).generation_tokens_per_s is None
