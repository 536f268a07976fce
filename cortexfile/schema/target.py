"""`target:` the hardware an appliance is built for, and `build:` what to produce."""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, WithJsonSchema, field_validator

from .. import formats
from ..secrets import Secret
from .base import Applies, NormalPath, Section, setting, word_rule
from .kube import KubeDeployment
from .systemd import SystemdService


class Distro(StrEnum):
    alpine = "alpine"
    debian = "debian"
    ubuntu = "ubuntu"
    arch = "arch"
    fedora = "fedora"


class DebianRelease(StrEnum):
    """The Debian release of the roots Cortex builds: disk images, the OCI image, the docker target's Debian
    image. By code name; the number (12, 13) is accepted."""

    bookworm = "bookworm"  # Debian 12 (oldstable)
    trixie = "trixie"  # Debian 13 (stable)


RELEASE_NUMBERS = {"12": DebianRelease.bookworm.value, "13": DebianRelease.trixie.value}


def normalize_release(value: object) -> object:
    if isinstance(value, int | str) and not isinstance(value, bool):
        name = str(value).strip().lower().removeprefix("debian").strip()
        return RELEASE_NUMBERS.get(name, name)
    return value


class Accelerator(StrEnum):
    cpu = "cpu"
    cuda = "cuda"
    vulkan = "vulkan"
    rocm = "rocm"


class CudaVersion(StrEnum):
    """The CUDA of images for accelerator cuda (images/targets/docker/matrix.py: CUDA)."""

    v12 = "12"
    v13 = "13"


# The compute capabilities each CUDA's nvcc builds for (--list-gpu-arch): 12.8, then 13.0, which dropped Maxwell,
# Pascal and Volta and renamed Thor's 101 to 110; 12.4 (Fedora's image) stops at Hopper.
CUDA_12_4_CAPABILITIES = frozenset({50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90})
CUDA_CAPABILITIES = {
    CudaVersion.v12: CUDA_12_4_CAPABILITIES | {100, 101, 120},
    CudaVersion.v13: frozenset({75, 80, 86, 87, 89, 90, 100, 103, 110, 120, 121}),
}
# The Jetsons' GPUs by compute capability. Until CUDA 13 a Jetson's CUDA was L4T's own kind, not the servers' (SBSA)
# that NVIDIA's arm64 images and repositories hold, which crashes or finds no GPU on a Jetson. CUDA 13 is one kind
# for both: Thor's (110; 101 in CUDA 12) from 13.0, Orin's (87) from 13.2 with JetPack 7.2. Nano, TX2 and Xavier
# stay on L4T's CUDA of JetPack 5 or older, which no image here holds.
JETSON_GPUS = frozenset({87, 110})
LEGACY_JETSON_GPUS = frozenset({53, 62, 72})
INTEGRATED_GPUS = JETSON_GPUS | {121}  # and a DGX Spark's (GB10): each computes in the host's memory


class Architecture(StrEnum):
    amd64 = "amd64"
    arm64 = "arm64"


ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "arm64/v8": "arm64"}


def normalize_architecture(value: object) -> object:
    if isinstance(value, str):
        name = value.strip().lower().removeprefix("linux/")
        return ARCH_ALIASES.get(name, name)
    return value


# Both reach a RUN line of the image's builder stage (CMAKE_ARGS). Only llama.cpp's own options
# (GGML_*, LLAMA_*) and the CUDA architectures: generic CMake variables such as
# CMAKE_C_COMPILER_LAUNCHER, CMAKE_TOOLCHAIN_FILE or CMAKE_PROJECT_INCLUDE run arbitrary programs in
# the builder, which holds the build's secrets and writes the image that is pushed.
CMakeFlag = Annotated[
    str,
    word_rule(
        r"-D(?:GGML_|LLAMA_)[A-Z0-9_]+(?::[A-Z]+)?=[A-Za-z0-9_.+,;/@-]*|-DCMAKE_CUDA_ARCHITECTURES=[0-9a-z;-]+",
        "a llama.cpp build option is -DGGML_...=VALUE or -DLLAMA_...=VALUE (or -DCMAKE_CUDA_ARCHITECTURES=...)",
    ),
]
CudaArchitecture = Annotated[
    str,
    word_rule(r"[0-9]{2,3}[a-z]?(-real|-virtual)?", "a CUDA architecture is a compute capability such as 87 or 90a"),
]


# Flags that pin the CPU features llama.cpp is built for: without one, an amd64 build carries every ggml CPU
# variant and the device loads the best that runs (images/image_plan.py adds them; runtime/models/cpu_variants.py
# picks one).
CPU_CHOICES = (
    "-DGGML_AVX",
    "-DGGML_F16C",
    "-DGGML_FMA",
    "-DGGML_BMI2",
    "-DGGML_SSE",
    "-DGGML_AMX",
    "-DGGML_CPU_ARM_ARCH",
    "-DGGML_CPU_ALL_VARIANTS",
)


