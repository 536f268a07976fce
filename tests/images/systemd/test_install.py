"""install.sh and uninstall.sh on real Debian 12 and 13 roots (debootstrap, cached): the venv built offline
with the root's own python3, the layout, permissions, `systemd-analyze verify --root`, upgrades that
keep a local edit, idempotence, and refusals that leave the root untouched."""

from __future__ import annotations

import dataclasses
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.images.artifacts import write_tree
from menlo_cortex.images.targets.systemd.render import render

from .conftest import PROJECT_WHEEL, plan_for
from .fixtures import Built, build_bundle, copy_root, debian_root, install, release_root, uninstall, write_api_key
from .test_security import MAX_EXPOSURE, exposure

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base_root() -> Path:
    return debian_root()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, test_data_dir: Path) -> tuple[Built, Built]:
    folder = tmp_path_factory.mktemp("bundles")
    first = build_bundle(folder / "v1", test_data_dir)
    second = build_bundle(folder / "v2", test_data_dir, context=256, extra="build:\n  bake_models: false\n")
    return first, second


@pytest.fixture
def root(base_root: Path, tmp_path: Path) -> Path:
    return copy_root(base_root, tmp_path / "root")


@pytest.mark.parametrize(("suite", "python"), [("bookworm", "3.11"), ("trixie", "3.13")])
def test_install_layout_and_verify(suite: str, python: str, tmp_path: Path, bundles: tuple[Built, Built]) -> None:
    """Debian 12 and Debian 13 hosts (Python 3.11 and 3.13): the venv is built with the host's own python3."""
    root = copy_root(release_root(suite), tmp_path / "root")
    first = bundles[0]
    write_api_key(root)
    done = install(first.bundle.folder, root)
    assert done.returncode == 0, done.stderr
    version = first.bundle.plan.version
    assert (root / "opt/cortex/current").readlink() == Path(version)
    assert (root / "etc/cortex/Cortexfile.yaml").read_bytes() == first.cortexfile
    model = (root / f"var/lib/cortex/models/{first.bundle.plan.models[0].sha256}.gguf").lstat()
    assert stat.S_ISREG(model.st_mode)
    assert model.st_size > 200_000_000
    assert (model.st_uid, model.st_gid, stat.S_IMODE(model.st_mode)) == (0, 0, 0o444)  # baked: root's, read-only
    assert (root / "var/lib/cortex/models").stat().st_uid == _uid(root, "cortex")  # downloads go there
    assert (root / "etc/systemd/system/multi-user.target.wants/cortex.service").is_symlink()
    keys = (root / "etc/cortex/api-keys").stat()
    assert stat.S_IMODE(keys.st_mode) == 0o640
    assert keys.st_gid == _gid(root, "cortex")
    assert keys.st_uid == 0
    imports = "import sys, menlo_cortex.runtime.app, llama_cpp, uvicorn; print(sys.version[:4]); import docker"
    venv = "/opt/cortex/current/bin/python"
    probe = subprocess.run(["chroot", str(root), venv, "-c", imports], capture_output=True, check=False)
    assert probe.stdout.decode().split() == [python], probe.stderr
    assert b"No module named 'docker'" in probe.stderr  # the runtime imported; the builder's deps are absent
    check = ["-m", "menlo_cortex", "validate", "--defaults", "systemd", "--preflight", "start"]
    check += ["-f", "/etc/cortex/Cortexfile.yaml"]
    valid = subprocess.run(["chroot", str(root), venv, *check], capture_output=True, check=False)
    assert valid.returncode == 0, valid.stderr  # as the unit starts it: the model is found in the store
    verify = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "/etc/systemd/system/cortex.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert exposure(root / "etc/systemd/system/cortex.service") <= MAX_EXPOSURE


def test_reinstall_is_idempotent_and_uninstall_keeps_data(root: Path, bundles: tuple[Built, Built]) -> None:
    folder = bundles[0].bundle.folder
    assert install(folder, root).returncode == 0
    again = install(folder, root)
    assert again.returncode == 0, again.stderr
    assert "already in" in again.stderr
    for _ in range(2):
        done = uninstall(root) if (root / "opt/cortex").exists() else _uninstall_from(folder, root)
        assert done.returncode == 0, done.stderr
    assert not (root / "opt/cortex").exists()
    assert not (root / "etc/systemd/system/cortex.service").exists()
    assert (root / "etc/cortex/Cortexfile.yaml").is_file()
    assert any((root / "var/lib/cortex/models").iterdir())
    purged = _uninstall_from(folder, root, "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc/cortex").exists()
    assert not (root / "var/lib/cortex").exists()


