"""The device's generated files against reviewed copies, one folder per case (`root/...` and
`boot/...` as in the image). After an intended change: CORTEX_UPDATE_GOLDEN=1 pytest
tests/images/disk/test_golden.py, then review the diff."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from menlo_cortex.images.targets.disk.render import FIRSTBOOT, render

from .conftest import GOLDEN, plan_for

CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "Cortexfile.yaml").is_file())
UPDATE = os.environ.get("CORTEX_UPDATE_GOLDEN") == "1"
PSK = "0" * 64  # render takes the derived key; build.wifi_psk derives it (tested in test_bad_input)


def rendered_files(case: str) -> dict[str, str]:
    rendered = render(plan_for(GOLDEN / case / "Cortexfile.yaml"), PSK)
    files = {f"root/{path}": text for path, (text, _mode) in rendered.root.items()}
    return files | {f"boot/{path}": text for path, text in rendered.boot.items()}


@pytest.mark.parametrize("case", CASES)
def test_rendered_files_match_golden(case: str) -> None:
    files = rendered_files(case)
    expected = {str(p.relative_to(GOLDEN / case)) for p in (GOLDEN / case).rglob("*") if p.is_file()}
    if UPDATE:
        shutil.rmtree(GOLDEN / case / "root", ignore_errors=True)
        shutil.rmtree(GOLDEN / case / "boot", ignore_errors=True)
        for path, text in files.items():
            (GOLDEN / case / path).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / case / path).write_text(text, encoding="utf-8")
        expected = set(files) | {"Cortexfile.yaml"}
    assert expected == set(files) | {"Cortexfile.yaml"}, "files differ from the golden folder (CORTEX_UPDATE_GOLDEN=1)"
    for path, text in files.items():
        assert text == (GOLDEN / case / path).read_text(encoding="utf-8"), f"{case}/{path} differs"


def test_every_board_layout_has_a_case() -> None:
    layouts = {plan_for(GOLDEN / case / "Cortexfile.yaml").board.layout.value for case in CASES}
    assert layouts == {"uefi", "raspberry-pi"}


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (scripts/setup.sh)")
def test_first_boot_script_passes_shellcheck() -> None:
    scripts = sorted(str(p) for p in GOLDEN.glob(f"*/root/{FIRSTBOOT}"))
    assert len(scripts) == len(CASES)
    done = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_modes_keep_secrets_private() -> None:
    rendered = render(plan_for(GOLDEN / "raspberry-pi-4-wifi" / "Cortexfile.yaml"), PSK)
    assert rendered.root["etc/wpa_supplicant/wpa_supplicant-wlan0.conf"][1] == 0o600
    ssh = render(plan_for(GOLDEN / "uefi-dhcp-ssh" / "Cortexfile.yaml"), PSK)
    assert ssh.root["root/.ssh/authorized_keys"][1] == 0o600
    assert ssh.root[FIRSTBOOT][1] == 0o755


def test_wifi_name_is_hex_and_the_passphrase_never_written() -> None:
    text = rendered_files("raspberry-pi-4-wifi")["root/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"]
    ssid = 'Warehouse "A" 5G'
    assert f"ssid={ssid.encode().hex()}\n" in text
    assert f"psk={PSK}\n" in text
    assert '"' not in text.split("network={")[1]


def test_rendering_is_pure_and_stable() -> None:
    assert rendered_files("arm64-static") == rendered_files("arm64-static")


def test_ids_follow_the_config_and_differ_between_configs() -> None:
    first = plan_for(GOLDEN / "uefi-dhcp-ssh" / "Cortexfile.yaml").ids
    second = plan_for(GOLDEN / "arm64-static" / "Cortexfile.yaml").ids
    assert first == plan_for(GOLDEN / "uefi-dhcp-ssh" / "Cortexfile.yaml").ids
    assert first.root_partition != second.root_partition
    values = [first.disk, first.root_partition, first.other_root_partition, first.boot_partition, first.root_fs,
              first.root_hash_seed, first.data_partition, first.data_fs, first.data_hash_seed]  # fmt: skip
    assert len(set(values)) == len(values)
