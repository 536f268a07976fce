"""The OCI target's parts that need no engine, root or model: layers, the root's trim, the SBOM, the
lock's comparison, the plan's platforms and the format's refusals."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.images import lock, sbom
from menlo_cortex.images.debian import InstalledPackage, installed_packages
from menlo_cortex.images.runtime_closure import Closure, ClosureError, runtime_closure
from menlo_cortex.images.targets.oci.layers import Blob, Tree, add_tree, write_layer
from menlo_cortex.images.targets.oci.manifest import image_index
from menlo_cortex.images.targets.oci.plan import file_stem
from menlo_cortex.images.targets.oci.rootfs import root_tree

from ..spdx import spdx_problems

EPOCH = 1_700_000_000
EVERYTHING = Closure(frozenset(), frozenset(), frozenset())  # a root without a dpkg database: nothing dropped


def _tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "shadow").write_text("root:*:20785:0:99999:7:::\nnobody:*:20785:0:99999:7:::\n")
    (root / "etc" / "passwd-").write_text("old\n")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "hostname").write_text("the-build-host\n")
    (root / "dev").mkdir()
    os.mkfifo(root / "dev" / "pipe")
    (root / "usr" / "share" / "doc" / "bash").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / "bash" / "copyright").write_text("GPL\n")
    (root / "usr" / "share" / "doc" / "bash" / "NEWS.gz").write_bytes(b"x" * 100)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "perl").write_bytes(b"#!perl\n")
    (root / "usr" / "bin" / "perl").chmod(0o755)
    (root / "usr" / "bin" / "perl5").hardlink_to(root / "usr" / "bin" / "perl")
    (root / "bin").symlink_to("usr/bin")
    for unused in ("usr/lib/x86_64-linux-gnu/gconv/UTF-16.so", "usr/lib/python3.13/test/support/__init__.py"):
        (root / unused).parent.mkdir(parents=True)
        (root / unused).write_text("never loaded\n")
    return root


def _root_layer(dest: Path, root: Path, epoch: int = EPOCH, closure: Closure = EVERYTHING) -> Blob:
    return write_layer(dest, lambda tar: add_tree(tar, root_tree(root, epoch, closure), epoch), compress=True)


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {member.name: member for member in tar.getmembers()}


def test_a_root_layer_is_the_same_bytes_whatever_the_files_times(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    first = write_layer(
        tmp_path / "a", lambda tar: add_tree(tar, root_tree(root, EPOCH, EVERYTHING), EPOCH), compress=True
    )
    os.utime(root / "usr" / "bin" / "perl", (1, 1))
    second = write_layer(
        tmp_path / "b", lambda tar: add_tree(tar, root_tree(root, EPOCH, EVERYTHING), EPOCH), compress=True
    )
    assert first == second
    assert first.digest == "sha256:" + hashlib.sha256((tmp_path / "a").read_bytes()).hexdigest()
    assert first.diff_id == "sha256:" + hashlib.sha256(gzip.decompress((tmp_path / "a").read_bytes())).hexdigest()
    later = write_layer(
        tmp_path / "c", lambda tar: add_tree(tar, root_tree(root, EPOCH + 1, EVERYTHING), EPOCH + 1), compress=True
    )
    assert later.digest != first.digest


def test_the_root_layer_leaves_out_what_a_container_never_uses(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    _root_layer(tmp_path / "layer", root)
    members = _members(tmp_path / "layer")
    assert list(members) == sorted(members, key=lambda name: name.split("/"))
    assert "dev" in members
    assert "dev/pipe" not in members
    assert "etc/passwd-" not in members
    assert "etc/hostname" not in members
    assert "usr/share/doc/bash/copyright" in members
    assert "usr/share/doc/bash/NEWS.gz" not in members
    assert "usr/lib/x86_64-linux-gnu/gconv/UTF-16.so" not in members
    assert "usr/lib/python3.13/test/support/__init__.py" not in members
    assert members["usr/bin/perl5"].islnk()
    assert members["usr/bin/perl5"].linkname == "usr/bin/perl"
    assert members["bin"].issym()
    assert members["bin"].linkname == "usr/bin"
    assert members["usr/bin/perl"].mode == 0o755
    assert {m.mtime for m in members.values()} == {EPOCH}
    assert {(m.uname, m.gname) for m in members.values()} == {("", "")}
    with tarfile.open(tmp_path / "layer") as tar:
        shadow = tar.extractfile("etc/shadow").read().decode()  # type: ignore[union-attr]
        passwd = tar.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
    assert {line.split(":")[2] for line in shadow.splitlines()} == {str(EPOCH // 86400)}
    assert passwd.splitlines()[1].startswith("cortex:x:10001:10001:")


def _package(root: Path, name: str, depends: str, files: list[str]) -> str:
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True, exist_ok=True)
    (info / f"{name}.list").write_text("".join(f"{path}\n" for path in ["/.", *files]))
    (info / f"{name}.postinst").write_text("#!/bin/sh\n")
    for path in files:
        if not path.endswith("/"):
            (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (root / path.lstrip("/")).write_text(name)
    return f"Package: {name}\nStatus: install ok installed\nVersion: 1\nDepends: {depends}\n"


def test_the_root_layer_keeps_only_the_packages_the_service_runs_on(tmp_path: Path) -> None:
    """What python3 depends on stays; what only maintainer scripts run (dpkg) and what nothing needs (bash) goes,
    with their dpkg records, so the layer's status and the SBOM list what it holds. A file a package lists under
    /bin is found where /bin links to."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    status = [
        _package(root, "python3", "libc6 (>= 2.36), dpkg | awk", ["/usr/bin/python3", "/usr/lib/python3/os.py"]),
        _package(root, "libc6", "", ["/usr/lib/libc.so.6", "/usr/bin/ld.so"]),
        _package(root, "dpkg", "libc6", ["/usr/bin/dpkg"]),
        _package(root, "bash", "libc6", ["/bin/bash", "/usr/lib/python3/"]),
    ]
    (root / "var/lib/dpkg/status").write_text("\n".join(status))
    closure = runtime_closure(root, ["python3"], ["dpkg"])
    assert closure.kept == {"python3", "libc6"}
    _root_layer(tmp_path / "layer", root, closure=closure)
    members = _members(tmp_path / "layer")
    assert {"usr/bin/python3", "usr/lib/python3/os.py", "usr/lib/libc.so.6", "usr/bin/ld.so"} <= set(members)
    assert not {"usr/bin/bash", "usr/bin/dpkg", "var/lib/dpkg/info/bash.list", "var/lib/dpkg/info/dpkg.postinst"} & set(
        members
    )
    assert "var/lib/dpkg/info/python3.list" in members
    with tarfile.open(tmp_path / "layer") as tar:
        kept_status = tar.extractfile("var/lib/dpkg/status").read().decode()  # type: ignore[union-attr]
    assert [line for line in kept_status.splitlines() if line.startswith("Package:")] == [
        "Package: python3",
        "Package: libc6",
    ]