def test_upgrade_keeps_a_local_edit_and_the_models(root: Path, bundles: tuple[Built, Built]) -> None:
    first, second = bundles
    assert install(first.bundle.folder, root).returncode == 0
    conf = root / "etc/cortex/Cortexfile.yaml"
    edited = first.cortexfile + b"# tuned on this device\n"
    conf.write_bytes(edited)
    done = install(second.bundle.folder, root)
    assert done.returncode == 0, done.stderr
    assert conf.read_bytes() == edited
    assert (root / "etc/cortex/Cortexfile.yaml.new").read_bytes() == second.cortexfile
    assert "kept your edited /etc/cortex/Cortexfile.yaml" in done.stderr
    assert "copying the runtime" in done.stderr  # same wheels: no second venv build
    assert (root / "opt/cortex/current").readlink() == Path(second.bundle.plan.version)
    assert (root / f"var/lib/cortex/models/{first.bundle.plan.models[0].sha256}.gguf").is_file()


def test_upgrade_replaces_an_unedited_cortexfile(root: Path, bundles: tuple[Built, Built]) -> None:
    first, second = bundles
    assert install(first.bundle.folder, root).returncode == 0
    done = install(second.bundle.folder, root)
    assert done.returncode == 0, done.stderr
    assert (root / "etc/cortex/Cortexfile.yaml").read_bytes() == second.cortexfile
    assert not (root / "etc/cortex/Cortexfile.yaml.new").exists()


def _victim(root: Path) -> tuple[Path, tuple[bytes, int, int, int]]:
    """A root-only file that stands for /etc/shadow, and what must stay as it is."""
    victim = root / "etc/victim"
    victim.write_bytes(b"root:$y$secret:19000:0:99999:7:::\n")
    victim.chmod(0o600)
    status = victim.stat()
    return victim, (victim.read_bytes(), status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode))


def _untouched(victim: Path) -> tuple[bytes, int, int, int]:
    status = victim.stat()
    return victim.read_bytes(), status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)


def test_links_the_service_user_plants_in_its_folder_lead_nowhere(root: Path, bundles: tuple[Built, Built]) -> None:
    """The service user owns /var/lib/cortex: after a take-over of the service it may plant links
    where install.sh, running as root, writes the baked models (the old `.partial` copy, the
    temporary names, the model itself). A reinstall writes through none of them."""
    first = bundles[0]
    assert install(first.bundle.folder, root).returncode == 0
    victim, before = _victim(root)
    sha = first.bundle.plan.models[0].sha256
    models = root / "var/lib/cortex/models"
    (models / f"{sha}.gguf").unlink()
    (models / f"{sha}.gguf").symlink_to("../../../../etc/victim")  # relative: the same inside the chroot
    for name in (f"{sha}.gguf.partial", f".{sha}.gguf.partial"):
        (models / name).symlink_to("../../../../etc/victim")
    done = install(first.bundle.folder, root)
    assert done.returncode == 0, done.stderr
    assert _untouched(victim) == before
    model = (models / f"{sha}.gguf").lstat()
    assert stat.S_ISREG(model.st_mode)
    assert model.st_size > 200_000_000
    assert (model.st_uid, stat.S_IMODE(model.st_mode)) == (0, 0o444)


def test_a_model_rewritten_to_the_same_size_is_put_back(root: Path, bundles: tuple[Built, Built]) -> None:
    """Sends: what a take-over of the service could leave, a baked model replaced (by rename, in the folder it
    owns) with other bytes of the same size. Before: install.sh compared sizes and kept it."""
    first = bundles[0]
    assert install(first.bundle.folder, root).returncode == 0
    sha = first.bundle.plan.models[0].sha256
    model = root / "var/lib/cortex/models" / f"{sha}.gguf"
    size = model.stat().st_size
    forged = model.with_name("forged")
    with forged.open("wb") as out:
        out.truncate(size)
    forged.replace(model)
    done = install(first.bundle.folder, root)
    assert done.returncode == 0, done.stderr
    assert f"copying model {sha}" in done.stderr
    with model.open("rb") as put_back:
        assert put_back.read(4) == b"GGUF"
    assert (model.stat().st_uid, stat.S_IMODE(model.stat().st_mode)) == (0, 0o444)


def test_the_service_users_commands_get_none_of_roots_environment(root: Path, bundles: tuple[Built, Built]) -> None:
    """install.sh runs some commands as the service user (in its own folder); root's environment (an operator's
    tokens, say) stays with root. Seen by a stand-in mkdir in the root that records what it was given."""
    real = root / "usr/bin/mkdir"
    real.rename(root / "usr/bin/mkdir.real")
    real.write_text('#!/bin/sh\nenv > "/tmp/mkdir-env.$(id -u)"\nexec /usr/bin/mkdir.real "$@"\n')
    real.chmod(0o755)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OPERATOR_TOKEN": "hf_operator_secret"}
    command = [str(bundles[0].bundle.folder / "install.sh"), "--root", str(root)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900, env=env)
    assert done.returncode == 0, done.stderr
    service_uid = root.joinpath("var/lib/cortex").stat().st_uid
    seen = (root / f"tmp/mkdir-env.{service_uid}").read_text()
    assert "OPERATOR_TOKEN" not in seen
    assert "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in seen


