"""Hot reload of the real `cortex start` with the real model: edits under load, models, keys, TLS, listener."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import load

from tests.runtime.cortex_server import MODEL_BLOCK, MODEL_ID, CortexServer, StartServer, free_port
from tests.runtime.reload_load import config_status, continuous_load, model_ids, one_request, wait_for
from tests.runtime.test_server_security import make_self_signed

pytestmark = pytest.mark.slow
KEY = "sk-reload-5c2e"


def models_block(*models: tuple[str, int]) -> str:
    entries = [
        f"  - id: {model_id}\n    preset: gemma3-270m-q4km\n    context_size: {context}\n"
        for model_id, context in models
    ]
    return "models:\n" + "".join(entries)


def rewrite(server: CortexServer, body: str = "", models: str | None = None) -> None:
    """Replace the Cortexfile the way editors do: a temporary file renamed over it."""
    text = "version: 1\n" + textwrap.dedent(body) + (models or MODEL_BLOCK)  # the model as `launch` wrote it
    temporary = server.cortexfile.with_name(".Cortexfile.yaml.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, server.cortexfile)


def expected_hash(server: CortexServer, data_dir: Path) -> str:
    """The hash the server must reach: the same loader with the same flags `launch` gave it."""
    flags = {"--port": str(server.port), "--datapath": str(data_dir)}
    return config_hash(load(server.cortexfile, environ=dict(os.environ), flags=flags).config)


def counter(server: CortexServer, key: str) -> int:
    value = config_status(server)[key]
    assert isinstance(value, int)
    return value


def test_fifty_edits_under_load_fail_no_request(start_cortex: StartServer, test_data_dir: Path) -> None:
    server = start_cortex()
    with continuous_load(server, lambda: [MODEL_ID], workers=3) as outcomes:
        for number in range(50):
            edit(server, number, test_data_dir)
        rewrite(server, "logs:\n  level: info\n")
        wanted = expected_hash(server, test_data_dir)
        wait_for(lambda: config_status(server)["hash"] == wanted, "the last edit", server)
        done_before_stop = outcomes.ok
    assert outcomes.failures == [], server.output()[-4000:]
    assert done_before_stop >= 6  # the load ran all along (few requests: 2 cores shared with two model loads)
    status = config_status(server)
    assert status["reload_failures"] == 10
    assert isinstance(status["generation"], int)
    assert status["generation"] >= 41


def edit(server: CortexServer, number: int, data_dir: Path) -> None:
    """Edit `number` of 50: a valid live setting, an invalid file, or a rapid-fire burst; the model is
    reloaded with new parameters at edits 10 and 30 while it serves."""
    origin = f"server:\n  cors:\n    origins: [http://edit{number}.example]\n"
    models = models_block((MODEL_ID, 512 if 10 <= number < 30 else 1024))
    if number % 5 == 4:  # invalid, each differently, so each is one refusal
        failures = counter(server, "reload_failures")
        rewrite(server, f"# edit {number}\nlogs:\n  level: loud\n", models)
        wait_for(lambda: counter(server, "reload_failures") == failures + 1, f"refusal {number}", server)
        return
    if number % 5 == 3:  # rapid fire: four writes, only the last one counts
        for burst in range(3):
            rewrite(server, origin.replace(".example", f"-{burst}.example"), models)
    rewrite(server, origin, models)
    wanted = expected_hash(server, data_dir)
    wait_for(lambda: config_status(server)["hash"] == wanted, f"edit {number}", server)


def test_a_model_replaced_on_a_device_that_holds_one_loses_no_request(start_cortex: StartServer) -> None:
    """max_resident_models 1: requests wait in the queue while the old copy drains and the new one loads."""
    server = start_cortex("server:\n  limits:\n    max_resident_models: 1\n")
    with continuous_load(server, lambda: [MODEL_ID], workers=3) as outcomes:
        generation = counter(server, "generation")
        rewrite(server, "server:\n  limits:\n    max_resident_models: 1\n", models_block((MODEL_ID, 512)))
        wait_for(lambda: counter(server, "generation") == generation + 1, "the swap", server)
        before = outcomes.ok
        wait_for(lambda: outcomes.ok >= before + 6, "requests served by the new copy", server)
    assert outcomes.failures == [], server.output()[-4000:]


def test_a_stream_in_flight_finishes_on_its_model_when_that_model_is_removed(start_cortex: StartServer) -> None:
    server = start_cortex("", ready=True)
    rewrite(server, models=models_block((MODEL_ID, 1024), ("other", 1024)))
    wait_for(lambda: "other" in model_ids(server), "the second model", server)
    result: list[str | None] = []
    with server.client(timeout=60) as client:
        streaming = threading.Thread(target=lambda: result.append(one_request(client, "other", True, max_tokens=64)))
        streaming.start()
        wait_for(lambda: _queue_depth(server, "other") == 1, "the stream to start", server)
        rewrite(server)  # `other` removed while it streams
        wait_for(lambda: model_ids(server) == [MODEL_ID], "the removal", server)
        streaming.join(60)
        assert result == [None], server.output()[-4000:]
        assert one_request(client, MODEL_ID, stream=False) is None
        gone = client.post(
            "/v1/chat/completions", json={"model": "other", "messages": [{"role": "user", "content": "x"}]}
        )
    assert gone.status_code == 404
    wait_for(lambda: 'cortex_model_loaded{model="other"} 0' in _metrics(server), "the unload", server)


def _metrics(server: CortexServer) -> str:
    with server.client(timeout=5) as client:
        return client.get("/metrics").text


def _queue_depth(server: CortexServer, model_id: str) -> int:
    for line in _metrics(server).splitlines():
        if line.startswith(f'cortex_queue_depth{{model="{model_id}"}}'):
            return int(float(line.split()[-1]))
    return 0


def test_a_model_added_while_serving_comes_without_disturbing_the_others(start_cortex: StartServer) -> None:
    server = start_cortex()
    served: list[str] = [MODEL_ID]
    with continuous_load(server, lambda: list(served), workers=2) as outcomes:
        rewrite(server, models=models_block((MODEL_ID, 1024), ("added", 512)))
        wait_for(lambda: "added" in model_ids(server), "the new model", server)
        served.append("added")
        before = outcomes.ok
        wait_for(lambda: outcomes.ok >= before + 6, "requests to both models", server)
    assert outcomes.failures == [], server.output()[-4000:]


def test_invalid_edit_is_reported_then_the_fix_applies(start_cortex: StartServer) -> None:
    keys = 'server:\n  auth:\n    api_keys: ["${env:RELOAD_KEY}"]\n'
    server = start_cortex(keys, env={"RELOAD_KEY": KEY})
    key_holder = {"Authorization": f"Bearer {KEY}"}
    rewrite(server, keys + "logs:\n  level: loud\n")
    wait_for(lambda: config_status(server)["last_reload_error"] is not None, "the refusal", server)
    public, private = config_status(server), config_status(server, key_holder)
    assert public["last_reload_error"] is not None
    assert "message" not in public["last_reload_error"]  # type: ignore[operator]
    message = private["last_reload_error"]["message"]  # type: ignore[index]
    assert message.startswith(f"{server.cortexfile}:6:10: logs.level: "), message
    assert f"{server.cortexfile}:6:10: logs.level: " in server.output()
    rewrite(server, keys + "logs:\n  level: debug\n")
    wait_for(lambda: config_status(server)["generation"] == 2, "the fix", server)
    assert config_status(server)["last_reload_error"] is None
    with server.client() as client:
        metrics = client.get("/metrics", headers=key_holder).text
    assert "cortex_config_generation 2" in metrics
    assert "cortex_config_reloads_total 1" in metrics
    assert "cortex_config_reload_failures_total 1" in metrics


def test_api_key_file_rotates_and_env_values_stay_pinned(start_cortex: StartServer, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("sk-old\n", encoding="utf-8")
    body = f"server:\n  auth:\n    api_key_file: {key_file}\n"
    env = {"CORTEX_SERVER__CORS__ORIGINS": "https://pinned.example"}
    server = start_cortex(body, env=env)
    replacement = tmp_path / ".keys.new"
    replacement.write_text("sk-new\n", encoding="utf-8")
    os.replace(replacement, key_file)
    rewrite(server, body + "  cors:\n    origins: [https://file.example]\n")
    wait_for(lambda: "pinned by env CORTEX_SERVER__CORS__ORIGINS" in server.output(), "the pinned note", server)
    with server.client() as client:
        assert client.get("/v1/models", headers={"Authorization": "Bearer sk-old"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer sk-new"}).status_code == 200
        for origin, allowed in (("https://pinned.example", True), ("https://file.example", False)):
            preflight = client.options("/v1/models", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
            assert (preflight.status_code == 200) is allowed


def test_tls_certificate_rotates_live(start_cortex: StartServer, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    cert, key = make_self_signed(first)
    new_cert, new_key = make_self_signed(second)
    body = f"server:\n  tls:\n    cert: {cert}\n    key: {key}\n"
    server = start_cortex(body, ca_file=cert)
    old_only = ssl.create_default_context(cadata=cert.read_text(encoding="ascii"))
    trusting_new = httpx.Client(verify=ssl.create_default_context(cafile=str(new_cert)), timeout=5)
    with server.client() as old_trust, trusting_new:
        assert old_trust.get("/health").status_code == 200
        generation = counter(server, "generation")
        for source, target in ((new_key, key), (new_cert, cert)):  # each file replaced by a rename
            staged = target.with_name(f".{target.name}.new")
            staged.write_bytes(source.read_bytes())
            os.replace(staged, target)
        wait_for(lambda: _answers(trusting_new, server), "the new certificate", server)
        assert old_trust.get("/health").status_code == 200  # a connection made before keeps going
        with pytest.raises(httpx.ConnectError), httpx.Client(verify=old_only, timeout=5) as fresh_old_trust:
            fresh_old_trust.get(f"{server.base_url}/health")  # new handshakes show the new certificate only
    assert config_status(server)["generation"] == generation + 1


def _answers(client: httpx.Client, server: CortexServer) -> bool:
    try:
        return client.get(f"{server.base_url}/health").status_code == 200
    except httpx.ConnectError:
        return False


def test_a_host_change_moves_the_listener_and_a_flag_pinned_port_stays(start_cortex: StartServer) -> None:
    server = start_cortex()
    rewrite(server, "server:\n  host: 127.0.0.2\n  port: 1\n")

    def moved() -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.2:{server.port}", headers={"Host": "localhost"}, timeout=5)

    wait_for(lambda: _health_at(moved()), "the new listener", server)
    with moved() as client:
        assert one_request(client, MODEL_ID, stream=True) is None
        with pytest.raises(httpx.ConnectError), server.client(timeout=5) as old:
            old.get("/health")
    assert "server.port: warning: changed in the file but pinned by flag --port" in server.output()


def _health_at(client: httpx.Client) -> bool:
    with client:
        try:
            return client.get("/health").status_code == 200
        except httpx.TransportError:
            return False


def test_sighup_reloads_when_watching_is_off(start_cortex: StartServer) -> None:
    body = "server:\n  reload:\n    enabled: false\n"
    server = start_cortex(body)
    rewrite(server, body + "logs:\n  level: debug\n")
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: config_status(server)["generation"] == 2, "the reload on SIGHUP", server)
    server.process.send_signal(signal.SIGHUP)  # nothing changed: no new generation, and the process lives on
    wait_for(lambda: "no change to apply (generation 2)" in server.output(), "the second SIGHUP", server)
    assert server.process.poll() is None


def test_a_server_stopped_and_continued_does_not_reload(start_cortex: StartServer) -> None:
    """Stopped (SIGSTOP, Ctrl-Z, a debugger or profiler) longer than the old SIGHUP poll's timeout, the collector
    got a siginfo Python's sigtimedwait never filled in and reloaded each time; only SIGHUP reloads."""
    server = start_cortex("server:\n  reload:\n    enabled: false\n")
    for _ in range(3):
        server.process.send_signal(signal.SIGSTOP)
        time.sleep(0.5)
        server.process.send_signal(signal.SIGCONT)
        time.sleep(0.5)
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "no change to apply" in server.output(), "the reload on SIGHUP", server)
    time.sleep(1)  # a stray reload would be logged by now
    assert server.output().count("config reload") == 1