def test_the_closure_reads_dpkg_as_dpkg_writes_it(tmp_path: Path) -> None:
    """Virtual names through Provides, Pre-Depends, arch-qualified and dotted info files, a file two packages list,
    a root reached through a link; a package the image needs that the root lacks is an error."""
    real = tmp_path / "real"
    (real / "usr/lib").mkdir(parents=True)
    status = [
        _package(real, "python3", "libssl3t64:any (>= 3), awk", ["/usr/bin/python3"]).replace(
            "Depends:", "Pre-Depends:"
        ),
        _package(real, "libssl3t64", "", ["/usr/lib/libssl.so.3", "/usr/share/common/shared"]),
        _package(real, "mawk", "", ["/usr/bin/mawk"]) + "Provides: awk\n",
        _package(real, "libapt-pkg7.0", "", ["/usr/lib/libapt-pkg.so.7.0", "/usr/share/common/shared"]),
    ]
    (real / "var/lib/dpkg/status").write_text("\n".join(status))
    info = real / "var/lib/dpkg/info"
    (info / "libapt-pkg7.0.list").rename(info / "libapt-pkg7.0:amd64.list")
    (tmp_path / "link").symlink_to(real)
    closure = runtime_closure(tmp_path / "link", ["python3"], ["mawk"])
    assert closure.kept == {"python3", "libssl3t64"}
    assert closure.dropped_files == {"usr/bin/mawk", "usr/lib/libapt-pkg.so.7.0"}  # the shared file stays
    assert not closure.keeps("var/lib/dpkg/info/libapt-pkg7.0:amd64.list")
    assert closure.keeps("var/lib/dpkg/info/libssl3t64.list")
    with pytest.raises(ClosureError, match="lacks libgomp1"):
        runtime_closure(real, ["python3", "libgomp1"], [])