def test_the_cortexfile_is_readable_by_root_and_the_service_only(root: Path, bundles: tuple[Built, Built]) -> None:
    assert install(bundles[0].bundle.folder, root).returncode == 0
    conf = (root / "etc/cortex/Cortexfile.yaml").stat()
    assert (conf.st_uid, conf.st_gid, stat.S_IMODE(conf.st_mode)) == (0, _gid(root, "cortex"), 0o640)


def test_a_models_folder_that_is_a_link_is_refused(root: Path, bundles: tuple[Built, Built]) -> None:
    first = bundles[0]
    assert install(first.bundle.folder, root).returncode == 0
    elsewhere = root / "etc/victim-dir"
    elsewhere.mkdir(mode=0o700)
    models = root / "var/lib/cortex/models"
    shutil.rmtree(models)
    models.symlink_to("../../../etc/victim-dir")
    done = install(first.bundle.folder, root)
    assert done.returncode == 1
    assert "/var/lib/cortex/models is a symbolic link: refusing to write through it" in done.stderr
    assert list(elsewhere.iterdir()) == []
    assert (elsewhere.stat().st_uid, stat.S_IMODE(elsewhere.stat().st_mode)) == (0, 0o700)


def test_a_secret_file_that_is_a_link_keeps_its_target_as_it_is(root: Path, bundles: tuple[Built, Built]) -> None:
    """install.sh gives secret files to the service's group (root:cortex 0640); through a link that
    would hand any file of the host to the service."""
    victim, before = _victim(root)
    keys = root / "etc/cortex/api-keys"
    keys.parent.mkdir(parents=True, exist_ok=True)
    keys.symlink_to("../victim")
    done = install(bundles[0].bundle.folder, root)
    assert done.returncode == 0, done.stderr
    assert _untouched(victim) == before
    assert "secret file /etc/cortex/api-keys is a symbolic link, left as it is" in done.stderr


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("architecture", "arm64", "this host is x86_64; the bundle is built for aarch64"),
        ("python_versions", ("3.10", "3.99"), "the bundle carries wheels for Python 3.10, 3.99"),
        ("sync", True, "the Cortexfile follows a Git repository: cortex sync needs git and ssh-keygen"),
    ],
)
def test_a_host_that_cannot_run_the_bundle_is_refused_untouched(
    root: Path, tmp_path: Path, field: str, value: object, message: str
) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text("version: 1\n", encoding="utf-8")
    changes: dict[str, Any] = {field: value}
    plan = dataclasses.replace(plan_for(cortexfile), **changes)
    bundle = tmp_path / "bundle"
    write_tree(render(plan, PROJECT_WHEEL), bundle)
    before = sorted(root.rglob("*"))
    command = ["bash", str(bundle / "install.sh"), "--root", str(root)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert message in done.stderr
    assert sorted(root.rglob("*")) == before


def _uninstall_from(bundle: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(bundle / "uninstall.sh"), "--root", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)


def _uid(root: Path, user: str) -> int:
    for line in (root / "etc/passwd").read_text().splitlines():
        name, _, uid, *_ = line.split(":")
        if name == user:
            return int(uid)
    raise AssertionError(f"no user {user} in {root}/etc/passwd")


def _gid(root: Path, group: str) -> int:
    for line in (root / "etc/group").read_text().splitlines():
        name, _, gid, *_ = line.split(":")
        if name == group:
            return int(gid)
    raise AssertionError(f"no group {group} in {root}/etc/group")


def test_bundle_contents(bundles: tuple[Built, Built]) -> None:
    first, second = bundles
    wheels = sorted(p.name.split("-")[0].lower() for p in (first.bundle.folder / "wheels").glob("*.whl"))
    assert {"menlo_cortex", "llama_cpp_python", "pip", "tomli_w"} <= set(wheels)  # tomli_w: pins (pins.py)
    assert "docker" not in set(wheels)  # jinja2 is there only as llama-cpp-python's own dependency
    assert list((second.bundle.folder / "models").iterdir()) == []
    digest = (first.bundle.tarball.parent / (first.bundle.tarball.name + ".sha256")).read_text().split()[0]
    assert digest == first.bundle.sha256
    listing = subprocess.run(["tar", "-tf", str(first.bundle.tarball)], capture_output=True, text=True, check=True)
    assert f"{first.bundle.folder.name}/install.sh" in listing.stdout.splitlines()
    sums = first.bundle.tarball.name + ".sha256"
    assert subprocess.run(["sha256sum", "-c", sums], cwd=first.bundle.tarball.parent, check=False).returncode == 0


def test_cortex_build_cli_makes_the_bundle(tmp_path: Path, cortex_command: list[str]) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text("version: 1\nmodels: []\nbuild:\n  formats: [systemd]\n", encoding="utf-8")
    out = tmp_path / "dist"
    done = subprocess.run(
        [*cortex_command, "build", "-f", str(cortexfile), "-o", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    (folder,) = (p for p in out.iterdir() if p.is_dir())
    assert (folder / "Cortexfile.yaml").read_bytes() == cortexfile.read_bytes()
    assert f"{folder}.tar sha256 " in done.stdout
    assert "Image=localhost/cortex-appliance:" in (folder / "quadlet/cortex.container").read_text()
