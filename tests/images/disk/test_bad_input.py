"""What the disk target refuses, before any slow step, with the place and the cause: device values that
would land in the image's files, boards that cannot make a disk, sizes and secrets that do not fit."""

from __future__ import annotations

from pathlib import Path

import pytest
from menlo_cortex.cortexfile import recipes
from menlo_cortex.cortexfile.boards import GENERIC_BOARDS, has_disk_layout, load_board
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.images.targets.disk.build import disk_sizes, wifi_psk

from .conftest import load_disk, plan_for

HEADER = "version: 1\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def refusal(tmp_path: Path, body: str) -> str:
    with pytest.raises(ConfigError) as caught:
        plan_for(write(tmp_path, body))
    return str(caught.value)


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ("device:\n  hostname: Shop Floor\n", "3:13: device.hostname", "host name is 1-63 lower-case"),
        ("device:\n  hostname: 'a;reboot'\n", "3:13: device.hostname", "host name"),
        ("device:\n  timezone: ../../etc/shadow\n", "3:13: device.timezone", "tz database name"),
        ("device:\n  ssh:\n    enabled: true\n", "4:5: device.ssh", "needs at least one key"),
        (
            "device:\n  ssh:\n    enabled: true\n    authorized_keys:\n"
            '      - command="curl x|sh" ssh-ed25519 '
            "AAAAC3NzaC1lZDI1NTE5AAAAIDtSU0KLAYnXWJ3XgTYuOJR80cJhDbBvMhfe3bnNAd5Y\n",
            "6:9: device.ssh.authorized_keys[0]",
            "without options",
        ),
        ("device:\n  network:\n    address: 10.0.0.5\n", "4:14: device.network.address", "no prefix length"),
        ("device:\n  network:\n    gateway: 10.0.0.1\n", "4:5: device.network", "go with a static `address`"),
        ("device:\n  wifi:\n    ssid: x\n", "4:5: device.wifi", "needs its `passphrase`"),
        (
            'device:\n  wifi:\n    ssid: "a\\nb"\n    passphrase: ${env:P}\n    country: US\n',
            "4:5: device.wifi",
            "control",
        ),
        ("device:\n  image_size_mb: 100\n", "3:18: device.image_size_mb", "greater than or equal to 1024"),
        ("device:\n  updates:\n    url: http://h/u/\n", "4:5: device.updates", "needs at least one key"),
        ("device:\n  updates:\n    url: ftp://h/u/\n", "4:10: device.updates.url", "http(s)://host"),
        ("device:\n  updates:\n    window: 2-5\n", "4:13: device.updates.window", "HH:MM-HH:MM"),
        ("device:\n  updates:\n    interval_s: 1\n", "4:17: device.updates.interval_s", "greater than or equal"),
        (
            "device:\n  updates:\n    url: https://h/u/\n    trusted_keys: [/etc/k.asc]\n"
            "    registry_token: ${env:CORTEX_T}\n",
            "4:5: device.updates",
            "`registry_token` is for an oci:// `url`",
        ),
        ("device:\n  updates:\n    registry_user: a b\n", "4:20: device.updates.registry_user", "pattern"),
    ],
)
def test_device_values_are_checked_where_written(tmp_path: Path, body: str, where: str, says: str) -> None:
    message = refusal(tmp_path, body)
    assert where in message
    assert says in message


def test_a_board_without_a_disk_layout_is_named(tmp_path: Path) -> None:
    message = refusal(tmp_path, "target:\n  hardware: jetson-orin\n")
    assert "target.hardware: hardware recipe `jetson-orin` has no disk layout" in message
    assert "boards with one: arm64-generic, raspberry-pi-4" in message
    assert "target.accelerator: --format disk makes CPU images" in message


def test_wifi_needs_a_board_with_a_radio(tmp_path: Path) -> None:
    body = "device:\n  wifi:\n    ssid: shop\n    passphrase: ${env:P}\n    country: US\n"
    assert "device.wifi.ssid: board `x86-64-uefi` has no Wi-Fi radio" in refusal(tmp_path, body)


def test_a_board_of_another_architecture_is_refused(tmp_path: Path) -> None:
    body = "target:\n  hardware: raspberry-pi-4\n  architecture: amd64\n"
    assert "board `raspberry-pi-4` is arm64: it cannot make a disk image for amd64" in refusal(tmp_path, body)