def test_an_uncompressed_layer_has_one_digest(tmp_path: Path) -> None:
    def fill(tar: tarfile.TarFile) -> None:
        tar.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))

    blob = write_layer(tmp_path / "layer", fill, compress=False)
    assert blob.digest == blob.diff_id
    assert blob.media_type.endswith(".tar")
    assert (tmp_path / "layer").read_bytes()[:5] == b"empty"


def test_installed_packages_are_read_from_dpkg_status(tmp_path: Path) -> None:
    info = tmp_path / "var" / "lib" / "dpkg" / "info"
    info.mkdir(parents=True)
    (info.parent / "status").write_text(
        "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\nDescription: x\n y\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n"
    )
    (info / "libc6:amd64.md5sums").write_text("abc  lib/libc.so.6\n")
    found = installed_packages(tmp_path)
    assert found == [InstalledPackage("libc6", "2.36-9", "amd64", hashlib.sha256(b"abc  lib/libc.so.6\n").hexdigest())]


def test_the_sbom_is_spdx_2_3_with_purls_and_model_checksums(tmp_path: Path) -> None:
    contents = sbom.Contents(
        "registry:5000/cortex:v1",
        "amd64",
        (InstalledPackage("libc6", "2.36-9+deb12u1", "amd64", "0" * 64),),
        (sbom.PythonEntry("ruamel.yaml", "0.19.1"),),
        (sbom.ModelEntry("gemma", "a" * 64, "https://example.test/m.gguf"),),
        "bookworm",
    )
    document = sbom.document(contents, EPOCH)
    assert document["spdxVersion"] == "SPDX-2.3"
    assert document["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    by_name = {package["name"]: package for package in document["packages"]}
    assert by_name["libc6"]["externalRefs"][0]["referenceLocator"] == (
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-bookworm"
    )
    assert by_name["ruamel.yaml"]["externalRefs"][0]["referenceLocator"] == "pkg:pypi/ruamel-yaml@0.19.1"
    assert by_name["gemma"]["checksums"] == [{"algorithm": "SHA256", "checksumValue": "a" * 64}]
    assert by_name["gemma"]["downloadLocation"] == "https://example.test/m.gguf"
    ids = [package["SPDXID"] for package in document["packages"]]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("SPDXRef-") for i in ids)
    assert {r["relatedSpdxElement"] for r in document["relationships"]} == set(ids)
    assert sbom.encode(document) == sbom.encode(sbom.document(contents, EPOCH))
    (tmp_path / "image.spdx.json").write_bytes(sbom.encode(document))
    assert spdx_problems(tmp_path / "image.spdx.json") == []


def test_a_model_from_a_file_or_a_hub_has_no_download_url(tmp_path: Path) -> None:
    """SPDX takes a URL (or NOASSERTION) as download location: other sources go in sourceInfo."""
    contents = sbom.Contents(
        "x", "amd64", (), (), (sbom.ModelEntry("m", "b" * 64, "hf://org/repo/m.gguf@main"),), "trixie"
    )
    (package,) = sbom.document(contents, 0)["packages"]
    assert package["downloadLocation"] == "NOASSERTION"
    assert package["sourceInfo"] == "Cortexfile source: hf://org/repo/m.gguf@main"
    (tmp_path / "m.spdx.json").write_bytes(sbom.encode(sbom.document(contents, 0)))
    assert spdx_problems(tmp_path / "m.spdx.json") == []


