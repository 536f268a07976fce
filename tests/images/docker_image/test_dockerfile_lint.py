"""The linter itself: each rule fires on a Dockerfile that breaks it (so a clean result means something),
and the rendered images keep the promises the linter cannot see."""

from __future__ import annotations

import pytest
from menlo_cortex.images.targets.docker.dockerfile import render_dockerfile
from menlo_cortex.images.targets.docker.matrix import FLAVORS, UnsupportedTarget

from .dockerlint import exec_form, lint, parse
from .rendering import plan_for

GOOD = render_dockerfile(plan_for("debian", "cpu"))

BREAKAGES = {
    "USER 10001:10001": ("USER root", "non-root USER"),
    "HEALTHCHECK --interval": ("# HEALTHCHECK --interval", "HEALTHCHECK"),
    "--no-install-recommends ca-certificates": ("ca-certificates", "--no-install-recommends"),
    "-DGGML_NATIVE=OFF": ("-march=native", "native"),
    "EXPOSE 8443": ("# EXPOSE 8443", "exposes no port"),
    "COPY --from=builder /opt/cortex /opt/cortex": (
        "COPY --from=builder /opt/cortex /opt/cortex\nCOPY build/ /tmp/cortex-build/",
        "copies build/",
    ),
    "ENV SSL_CERT_FILE": ("ENV https_proxy=http://u:p@proxy:3128\nENV SSL_CERT_FILE", "build-network value"),
    "debian:trixie-slim AS builder": ("debian AS builder", "not pinned"),
    "&& rm -rf /var/lib/apt/lists/*\nCOPY wheels": ("\nCOPY wheels", "/var/lib/apt/lists"),
    "--no-cache-dir --no-compile": ("--no-compile", "--no-cache-dir"),
}


def test_rendered_reference_is_clean() -> None:
    assert lint(GOOD) == []


@pytest.mark.parametrize("needle", sorted(BREAKAGES))
def test_each_rule_catches_its_breakage(needle: str) -> None:
    replacement, expected = BREAKAGES[needle]
    assert needle in GOOD
    broken = GOOD.replace(needle, replacement, 1)
    problems = lint(broken)
    assert any(expected in p for p in problems), problems


def test_final_stage_runs_the_cortexfile_as_a_non_root_user() -> None:
    final = parse(GOOD)[-1]
    assert final.base == "docker.io/library/debian:trixie-slim"
    assert exec_form(final.all("ENTRYPOINT")[0].arguments) == [
        "/opt/cortex/bin/cortex",
        "start",
        "--defaults",
        "docker",
        "-f",
        "/etc/cortex/Cortexfile.yaml",
    ]
    assert exec_form(final.all("HEALTHCHECK")[0].arguments)[1] == "probe"
    assert final.all("USER")[-1].arguments == "10001:10001"


def test_final_stage_copies_only_stage_results_models_and_the_cortexfile() -> None:
    copies = [i.arguments for i in parse(GOOD)[-1].all("COPY")]
    assert copies[0] == "--from=packages /opt/overlay/ /"
    assert copies[1] == "--from=builder /opt/cortex /opt/cortex"
    sha = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert copies[2] == f"models/{sha}.gguf /var/lib/cortex/models/{sha}.gguf"
    assert copies[3] == "Cortexfile.yaml /etc/cortex/Cortexfile.yaml"


def test_runtime_stage_never_gets_builder_only_dependencies() -> None:
    for distro, accelerator in FLAVORS:
        text = render_dockerfile(plan_for(distro, accelerator))
        assert "[runtime]" in text
        assert "[build]" not in text
        for package in ("docker", "jinja2"):  # tomli-w is the runtime's too: it pins first downloads
            assert f" {package} " not in text


@pytest.mark.parametrize(
    ("distro", "accelerator"),
    sorted(
        {(d, a) for d in ("alpine", "debian", "ubuntu", "arch", "fedora") for a in ("cpu", "cuda", "vulkan", "rocm")}
        - set(FLAVORS)
    ),
)
def test_other_pairs_are_refused_with_the_supported_list(distro: str, accelerator: str) -> None:
    with pytest.raises(UnsupportedTarget, match=r"supported: alpine/cpu, alpine/vulkan, arch/cpu"):
        render_dockerfile(plan_for(distro, accelerator))
