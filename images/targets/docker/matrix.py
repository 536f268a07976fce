"""From which bases, with which packages, the docker target makes each distro x accelerator image.

Data only; which pairs exist is declared in cortexfile/format_rules.py (IMAGE_PAIRS), where
`cortex validate` reads it too. Package names are each distribution's own; the builder list is what compiles
llama-cpp-python (dropped when prebuilt wheels are given), the runtime list is all the final
image gets besides the base and the Python environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from menlo_cortex.cortexfile.format_rules import (
    IMAGE_PAIRS,
    UNVERIFIED_RELEASES,
    cuda_off_amd64,
    jetson_off_arm64,
    pinned_cuda,
    unsupported_image,
    unverified_release,
)


@dataclass(frozen=True)
class Flavor:
    """One supported distro x accelerator pair."""

    builder_image: str
    runtime_image: str
    python: tuple[str, ...]  # the builder's Python with venv support
    compilers: tuple[str, ...]  # only when llama-cpp-python is compiled (and patched: patch(1))
    builder_extra: tuple[str, ...] = ()  # accelerator SDK for compiling
    runtime: tuple[str, ...] = ()  # what the final image adds to its base
    repo_setup: tuple[str, ...] = ()  # shell steps adding a vendor repository (CUDA, ROCm)
    final_steps: tuple[str, ...] = ()  # shell steps on the final image's base, before its own set-up


@dataclass(frozen=True)
class Cuda:
    """One CUDA version: its packages in NVIDIA's repositories, and NVIDIA's images (docker.io/nvidia/cuda)."""

    packages: str  # as package names spell it: cuda-toolkit-12-8
    image: str  # nvidia/cuda's tag, {kind} devel or runtime: 12.8.1-devel-ubuntu24.04


# target.cuda_version -> its CUDA (cortexfile/schema/target.py: CUDA_CAPABILITIES). NVIDIA's images on Ubuntu 24.04:
# its Python is 3.12 (22.04's 3.10 is older than the project needs).
CUDA = MappingProxyType(
    {"12": Cuda("12-8", "12.8.1-{kind}-ubuntu24.04"), "13": Cuda("13-0", "13.0.2-{kind}-ubuntu24.04")}
)
# A Jetson's (Target.jetson): 13.2, the first CUDA whose arm64 images run on Orin (JetPack 7.2, and Thor on it too),
# without the discrete GPUs' forward-compatibility driver in cuda/compat, which would shadow the Jetson's own
# driver that the container toolkit mounts.
JETSON_CUDA = Cuda("13-2", "13.2.1-{kind}-ubuntu24.04")
_WITHOUT_COMPAT_DRIVER = ("rm -rf /usr/local/cuda-*/compat",)


class UnsupportedTarget(ValueError):
    """A distro x accelerator pair without templates."""


_DEBIAN = "docker.io/library/debian:{release}-slim"  # target.release
_UBUNTU = "docker.io/library/ubuntu:24.04"
_ALPINE = "docker.io/library/alpine:3.20"
_ARCH = "docker.io/library/archlinux:base"
_FEDORA = "registry.fedoraproject.org/fedora:40"

_APT_PY, _APT_CC = ("python3", "python3-venv"), ("build-essential", "cmake")
_APT_RUN = ("python3", "libgomp1", "ca-certificates")
_APK_PY, _APK_CC = ("python3", "py3-pip"), ("build-base", "cmake", "linux-headers")
_APK_RUN = ("python3", "libgomp", "libstdc++", "ca-certificates")
_PAC_PY, _PAC_CC = ("python",), ("base-devel", "cmake")
_PAC_RUN = ("python", "gcc-libs", "ca-certificates")
_DNF_PY, _DNF_CC = ("python3",), ("gcc", "gcc-c++", "make", "cmake", "patch")
_DNF_RUN = ("python3", "libgomp", "libstdc++", "ca-certificates")

_NV = "https://developer.download.nvidia.com/compute/cuda/repos"
_CUDA_DEBIAN_REPO = (
    f"python3 -c \"import urllib.request as u; u.urlretrieve('{_NV}/debian12/x86_64/cuda-keyring_1.1-1_all.deb',"
    " '/tmp/cuda-keyring.deb')\"",
    "dpkg -i /tmp/cuda-keyring.deb",
    "apt-get update",
)
_CUDA_FEDORA_REPO = (f"dnf config-manager --add-repo {_NV}/fedora39/x86_64/cuda-fedora39.repo",)
_CUDA_FEDORA = ("cuda-cudart-12-4", "libcublas-12-4")  # what NVIDIA's Fedora 39 repository holds: CUDA 12 only
_CUDA_LIBS = ("cuda-cudart-{cuda}", "libcublas-{cuda}")  # {cuda}: Cuda.packages
_VULKAN_APT = (("libvulkan-dev", "glslc"), ("libvulkan1", "mesa-vulkan-drivers"))
_VULKAN_APK = (
    ("vulkan-loader-dev", "vulkan-headers", "shaderc"),
    ("vulkan-loader", "mesa-vulkan-ati", "mesa-vulkan-intel"),
)
_VULKAN_PAC = (
    ("vulkan-icd-loader", "vulkan-headers", "shaderc"),
    ("vulkan-icd-loader", "vulkan-radeon", "vulkan-intel"),
)
_VULKAN_DNF = (("vulkan-loader-devel", "vulkan-headers", "glslc"), ("vulkan-loader", "mesa-vulkan-drivers"))


def _apt(image: str, extra: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())) -> Flavor:
    return Flavor(image, image, _APT_PY, _APT_CC, extra[0], _APT_RUN + extra[1])


def _apk(extra: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())) -> Flavor:
    return Flavor(_ALPINE, _ALPINE, _APK_PY, _APK_CC, extra[0], _APK_RUN + extra[1])


def _pacman(extra: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())) -> Flavor:
    return Flavor(_ARCH, _ARCH, _PAC_PY, _PAC_CC, extra[0], _PAC_RUN + extra[1])


def _dnf(extra: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()), repo: tuple[str, ...] = ()) -> Flavor:
    return Flavor(_FEDORA, _FEDORA, _DNF_PY, _DNF_CC, extra[0], _DNF_RUN + extra[1], repo)


FLAVORS: Mapping[tuple[str, str], Flavor] = MappingProxyType(
    {
        ("debian", "cpu"): _apt(_DEBIAN),
        ("debian", "vulkan"): _apt(_DEBIAN, _VULKAN_APT),
        ("debian", "cuda"): Flavor(
            _DEBIAN, _DEBIAN, _APT_PY, _APT_CC, ("cuda-toolkit-{cuda}",), _APT_RUN + _CUDA_LIBS, _CUDA_DEBIAN_REPO
        ),
        ("ubuntu", "cpu"): _apt(_UBUNTU),
        ("ubuntu", "vulkan"): _apt(_UBUNTU, _VULKAN_APT),
        ("ubuntu", "cuda"): Flavor(
            "docker.io/nvidia/cuda:{cuda_devel}",
            "docker.io/nvidia/cuda:{cuda_runtime}",
            _APT_PY,
            _APT_CC,
            runtime=_APT_RUN,
        ),
        ("ubuntu", "rocm"): Flavor(
            "docker.io/rocm/dev-ubuntu-24.04:6.4",  # 24.04: 22.04's Python 3.10 is older than the project needs
            "docker.io/rocm/dev-ubuntu-24.04:6.4",
            _APT_PY,
            _APT_CC,
            ("hipblas-dev", "rocblas-dev"),
            (*_APT_RUN, "hipblas", "rocblas"),
        ),
        ("alpine", "cpu"): _apk(),
        ("alpine", "vulkan"): _apk(_VULKAN_APK),
        ("arch", "cpu"): _pacman(),
        ("arch", "vulkan"): _pacman(_VULKAN_PAC),
        ("arch", "cuda"): _pacman((("cuda",), ("cuda",))),
        ("fedora", "cpu"): _dnf(),
        ("fedora", "vulkan"): _dnf(_VULKAN_DNF),
        ("fedora", "cuda"): _dnf((("cuda-toolkit-12-4",), _CUDA_FEDORA), _CUDA_FEDORA_REPO),
    }
)


if set(FLAVORS) != IMAGE_PAIRS:  # the pairs are declared once, in cortexfile/format_rules.py
    raise RuntimeError(f"image flavors {sorted(set(FLAVORS) ^ IMAGE_PAIRS)} differ from format_rules.IMAGE_PAIRS")


def flavor(
    distro: str,
    accelerator: str,
    release: str,
    cuda_version: str = "12",
    *,
    architecture: str,
    jetson: bool = False,
) -> Flavor:
    """The flavor of a pair (a Debian one on `release`, a CUDA one with that CUDA, for `architecture`, for a
    Jetson's GPU), or UnsupportedTarget listing the supported ones."""
    found = FLAVORS.get((distro, accelerator))
    if found is None:
        raise UnsupportedTarget(unsupported_image(distro, accelerator))
    if (distro, accelerator, release) in UNVERIFIED_RELEASES:
        raise UnsupportedTarget(unverified_release(accelerator, release))
    if accelerator == "cuda" and (
        refused := jetson_off_arm64(architecture, jetson)
        or cuda_off_amd64(distro, architecture)
        or pinned_cuda(distro, cuda_version)
    ):
        raise UnsupportedTarget(refused)
    if jetson:
        found = replace(found, final_steps=found.final_steps + _WITHOUT_COMPAT_DRIVER)
    cuda = JETSON_CUDA if jetson else CUDA[cuda_version]
    words = {"release": release, "cuda": cuda.packages, "cuda_devel": cuda.image.format(kind="devel"),
             "cuda_runtime": cuda.image.format(kind="runtime")}  # fmt: skip

    def filled(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.format(**words) for name in names)

    return replace(
        found,
        builder_image=found.builder_image.format(**words),
        runtime_image=found.runtime_image.format(**words),
        builder_extra=filled(found.builder_extra),
        runtime=filled(found.runtime),
    )