def generation_is(server: CortexServer, generation: int) -> bool:
    return config_status(server)["generation"] == generation


def configmap_swap(folder: Path, text: str, version: int) -> None:
    """The kubelet's way: a new timestamped folder, `..data` re-pointed by a rename, the old folder removed."""
    fresh = folder / f"..2026_11_25_{version}"
    fresh.mkdir()
    (fresh / "Cortexfile.yaml").write_text(text, encoding="utf-8")
    old = (folder / "..data").resolve() if (folder / "..data").is_symlink() else None
    (folder / "..data_tmp").symlink_to(fresh.name)
    os.replace(folder / "..data_tmp", folder / "..data")
    if old is not None:
        shutil.rmtree(old)


def test_each_way_of_replacing_the_file_is_one_reload(start_cortex: StartServer) -> None:
    server = start_cortex()
    path, folder = server.cortexfile, server.cortexfile.parent

    def text(number: int) -> str:
        return f"version: 1\nserver:\n  cors:\n    origins: [http://change{number}.example]\n{MODEL_BLOCK}"

    def to_configmap_layout(number: int) -> None:
        configmap_swap(folder, text(number), number)
        link = folder / ".Cortexfile.link"
        link.symlink_to("..data/Cortexfile.yaml")
        os.replace(link, path)

    changes: list[Callable[[int], object]] = [
        lambda n: path.write_text(text(n), encoding="utf-8"),  # in place
        lambda n: os.utime(path),  # a touch: no reload expected (the next change must still be the next one)
        lambda n: rewrite(server, f"server:\n  cors:\n    origins: [http://change{n}.example]\n"),  # atomic rename
        to_configmap_layout,
        lambda n: configmap_swap(folder, text(n), n),
        lambda n: configmap_swap(folder, text(n), n),
    ]
    expected = 1
    for number, change in enumerate(changes):
        change(number)
        if number == 1:
            continue
        expected += 1
        wait_for(partial(generation_is, server, expected), f"change {number}", server)
    assert config_status(server)["reloads"] == expected - 1
    assert "no change to apply" not in server.output()
    assert "models replaced" not in server.output()  # relative paths stay in the named folder, not `..2026_*`


