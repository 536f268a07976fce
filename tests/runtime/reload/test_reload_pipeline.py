"""The reload pipeline on real files: each way a file gets replaced is one reload, bad edits are refused."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.runtime.reload.plan import Kind
from menlo_cortex.runtime.reload.watch import SAFETY_CHECK_MS

from tests.runtime.reload_harness import Running, replace_atomically, running_service, write

ORIGINS = "server:\n  cors:\n    origins: [{origins}]\n"


def cortexfile(level: str = "info", extra: str = "") -> str:
    return f"version: 1\nlogs:\n  level: {level}\n{extra}"


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


async def change_and_expect_one(running: Running, change: Callable[[str], None]) -> None:
    """Three changes in a row, each exactly one attempt and one applied reload, in order."""
    for number, level in enumerate(("debug", "warning", "error"), start=1):
        change(cortexfile(level))
        await running.until_reloads(number)
        assert running.reloader.running.config.logs.level == level
        assert running.reloader.attempts == number
    assert [plan.settings[Kind.live] for plan in running.applier.plans] == [("logs.level",)] * 3


def test_in_place_write_is_one_reload(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile())

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            await change_and_expect_one(running, lambda text: write(path, text))

    run(scenario())


def test_atomic_rename_is_one_reload(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile())

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            await change_and_expect_one(running, lambda text: replace_atomically(path, text))

    run(scenario())


def configmap_swap(folder: Path, text: str) -> None:
    """What the kubelet does: a new timestamped folder, `..data` re-pointed at it by a rename, old one removed."""
    data = folder / "..data"
    old = data.resolve() if data.is_symlink() else None
    fresh = folder / f"..2026_{time.monotonic_ns()}"
    fresh.mkdir()
    (fresh / "Cortexfile.yaml").write_text(text, encoding="utf-8")
    (folder / "..data_tmp").symlink_to(fresh.name)
    os.replace(folder / "..data_tmp", data)
    if old is not None:
        shutil.rmtree(old)


def test_configmap_symlink_swap_is_one_reload(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    configmap_swap(folder, cortexfile())
    path = folder / "Cortexfile.yaml"
    path.symlink_to("..data/Cortexfile.yaml")

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            await change_and_expect_one(running, lambda text: configmap_swap(folder, text))

    run(scenario())


def test_touch_without_change_is_no_reload(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile())

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            for _ in range(3):
                os.utime(path)
                write(path, cortexfile())  # same bytes again
            write(path, cortexfile("debug"))  # the marker: the only attempt must be this one
            await running.until_reloads(1)
            assert running.reloader.attempts == 1

    run(scenario())


def test_rapid_fire_edits_last_write_wins(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile())
    origins = [f'"http://host{n}.example"' for n in range(30)]

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            for origin in origins:
                write(path, cortexfile(extra=ORIGINS.format(origins=origin)))
            last = origins[-1].strip('"')
            await running.until(lambda: running.reloader.running.config.server.cors.origins == [last], "the last write")
            assert running.reloader.attempts < len(origins) / 3  # bursts were merged, not replayed

    run(scenario())


def test_invalid_edit_is_refused_located_then_the_fix_applies(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile())

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            write(path, cortexfile("loud"))
            await running.until(lambda: running.reloader.state.failures == 1, "the refusal")
            error = running.reloader.state.last_error
            assert error is not None
            assert error.message.startswith(f"{path}:3:10: logs.level: ")
            assert running.reloader.running.config.logs.level == "info"
            write(path, cortexfile("debug"))
            await running.until_reloads(1)
            assert running.reloader.state.last_error is None
            assert running.reloader.state.generation == 2

    with caplog.at_level(logging.ERROR, logger="cortex.reload"):
        run(scenario())
    assert f"{path}:3:10: logs.level: " in caplog.text


def test_opening_the_listener_without_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile())

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            write(path, cortexfile(extra="server:\n  host: 0.0.0.0\n"))
            await running.until(lambda: running.reloader.state.failures == 1, "the refusal")
            error = running.reloader.state.last_error
            assert error is not None
            assert "server.host: refusing to serve on 0.0.0.0 without an API key" in error.message
            assert running.reloader.running.config.server.host == "127.0.0.1"

    run(scenario())


def test_env_pinned_value_stays_and_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile())

    async def scenario() -> None:
        async with running_service(path, {"CORTEX_LOGS__LEVEL": "error"}) as running:
            await running.until_watching()
            write(path, cortexfile("debug"))
            await running.until(lambda: running.reloader.attempts == 1, "the attempt")
            write(path, cortexfile("debug", ORIGINS.format(origins='"http://a.example"')))
            await running.until_reloads(1)
            assert running.reloader.running.config.logs.level == "error"
            assert running.applier.plans[0].settings == {Kind.live: ("server.cors.origins",)}

    with caplog.at_level(logging.WARNING, logger="cortex.reload"):
        run(scenario())
    assert f"{path}:3:10: logs.level: warning: changed in the file but pinned by env CORTEX_LOGS__LEVEL" in caplog.text


def test_key_file_rotation_is_a_live_change(tmp_path: Path) -> None:
    keys = tmp_path / "secrets" / "keys"
    keys.parent.mkdir()
    write(keys, "first\n")
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile(extra="server:\n  auth:\n    api_key_file: secrets/keys\n"))

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            replace_atomically(keys, "second\n")
            await running.until_reloads(1)
            assert running.applier.plans[0].files == (Kind.live,)
            assert running.applier.plans[0].settings == {}

    run(scenario())


def test_sighup_reloads(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile(extra="server:\n  reload:\n    enabled: false\n"))

    async def scenario() -> None:
        async with running_service(path) as running:
            await asyncio.wait_for(running.service.started.wait(), timeout=10)
            assert running.service.watcher is None
            write(path, cortexfile("debug", "server:\n  reload:\n    enabled: false\n"))
            os.kill(os.getpid(), signal.SIGHUP)
            await running.until_reloads(1)
            assert running.reloader.running.config.logs.level == "debug"

    run(scenario())


def bind_mount(source: Path, target: Path) -> bool:
    """A real bind mount when this process may mount (root); False otherwise."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, check=False)
    return result.returncode == 0


