"""Every archive Cortex writes follows one member rule (images/reproducible.py): relative names, numeric
owners, fixed modes, the build's time. Here the systemd bundle's tarball and the docker context's tar."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from menlo_cortex.images.artifacts import Artifact
from menlo_cortex.images.targets.docker.build import write_tar
from menlo_cortex.images.targets.systemd.archive import write_tarball


def _rule_held(members: list[tarfile.TarInfo], epoch: int) -> None:
    for info in members:
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", epoch), info.name
        assert info.mode in (0o644, 0o755), (info.name, oct(info.mode))
        assert not info.name.startswith("/")
        assert ".." not in info.name.split("/")


def test_the_bundle_tarball_keeps_only_names_bytes_and_the_executable_bit(tmp_path: Path) -> None:
    folder = tmp_path / "cortex-1-amd64"
    (folder / "wheels").mkdir(parents=True)
    (folder / "install.sh").write_text("#!/bin/sh\n")
    (folder / "install.sh").chmod(0o700)
    (folder / "wheels" / "a.whl").write_bytes(b"wheel")
    (folder / "wheels" / "a.whl").chmod(0o600)
    tarball, sha = write_tarball(folder, 1234)
    with tarfile.open(tarball) as archive:
        members = archive.getmembers()
    _rule_held(members, 1234)
    modes = {info.name: info.mode for info in members}
    assert modes["cortex-1-amd64/install.sh"] == 0o755
    assert modes["cortex-1-amd64/wheels/a.whl"] == 0o644
    assert [info.name for info in members] == sorted(info.name for info in members)
    assert tarball.with_name(tarball.name + ".sha256").read_text() == f"{sha}  {tarball.name}\n"


def test_the_docker_context_tar_follows_the_same_rule(tmp_path: Path) -> None:
    host_file = tmp_path / "model.gguf"
    host_file.write_bytes(b"GGUF")
    host_file.chmod(0o600)
    stream = io.BytesIO()
    write_tar({"Dockerfile": Artifact(b"FROM x\n"), "models/m.gguf": Artifact(host_file)}, stream, 99)
    stream.seek(0)
    with tarfile.open(fileobj=stream) as archive:
        _rule_held(archive.getmembers(), 99)