def test_a_port_change_opens_the_new_listener_and_lets_the_old_streams_finish(
    tmp_path: Path, cortex_command: list[str], test_data_dir: Path
) -> None:
    old_port, new_port = free_port(), free_port()
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(f"version: 1\nserver:\n  port: {old_port}\n{MODEL_BLOCK}", encoding="utf-8")
    log = tmp_path / "server.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*cortex_command, "start", "-f", str(path), "--datapath", str(test_data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = CortexServer(process, old_port, "http", log, path)
    try:
        server.wait_ready()
        result: list[str | None] = []
        with server.client(timeout=60) as old:
            streaming = threading.Thread(target=lambda: result.append(one_request(old, MODEL_ID, True, 64)))
            streaming.start()
            wait_for(lambda: _queue_depth(server, MODEL_ID) == 1, "the stream to start", server)
            path.write_text(f"version: 1\nserver:\n  port: {new_port}\n{MODEL_BLOCK}", encoding="utf-8")
            moved = CortexServer(process, new_port, "http", log, path)
            wait_for(lambda: _health_at(moved.client(timeout=5)), "the new listener", server)
            streaming.join(60)
        assert result == [None], server.output()[-4000:]
        with pytest.raises(httpx.ConnectError), server.client(timeout=5) as fresh:
            fresh.get("/health")
    finally:
        server.terminate()


def test_a_model_changed_again_while_loading_loads_only_its_latest_version(start_cortex: StartServer) -> None:
    server = start_cortex()
    generation = counter(server, "generation")
    for context in (512, 768, 640):  # the second is superseded before its turn to load comes
        rewrite(server, models=models_block((MODEL_ID, context)))
        generation += 1
        wait_for(partial(generation_is, server, generation), f"context {context}", server)
    wait_for(lambda: server.output().count("loaded from") == 3, "the latest version loaded", server)
    with server.client() as client:
        assert one_request(client, MODEL_ID, stream=False) is None
    assert "changed again before it loaded" in server.output()
