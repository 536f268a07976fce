"""A Cortexfile is untrusted input (whoever commits to the GitOps repo). Hostile text in every
setting that takes text is either a located error of `cortex validate` (the rules `cortex build`
checks), or it is rendered into files that their own parsers read back with nothing added:

- cortex.service: `systemd-analyze verify` without a word of complaint, and the same directives,
  in the same sections, as a benign Cortexfile's;
- cortex.sysusers: one line that `systemd-sysusers --dry-run` accepts;
- the quadlet: the same directives as a benign one;
- bundle.env (what install.sh and uninstall.sh read) and the image build's env.sh: bash reads the values back
  exactly;
- the Dockerfile: the same instructions as a benign one, clean under our linter;
- the device image's files: the same files as a benign one's, each with as many lines.

A second test sends hostile values straight into the service plan, past the schema, to show the
escaping layer alone keeps the unit whole (or refuses the value).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import typing
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.cortexfile import format_rules, formats
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic
from menlo_cortex.cortexfile.loader import Resolved, load
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.schema.models import Model
from menlo_cortex.cortexfile.secrets import Secret, SecretUnavailable
from menlo_cortex.cortexfile.table import Setting, model_settings, settings
from menlo_cortex.images.escape import Unrepresentable
from menlo_cortex.images.targets.disk import plan as disk_plan
from menlo_cortex.images.targets.disk import render as disk_render
from menlo_cortex.images.targets.docker import plan as docker_plan
from menlo_cortex.images.targets.docker.build_network import env_script
from menlo_cortex.images.targets.docker.dockerfile import SYSTEM_CA_BUNDLES, family, render_dockerfile
from menlo_cortex.images.targets.systemd import plan as systemd_plan
from menlo_cortex.images.targets.systemd.render import render

from tests.images.artifacts import texts

from .docker_image.dockerlint import lint, parse

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None
    or shutil.which("systemd-sysusers") is None
    or not Path("/usr/lib/systemd/system/sysinit.target").is_file(),
    reason="needs systemd-analyze, systemd-sysusers and the host's unit files",
)

HOSTILE = {
    "newline": "\nExecStartPre=+/bin/sh -c 'id >/tmp/pwned'",
    "new section": "\n[Service]\nExecStartPre=+/bin/true",
    "carriage return": "\rExecStartPre=+/bin/true",
    "specifiers": "%h%n%%",
    "dollar": "$HOME${PATH}",
    "command substitution": "`id`$(id)",
    "quotes": "'\"",
    "semicolon": ";id;",
    "spaces": " x y",
    "unicode": "é✓\u2028",
    "backslash": "\\",
    "dot-dot": "/../../../etc/shadow",
    "heredoc": "<<EOF",
    "colon": ":x",
}
BASE: dict[str, Any] = {
    "version": 1,
    "server": {
        "host": "0.0.0.0",
        "port": 8000,
        "tls": {"cert": "/etc/cortex/tls/cert.pem", "key": "/etc/cortex/tls/key.pem"},
        "auth": {"api_key_file": "/etc/cortex/api-keys", "api_keys": ["${file:/etc/cortex/keys}"]},
    },
    "logs": {"path": "/var/log/cortex"},
    "data": {"path": "/var/lib/cortex"},
    "models": [{"id": "gemma", "source": "/models/gemma.gguf", "sha256": "a" * 64, "chat_format": "gemma"}],
    "build": {
        "formats": ["docker", "systemd"],
        "network": {
            "proxy": "http://proxy.example:3128",
            "no_proxy": ["internal.example"],
            "ca_certificates": ["/etc/corp/ca.pem"],
            "pip_index_url": "https://pypi.example/simple",
        },
    },
}
# Values that start valid in another way: Python's ipaddress takes any text after an IPv6 `%`.
MORE_STARTS: dict[tuple[str | int, ...], tuple[str, ...]] = {("server", "host"): ("fe80::1%eth0",)}
OPTIONS = docker_plan.ImageOptions(project_wheel="menlo_cortex-0.1.0-py3-none-any.whl", version="0.1.0")
# bundle.env texts bash has already read back correctly (many settings leave them as they are).
READ_BACK: set[str] = set()
READ_BACK_ENV: set[str] = set()


# -- which settings take text, and the hostile values each gets ---------------------------------


def _leaves(annotation: Any) -> Iterator[Any]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        yield from _leaves(args[0])
    elif args:
        for arg in args:
            yield from _leaves(arg)
    else:
        yield annotation


def _takes_text(section: type[Any], path: tuple[str, ...]) -> bool:
    for name in path[:-1]:
        section = next(t for t in _leaves(section.model_fields[name].annotation) if isinstance(t, type))
    leaves = list(_leaves(section.model_fields[path[-1]].annotation))
    return any(leaf in (str, Path, Secret) or (isinstance(leaf, type) and issubclass(leaf, Enum)) for leaf in leaves)


def _text_settings() -> list[tuple[tuple[str | int, ...], Setting]]:
    found: list[tuple[tuple[str | int, ...], Setting]] = [
        (s.path, s) for s in settings() if s.path != ("version",) and _takes_text(Cortexfile, s.path)
    ]
    found += [(("models", 0, *s.path), s) for s in model_settings().values() if _takes_text(Model, s.path)]
    return found


def _written(key: tuple[str | int, ...]) -> Any:
    node: Any = BASE
    for part in key:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _values(key: tuple[str | int, ...], setting: Setting, hostile: str) -> list[Any]:
    base = _written(key)
    base = base[0] if isinstance(base, list) and base else base
    if setting.is_secret:
        return ["literal" + hostile, "${file:/etc/cortex/k" + hostile + "}"]
    start = base if isinstance(base, str) else ("/etc/cortex/x" if setting.is_path else "x")
    return [start + hostile] + [other + hostile for other in MORE_STARTS.get(key, ())]


CASES = [
    pytest.param(key, value, id=f"{'.'.join(map(str, key))}-{name}-{index}")
    for key, setting in _text_settings()
    for name, hostile in HOSTILE.items()
    for index, value in enumerate(_values(key, setting, hostile))
]


def _with(key: tuple[str | int, ...], value: Any, listed: bool) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(BASE))
    node: Any = data
    for part in key[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[key[-1]] = [value] if listed else value
    return data


# -- reading the generated files back ---------------------------------------------------------


def directives(text: str) -> list[tuple[str, str]]:
    """(section, key) of every assignment of a unit-syntax file, continuation lines joined."""
    found, section, pending = [], "", ""
    for raw in text.splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            section = stripped
        else:
            found.append((section, stripped.split("=", 1)[0].strip()))
    return found


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root `systemd-analyze verify --root` can judge the unit in: the host's unit files, the
    service's python and kill."""
    root = tmp_path_factory.mktemp("unit-root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    shutil.copy2("/usr/bin/kill", root / "usr/bin/kill")
    python = root / "opt/cortex/current/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n", encoding="utf-8")
    python.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    for name in ("passwd", "group"):
        (root / "etc" / name).write_text("", encoding="utf-8")
    return root


