"""The build context and the plan behind it: what goes where, secrets only in build/env.sh, a
reproducible tar, two builds of one Cortexfile alike, the Cortexfile byte for byte."""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import stat
import subprocess
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.images.llama_source import llama_patches
from menlo_cortex.images.targets.docker.build import ContextFolderTaken, write_context, write_tar
from menlo_cortex.images.targets.docker.plan import BuildPlan, ImageOptions, make_plan
from menlo_cortex.images.targets.docker.render import HostFiles, render

from .rendering import OPTIONS, plan_for

SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
REPRODUCED = """\
version: 1
server:
  auth:
    api_keys: ["${{env:CORTEX_API_KEY}}"]
data:
  path: {data}
models:
  - id: gemma
    source: model.gguf
    sha256: {sha256}
    chat_format: gemma
build:
  network:
    pip_index_url: ${{env:CORTEX_PIP_MIRROR}}
    ca_certificates: [{ca}]
"""
ENVIRON = {
    "CORTEX_BUILD_PROXY": "http://u:proxy-secret@proxy.corp:3128",
    "CORTEX_PIP_MIRROR": "https://u:tok@pypi.corp/simple",
}


@pytest.fixture
def host(tmp_path: Path) -> HostFiles:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_bytes(b"version: 1  # kept byte for byte\r\n")
    wheel = tmp_path / "menlo_cortex-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF model")
    return HostFiles(cortexfile.read_bytes(), (wheel,), {SHA: model}, ENVIRON)


def test_context_holds_exactly_the_rendered_and_gathered_files(host: HostFiles) -> None:
    plan = make_plan(load(_case()).config, OPTIONS)
    files = render(_without_ca(plan), host)
    assert sorted(files) == sorted(
        [
            ".dockerignore",
            "Cortexfile.yaml",
            "Dockerfile",
            "build/env.sh",
            "build/llama-patches/0001-ggml-amx-tile-config.patch",  # the builder stage compiles llama-cpp-python
            "build/trim-venv.py",
            f"models/{SHA}.gguf",
            "wheels/menlo_cortex-0.1.0-py3-none-any.whl",
        ]
    )
    assert files["Cortexfile.yaml"].content == host.cortexfile
    assert files["build/llama-patches/0001-ggml-amx-tile-config.patch"].content == llama_patches()[0]
    prebuilt = render(
        replace(_without_ca(plan), prebuilt_wheels=("llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl",)), host
    )
    assert not [name for name in prebuilt if name.startswith("build/llama-patches/")]  # nothing to patch


def test_secrets_go_to_build_env_only(host: HostFiles, tmp_path: Path) -> None:
    plan = _without_ca(plan_for("debian", "cpu"))
    files = render(plan, host)
    env = files["build/env.sh"].content
    assert isinstance(env, bytes)
    assert files["build/env.sh"].mode == 0o600
    assert b"export https_proxy=http://u:proxy-secret@proxy.corp:3128" in env
    assert b"export PIP_INDEX_URL=https://u:tok@pypi.corp/simple" in env
    assert b"export no_proxy=localhost,internal.example" in env
    for name, artifact in files.items():
        if name != "build/env.sh" and isinstance(artifact.content, bytes):
            assert b"proxy-secret" not in artifact.content, name
            assert b"tok@" not in artifact.content, name


def real_certificates(count: int) -> list[bytes]:
    """Self-signed certificates made with openssl: the build takes only PEM certificate blocks."""
    made = []
    with tempfile.TemporaryDirectory() as folder:
        for number in range(count):
            cert, key = Path(folder) / f"{number}.pem", Path(folder) / f"{number}.key"
            command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            command += ["-subj", f"/CN=corp-ca-{number}", "-days", "2", "-keyout", str(key), "-out", str(cert)]
            subprocess.run(command, check=True, capture_output=True, timeout=60)
            made.append(cert.read_bytes().strip())
    return made


def test_extra_ca_certificates_are_concatenated_for_the_builder(host: HostFiles, tmp_path: Path) -> None:
    one, two = real_certificates(2)
    first, second = tmp_path / "a.pem", tmp_path / "b.pem"
    first.write_bytes(b"# the corporate root\n" + one)  # no newline at the end, text around it
    second.write_bytes(two + b"\n")
    text = _case().read_text(encoding="utf-8").replace("[/etc/corp/ca.pem]", f"[{first}, {second}]")
    file = tmp_path / "with-ca.yaml"
    file.write_text(text, encoding="utf-8")
    plan = make_plan(load(file, format_defaults=formats.get("docker").loader_argument()).config, OPTIONS)
    files = render(plan, host)
    assert files["build/extra-ca.pem"].content == one + b"\n" + two + b"\n"  # the certificates, nothing else
    env = files["build/env.sh"].content
    assert isinstance(env, bytes)
    assert b"export PIP_CERT=/tmp/cortex-build/ca-bundle.pem" in env


