"""Which Debian mirror a build takes from the host's own apt sources (images/debian.py host_mirror)."""

from __future__ import annotations

from pathlib import Path

import pytest
from menlo_cortex.images.debian import RootError, host_mirror

DEBIAN_822 = """\
Types: deb
URIs: http://mirror.corp.example/debian/
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.corp.example/debian-security
Suites: trixie-security
Components: main
"""
DOCKER_822 = """\
Types: deb
URIs: https://download.docker.com/linux/debian
Suites: trixie
Components: stable
Signed-By: /etc/apt/keyrings/docker.asc
"""


def sources(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_a_deb822_mirror_is_found_and_another_vendors_repository_passed_over(tmp_path: Path) -> None:
    # docker.sources sorts before debian.sources: read first, and not Debian's archive.
    apt = sources(
        tmp_path, {"sources.list.d/a-docker.sources": DOCKER_822, "sources.list.d/debian.sources": DEBIAN_822}
    )
    assert host_mirror(apt) == "http://mirror.corp.example/debian"


def test_the_one_line_format_and_its_options(tmp_path: Path) -> None:
    listing = (
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/microsoft.gpg] https://packages.microsoft.com/debian/12/prod"
        " bookworm main\n# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] http://deb.debian.org/debian bookworm main\n"
    )
    assert host_mirror(sources(tmp_path, {"sources.list": listing})) == "http://deb.debian.org/debian"


def test_no_debian_mirror_is_a_clear_error(tmp_path: Path) -> None:
    apt = sources(tmp_path, {"sources.list.d/docker.sources": DOCKER_822})
    with pytest.raises(RootError, match=r"build\.debian_mirror"):
        host_mirror(apt)