def verify_unit(root: Path, text: str) -> str:
    """What `systemd-analyze verify` says about the unit (empty: nothing)."""
    (root / "etc/systemd/system/cortex.service").write_text(text, encoding="utf-8")
    command = ["systemd-analyze", "verify", f"--root={root}", "/etc/systemd/system/cortex.service"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else f"\n(exit {done.returncode})")


def check_sysusers(root: Path, text: str) -> None:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 1, text
    conf = root / "cortex.conf"
    conf.write_text(text, encoding="utf-8")
    command = ["systemd-sysusers", f"--root={root}", "--dry-run", str(conf)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr


def shell_values(script: str, names: list[str], prelude: str = "") -> list[str]:
    """The values of `names` after bash ran `script` (arrays expanded), NUL-separated."""
    printing = " ".join(f'"${{{name}[@]}}"' for name in names)
    program = f"{prelude}\n{script}\nprintf '%s\\0' {printing}\n"
    done = subprocess.run(["bash", "-c", program], capture_output=True, check=False, timeout=30)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode().split("\0")[:-1]


def dockerfile_shape(text: str) -> list[tuple[str, list[str]]]:
    return [(stage.base, [i.keyword for i in stage.instructions]) for stage in parse(text)]


# -- the two ways out: a located error, or clean files -------------------------------------------


def located_in(path: Path, diagnostics: list[Diagnostic]) -> bool:
    return all(d.origin.source == str(path) and d.origin.line is not None for d in diagnostics)


def _load_or_none(path: Path) -> Resolved | None:
    """The Cortexfile, or None when the schema refused it: then every error names the file and line."""
    try:
        return load(path)
    except ConfigError as exc:
        refused = list(exc.diagnostics)
    assert located_in(path, refused), refused
    return None


def _view(resolved: Resolved, name: str) -> Resolved:
    return resolved.view(formats.get(name).loader_argument())


def render_systemd(view: Resolved) -> tuple[systemd_plan.ServicePlan, dict[str, str]]:
    service = systemd_plan.make_plan(view, "0.1.0-test", "0" * 64)
    return service, texts(render(service, OPTIONS.project_wheel))


def render_docker(view: Resolved) -> tuple[docker_plan.BuildPlan, str, str | None]:
    image = docker_plan.make_plan(view.config, OPTIONS)
    try:
        env_sh: str | None = env_script(image.network, SYSTEM_CA_BUNDLES[family(image)], {})
    except SecretUnavailable:  # a build secret in a file this host lacks: the build's preflight says so
        env_sh = None
    return image, render_dockerfile(image), env_sh


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("benign") / "Cortexfile.yaml"
    path.write_text(json.dumps(BASE), encoding="utf-8")
    resolved = load(path)
    _, files = render_systemd(_view(resolved, "systemd"))
    _, dockerfile, env_sh = render_docker(_view(resolved, "docker"))
    return {"files": files, "dockerfile": dockerfile, "env.sh": env_sh, "disk": render_disk(_view(resolved, "disk"))}


@pytest.mark.parametrize(("key", "value"), CASES)
def test_hostile_text_is_a_located_error_or_stays_data(
    key: tuple[str | int, ...], value: Any, tmp_path: Path, unit_root: Path, benign: dict[str, Any]
) -> None:
    setting = dict(_text_settings())[key]
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(json.dumps(_with(key, value, setting.is_list)), encoding="utf-8")  # JSON is YAML
    resolved = _load_or_none(path)
    if resolved is None:
        return
    for name in ("systemd", "docker", "disk"):  # each format judged on its own: one may refuse what the other takes
        view = _view(resolved, name)
        refused = format_rules.problems(view, name)
        if refused:
            assert located_in(path, refused), refused
            continue
        try:
            if name == "systemd":
                _check_systemd(*render_systemd(view), benign["files"], unit_root)
            elif name == "disk":
                _check_disk(render_disk(view), benign["disk"])
            else:
                _check_docker(*render_docker(view), benign)
        except Unrepresentable as exc:
            pytest.fail(f"the schema let through a value the {name} files cannot hold: {exc}")


def render_disk(view: Resolved) -> dict[str, str]:
    """The device's own files (root and boot partition), by path."""
    rendered = disk_render.render(disk_plan.make_plan(view, "0" * 64), "0" * 64)
    return {path: text for path, (text, _mode) in rendered.root.items()} | rendered.boot


def _check_disk(files: dict[str, str], benign: dict[str, str]) -> None:
    """The same files, each with as many lines (a value never adds one), units with the same directives."""
    assert set(files) == set(benign), sorted(set(files) ^ set(benign))
    for path, expected in benign.items():
        assert len(files[path].splitlines()) == len(expected.splitlines()), path
        if path.endswith((".network", ".service")):
            assert directives(files[path]) == directives(expected), path


def _check_systemd(
    service: systemd_plan.ServicePlan, files: dict[str, str], benign: dict[str, str], unit_root: Path
) -> None:
    unit = files["systemd/cortex.service"]
    assert directives(unit) == directives(benign["systemd/cortex.service"])
    if unit != benign["systemd/cortex.service"]:
        assert verify_unit(unit_root, unit) == ""
    assert directives(files["quadlet/cortex.container"]) == directives(benign["quadlet/cortex.container"])
    if files["systemd/cortex.sysusers"] != benign["systemd/cortex.sysusers"]:
        check_sysusers(unit_root, files["systemd/cortex.sysusers"])
    if files["bundle.env"] not in READ_BACK:  # bash runs once per distinct text
        _check_values(service, files["bundle.env"])
        READ_BACK.add(files["bundle.env"])


def _check_values(service: systemd_plan.ServicePlan, values: str) -> None:
    """What install.sh and uninstall.sh read: each value back exactly, and nothing run on the way."""
    names = ["DATA_DIR", "READY_URL", "CONFIG_DIR", "LOGS_DIR", "SYNC_DIR", "PREFIX", "SERVICE_USER"]
    expected = [service.data_dir, service.ready_url, service.config_dir, service.logs_dir, service.sync_dir]
    expected += [service.prefix, service.user]
    assert shell_values(values, [*names, "SECRET_FILES"]) == [*expected, *service.secret_files]
    assert shell_values(values, ["MODELS"]) == list(service.model_digests)


def _check_docker(image: docker_plan.BuildPlan, dockerfile: str, env_sh: str | None, benign: dict[str, Any]) -> None:
    assert dockerfile_shape(dockerfile) == dockerfile_shape(benign["dockerfile"])
    assert lint(dockerfile) == []
    assert [i.arguments for i in parse(dockerfile)[-1].all("WORKDIR")] == [image.data_dir]
    if env_sh is None or env_sh in READ_BACK_ENV:
        return
    READ_BACK_ENV.add(env_sh)
    # env.sh's copy steps are stubbed out: only the exported values are read back.
    values = shell_values(env_sh, ["no_proxy", "http_proxy", "PIP_INDEX_URL"], "cat() { :; }; cp() { :; }")
    network = image.network
    proxy, index = (s.resolve({}) if s else "" for s in (network.proxy, network.pip_index_url))
    assert values == [",".join(network.no_proxy), proxy, index]


# -- the escaping layer alone: hostile values straight into the plan -----------------------------

PLAN_FIELDS = ("state_directory", "logs_directory", "host", "image", "version", "user")


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("field", PLAN_FIELDS)
def test_the_unit_stays_whole_whatever_the_plan_holds(
    field: str, name: str, tmp_path: Path, unit_root: Path, benign: dict[str, Any]
) -> None:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(json.dumps(BASE), encoding="utf-8")
    service = systemd_plan.make_plan(_view(load(path), "systemd"), "0.1.0-test", "0" * 64)
    hostile = dataclasses.replace(service, **{field: "cortex" + HOSTILE[name]})  # type: ignore[arg-type]
    try:
        files = texts(render(hostile, OPTIONS.project_wheel))
    except Unrepresentable:
        return  # refused: no file is written
    unit = files["systemd/cortex.service"]
    assert directives(unit) == directives(benign["files"]["systemd/cortex.service"])
    assert directives(files["quadlet/cortex.container"]) == directives(benign["files"]["quadlet/cortex.container"])
    said = verify_unit(unit_root, unit)
    # systemd may judge a strange but whole value (a folder name it does not accept); never a new directive.
    assert not re.search(r"Unknown (key|section)|Missing '='|ExecStartPre", said), said


DOCKER_FIELDS = ("data_dir", "config_hash", "project_wheel", "base_image", "labels", "llama_cmake_args")


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("field", DOCKER_FIELDS)
def test_the_dockerfile_stays_whole_whatever_the_plan_holds(field: str, name: str, benign: dict[str, Any]) -> None:
    path_free = json.loads(json.dumps(BASE))
    image = docker_plan.make_plan(Cortexfile.model_validate(path_free), OPTIONS)
    value = "cortex" + HOSTILE[name]
    changes: dict[str, Any] = {
        "data_dir": "/var/lib/" + value,
        "config_hash": value,
        "project_wheel": value,
        "base_image": value,
        "labels": (("org.opencontainers.image.description", value), *image.labels[1:]),
        "llama_cmake_args": ("-D" + value,),
    }
    hostile = dataclasses.replace(image, **{field: changes[field]})
    try:
        dockerfile = render_dockerfile(hostile)
    except Unrepresentable:
        return  # refused: no file is written
    assert [keywords for _, keywords in dockerfile_shape(dockerfile)] == [
        keywords for _, keywords in dockerfile_shape(benign["dockerfile"])
    ]
