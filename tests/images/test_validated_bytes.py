"""A Cortexfile edited while a build runs is not baked: every target writes the bytes it validated."""

from __future__ import annotations

from pathlib import Path

from menlo_cortex.images.targets import BuildOptions, read_views, target

VALIDATED = b"version: 1\r\n# kept byte for byte\r\nserver:\r\n  port: 8080\r\nmodels: []\r\n"
EDITED = b"version: 1\nserver:\n  port: not-a-port\n"  # never validated


def test_a_build_bakes_the_bytes_it_validated(tmp_path: Path) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_bytes(VALIDATED)
    environ = {"HOME": str(tmp_path)}
    views = read_views(file, environ)
    file.write_bytes(EDITED)
    context, output = tmp_path / "context", tmp_path / "out"
    options = BuildOptions(file=file, output=output, context_dir=context, context_only=True, model_store=tmp_path)
    target("docker").make(views, options, environ)
    target("kube").make(views, options, environ)
    assert (context / "Cortexfile.yaml").read_bytes() == VALIDATED
    assert (output / "kube" / "Cortexfile.yaml").read_bytes() == VALIDATED  # the ConfigMap's source