def _lock(version: str = "2.36-9") -> dict[str, Any]:
    facts = {
        "debian": {"suite": "bookworm", "mirror": "http://deb.debian.org/debian", "root": "abc"},
        "llama_cpp_python": "0.3.36",
        "packages": [{"name": "libc6", "version": version, "architecture": "amd64", "files_sha256": "x"}],
        "wheels": [{"name": "numpy.whl", "sha256": "1"}],
    }
    return lock.contents([{"id": "gemma", "source": "s", "sha256": "a", "size": 1}], lock.platforms({"amd64": facts}))


def test_a_lock_names_each_drift(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.lock"
    lock.write(path, _lock())
    lock.check(path, _lock(), ())
    changed = _lock("2.36-10")
    changed["models"] = []
    with pytest.raises(ConfigError) as caught:
        lock.check(path, changed, ())
    found = {(d.key, d.message) for d in caught.value.diagnostics}
    assert ("platforms.amd64.packages.libc6.version", "locked 2.36-9, now 2.36-10") in found
    assert ("models.gemma", "locked, no longer an input") in found
    assert all(str(d.origin) == str(path) for d in caught.value.diagnostics)


def test_a_missing_or_broken_lock_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `cortex lock` first"):
        lock.check(tmp_path / "Cortexfile.lock", _lock(), ())
    (tmp_path / "Cortexfile.lock").write_text("version = [")
    with pytest.raises(ConfigError) as caught:
        lock.check(tmp_path / "Cortexfile.lock", _lock(), ())
    assert "unreadable lock file" in caught.value.diagnostics[0].message


def test_file_stems_and_the_index_order() -> None:
    assert file_stem("127.0.0.1:5000/team/cortex:v1") == "cortex-v1"
    assert file_stem("cortex@sha256:" + "0" * 64) == "cortex"
    from menlo_cortex.images.targets.oci.layers import Blob

    index = json.loads(image_index([(Blob("sha256:1", 1, "m"), "amd64"), (Blob("sha256:2", 1, "m"), "arm64")]).data)
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]


def test_the_format_refuses_what_it_has_no_parts_for(write_cortexfile: object) -> None:
    from menlo_cortex.cortexfile import format_rules
    from menlo_cortex.cortexfile.loader import Inputs, read, resolve

    path = write_cortexfile("version: 1\ntarget:\n  accelerator: cuda\n  distro: ubuntu\n")  # type: ignore[operator]
    view = resolve(read(Inputs(path, environ={}))).view(("oci", {}))
    messages = [str(d) for d in format_rules.problems(view, "oci")]
    assert any("target.distro" in m and "Debian 12" in m for m in messages)
    assert any("target.accelerator" in m and "--format docker" in m for m in messages)


def test_tree_prefix_places_a_folder_inside_the_image(tmp_path: Path) -> None:
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "cortex").write_text("#!/opt/cortex/bin/python\n")
    write_layer(
        tmp_path / "layer", lambda tar: add_tree(tar, Tree(tmp_path / "venv", prefix="opt/cortex/"), 0), compress=True
    )
    assert list(_members(tmp_path / "layer")) == ["opt/cortex/bin", "opt/cortex/bin/cortex"]


def test_member_names_stay_inside_the_archive() -> None:
    from menlo_cortex.images.reproducible import tar_member

    for name in ("", "/etc/passwd", "var/../../etc", ".."):
        with pytest.raises(ValueError, match="not a relative path inside the archive"):
            tar_member(name, 0)


def test_a_tree_the_build_wrote_is_root_owned_with_plain_modes(tmp_path: Path) -> None:
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin").chmod(0o775)
    (tmp_path / "venv" / "bin" / "tool").write_text("x")
    (tmp_path / "venv" / "bin" / "tool").chmod(0o775)
    (tmp_path / "venv" / "data").write_text("x")
    (tmp_path / "venv" / "data").chmod(0o664)
    os.chown(tmp_path / "venv" / "data", 4242, 4242) if os.geteuid() == 0 else None
    tree = Tree(tmp_path / "venv", plain=True)
    write_layer(tmp_path / "layer", lambda tar: add_tree(tar, tree, 0), compress=True)
    members = _members(tmp_path / "layer")
    assert {name: m.mode for name, m in members.items()} == {"bin": 0o755, "bin/tool": 0o755, "data": 0o644}
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