def dispatches_cpu_variants(architecture: str, cmake_args: Iterable[str]) -> bool:
    """Whether a build for `architecture` with these flags carries every CPU variant (the device picks one)."""
    return architecture == "amd64" and not any(argument.startswith(CPU_CHOICES) for argument in cmake_args)


class Target(Section):
    applies = Applies.inert
    hardware: str | None = setting(None, "Hardware recipe (recipes/hardware) that sets the fields below.")
    distro: Distro = setting(Distro.debian, "Base distribution of images.")
    release: DebianRelease = setting(
        DebianRelease.trixie,
        "Debian release of the images Cortex builds from Debian (disk, OCI, docker with distro debian): trixie "
        "(13) or bookworm (12).",
    )
    accelerator: Accelerator = setting(Accelerator.cpu, "Compute backend llama.cpp is built for.")
    architecture: Architecture = setting(Architecture.amd64, "CPU architecture (OCI names; x86_64/aarch64 accepted).")
    llama_cmake_args: list[CMakeFlag] = setting(
        ["-DGGML_NATIVE=OFF"], "CMake flags for building llama.cpp (portable: never -march=native)."
    )
    cuda_architectures: list[CudaArchitecture] = setting(
        [],
        "CUDA compute capabilities to build for (e.g. 87 for Orin, with cuda_version 13; unset: Turing to Hopper, and "
        "Blackwell with 13).",
    )
    cuda_version: CudaVersion = setting(
        CudaVersion.v12,
        "CUDA of images for accelerator cuda: 12 (CUDA 12.8, for NVIDIA drivers 570 and later) or 13 (CUDA 13.0, "
        "drivers 580 and later, Turing GPUs and newer; a Jetson's: 13.2, JetPack 7.2 and later). Arch Linux images "
        "take Arch's own CUDA; Fedora's are 12.",
    )
    memory_mb: int | None = setting(
        None,
        "Memory of the device (MiB): `cortex build` warns of a model that will not fit it, and `cortex init` "
        "picks a model for it. Board recipes give their most common size.",
        ge=64,
        le=1 << 24,
    )

    _arch = field_validator("architecture", mode="before")(normalize_architecture)
    _release = field_validator("release", mode="before")(normalize_release)

    @field_validator("cuda_architectures")
    @classmethod
    def _run_on_the_jetson_they_name(cls, architectures: list[str], info: ValidationInfo) -> list[str]:
        """An arm64 image's: on amd64 a Jetson's compute capability is only one more to build, for no GPU there
        (an image for nothing else is refused by the docker format's rules)."""
        cuda = info.data.get("accelerator") is Accelerator.cuda
        if cuda and info.data.get("architecture") is Architecture.arm64 and (refused := jetson_refusal(architectures)):
            raise ValueError(refused)
        return architectures

    @field_validator("cuda_version")
    @classmethod
    def _builds_the_architectures(cls, version: CudaVersion, info: ValidationInfo) -> CudaVersion:
        """Checked here, after the architectures (declared before it): the error is this key's."""
        if info.data.get("accelerator") is not Accelerator.cuda:
            return version
        architectures = info.data.get("cuda_architectures") or []
        arm64 = info.data.get("architecture") is Architecture.arm64
        if arm64 and version is CudaVersion.v12 and any(capability(name) == 87 for name in architectures):
            raise ValueError(ORIN_ON_CUDA_12)
        outside = unbuilt(architectures, CUDA_CAPABILITIES[version])
        if outside:
            other = "12 for older GPUs" if version is CudaVersion.v13 else "13 for newer ones"
            raise ValueError(
                f"CUDA {version.value} builds no compute capability {', '.join(outside)} (target.cuda_architectures): "
                f"it builds {', '.join(map(str, sorted(CUDA_CAPABILITIES[version])))}; or use cuda_version {other}"
            )
        return version

    @field_validator("cuda_version", mode="before")
    @classmethod
    def _cuda_version_as_written(cls, value: object) -> object:
        """YAML reads `cuda_version: 12` as a number."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def jetson(self) -> bool:
        """Built for a Jetson's GPU: CUDA for Orin or Thor alone (jetson_refusal refuses a mix)."""
        return self._cuda_for(JETSON_GPUS)

    @property
    def integrated_gpu(self) -> bool:
        """Built for a GPU that computes in the host's memory: a Jetson's, a DGX Spark's."""
        return self._cuda_for(INTEGRATED_GPUS)

    def _cuda_for(self, gpus: frozenset[int]) -> bool:
        found = {capability(name) for name in self.cuda_architectures}
        return self.accelerator is Accelerator.cuda and bool(found) and found <= gpus


