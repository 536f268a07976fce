"""The image plan (BuildPlan): everything the docker and OCI targets need to render an appliance image, and
nothing else.

Derived from a resolved Cortexfile (loaded with the format's defaults layer) plus the build
options; frozen and free of host facts beyond the names of the files the build step gathered
(wheels, model digests). Secrets stay `Secret` references: only the step that writes the
builder's network file resolves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.data_folder import store_path
from menlo_cortex.cortexfile.formats import CONFIG_DIR, CORTEXFILE_NAME, DATA_DIR
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.schema.target import BuildNetwork, dispatches_cpu_variants
from menlo_cortex.cortexfile.secrets import Secret

from .architectures import platform_architecture
from .llama_source import LLAMA_VERSION, llama_patches

BACKEND_FLAGS = {"cuda": "-DGGML_CUDA=ON", "vulkan": "-DGGML_VULKAN=ON", "rocm": "-DGGML_HIP=ON"}
# Run-time dispatch between CPU variants: one ggml-cpu module per x86 feature level (x64 to
# sapphirerapids), installed beside libllama, where the runtime loads the best one that passes its
# self-test on the running CPU (runtime/models/cpu_variants.py). llama-cpp-python installs only the
# targets it names, so GGML_BACKEND_DIR (relative to the wheel's root) makes ggml install the modules.
# Added on amd64 unless the flags pin CPU features (a hardware recipe for a known CPU builds one tuned
# backend instead). Not on arm64: its variant list (up to SVE2 and SME) could not be compiled or run on
# our machines, and arm64 recipes name their CPU.
CPU_DISPATCH = ("-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON")
# Typed STRING: CMake would turn an untyped relative value into a path under the build folder.
BACKEND_DIR = "-DGGML_BACKEND_DIR:STRING=llama_cpp/lib"
BACKEND_DIR_KEYS = ("-DGGML_BACKEND_DIR=", "-DGGML_BACKEND_DIR:")
# Turing to Hopper, as before CUDA 13 (each one more adds minutes to an image's build); 13 adds Blackwell (data
# center, then consumer). target.cuda_architectures names others.
DEFAULT_CUDA_ARCHITECTURES = {"12": ("75", "80", "86", "89", "90"), "13": ("75", "80", "86", "89", "90", "100", "120")}
NOT_PORTABLE = ("-DGGML_NATIVE", "-march=native", "-mcpu=native", "-mtune=native")
OCI_SOURCE = "https://github.com/menloresearch/cortex"


@dataclass(frozen=True)
class ImageOptions:
    """What the `cortex build` command line adds to the Cortexfile."""

    format: str = "docker"
    tag: str | None = None
    platform: str | None = None  # linux/amd64 | linux/arm64; overrides target.architecture
    base_image: str | None = None  # overrides the runtime stage's base (and the builder's, when unset)
    builder_image: str | None = None
    project_wheel: str = ""  # file name of this project's wheel, built on the host
    prebuilt_wheels: tuple[str, ...] = ()  # file names from --wheels DIR (llama-cpp-python, ...)
    version: str = "0"
    created: str = "1970-01-01T00:00:00Z"  # SOURCE_DATE_EPOCH as RFC 3339


@dataclass(frozen=True)
class ModelLayer:
    id: str
    sha256: str
    context_name: str  # path inside the build context
    image_path: str  # where the model store expects it in the image


@dataclass(frozen=True)
class BuildNetworkPlan:
    proxy: Secret | None
    no_proxy: tuple[str, ...]
    ca_certificates: tuple[str, ...]  # host paths, concatenated into the builder's extra bundle
    pip_index_url: Secret | None

    @property
    def has_extra_ca(self) -> bool:
        return bool(self.ca_certificates)


@dataclass(frozen=True)
class BuildPlan:
    format: str
    distro: str
    release: str  # the Debian release, for a Debian base (distro debian, the OCI root)
    accelerator: str
    architecture: str
    llama_cmake_args: tuple[str, ...]
    cuda_architectures: tuple[str, ...]
    cuda_version: str  # target.cuda_version: "12" or "13"
    jetson: bool  # for a Jetson's GPU (Target.jetson)
    base_image: str | None
    builder_image: str | None
    tag: str | None
    project_wheel: str
    prebuilt_wheels: tuple[str, ...]
    port: int
    tls: bool
    data_dir: str
    config_hash: str
    models: tuple[ModelLayer, ...]
    network: BuildNetworkPlan
    labels: tuple[tuple[str, str], ...]
    config_dir: str = CONFIG_DIR
    cortexfile_name: str = CORTEXFILE_NAME
    llama_version: str = LLAMA_VERSION
    llama_patches: tuple[str, ...] = ()  # file names in images/llama_patches/<version>/, applied in order
    debian_mirror: str | None = None  # build.debian_mirror (the OCI root); None: the build host's own

    @property
    def llama_source_dir(self) -> str:
        """Where the builder stage unpacks the llama-cpp-python sdist it patches and compiles."""
        return f"/tmp/llama/llama_cpp_python-{self.llama_version}"

    @property
    def platform(self) -> str:
        return f"linux/{self.architecture}"

    @property
    def compiles_llama(self) -> bool:
        """Without a prebuilt llama-cpp-python wheel the builder stage compiles it."""
        return not any(name.startswith("llama_cpp_python-") for name in self.prebuilt_wheels)

    @property
    def cmake_args(self) -> tuple[str, ...]:
        """The Cortexfile's llama.cpp flags made portable: never native, the accelerator's backend
        on, CUDA architectures listed, CPU variants chosen at run time (see CPU_DISPATCH)."""
        args = ["-DGGML_NATIVE=OFF"]
        args += [a for a in self.llama_cmake_args if not a.startswith((*NOT_PORTABLE, "-DCMAKE_CUDA_ARCHITECTURES="))]
        backend = BACKEND_FLAGS.get(self.accelerator)
        if backend and backend not in args:
            args.append(backend)
        if self.accelerator == "cuda":
            architectures = self.cuda_architectures or DEFAULT_CUDA_ARCHITECTURES[self.cuda_version]
            args.append("-DCMAKE_CUDA_ARCHITECTURES=" + ";".join(architectures))
        if dispatches_cpu_variants(self.architecture, args):
            args += CPU_DISPATCH
        if "-DGGML_BACKEND_DL=ON" in args and not any(a.startswith(BACKEND_DIR_KEYS) for a in args):
            args.append(BACKEND_DIR)
        return tuple(args)

    @property
    def cmake_args_env(self) -> str:
        """CMAKE_ARGS as llama-cpp-python reads it: the flags, space-separated."""
        return " ".join(self.cmake_args)

    @property
    def config_path(self) -> str:
        return f"{self.config_dir}/{self.cortexfile_name}"

    @property
    def entrypoint(self) -> tuple[str, ...]:
        return ("/opt/cortex/bin/cortex", "start", "--defaults", self.format, "-f", self.config_path)

    @property
    def healthcheck(self) -> tuple[str, ...]:
        return ("/opt/cortex/bin/cortex", "probe", "--defaults", self.format, "-f", self.config_path)


def make_plan(
    config: Cortexfile,
    options: ImageOptions,
    model_digests: dict[str, str] | None = None,
    build_network: BuildNetwork | None = None,
) -> BuildPlan:
    """`config` is the Cortexfile as the image will load it (with the format's defaults layer).

    `model_digests` maps a baked model's id to its verified sha256 (from the host's store);
    `build_network` is the build host's view of `build.network` (its env may add to the file).
    """
    target = config.target
    architecture = platform_architecture(options.platform) or target.architecture.value
    digest = config_hash(config)
    return BuildPlan(
        format=options.format,
        distro=target.distro.value,
        release=target.release.value,
        debian_mirror=config.build.debian_mirror,
        accelerator=target.accelerator.value,
        architecture=architecture,
        llama_cmake_args=tuple(target.llama_cmake_args),
        cuda_architectures=tuple(target.cuda_architectures),
        cuda_version=target.cuda_version.value,
        jetson=target.jetson,
        base_image=options.base_image,
        builder_image=options.builder_image or options.base_image,
        tag=options.tag,
        project_wheel=options.project_wheel,
        prebuilt_wheels=tuple(sorted(options.prebuilt_wheels)),
        port=config.server.port,
        tls=config.server.tls.cert is not None,
        data_dir=str(config.data.path),
        config_hash=digest,
        models=_model_layers(config, model_digests or {}),
        network=_network(build_network or config.build.network),
        labels=_labels(config, options, digest),
        llama_patches=tuple(patch.name for patch in llama_patches()),
    )


def _model_layers(config: Cortexfile, digests: dict[str, str]) -> tuple[ModelLayer, ...]:
    if not config.build.bake_models:
        return ()
    data = config.data.path
    layers = {}
    for model in config.models:
        sha = digests.get(model.id) or model.sha256
        if sha is None:
            raise ValueError(f"model `{model.id}`: a baked model needs its sha256")
        image_path = str(store_path(data or Path(DATA_DIR), sha))
        layers[sha] = ModelLayer(model.id, sha, f"models/{sha}.gguf", image_path)
    return tuple(layers[sha] for sha in sorted(layers))


def _network(net: BuildNetwork) -> BuildNetworkPlan:
    return BuildNetworkPlan(
        proxy=net.proxy,
        no_proxy=tuple(net.no_proxy),
        ca_certificates=tuple(str(p) for p in net.ca_certificates),
        pip_index_url=net.pip_index_url,
    )


def _labels(config: Cortexfile, options: ImageOptions, digest: str) -> tuple[tuple[str, str], ...]:
    ids = ", ".join(m.id for m in config.models) or "none (mount a Cortexfile)"
    labels = {
        "org.opencontainers.image.title": "cortex",
        "org.opencontainers.image.description": f"Cortex LLM appliance serving: {ids}",
        "org.opencontainers.image.source": OCI_SOURCE,
        "org.opencontainers.image.version": options.version,
        "org.opencontainers.image.created": options.created,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.vendor": "Menlo Research",
        "ai.menlo.cortex.config-hash": digest,
        "ai.menlo.cortex.distro": config.target.distro.value,
        "ai.menlo.cortex.accelerator": config.target.accelerator.value,
    }
    return tuple(sorted(labels.items()))