def test_every_disk_board_parses_and_each_architecture_has_a_generic_one() -> None:
    boards = [load_board(name) for name in recipes.names("hardware") if has_disk_layout(name)]
    assert {board.name for board in boards} >= {"x86-64-uefi", "arm64-generic", "raspberry-pi-4", "raspberry-pi-5"}
    for architecture, name in GENERIC_BOARDS.items():
        assert load_board(name).architecture == architecture
        assert load_board(name).layout.value == "uefi"


def test_a_board_on_a_release_that_cannot_boot_it_is_refused_where_written(tmp_path: Path) -> None:
    body = "target:\n  hardware: raspberry-pi-5\n  release: 12\n"
    assert "board `raspberry-pi-5` boots with Debian trixie only, not bookworm" in refusal(tmp_path, body)


def test_the_pi_5_takes_its_kernel_from_backports_and_loads_its_sd_controller_early() -> None:
    from menlo_cortex.images.targets.disk.render import INITRAMFS_MODULES, render
    from menlo_cortex.images.targets.disk.userland import root_spec

    plan = plan_for_board("raspberry-pi-5")
    spec = root_spec(plan.board, release="trixie", mirror="http://mirror.test/debian")
    assert "linux-image-arm64/trixie-backports" in spec.packages
    assert spec.extra_suites == ("trixie-backports",)
    modules = render(plan).root[INITRAMFS_MODULES][0].splitlines()
    assert [line for line in modules if not line.startswith("#")] == [
        "rp1-pci",
        "clk-rp1",
        "pinctrl-rp1",
        "sdhci-brcmstb",
    ]
    assert "device_tree=bcm2712-rpi-5-b.dtb" in render(plan).boot["config.txt"]


def plan_for_board(name: str):  # type: ignore[no-untyped-def]
    from menlo_cortex.images.targets.disk.plan import DiskIds, DiskPlan, Network

    return DiskPlan(
        name="x", board=load_board(name), architecture="arm64", hostname="x", timezone="UTC", ssh_keys=(),
        network=Network(None, None, ()), wifi_ssid=None, wifi_country=None, generate_key=True,
        key_file="/etc/cortex/api-keys", port=39281, tls=False, size_mib=None, ids=DiskIds("0"),
    )  # fmt: skip


def test_an_image_size_below_the_content_is_refused_where_written(tmp_path: Path) -> None:
    path = write(tmp_path, "device:\n  image_size_mb: 1024\n")
    resolved = load_disk(path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "big").write_bytes(b"\0" * (900 << 20))
    with pytest.raises(ConfigError, match=r"3:18: device\.image_size_mb: 1024 MiB is smaller than the image's content"):
        disk_sizes(resolved, plan_for(path), root)


def test_the_wifi_key_is_derived_as_wpa_passphrase_does(tmp_path: Path) -> None:
    # IEEE 802.11i-2004, H.4.3: passphrase "password", SSID "IEEE".
    wifi = "  wifi:\n    ssid: IEEE\n    passphrase: ${env:P}\n    country: US\n"
    body = "target:\n  hardware: raspberry-pi-4\ndevice:\n" + wifi
    resolved = load_disk(write(tmp_path, body))
    assert wifi_psk(resolved, {"P": "password"}) == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    with pytest.raises(ConfigError, match=r"device\.wifi\.passphrase: .*P"):
        wifi_psk(resolved, {})
    with pytest.raises(ConfigError, match="8 to 63 ASCII characters"):
        wifi_psk(resolved, {"P": "short"})


UPDATES = "device:\n  updates:\n    url: https://updates.example/fleet/\n    trusted_keys: [/etc/cortex/fleet.asc]\n"


def test_updates_need_a_version_on_every_board(tmp_path: Path) -> None:
    assert "build.version: updates are ordered by build.version" in refusal(tmp_path, UPDATES)
    pi = refusal(tmp_path, "target:\n  hardware: raspberry-pi-4\n" + UPDATES)
    assert "build.version: updates are ordered by build.version" in pi
    plan = plan_for(write(tmp_path, "target:\n  hardware: raspberry-pi-4\nbuild:\n  version: 1.0.0\n" + UPDATES))
    assert (plan.updates, plan.uefi, plan.boot_mount) == (True, False, "/boot/firmware")


def test_a_disk_keeps_its_data_partition_at_data(tmp_path: Path) -> None:
    message = refusal(tmp_path, "data:\n  path: /data/models\n")
    assert "data.path: /data/models: a disk image mounts its data partition at /data" in message
    pi = refusal(tmp_path, "target:\n  hardware: raspberry-pi-4\ndata:\n  path: /data\n")
    assert "data.path: /data: a disk image mounts its data partition at /data" in pi
