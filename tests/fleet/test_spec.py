"""fleet.yaml: located errors for every mistake, and the devices a repository folder of Cortexfiles names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.fleet.spec import load_fleet
from menlo_cortex.fleet.targets import targets


def write(folder: Path, text: str, name: str = "fleet.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    return [str(diagnostic) for diagnostic in caught.value.diagnostics]


def test_every_mistake_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        devices:
          - name: shelf-a1
            url: http://10.0.0.12:8080
          - name: shelf-a1
            url: ftp://10.0.0.13
          - name: "bad name; rm -rf /"
            url: https://ops:hunter2@10.0.0.14:8080
            colour: red
        timeout_s: 0
        """,
    )
    found = problems(path)
    assert f"{path}:5:10: devices[1].url: `ftp://10.0.0.13` must start with http:// or https://" in found
    named = f"{path}:6:11: devices[2].name: `bad name; rm -rf /` is not a device name"
    assert any(line.startswith(named) for line in found)
    credentials = "the URL holds credentials: put the API key in `api_key` (a secret reference)"
    assert f"{path}:7:10: devices[2].url: {credentials}" in found
    assert f"{path}:8:5: devices[2].colour: unknown key" in found
    assert any(line.startswith(f"{path}:9:12: timeout_s: ") for line in found)
    assert "hunter2" not in "\n".join(found)


def test_names_are_unique_and_something_is_listed(tmp_path: Path) -> None:
    twice = write(tmp_path, "devices:\n  - {name: a, url: 'http://h1:1'}\n  - {name: a, url: 'http://h2:1'}\n")
    assert problems(twice) == [f"{twice}:3:12: devices[1].name: `a` is also devices[0]'s name: names are unique"]
    empty = write(tmp_path, "timeout_s: 3\n", "empty.yaml")
    assert problems(empty) == [f"{empty}:1:1: devices: list devices, or a `repository` folder"]
    missing = write(tmp_path, "repository: devices\n", "missing.yaml")
    assert problems(missing) == [f"{missing}:1:13: repository: {tmp_path / 'devices'} is not a folder"]
    listed = write(tmp_path, "- a\n", "list.yaml")
    assert problems(listed) == [f"{listed}:1:1: a fleet file is a mapping: devices, repository"]


def test_a_repository_folder_names_each_device_by_its_cortexfile(tmp_path: Path) -> None:
    fleet = write(
        tmp_path,
        """\
        repository: devices
        api_key: ${file:keys/fleet}
        ca_certificate: ca.pem
        devices:
          - {name: listed, url: 'http://10.1.1.1:9000/'}
          - {name: shelf-b, url: 'http://10.1.1.2:9000', api_key: '${env:SHELF_B_KEY}'}
        """,
    )
    write(tmp_path, "version: 1\ndevice:\n  hostname: shelf-a\n", "devices/shelf-a.yaml")
    static = """\
        version: 1
        server: {port: 8443, tls: {cert: /etc/cortex/tls.pem, key: /etc/cortex/tls.key},
                 auth: {api_keys: ['${file:/etc/passwd}']}}
        device: {network: {address: 192.168.7.20/24}}
        """
    write(tmp_path, static, "devices/shelf-b/Cortexfile.yaml")  # named by the list already: the list wins
    write(tmp_path, "version: 1\ndevice: {network: {address: 'fd00::7/64'}}\n", "devices/v6.yml")
    write(tmp_path, "version: 1\nserver: {port: 0}\n", "devices/broken.yaml")
    write(tmp_path, "version: 1\nserver: {port: 8443, tls: {cert: /c.pem, key: /k.pem}}\n", "devices/tls.yaml")
    write(tmp_path, "version: 1\n", "devices/\x1b[2Jwipe.yaml")
    (tmp_path / "devices" / "linked.yaml").symlink_to(tmp_path / "fleet.yaml")  # an operator's file: never read
    loaded, _ = load_fleet(fleet)
    found = {target.name: target for target in targets(loaded, tmp_path)}
    assert list(found) == ["listed", "shelf-b", " [2Jwipe", "broken", "shelf-a", "tls", "v6"]
    assert found[" [2Jwipe"].problem == "not a device name: letters, digits and `._-`"
    assert found["listed"].url == "http://10.1.1.1:9000"
    assert str(found["shelf-b"].api_key) == "${env:SHELF_B_KEY}"
    assert found["shelf-a"].url == "http://shelf-a:39281"
    assert found["v6"].url == "http://[fd00::7]:39281"
    # a device's own key reference names a path on the device: never read here; the fleet's key is sent, and
    # only over https checked with the fleet's CA (a file in the repository names the address)
    assert str(found["tls"].api_key) == f"${{file:{tmp_path / 'keys/fleet'}}}"
    assert found["tls"].ca_certificate == tmp_path / "ca.pem"
    assert found["shelf-a"].api_key is None
    assert "only over https checked with the fleet's ca_certificate" in (found["shelf-a"].no_key_because or "")
    assert found["broken"].problem is not None
    assert "server.port" in found["broken"].problem


def test_a_tls_device_from_the_repository_is_asked_over_https(tmp_path: Path) -> None:
    fleet = write(tmp_path, "repository: .\n")
    write(tmp_path, "version: 1\nserver: {port: 8443, tls: {cert: /c.pem, key: /k.pem}}\n", "edge.yaml")
    loaded, _ = load_fleet(fleet)
    by_name = {target.name: target for target in targets(loaded, tmp_path)}
    assert by_name["edge"].url == "https://cortex:8443"
    assert "fleet" in by_name  # the fleet file itself is no Cortexfile: listed as not valid, not fatal
    assert by_name["fleet"].problem is not None
