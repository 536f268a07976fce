"""The arm64 llama-cpp-python wheel that `make arm64-wheel` cross-compiles on an x86_64 host
(scripts/llama-wheel.sh --arch arm64): aarch64 libraries only, tagged linux_aarch64, every armv8 CPU
variant beside libllama; under qemu the variant fitting the emulated CPU loads and runs the model.
And the systemd bundle for linux/arm64 that it makes possible."""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from menlo_cortex.images import runtime_wheels as wheels

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "llama-wheel.sh"
SMOKE = Path(__file__).with_name("llama_smoke.c")
EM_AARCH64 = 183  # ELF e_machine
SHARED_LIBRARY = re.compile(r"\.so(\.\d+)*$")
ARM_VARIANTS = ["armv8.0_1", "armv8.2_1", "armv8.2_2", "armv8.2_3", "armv8.6_1", "armv8.6_2"]
CROSS_CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64-static"
SYSROOT = "/usr/aarch64-linux-gnu"

pytestmark = [pytest.mark.arm64, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def arm64_wheel() -> Path:
    """Built once per (version, flags, compiler) into the cache the bundle target reads (~12 min cold)."""
    if platform.machine() == "x86_64":
        assert shutil.which(CROSS_CC), f"no {CROSS_CC}: scripts/setup-arm64.sh installs crossbuild-essential-arm64"
    env = {key: value for key, value in os.environ.items() if key not in ("ARCH", "CORTEX_WHEEL_CACHE")}
    env["PYTHON"] = sys.executable
    command = [str(SCRIPT), "--arch", "arm64"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1700, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    (wheel,) = folder.glob("llama_cpp_python-*.whl")
    return wheel


@pytest.fixture(scope="module")
def unpacked(arm64_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    into = tmp_path_factory.mktemp("arm64-wheel")
    with zipfile.ZipFile(arm64_wheel) as archive:
        archive.extractall(into)
    return into


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF file"
    assert data[4:6] == b"\x02\x01", "not a 64-bit little-endian ELF file"
    return int.from_bytes(data[18:20], "little")


def test_the_wheel_is_tagged_linux_aarch64_with_a_matching_record(arm64_wheel: Path) -> None:
    assert arm64_wheel.name == "llama_cpp_python-0.3.36-py3-none-linux_aarch64.whl"
    with zipfile.ZipFile(arm64_wheel) as archive:
        names = archive.namelist()
        info = next(name for name in names if name.endswith(".dist-info/WHEEL"))
        assert re.findall(r"(?m)^Tag: (.+)$", archive.read(info).decode()) == ["py3-none-linux_aarch64"]
        record = next(name for name in names if name.endswith(".dist-info/RECORD"))
        rows = [line.split(",") for line in archive.read(record).decode().splitlines() if line]
        assert sorted(row[0] for row in rows) == sorted(names)
        for path, digest, size in rows:
            if path == record:
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, size) == (f"sha256={expected}", str(len(data))), path


def test_every_shared_library_is_aarch64(arm64_wheel: Path) -> None:
    with zipfile.ZipFile(arm64_wheel) as archive:
        libraries = [name for name in archive.namelist() if SHARED_LIBRARY.search(name)]
        machines = {name: elf_machine(archive.read(name)) for name in libraries}
    assert len(libraries) >= 10
    assert {name: machine for name, machine in machines.items() if machine != EM_AARCH64} == {}


def test_lib_holds_libllama_ggml_and_every_armv8_variant(arm64_wheel: Path) -> None:
    with zipfile.ZipFile(arm64_wheel) as archive:
        lib = {Path(name).name for name in archive.namelist() if name.startswith("llama_cpp/lib/")}
    assert {"libllama.so", "libggml.so", "libggml-base.so", "libmtmd.so"} <= lib
    assert {f"libggml-cpu-{variant}.so" for variant in ARM_VARIANTS} <= lib
    assert not {name for name in lib if "x64" in name or "haswell" in name}
    info = (arm64_wheel.parent / "BUILD-INFO").read_text(encoding="utf-8")
    assert "architecture=aarch64" in info
    assert "-DGGML_CPU_ALL_VARIANTS=ON" in info


def test_the_bundle_target_finds_it(arm64_wheel: Path) -> None:
    assert wheels.llama_wheel("arm64") == arm64_wheel
    assert wheels.llama_wheel("amd64").name.endswith("linux_x86_64.whl")


@pytest.fixture(scope="module")
def smoke(unpacked: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/images/llama_smoke.c, cross-compiled against the wheel's headers and libraries."""
    assert shutil.which(CROSS_CC), "scripts/setup-arm64.sh installs the cross compiler"
    assert shutil.which(QEMU), "scripts/setup-arm64.sh installs qemu-user-static"
    program = tmp_path_factory.mktemp("smoke") / "llama_smoke"
    lib = unpacked / "llama_cpp" / "lib"
    command = [CROSS_CC, "-O1", "-o", str(program), str(SMOKE), f"-I{unpacked / 'include'}", f"-L{lib}"]
    command += ["-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{lib}"]
    subprocess.run(command, check=True, timeout=120)
    return program


def run_arm64(program: Path, cpu: str, *args: str, timeout: int = 120) -> str:
    command = [QEMU, "-L", SYSROOT, "-cpu", cpu, str(program), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-1000:]
    return done.stdout


@pytest.mark.parametrize(
    ("cpu", "variant"),
    [("cortex-a72", "armv8.0_1"), ("cortex-a76", "armv8.2_2"), ("neoverse-n1", "armv8.2_2")],
)
def test_under_qemu_ggml_loads_the_variant_for_the_cpu(smoke: Path, unpacked: Path, cpu: str, variant: str) -> None:
    """Raspberry Pi 4 (A72: armv8.0, no dotprod) gets the baseline; Pi 5 (A76) dotprod and fp16."""
    out = run_arm64(smoke, cpu, str(unpacked / "llama_cpp" / "lib"))
    assert "device: CPU" in out, out
    assert f"variant: {variant}\n" in out, out


def test_under_qemu_the_model_generates_on_a_raspberry_pi_4_cpu(
    smoke: Path, unpacked: Path, test_model_path: Path
) -> None:
    out = run_arm64(smoke, "cortex-a72", str(unpacked / "llama_cpp" / "lib"), str(test_model_path), timeout=600)
    assert "variant: armv8.0_1\n" in out, out
    generated = next(line for line in out.splitlines() if line.startswith("generated:"))
    assert generated.removeprefix("generated:").strip(), out


def test_a_systemd_bundle_for_arm64_holds_aarch64_wheels(arm64_wheel: Path, tmp_path: Path) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text(
        "version: 1\nmodels:\n  - id: gemma\n    preset: gemma3-270m-q4km\nbuild:\n  bake_models: false\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "menlo_cortex", "build", "-f", str(cortexfile), "--format", "systemd"]
    command += ["--platform", "linux/arm64", "-o", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (bundle,) = (tmp_path / "out").glob("cortex-*-arm64")
    found = {wheel.name: wheel for wheel in (bundle / "wheels").glob("*.whl")}
    assert arm64_wheel.name in found
    assert found[arm64_wheel.name].read_bytes() == arm64_wheel.read_bytes()
    platforms = {name: name[: -len(".whl")].rsplit("-", 1)[1] for name in found}
    assert {name: tag for name, tag in platforms.items() if tag != "any" and "aarch64" not in tag} == {}
    binary = {name.split("-")[0] for name, tag in platforms.items() if re.search(r"manylinux.*_aarch64", tag)}
    assert {"pydantic_core", "numpy", "watchfiles", "markupsafe"} <= binary, sorted(found)
