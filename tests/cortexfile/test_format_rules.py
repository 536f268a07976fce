"""`cortex validate` never says OK to what `cortex build` would refuse from the file alone: each
format in build.formats is checked by the same rules its target's plan refuses with, located."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.format_rules import IMAGE_PAIRS
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.schema.target import Accelerator, Distro
from menlo_cortex.images.targets.docker.matrix import FLAVORS, UnsupportedTarget, flavor
from menlo_cortex.images.targets.systemd.plan import DEFAULTS, FORMAT, make_plan

from menlo_cortex.cli import main

ALL_PAIRS = sorted((d.value, a.value) for d in Distro for a in Accelerator)
# What the systemd plan refuses, as validate must report it: body (its value on line 5), key, words.
SYSTEMD_REFUSALS = {
    "privileged port": ("server:\n  port: 80\n", "server.port", "below 1024"),
    "data outside the state folder": ("data:\n  path: /srv/models\n", "data.path", "read-only inside"),
    "data folder not the service's": ("data:\n  path: /var/lib/dpkg\n", "data.path", "not a folder the service"),
    "nested data folder": ("data:\n  path: /var/lib/cortex/a/b\n", "data.path", "not a folder the service"),
    "logs outside the log folder": ("logs:\n  path: /home/me/logs\n", "logs.path", "read-only inside"),
    "journal as logs folder": ("logs:\n  path: /var/log/journal\n", "logs.path", "not a folder the service"),
    "alpine": ("target:\n  distro: alpine\n", "target.distro", "Debian/Ubuntu"),
    "baked model without sha256": ("models:\n  - {id: m, source: m.gguf}\n", "models[0].sha256", "give its sha256"),
}


def validate(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["validate", "-f", str(path), *extra])
    return code, capsys.readouterr().err


def test_the_docker_matrix_makes_exactly_the_declared_pairs() -> None:
    assert set(FLAVORS) == IMAGE_PAIRS
    assert ("alpine", "cuda") not in IMAGE_PAIRS  # a pair the old validate passed and build refused


@pytest.mark.parametrize(("distro", "accelerator"), ALL_PAIRS)
def test_validate_refuses_exactly_the_pairs_the_docker_build_refuses(
    distro: str, accelerator: str, write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile(
        f"version: 1\ntarget:\n  distro: {distro}\n  accelerator: {accelerator}\nbuild:\n  formats: [docker]\n"
    )
    code, err = validate(path, capsys, "--preflight", "build")
    if (distro, accelerator) == ("debian", "cuda"):  # on Debian 12 only: the default release is refused, located
        assert code == 2
        assert f"{path}:4:16: target.accelerator: the debian/cuda image is built on Debian 12 only" in err, err
    elif (distro, accelerator) in FLAVORS:
        assert code == 0, err
    else:
        assert code == 2
        assert f"{path}:4:16: target.accelerator: no image template for distro `{distro}`" in err, err


@pytest.mark.parametrize("distro", ["arch", "debian", "fedora", "ubuntu"])
def test_validate_refuses_cuda_13_exactly_where_the_docker_build_does(
    distro: str, write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"target:\n  distro: {distro}\n  release: bookworm\n  accelerator: cuda\n  cuda_version: 13\n"
    path = write_cortexfile(f"version: 1\n{target}build:\n  formats: [docker]\n")
    code, err = validate(path, capsys, "--preflight", "build")
    if distro != "fedora":
        assert code == 0, err
        assert flavor(distro, "cuda", "bookworm", "13", architecture="amd64").builder_image
        return
    with pytest.raises(UnsupportedTarget) as refused:
        flavor(distro, "cuda", "bookworm", "13", architecture="amd64")
    assert code == 2
    assert f"{path}:6:17: target.cuda_version: {refused.value}" in err, err


@pytest.mark.parametrize(
    ("distro", "target", "key"),
    [("debian", "  architecture: arm64\n", "target.distro"), ("arch", "  architecture: arm64\n", "target.distro"),
     ("ubuntu", '  architecture: amd64\n  cuda_architectures: ["110"]\n  cuda_version: 13\n', "target.architecture"),
     ("ubuntu", "  architecture: arm64\n", None)],
)  # fmt: skip
def test_a_cuda_image_for_arm64_is_ubuntus_and_a_jetsons_is_for_arm64(
    distro: str, target: str, key: str | None, write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The CUDA the Debian, Fedora and Arch images install is x86-64's; validate says so where the build would, and
    the build says so for the platform it is given (`--platform` overrides target.architecture)."""
    head = f"target:\n  distro: {distro}\n  release: bookworm\n  accelerator: cuda\n"
    path = write_cortexfile(f"version: 1\n{head}{target}build:\n  formats: [docker]\n")
    code, err = validate(path, capsys, "--preflight", "build")
    config = load(path).config.target
    arguments = (distro, "cuda", "bookworm", config.cuda_version.value)
    if key is None:
        assert code == 0, err
        assert flavor(*arguments, architecture="arm64", jetson=config.jetson).builder_image
        return
    with pytest.raises(UnsupportedTarget) as refused:
        flavor(*arguments, architecture=config.architecture.value, jetson=config.jetson)
    assert code == 2
    assert f": {key}: {refused.value}" in err, err