def test_context_tar_has_sorted_names_and_fixed_owner_mode_and_mtime(host: HostFiles) -> None:
    files = render(_without_ca(plan_for("debian", "cpu")), host)
    first, second = io.BytesIO(), io.BytesIO()
    write_tar(files, first, 0)
    write_tar(files, second, 0)
    assert first.getvalue() == second.getvalue()
    first.seek(0)
    with tarfile.open(fileobj=first) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == sorted(files)
    modes = {m.name: m.mode for m in members}
    assert {(m.mtime, m.uid, m.gid) for m in members} == {(0, 0, 0)}
    assert modes.pop("build/env.sh") == 0o600  # the build secrets: its owner's only, in the tar too
    assert set(modes.values()) == {0o644}


def test_two_builds_of_one_cortexfile_write_the_same_context(tmp_path: Path, cortex_command: list[str]) -> None:
    """Two real `cortex build --context-only` runs, apart in time, as CI would run them: every file,
    name and mode the same. SOURCE_DATE_EPOCH unset: reproducible by construction, not by a variable."""
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(range(256)) * 16)
    ca = tmp_path / "corp-ca.pem"
    ca.write_bytes(real_certificates(1)[0] + b"\n")
    cortexfile = tmp_path / "Cortexfile.yaml"
    sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
    cortexfile.write_text(REPRODUCED.format(data=tmp_path / "data", sha256=sha256, ca=ca), encoding="utf-8")
    environ = {key: value for key, value in os.environ.items() if key != "SOURCE_DATE_EPOCH"}
    environ["CORTEX_PIP_MIRROR"] = "https://u:token@pypi.corp/simple"
    trees: list[dict[str, tuple[int, bytes]]] = []
    for name in ("one", "two"):
        if trees:
            time.sleep(1.1)  # a clock read anywhere would differ: labels have whole seconds
        folder = tmp_path / name
        command = [*cortex_command, "build", "-f", str(cortexfile), "--format", "docker", "--context-only"]
        done = subprocess.run(
            [*command, "--context-dir", str(folder)],
            env=environ,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        trees.append(_tree(folder))
    assert {"Dockerfile", "Cortexfile.yaml", "build/env.sh", "build/extra-ca.pem"} <= set(trees[0])
    assert any(name.startswith("wheels/menlo_cortex-") for name in trees[0])
    assert any(name.startswith("models/") for name in trees[0])
    assert _differences(*trees) == []


def _tree(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Relative name -> (st_mode, content; a link's target) of everything under `folder`, folders included."""
    found = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        found[path.relative_to(folder).as_posix()] = (mode, _content(path, mode))
    return found


def _content(path: Path, mode: int) -> bytes:
    if stat.S_ISLNK(mode):
        return os.readlink(path).encode()
    return b"" if stat.S_ISDIR(mode) else path.read_bytes()


def _differences(one: dict[str, tuple[int, bytes]], two: dict[str, tuple[int, bytes]]) -> list[str]:
    """Each name only in one tree, each mode that differs, and each differing file's changed lines."""
    found = [f"only in one: {name}" for name in sorted(one.keys() - two.keys())]
    found += [f"only in two: {name}" for name in sorted(two.keys() - one.keys())]
    for name in sorted(one.keys() & two.keys()):
        (mode_one, data_one), (mode_two, data_two) = one[name], two[name]
        if mode_one != mode_two:
            found.append(f"{name}: mode {mode_one:o} != {mode_two:o}")
        if data_one != data_two:
            found.append(f"{name}: {_changed(data_one, data_two)}")
    return found


def _changed(one: bytes, two: bytes) -> str:
    try:
        lines = difflib.unified_diff(one.decode().splitlines(), two.decode().splitlines(), n=0)
    except UnicodeDecodeError:
        return f"{len(one)} bytes (sha256 {hashlib.sha256(one).hexdigest()[:12]}) != {len(two)} bytes"
    return " ".join(line for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---"))


def test_written_context_keeps_secrets_private(host: HostFiles, tmp_path: Path) -> None:
    files = render(_without_ca(plan_for("debian", "cpu")), host)
    write_context(files, tmp_path / "ctx")
    assert (tmp_path / "ctx" / "build" / "env.sh").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ctx" / "Cortexfile.yaml").read_bytes() == b"version: 1  # kept byte for byte\r\n"
    write_context(files, tmp_path / "ctx")  # an earlier context is replaced whole


def test_a_context_folder_holding_other_files_is_refused(host: HostFiles, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("years of work")
    with pytest.raises(ContextFolderTaken, match="holds files cortex build did not write"):
        write_context(render(_without_ca(plan_for("debian", "cpu")), host), tmp_path / "home")
    assert (tmp_path / "home" / "thesis.tex").read_text() == "years of work"


def test_plan_derives_from_the_image_view_of_the_config() -> None:
    resolved = load(_case(), format_defaults=formats.get("docker").loader_argument())
    plan = make_plan(resolved.config, ImageOptions(platform="linux/aarch64"))
    assert plan.architecture == "arm64"
    assert plan.port == 8443
    assert plan.tls
    assert plan.data_dir == "/var/lib/cortex"
    assert dict(plan.labels)["ai.menlo.cortex.config-hash"] == config_hash(resolved.config) == plan.config_hash
    assert [m.image_path for m in plan.models] == [f"/var/lib/cortex/models/{SHA}.gguf"]


def test_models_left_to_mount_are_not_planned(tmp_path: Path) -> None:
    text = _case().read_text(encoding="utf-8") + "  bake_models: false\n"
    file = tmp_path / "Cortexfile.yaml"
    file.write_text(text, encoding="utf-8")
    assert make_plan(load(file).config, OPTIONS).models == ()


def test_cmake_args_are_portable_whatever_the_cortexfile_says(tmp_path: Path) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_text(
        "version: 1\ntarget:\n  accelerator: cuda\n  distro: ubuntu\n"
        '  llama_cmake_args: ["-DGGML_NATIVE=ON", "-DGGML_AVX2=ON"]\n  cuda_architectures: ["86"]\n',
        encoding="utf-8",
    )
    args = make_plan(load(file).config, OPTIONS).cmake_args
    assert args == ("-DGGML_NATIVE=OFF", "-DGGML_AVX2=ON", "-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=86")


DISPATCH = ("-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_BACKEND_DIR:STRING=llama_cpp/lib")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("  architecture: amd64\n", ("-DGGML_NATIVE=OFF", *DISPATCH)),
        ("  architecture: amd64\n  accelerator: vulkan\n", ("-DGGML_NATIVE=OFF", "-DGGML_VULKAN=ON", *DISPATCH)),
        (
            '  architecture: amd64\n  llama_cmake_args: ["-DGGML_AVX512=ON"]\n',
            ("-DGGML_NATIVE=OFF", "-DGGML_AVX512=ON"),
        ),
        (
            '  architecture: amd64\n  llama_cmake_args: ["-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"]\n',
            ("-DGGML_NATIVE=OFF", *DISPATCH),
        ),
        ("  architecture: arm64\n", ("-DGGML_NATIVE=OFF",)),
    ],
    ids=["amd64-cpu", "amd64-vulkan", "amd64-pinned", "dl-without-dir", "arm64"],
)
def test_x86_builds_carry_every_cpu_variant_unless_the_features_are_pinned(
    tmp_path: Path, target: str, expected: tuple[str, ...]
) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_text("version: 1\ntarget:\n  distro: debian\n" + target, encoding="utf-8")
    assert make_plan(load(file).config, OPTIONS).cmake_args == expected


def _case() -> Path:
    return Path(__file__).parent / "cases" / "Cortexfile.yaml"


def _without_ca(plan: BuildPlan) -> BuildPlan:
    """The golden case names /etc/corp/ca.pem, which this host lacks: drop it from the plan."""
    return replace(plan, network=replace(plan.network, ca_certificates=()))


@pytest.mark.parametrize(
    ("target", "platform", "said"),
    [("  distro: debian\n  release: bookworm\n", "linux/arm64",
      "target.distro: the debian/cuda image is built for amd64 only"),
     ('  distro: ubuntu\n  cuda_architectures: ["72", "90"]\n', "linux/arm64",
      "flag --platform: target.cuda_architectures: compute capability 72 (target.cuda_architectures) is a Jetson"),
     ('  distro: ubuntu\n  architecture: arm64\n  cuda_architectures: ["87"]\n  cuda_version: 13\n', "linux/amd64",
      "target.cuda_architectures name a Jetson's GPU alone, whose CPU is arm64: build for arm64")],
    ids=["debian-arm64", "xavier-arm64", "jetson-amd64"],
)  # fmt: skip
def test_the_platform_asked_for_is_checked_as_the_target_is_before_any_step(
    target: str, platform: str, said: str, tmp_path: Path, cortex_command: list[str]
) -> None:
    """`--platform` stands for target.architecture: what validate would refuse for that architecture, the build
    refuses at once (no wheel built, no context written)."""
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text(f"version: 1\ntarget:\n  accelerator: cuda\n{target}models: []\n", encoding="utf-8")
    command = [*cortex_command, "build", "-f", str(cortexfile), "--format", "docker", "--context-only"]
    done = subprocess.run([*command, "--context-dir", str(tmp_path / "context"), "--platform", platform],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert not (tmp_path / "context").exists()
