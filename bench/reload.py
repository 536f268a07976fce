"""Hot reload latency: from the Cortexfile write to the new generation being served, under load.

Runs the real `cortex start` with the test model, keeps a few clients sending small chat requests,
and edits the Cortexfile (atomic rename, as editors do):
- live setting: a new CORS origin; served once a preflight from that origin is allowed;
- model swap: the model's context size; served once the new copy has loaded (it takes traffic then).
Prints p50/p95 per kind, the server's own share (trigger to generation in place, from its log),
and the failed-request count, then the same as JSON.

Usage: python bench/reload.py [--datapath DIR] [--live N] [--swaps N] [--workers N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
from processes import free_port, stop  # bench/, the script's own folder

MODEL = "gemma"
POLL_S = 0.002
DEADLINE_S = 120.0


def cortexfile(origin: str, context: int) -> str:
    return (
        "version: 1\n"
        f"server:\n  cors:\n    origins: [{origin}]\n"
        f"models:\n  - id: {MODEL}\n    preset: gemma3-270m-q4km\n    context_size: {context}\n"
    )


def write(path: Path, text: str) -> float:
    """Replace the file by a rename; return the time just before the rename."""
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    os.replace(staged, path)
    return started


def until(condition: Callable[[], bool], what: str) -> float:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(POLL_S)
    return time.perf_counter()


def pipeline_seconds(log: Path) -> list[float]:
    """The server's own time from the reload trigger to the new generation in place (its log lines)."""
    found = re.findall(r"generation \d+ applied in (\d+) ms", log.read_text(encoding="utf-8", errors="replace"))
    return [int(ms) / 1000 for ms in found]


@contextmanager
def cortex(folder: Path, datapath: Path) -> Iterator[tuple[httpx.Client, Path]]:
    path, port = folder / "Cortexfile.yaml", free_port()
    path.write_text(cortexfile("http://start.example", 1024), encoding="utf-8")
    command = [sys.executable, "-m", "menlo_cortex", "start", "-f", str(path), "--port", str(port)]
    with (folder / "server.log").open("wb") as log:
        process = subprocess.Popen([*command, "--datapath", str(datapath)], stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE_S)
    try:
        until(lambda: ready(client), "the server to be ready")
        yield client, path
    finally:
        client.close()
        stop(process, timeout_s=60)


def ready(client: httpx.Client) -> bool:
    try:
        return client.get("/ready").status_code == 200
    except httpx.TransportError:
        return False


class Load:
    """Clients sending small chat requests one after another; every non-200 or broken one is a failure."""

    def __init__(self, base_url: str, workers: int) -> None:
        self.ok, self.failed, self._stop, self._lock = 0, 0, threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(base_url, n)) for n in range(workers)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _work(self, base_url: str, number: int) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        with httpx.Client(base_url=base_url, timeout=DEADLINE_S) as client:
            while not self._stop.is_set():
                try:
                    good = client.post("/v1/chat/completions", json={**body, "stream": number % 2 == 0}).is_success
                except httpx.HTTPError:
                    good = False
                with self._lock:
                    self.ok, self.failed = (self.ok + 1, self.failed) if good else (self.ok, self.failed + 1)


def allows(client: httpx.Client, origin: str) -> bool:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    return client.options("/v1/chat/completions", headers=headers).status_code == 200


def loads_done(client: httpx.Client) -> int:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'cortex_model_load_seconds_count{{model="{MODEL}"}}'):
            return int(float(line.split()[-1]))
    return 0


def loads_since(client: httpx.Client, done: int) -> bool:
    return loads_done(client) > done


def measure_live(client: httpx.Client, path: Path, count: int, context: int) -> list[float]:
    seconds = []
    for number in range(count):
        origin = f"http://live{number}.example"
        started = write(path, cortexfile(origin, context))
        seconds.append(until(partial(allows, client, origin), "a live setting") - started)
    return seconds


def measure_swaps(client: httpx.Client, path: Path, count: int) -> list[float]:
    seconds = []
    for number in range(count):
        done = loads_done(client)
        started = write(path, cortexfile(f"http://swap{number}.example", 512 if number % 2 == 0 else 1024))
        seconds.append(until(partial(loads_since, client, done), "the new model copy") - started)
    return seconds


def summary(seconds: list[float]) -> dict[str, float | int]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cortex" / "test-data"
    parser.add_argument("--datapath", type=Path, default=default_data)
    parser.add_argument("--live", type=int, default=30, help="live-setting edits")
    parser.add_argument("--swaps", type=int, default=6, help="model swaps")
    parser.add_argument("--workers", type=int, default=2, help="clients sending requests all along")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, cortex(Path(folder), args.datapath) as (client, path):
        with Load(str(client.base_url), args.workers) as load:
            live = measure_live(client, path, args.live, 1024)
            swaps = measure_swaps(client, path, args.swaps)
        generation = client.get("/health").json()["config"]["generation"]
        pipeline = pipeline_seconds(Path(folder) / "server.log")
    result = {
        "live_setting": summary(live),
        "model_swap": summary(swaps),
        "server_pipeline": summary(pipeline),
        "requests_ok": load.ok,
        "requests_failed": load.failed,
        "generations": generation,
        "workers": args.workers,
    }
    for kind in ("live_setting", "model_swap", "server_pipeline"):
        figures = result[kind]
        assert isinstance(figures, dict)
        print(f"{kind:>15}: p50 {figures['p50_ms']:7.1f} ms   p95 {figures['p95_ms']:7.1f} ms   (n={figures['n']})")
    print(f"       requests: {load.ok} ok, {load.failed} failed, under {args.workers} clients")
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