ORIN_ON_CUDA_12 = (
    "compute capability 87 (target.cuda_architectures) is Jetson Orin's, whose CUDA 12 is L4T's, which no image here "
    "holds (NVIDIA's arm64 CUDA 12 images are the servers' kind, which crashes on a Jetson): set cuda_version 13, "
    "whose images run on Orin from JetPack 7.2"
)


def jetson_refusal(architectures: Iterable[str]) -> str | None:
    """Why no arm64 image built for these CUDA architectures runs on the Jetson one of them names, or why one
    image cannot serve a Jetson and another GPU; None where it can."""
    found = {capability(name): name for name in architectures}
    if legacy := sorted(found.keys() & LEGACY_JETSON_GPUS):
        fix = "drop it" if len(found) > 1 else "use accelerator cpu"
        return (f"compute capability {found[legacy[0]]} (target.cuda_architectures) is a Jetson Nano's, TX2's or "
                f"Xavier's, whose CUDA is L4T's of JetPack 5 or older, which no image here holds: {fix}")  # fmt: skip
    if 101 in found:
        return ("compute capability 101 (target.cuda_architectures) is Jetson Thor's, which CUDA 13 calls 110: "
                "use 110, with cuda_version 13")  # fmt: skip
    jetsons, others = sorted(found.keys() & JETSON_GPUS), sorted(found.keys() - JETSON_GPUS)
    if jetsons and others:
        return (f"compute capability {found[jetsons[0]]} (target.cuda_architectures) is a Jetson's, whose image is "
                f"its own: build one for it and another for {', '.join(found[c] for c in others)}")  # fmt: skip
    return None


def unbuilt(architectures: Iterable[str], built: frozenset[int]) -> list[str]:
    """The architectures (`90`, `90a`, `87-real`) whose compute capability is not in `built`."""
    return [name for name in architectures if capability(name) not in built]


def capability(architecture: str) -> int:
    """`87` of `87`, `87-real` or `90a`'s 90."""
    return int(re.sub(r"\D.*", "", architecture))


def _known_format(name: str) -> str:
    if name not in formats.FORMATS:
        raise ValueError(f"`cortex build` makes no `{name}` output; it makes: {', '.join(formats.names())}")
    return name


# A name from the one list of output formats (cortexfile/formats.py), an enum in the JSON Schema.
FormatName = Annotated[str, AfterValidator(_known_format), WithJsonSchema({"type": "string", "enum": formats.names()})]


class BuildNetwork(Section):
    proxy: Secret | None = setting(None, "HTTP(S) proxy URL for build steps; may hold credentials.")
    no_proxy: list[str] = setting([], "Hosts reached without the build proxy.")
    ca_certificates: list[NormalPath] = setting(
        [], "Extra PEM CA certificates trusted by build steps (corporate TLS proxies); kept out of the final image."
    )
    pip_index_url: Secret | None = setting(None, "Python package index mirror for build steps.")


# Written into debootstrap's command line, apt's sources.list inside roots, the lock and the SBOM: a plain URL.
DebianMirror = Annotated[
    str,
    word_rule(
        r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~/%+-]{0,500})?",
        "a Debian mirror is http(s)://host[:port]/path (no credentials, query or spaces)",
    ),
]


# A version that orders as numbers do (1.10.0 after 1.9.3): device updates never install a lower one.
AppVersion = Annotated[
    str, word_rule(r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}", "a version of one to four dotted numbers, such as 1.4.2")
]


class Build(Section):
    applies = Applies.inert
    version: AppVersion | None = setting(
        None,
        "The appliance's version (dotted numbers: 1.4.2). A disk image carries it as IMAGE_VERSION in its "
        "os-release; /health reports it as system.version to key holders.",
    )
    formats: list[FormatName] = setting(["docker"], "Outputs `cortex build` makes by default.")
    debian_mirror: DebianMirror | None = setting(
        None, "Debian mirror the disk and OCI roots come from; unset: the one this machine's apt sources name."
    )
    bake_models: bool = setting(True, "Put the models into the image or bundle (else mount or fetch at start).")
    network: BuildNetwork = Field(default_factory=BuildNetwork, description="Network settings for build steps.")
    systemd: SystemdService = Field(
        default_factory=SystemdService, description="The service that `--format systemd` installs."
    )
    kube: KubeDeployment = Field(
        default_factory=KubeDeployment, description="The Kubernetes manifests that `--format kube` writes."
    )
