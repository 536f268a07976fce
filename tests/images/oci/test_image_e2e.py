"""`cortex build --format oci` end to end on real parts: the image is built three times (once with an
empty layer cache) to one digest, loaded by Podman and run (chat through the openai client, as a
non-root user, its health check), pushed to a registry that asks for a password and read back with
skopeo, and checked against its lock."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from menlo_cortex.images.debian import PYTHONS, SUITE
from menlo_cortex.images.runtime_wheels import llama_wheel

from ..docker_image.engine_parts import answers_ready, chat_completion, run_cortex, wait_for
from ..spdx import spdx_problems
from .conftest import API_KEY, OciBuild, TlsRegistry

PYTHON = "/opt/cortex/bin/python"  # the image has no shell: its checks run in its Python


def _index_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    named = [m for m in index["manifests"] if "org.opencontainers.image.ref.name" in m.get("annotations", {})]
    assert len(named) == 1
    return str(named[0]["digest"])


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _manifest(layout: Path) -> tuple[str, dict[str, object]]:
    index = json.loads(_blob(layout, _index_digest(layout)))
    entry = index["manifests"][0]
    return entry["digest"], json.loads(_blob(layout, entry["digest"]))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(oci_build: OciBuild, output: Path, *extra: str, **environ: str) -> subprocess.CompletedProcess[str]:
    args = ["build", "-f", str(oci_build.cortexfile), "--format", "oci", "-o", str(output), *extra]
    store = ["--datapath", str(oci_build.model_store)]
    return run_cortex([*args, *store], {**oci_build.environ, **environ}, command=oci_build.command)


def test_three_builds_give_one_digest(oci_build: OciBuild, tmp_path: Path) -> None:
    """The second build writes every layer again into an empty cache; the third re-uses that cache."""
    cold = _build(oci_build, tmp_path / "cold", CORTEX_OCI_CACHE=str(tmp_path / "cache"))
    assert cold.returncode == 0, cold.stderr
    warm = _build(oci_build, tmp_path / "warm", CORTEX_OCI_CACHE=str(tmp_path / "cache"))
    assert warm.returncode == 0, warm.stderr
    builds = [oci_build.output, tmp_path / "cold", tmp_path / "warm"]
    digests = {_index_digest(next(out.glob("*.oci"))) for out in builds}
    assert len(digests) == 1, digests
    assert len({_sha256(next(out.glob("*-amd64.tar"))) for out in builds}) == 1
    assert len({_sha256(next(out.glob("*.spdx.json"))) for out in builds}) == 1
    assert digests.pop() in oci_build.stdout


def test_the_image_holds_what_the_service_needs_and_says_so(oci_build: OciBuild) -> None:
    digest, manifest = _manifest(oci_build.layout)
    config = json.loads(_blob(oci_build.layout, manifest["config"]["digest"]))  # type: ignore[index]
    assert config["config"]["User"] == "10001:10001"
    assert config["config"]["Entrypoint"][0] == "/opt/cortex/bin/cortex"
    assert config["created"] == "1970-01-01T00:00:00Z"
    history = [step["created_by"].rpartition(": ")[2] for step in config["history"]]
    assert history == ["Debian root", "runtime", "model gemma", "Cortexfile"]
    assert spdx_problems(oci_build.sbom) == []
    sbom = json.loads(oci_build.sbom.read_text())
    names = {package["name"] for package in sbom["packages"]}
    python = f"python{PYTHONS[SUITE]}"  # the default release's: the image's root and venv are built on it
    assert {"libc6", python, "libgomp1", "llama_cpp_python", "menlo-cortex", "gemma"} <= names
    assert not {"systemd", "linux-image-amd64", "pip"} & names
    referrers = [
        m for m in json.loads((oci_build.layout / "index.json").read_text())["manifests"] if "artifactType" in m
    ]
    attached = json.loads(_blob(oci_build.layout, referrers[0]["digest"]))
    assert attached["subject"]["digest"] == digest
    assert _blob(oci_build.layout, attached["layers"][0]["digest"]) == oci_build.sbom.read_bytes()


@pytest.fixture
def container(loaded: str, podman_env: dict[str, str], free_port: int) -> Iterator[tuple[str, int]]:
    name = f"cortex-oci-{free_port}"
    run = ["podman", "run", "-d", "--name", name, "--network", "host", "-e", f"CORTEX_TEST_KEY={API_KEY}"]
    done = subprocess.run(
        [*run, "-e", f"CORTEX_SERVER__PORT={free_port}", loaded],
        env=podman_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    yield name, free_port
    subprocess.run(["podman", "rm", "-f", name], env=podman_env, capture_output=True, check=False)


def test_the_loaded_archive_serves_chat_as_a_non_root_user(
    oci_build: OciBuild, container: tuple[str, int], podman_env: dict[str, str]
) -> None:
    name, port = container
    wait_for(lambda: answers_ready(port), "the image's server to load its model", deadline_s=180)
    reply = chat_completion(port, API_KEY)
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0

    def inside(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", name, *command], env=podman_env, capture_output=True, text=True, check=False
        )

    assert inside(PYTHON, "-c", "import os; print(os.getuid())").stdout.strip() == "10001"
    # No shell, no coreutils: what the service runs on only; OpenSSL's default CA paths still lead to Debian's.
    assert inside(PYTHON, "-c", "import os; print(os.path.lexists('/bin/sh'))").stdout.strip() == "False"
    defaults = "import os, ssl; os.environ.pop('SSL_CERT_FILE', None); "
    defaults += "print(len(ssl.create_default_context().get_ca_certs()) > 100)"
    assert inside(PYTHON, "-c", defaults).stdout.strip() == "True"
    _digest, manifest = _manifest(oci_build.layout)
    config = json.loads(_blob(oci_build.layout, manifest["config"]["digest"]))  # type: ignore[index]
    health = config["config"]["Healthcheck"]["Test"]
    assert health[0] == "CMD"
    assert inside(*health[1:]).returncode == 0  # the image's own health check, run where the engine runs it
    elsewhere = ["podman", "exec", "-e", "CORTEX_SERVER__PORT=1", name, *health[1:]]
    assert subprocess.run(elsewhere, env=podman_env, capture_output=True, check=False).returncode != 0


def test_podman_keeps_the_manifest_digest(oci_build: OciBuild, loaded: str, podman_env: dict[str, str]) -> None:
    digest, _ = _manifest(oci_build.layout)
    inspect = ["podman", "image", "inspect", "--format", "{{.Digest}}", loaded]
    assert subprocess.run(inspect, env=podman_env, capture_output=True, text=True, check=True).stdout.strip() == digest


def _auth(folder: Path, registry: TlsRegistry, password: str) -> str:
    token = base64.b64encode(f"{registry.user}:{password}".encode()).decode()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"auths": {registry.address: {"auth": token}}}))
    return str(folder)


def test_push_to_a_registry_that_asks_for_a_password(
    oci_build: OciBuild, oci_registry: TlsRegistry, tmp_path: Path
) -> None:
    """Over TLS, trusting the registry's own certificate the way Go programs (skopeo) do: SSL_CERT_FILE."""
    reference = f"{oci_registry.address}/cortex/appliance:v1"
    trust = {"SSL_CERT_FILE": str(oci_registry.ca_file)}
    wrong = _build(
        oci_build, tmp_path / "refused", "--push", reference,
        DOCKER_CONFIG=_auth(tmp_path / "bad", oci_registry, "not-the-password"), **trust,
    )  # fmt: skip
    assert wrong.returncode == 1
    assert f"pushing to {reference} failed" in wrong.stderr
    assert "unauthorized" in wrong.stderr.lower()
    assert "not-the-password" not in wrong.stderr + wrong.stdout
    pushed = _build(
        oci_build, tmp_path / "pushed", "--push", reference,
        DOCKER_CONFIG=_auth(tmp_path / "good", oci_registry, oci_registry.password), **trust,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushed {reference}" in pushed.stdout
    creds = f"{oci_registry.user}:{oci_registry.password}"
    inspect = ["skopeo", "inspect", "--raw", "--creds", creds, f"docker://{reference}"]
    raw = subprocess.run(inspect, env={**os.environ, **trust}, capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == _index_digest(oci_build.layout)
    assert json.loads(raw)["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}
    pulled = [
        "skopeo",
        "copy",
        "--preserve-digests",
        "--src-creds",
        creds,
        f"docker://{reference}",
        f"oci:{tmp_path / 'pulled'}:v1",
    ]
    subprocess.run(pulled, env={**os.environ, **trust}, capture_output=True, check=True)
    assert _index_digest(tmp_path / "pulled") == _manifest(oci_build.layout)[0]  # the amd64 manifest, as pushed


def test_a_lock_pins_the_inputs_and_locked_names_each_drift(oci_build: OciBuild, tmp_path: Path) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_bytes(oci_build.cortexfile.read_bytes())
    store = ["--datapath", str(oci_build.model_store)]
    written = run_cortex(["lock", "-f", str(cortexfile), "--format", "oci", *store], oci_build.environ)
    assert written.returncode == 0, written.stderr
    lock = tomllib.loads((tmp_path / "Cortexfile.lock").read_text())
    assert lock["models"][0]["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    packages = {p["name"]: p for p in lock["platforms"]["amd64"]["packages"]}
    assert packages["libc6"]["version"]
    assert len(packages["libc6"]["files_sha256"]) == 64
    assert any(w["name"].startswith("llama_cpp_python-") for w in lock["platforms"]["amd64"]["wheels"])
    build = ["build", "-f", str(cortexfile), "--format", "oci", "--locked", *store]
    assert run_cortex([*build, "-o", str(tmp_path / "ok")], oci_build.environ).returncode == 0
    packages["libc6"]["version"] = "2.0-locked"
    lock["models"][0]["sha256"] = "0" * 64
    (tmp_path / "Cortexfile.lock").write_text(tomli_w.dumps(lock))
    refused = run_cortex([*build, "-o", str(tmp_path / "drift")], oci_build.environ)
    assert refused.returncode == 2
    assert "platforms.amd64.packages.libc6.version: locked 2.0-locked, now " in refused.stderr
    assert f"models.gemma.sha256: locked {'0' * 64}, now a5fd3b62" in refused.stderr
    assert not (tmp_path / "drift").exists()


def test_a_platform_without_its_wheel_is_refused_before_any_layer(oci_build: OciBuild, tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    amd64 = llama_wheel("amd64")
    (tmp_path / "wheels" / amd64.name).symlink_to(amd64)
    platforms = ["--platform", "linux/amd64,linux/arm64", "--wheels", str(tmp_path / "wheels")]
    done = _build(oci_build, tmp_path / "out", *platforms)
    assert done.returncode == 1
    assert "no llama-cpp-python 0.3.36 wheel for arm64" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.arm64
@pytest.mark.timeout(3600)
def test_a_two_platform_image_runs_its_arm64_half_under_emulation(
    oci_build: OciBuild, podman_env: dict[str, str], tmp_path: Path, free_port: int
) -> None:
    """One index for amd64 and arm64; the arm64 archive (cross-built wheel, no compiler run) loaded and
    run through qemu-user: it answers a chat completion. The arm64 root is debootstrap'd once (minutes)."""
    done = _build(oci_build, tmp_path / "out", "--platform", "linux/amd64,linux/arm64")
    assert done.returncode == 0, done.stderr
    layout = next((tmp_path / "out").glob("*.oci"))
    index = json.loads(_blob(layout, _index_digest(layout)))
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    amd64 = json.loads(_blob(oci_build.layout, _index_digest(oci_build.layout)))["manifests"][0]["digest"]
    assert index["manifests"][0]["digest"] == amd64  # adding a platform leaves the other's image as it was
    archive = next((tmp_path / "out").glob("*-arm64.tar"))
    loaded = subprocess.run(
        ["podman", "load", "-i", str(archive)], env=podman_env, capture_output=True, text=True, check=True
    )
    reference = loaded.stdout.rpartition("Loaded image: ")[2].strip()
    name = f"cortex-oci-arm64-{free_port}"
    run = ["podman", "run", "-d", "--platform", "linux/arm64", "--name", name, "--network", "host"]
    run += ["-e", f"CORTEX_TEST_KEY={API_KEY}", "-e", f"CORTEX_SERVER__PORT={free_port}", reference]
    try:
        subprocess.run(run, env=podman_env, capture_output=True, text=True, check=True)
        uname = subprocess.run(
            ["podman", "exec", name, PYTHON, "-c", "import platform; print(platform.machine())"],
            env=podman_env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert uname.stdout.strip() == "aarch64"
        wait_for(lambda: answers_ready(free_port), "the arm64 image to load its model under emulation", deadline_s=600)
        assert chat_completion(free_port, API_KEY).choices[0].message.content
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=podman_env, capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "-f", reference], env=podman_env, capture_output=True, check=False)


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_build_leaves_nothing_under_a_final_name(
    oci_build: OciBuild, tmp_path: Path, signal_number: int
) -> None:
    """Stopped while it writes its first layer (Ctrl-C, or killed outright): no output under its final
    name, no cache entry for a layer it did not finish; the next build gives the usual digest."""
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ["build", "-f", str(oci_build.cortexfile), "--format", "oci", "-o", str(out)]
    command = [*oci_build.command, *args, "--datapath", str(oci_build.model_store)]
    process = subprocess.Popen(command, env={**oci_build.environ, "CORTEX_OCI_CACHE": str(cache)})
    try:
        wait_for(lambda: any((cache / "tmp").glob("*")), "the build to start writing a layer", deadline_s=120)
        process.send_signal(signal_number)
        assert process.wait(60) == (130 if signal_number == signal.SIGINT else -signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert [path.name for path in out.glob("*") if not path.name.startswith(".")] == []
    assert list(cache.glob("layers/*.json")) == []
    again = _build(oci_build, out, CORTEX_OCI_CACHE=str(cache))
    assert again.returncode == 0, again.stderr
    assert _index_digest(next(out.glob("*.oci"))) == _index_digest(oci_build.layout)