def test_cuda_version_is_12_or_13(write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = write_cortexfile("version: 1\ntarget:\n  accelerator: cuda\n  cuda_version: 11\n")
    code, err = validate(path, capsys)
    assert code == 2
    assert f"{path}:4:17: target.cuda_version:" in err, err
    assert "'12' or '13'" in err, err


@pytest.mark.parametrize(
    ("version", "architectures", "refused"),
    [("13", '["61", "90"]', "61"), ("12", '["121"]', "121"), ("13", '["70"]', "70")],
)
def test_cuda_architectures_the_cuda_version_cannot_build_are_refused(
    version: str,
    architectures: str,
    refused: str,
    write_cortexfile: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = f"target:\n  accelerator: cuda\n  cuda_architectures: {architectures}\n  cuda_version: {version}\n"
    code, err = validate(write_cortexfile(f"version: 1\n{target}"), capsys)
    assert code == 2
    assert f":5:17: target.cuda_version: CUDA {version} builds no compute capability {refused} (target." in err, err


ARCHITECTURES, VERSION = ":6:23: target.cuda_architectures: ", ":7:17: target.cuda_version: "
JETSON_CASES = {  # architecture, cuda_architectures, cuda_version -> where and what is refused, or None
    "orin on 12": ("arm64", '["87"]', "12", VERSION + "compute capability 87 (target.cuda_architectures) is Jetson "
                   "Orin's, whose CUDA 12 is L4T's, which no image here holds"),
    "orin on 13": ("arm64", '["87"]', "13", None),
    "thor on 13": ("arm64", '["110"]', "13", None),
    "thor by 12's name": ("arm64", '["101"]', "13", ARCHITECTURES + "compute capability 101 (target.cuda_architectures)"
                          " is Jetson Thor's, which CUDA 13 calls 110: use 110, with cuda_version 13"),
    "xavier": ("arm64", '["72"]', "12", ARCHITECTURES + "compute capability 72 (target.cuda_architectures) is a Jetson "
               "Nano's, TX2's or Xavier's, whose CUDA is L4T's of JetPack 5 or older, which no image here holds: use "
               "accelerator cpu"),
    "xavier beside a gh200": ("arm64", '["72", "90"]', "12", ARCHITECTURES + "compute capability 72 (target.cuda_"
                              "architectures) is a Jetson Nano's, TX2's or Xavier's, whose CUDA is L4T's of JetPack 5 "
                              "or older, which no image here holds: drop it"),
    "a mix": ("arm64", '["87", "90"]', "13", ARCHITECTURES + "compute capability 87 (target.cuda_architectures) is a "
              "Jetson's, whose image is its own: build one for it and another for 90"),
    "a gh200": ("arm64", '["90"]', "12", None),
    "amd64 with one more": ("amd64", '["75", "87", "89"]', "12", None),  # built for no GPU there, but harmless
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(JETSON_CASES))
def test_what_runs_on_no_jetson_is_refused_with_what_does(
    case: str, write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """NVIDIA's arm64 CUDA 12 is the servers' (a GH200's 90 builds); a Jetson's GPU needs L4T's, or CUDA 13."""
    architecture, architectures, version, refused = JETSON_CASES[case]
    target = (f"target:\n  distro: ubuntu\n  accelerator: cuda\n  architecture: {architecture}\n"
              f"  cuda_architectures: {architectures}\n  cuda_version: {version}\n")  # fmt: skip
    code, err = validate(write_cortexfile(f"version: 1\n{target}"), capsys)
    if refused is None:
        assert code == 0, err
        return
    assert code == 2
    assert refused in err, err


def test_the_fedora_cuda_image_refuses_what_its_cuda_12_4_cannot_build(
    write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target = 'target:\n  distro: fedora\n  accelerator: cuda\n  cuda_architectures: ["90", "120"]\n'
    code, err = validate(write_cortexfile(f"version: 1\n{target}build:\n  formats: [docker]\n"), capsys)
    assert code == 2
    assert ":5:23: target.cuda_architectures: the fedora/cuda image's CUDA 12.4 builds no compute capability 120" in err


@pytest.mark.parametrize("case", sorted(SYSTEMD_REFUSALS))
def test_validate_reports_what_the_systemd_plan_refuses(
    case: str, write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    body, key, words = SYSTEMD_REFUSALS[case]
    path = write_cortexfile("version: 1\nbuild:\n  formats: [systemd]\n" + body)
    with pytest.raises(ConfigError) as refused:
        make_plan(load(path, format_defaults=(FORMAT, DEFAULTS)), "0", "0" * 64)
    (by_build,) = refused.value.diagnostics
    code, err = validate(path, capsys)
    assert code == 2
    assert f"{by_build.origin}: {key}: {by_build.message}" in err, err
    assert words in by_build.message
    assert by_build.origin.line == 5


def test_rules_apply_only_to_the_formats_the_file_builds(
    write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_cortexfile("version: 1\nserver:\n  port: 80\nbuild:\n  formats: [docker]\n")
    assert validate(path, capsys)[0] == 0  # a container may listen on 80; the systemd service may not


def test_build_refuses_every_format_before_building_any(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\nserver:\n  port: 80\ntarget:\n  accelerator: rocm\n")
    out = path.parent / "out"
    command = [sys.executable, "-m", "menlo_cortex", "build", "-f", str(path), "-o", str(out)]
    command += ["--format", "docker", "--format", "systemd"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"{path}:3:9: server.port: port 80 is below 1024" in done.stderr
    assert f"{path}:5:16: target.accelerator: no image template for distro `debian` with accelerator `rocm`" in (
        done.stderr
    )
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["docker", "oci", "kube", "systemd", "disk"])
@pytest.mark.parametrize(
    "source",
    ["https://user:pw@models.example/m.gguf", "https://bucket.example/m.gguf?X-Amz-Signature=abc&X-Amz-Expires=300"],
)
def test_a_model_url_with_credentials_or_a_signature_is_never_published(
    fmt: str, source: str, write_cortexfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The Cortexfile goes into the ConfigMap, the image or the bundle as it is: so would the URL's secret."""
    body = (
        f"version: 1\nbuild:\n  formats: [{fmt}]\nmodels:\n  - id: m\n    source: '{source}'\n    sha256: {'a' * 64}\n"
    )
    code, err = validate(write_cortexfile(body), capsys)
    assert code == 2, err
    assert "6:13: models[0].source: a URL with credentials or a query (a signature?) would be published" in err
    assert "X-Amz-Signature=abc" not in err
    assert "pw@" not in err
