"""What the watcher watches, which events it keeps, and when it polls."""

from __future__ import annotations

from pathlib import Path

from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.schema.reload import Polling
from menlo_cortex.runtime.ops.mounts import mount_points
from menlo_cortex.runtime.reload.watch import (
    fingerprint,
    needs_polling,
    referenced_files,
    relevant_to,
    watched_folders,
)
from watchfiles import Change


def test_every_named_small_file_is_followed_once(tmp_path: Path) -> None:
    config = Cortexfile.model_validate(
        {
            "version": 1,
            "server": {
                "tls": {"cert": str(tmp_path / "tls" / "cert.pem"), "key": str(tmp_path / "tls" / "key.pem")},
                "auth": {
                    "api_key_file": str(tmp_path / "keys"),
                    "api_keys": ["${file:" + str(tmp_path / "keys") + "}", "${env:KEY}", "literal"],
                },
            },
        }
    )
    files = referenced_files(config, tmp_path / "Cortexfile.yaml")
    names = ["Cortexfile.yaml", "tls/cert.pem", "tls/key.pem", "keys"]
    assert files == tuple(tmp_path / name for name in names)


def test_folders_as_named_and_as_linked(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "Cortexfile.yaml").write_text("version: 1\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "Cortexfile.yaml").symlink_to(tmp_path / "real" / "Cortexfile.yaml")
    assert watched_folders([tmp_path / "etc" / "Cortexfile.yaml"]) == (tmp_path / "etc", tmp_path / "real")


def test_events_on_other_files_of_the_folder_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.yaml"
    relevant = relevant_to([path])
    assert relevant(Change.modified, str(path))
    assert relevant(Change.added, str(tmp_path / "..data"))  # a ConfigMap swap
    assert not relevant(Change.modified, str(tmp_path / "server.log"))
    assert not relevant(Change.added, str(tmp_path / ".Cortexfile.yaml.swp"))


def test_contents_not_times_make_a_change(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("one\n")
    before = fingerprint([path, tmp_path / "missing"])
    path.write_text("one\n")
    assert fingerprint([path, tmp_path / "missing"]) == before
    assert before[1][1] is None
    path.write_text("two\n")
    assert fingerprint([path, tmp_path / "missing"]) != before


def test_a_file_mounted_on_its_own_is_polled(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "43 22 8:1 /srv/cf.yaml /etc/my\\040cortex/Cortexfile.yaml rw - ext4 /dev/sda1 rw\n"
    )
    mounts = mount_points(mountinfo)
    assert mounts == frozenset({"/", "/etc/my cortex/Cortexfile.yaml"})
    mounted, plain = Path("/etc/my cortex/Cortexfile.yaml"), Path("/etc/other/Cortexfile.yaml")
    assert needs_polling([plain, mounted], Polling.auto, mounts)
    assert not needs_polling([plain], Polling.auto, mounts)
    assert needs_polling([plain], Polling.always, mounts)
    assert not needs_polling([mounted], Polling.never, mounts)