def test_directory_bind_mount_in_place_write_is_one_reload(tmp_path: Path) -> None:
    host, mounted = tmp_path / "host", tmp_path / "etc-cortex"
    host.mkdir()
    mounted.mkdir()
    write(host / "Cortexfile.yaml", cortexfile())
    if not bind_mount(host, mounted):
        pytest.skip("bind mounts need root")
    try:

        async def scenario() -> None:
            async with running_service(mounted / "Cortexfile.yaml") as running:
                await running.until_watching()
                assert running.service.watcher is not None
                assert not running.service.watcher.polling
                await change_and_expect_one(running, lambda text: write(host / "Cortexfile.yaml", text))

        run(scenario())
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


def test_single_file_bind_mount_is_polled(tmp_path: Path) -> None:
    """inotify never sees writes to a file mounted on its own: the watcher finds out and polls it."""
    host, folder = tmp_path / "host.yaml", tmp_path / "etc"
    folder.mkdir()
    write(host, cortexfile())
    write(folder / "Cortexfile.yaml", "")
    if not bind_mount(host, folder / "Cortexfile.yaml"):
        pytest.skip("bind mounts need root")
    try:

        async def scenario() -> None:
            async with running_service(folder / "Cortexfile.yaml") as running:
                await running.until_watching()
                assert running.service.watcher is not None
                assert running.service.watcher.polling
                await change_and_expect_one(running, lambda text: write(host, text))

        run(scenario())
    finally:
        subprocess.run(["umount", str(folder / "Cortexfile.yaml")], check=True)


def test_a_newly_named_file_is_watched_from_then_on(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "keys", tmp_path / "b" / "keys"
    for keys in (first, second):
        keys.parent.mkdir()
        write(keys, "one\n")
    path = tmp_path / "Cortexfile.yaml"
    write(path, cortexfile(extra=f"server:\n  auth:\n    api_key_file: {first}\n"))

    async def scenario() -> None:
        async with running_service(path) as running:
            await running.until_watching()
            write(path, cortexfile(extra=f"server:\n  auth:\n    api_key_file: {second}\n"))
            await running.until_reloads(1)
            replace_atomically(second, "two\n")  # in a folder nobody watched at the start
            await running.until_reloads(2, deadline_s=SAFETY_CHECK_MS / 2000)  # seen, not found by the safety check
            assert running.applier.plans[1].files == (Kind.live,)

    run(scenario())


def test_a_sighup_left_pending_at_the_end_does_not_end_the_process() -> None:
    """A SIGHUP sent once the collector has ended (a server shutting down) waits, blocked, until blocked_sighup
    restores the mask: taken there, it is not then delivered with its default action, which ends the process."""
    script = (
        "import os, signal\nfrom menlo_cortex.runtime.reload.pipeline import blocked_sighup\n"
        "with blocked_sighup():\n    os.kill(os.getpid(), signal.SIGHUP)\nprint('lived')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "lived"), done.stderr[-2000:]