def test_the_lock_is_never_written_through_a_link_left_in_its_folder(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    for name in (".Cortexfile.lock.partial", ".Cortexfile.lock.tmp"):
        (tmp_path / name).symlink_to(victim)
    lock.write(tmp_path / "Cortexfile.lock", _lock())
    assert victim.read_text() == "keep me\n"
    assert (tmp_path / "Cortexfile.lock").read_text().startswith("# Written by `cortex lock`")


@pytest.mark.parametrize(
    ("written", "recorded"),
    [
        ("https://user:pw@example.test:8443/m.gguf?X-Amz-Signature=abc#frag", "https://example.test:8443/m.gguf"),
        ("hf://Org/Repo/model.gguf@main", "hf://Org/Repo/model.gguf@main"),
        ("models/local.gguf", "models/local.gguf"),
    ],
)
def test_model_sources_are_recorded_without_credentials(written: str, recorded: str, write_cortexfile: object) -> None:
    from menlo_cortex.cortexfile.loader import Inputs, read, resolve

    text = f"version: 1\nmodels:\n  - id: m\n    source: {written!r}\n    sha256: '{'a' * 64}'\n"
    path = write_cortexfile(text)  # type: ignore[operator]
    assert lock.model_sources(resolve(read(Inputs(path, environ={})))) == {"m": recorded}


@pytest.mark.parametrize("folder", ["/", "/etc", "/usr/lib/cortex", "/opt/cortex/data", "/var/lib", "/tmp"])
def test_an_image_gives_no_system_folder_to_its_service_user(folder: str, write_cortexfile: object) -> None:
    from menlo_cortex.cortexfile import format_rules
    from menlo_cortex.cortexfile.loader import Inputs, read, resolve

    path = write_cortexfile(f"version: 1\ndata:\n  path: {folder}\n")  # type: ignore[operator]
    resolved = resolve(read(Inputs(path, environ={})))
    for name in ("oci", "docker"):
        messages = [str(d) for d in format_rules.problems(resolved.view((name, {})), name)]
        assert any(f"data.path: {folder} is not a folder an image may give" in m for m in messages), messages


def test_an_oci_image_is_named_by_a_tag_not_a_digest() -> None:
    from menlo_cortex.images.targets.oci.plan import check_reference

    check_reference("--tag", "registry:5000/cortex:v1")
    with pytest.raises(ConfigError, match="name the image by a tag"):
        check_reference("--push", "registry:5000/cortex@sha256:" + "0" * 64)


def test_a_lock_pins_each_base_to_its_own_repository_by_digest(tmp_path: Path) -> None:
    from menlo_cortex.images.targets.docker.pins import Bases, pinned

    bases = Bases("debian:12-slim", "localhost:5000/builder:1")
    good = {
        "debian:12-slim": "debian@sha256:" + "a" * 64,
        "localhost:5000/builder:1": "localhost:5000/builder@sha256:" + "b" * 64,
    }
    assert pinned(bases, {"docker": {"images": good}}, tmp_path / "Cortexfile.lock") == Bases(*good.values())
    hostile = {**good, "debian:12-slim": "evil.example/x:latest", "localhost:5000/builder:1": "packages"}
    with pytest.raises(ConfigError) as caught:
        pinned(bases, {"docker": {"images": hostile}}, tmp_path / "Cortexfile.lock")
    assert len(caught.value.diagnostics) == 2
    assert "is pinned to 'evil.example/x:latest', not debian@sha256:..." in caught.value.diagnostics[0].message
    with pytest.raises(ConfigError, match="no digest for debian:12-slim"):
        pinned(bases, {"docker": "not a table"}, tmp_path / "Cortexfile.lock")


class _DockerEngine:
    """What Docker's classic store answers for an image held under two digests (no Docker here: Podman's answers are
    tested on the real engine, test_multi_platform_pin.py): the registry names the tag's; no libpod API."""

    def __init__(self, held: list[str], registry_says: str | None) -> None:
        import docker

        def registry_data(reference: str) -> Any:
            if registry_says is None:
                raise docker.errors.APIError("no registry")
            return type("RegistryData", (), {"id": registry_says})()

        def libpod(*_: Any, **__: Any) -> Any:
            raise docker.errors.NotFound("page not found")

        image = type("Image", (), {"attrs": {"RepoDigests": [f"debian@{digest}" for digest in held]}})()
        self.images = type("Images", (), {"get": staticmethod(lambda _: image), "get_registry_data": registry_data})
        self.api = type("Api", (), {"_url": staticmethod(lambda *a: ""), "_get": libpod, "_result": libpod})


def test_a_lock_takes_the_digest_the_registry_names_of_those_the_engine_holds() -> None:
    from menlo_cortex.images.targets.docker.engine import EngineError
    from menlo_cortex.images.targets.docker.pins import Bases, digests

    index, manifest = "sha256:" + "f" * 64, "sha256:" + "2" * 64  # the index sorts last
    bases = Bases("debian:13-slim", "debian:13-slim")
    assert digests(_DockerEngine([manifest, index], index), bases) == {"debian:13-slim": f"debian@{index}"}
    assert digests(_DockerEngine([manifest], None), bases) == {"debian:13-slim": f"debian@{manifest}"}
    refusal = f"under 2 digests \\({manifest}, {index}\\).*name the base by its digest, debian@sha256:"
    with pytest.raises(EngineError, match=refusal):
        digests(_DockerEngine([index, manifest], None), bases)
    pinned_by_digest = f"debian@{manifest}"
    assert digests(_DockerEngine([manifest, index], index), Bases(pinned_by_digest, pinned_by_digest)) == {
        pinned_by_digest: pinned_by_digest
    }


def test_a_lock_with_one_entry_twice_is_drift(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.lock"
    doubled = _lock()
    doubled["models"] = [*doubled["models"], {**doubled["models"][0], "sha256": "b"}]
    lock.write(path, doubled)
    with pytest.raises(ConfigError, match="the same id twice"):
        lock.check(path, _lock(), ())


def test_a_lock_of_one_format_keeps_the_others_sections(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.lock"
    lock.write(path, _lock())
    docker = lock.contents([], {"docker": {"images": {"debian:12": "debian@sha256:" + "c" * 64}}})
    merged = lock.merged(path, docker, ())
    assert merged["platforms"] == _lock()["platforms"]
    assert merged["docker"] == docker["docker"]
    assert merged["models"] == []


def test_multiarch_packages_get_their_own_spdx_ids(tmp_path: Path) -> None:
    packages = (InstalledPackage("libc6", "2.36", "arm64", ""), InstalledPackage("libc6", "2.36", "armhf", ""))
    contents = sbom.Contents("x", "arm64", packages, (sbom.PythonEntry("", "1"),), (), "trixie")
    (tmp_path / "x.spdx.json").write_bytes(sbom.encode(sbom.document(contents, 0)))
    assert spdx_problems(tmp_path / "x.spdx.json") == []
    assert len(json.loads((tmp_path / "x.spdx.json").read_text())["packages"]) == 2


def test_a_lock_keeps_the_pins_of_declared_models_it_did_not_bake(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.lock"
    pin = {"id": "pinned", "source": "hf://o/r/p.gguf", "sha256": "d" * 64, "size": 9}
    gone = {**pin, "id": "removed"}
    lock.write(path, {**_lock(), "models": [*_lock()["models"], pin, gone]})

    merged = lock.merged(path, _lock(), ["gemma", "pinned"])
    assert merged["models"] == [*_lock()["models"], pin]  # a model no longer declared loses its pin

    lock.write(path, merged)
    lock.check(path, _lock(), ["gemma", "pinned"])  # a pin this build does not bake is no drift
    with pytest.raises(ConfigError, match=r"models\.pinned: locked, no longer an input"):
        lock.check(path, _lock(), ["gemma"])
