"""Render the device's own files from the disk plan: pure, the same plan gives the same bytes.

Files go either into the root file system (`root`) or onto the boot partition (`boot`), each with its
mode. The Wi-Fi key arrives already derived (a PSK), never as the passphrase.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...templating import environment
from .plan import DiskPlan

FIRSTBOOT = "usr/lib/cortex-device/firstboot"
SELFCHECK = "usr/lib/cortex-device/selfcheck"


@dataclass(frozen=True)
class Rendered:
    root: dict[str, tuple[str, int]]  # path in the root file system -> (text, mode)
    boot: dict[str, str]  # path on the boot partition -> text


INITRAMFS_MODULES = "etc/initramfs-tools/modules"


def render(plan: DiskPlan, psk: str | None = None) -> Rendered:
    env = environment(__package__)
    context = {
        "plan": plan,
        "generate_key": "yes" if plan.generate_key else "no",
        "ssh": "yes" if plan.ssh_keys else "no",
        "boot_reference": _boot_reference(plan),
        "ssid_hex": (plan.wifi_ssid or "").encode().hex(),
        "psk": psk or "",
        "consoles": f"tty0 {plan.board.serial_console},115200",
        "url": f"{'https' if plan.tls else 'http'}://127.0.0.1:{plan.port}",
    }

    def text(template: str) -> str:
        return env.get_template(template).render(context)

    root = {
        "etc/hostname": (text("hostname.j2"), 0o644),
        "etc/hosts": (text("hosts.j2"), 0o644),
        "etc/fstab": (text("fstab.j2"), 0o644),
        "etc/timezone": (plan.timezone + "\n", 0o644),
        "etc/systemd/network/80-cortex-wired.network": (text("wired.network.j2"), 0o644),
        "etc/systemd/system/cortex-firstboot.service": (text("cortex-firstboot.service.j2"), 0o644),
        FIRSTBOOT: (text("firstboot.sh.j2"), 0o755),
        "etc/systemd/system/cortex-selfcheck.service": (text("cortex-selfcheck.service.j2"), 0o644),
        SELFCHECK: (text("selfcheck.sh.j2"), 0o755),
    }
    if plan.ssh_keys:
        root["root/.ssh/authorized_keys"] = (text("authorized_keys.j2"), 0o600)
        root["etc/ssh/sshd_config.d/cortex.conf"] = (text("sshd.conf.j2"), 0o644)
    if plan.wifi_ssid is not None:
        root["etc/systemd/network/81-cortex-wifi.network"] = (text("wifi.network.j2"), 0o644)
        root["etc/wpa_supplicant/wpa_supplicant-wlan0.conf"] = (text("wpa_supplicant.conf.j2"), 0o600)
    if plan.board.layout.value == "raspberry-pi":
        root["etc/default/raspi-firmware"] = (text("raspi-firmware.j2"), 0o644)
    if plan.board.initramfs_modules:
        root[INITRAMFS_MODULES] = (text("initramfs-modules.j2"), 0o644)
    return Rendered(root, _boot_files(plan, text))


def enabled_units(plan: DiskPlan) -> tuple[list[str], list[str]]:
    """Units to enable and to disable in the image (`systemctl --root`)."""
    enable = ["systemd-networkd.service", "systemd-resolved.service", "systemd-timesyncd.service"]
    enable += ["cortex-firstboot.service", "cortex.service", "cortex-selfcheck.service"]
    disable: list[str] = []
    if plan.wifi_ssid is not None:
        enable.append("wpa_supplicant@wlan0.service")
    (enable if plan.ssh_keys else disable).append("ssh.service")
    return enable, disable


def _boot_files(plan: DiskPlan, text: Callable[[str], str]) -> dict[str, str]:
    if plan.board.layout.value == "uefi":
        return {"loader/loader.conf": text("loader.conf.j2"), "loader/entries/cortex.conf": text("entry.conf.j2")}
    return {"config.txt": text("config.txt.j2"), "cmdline.txt": text("cmdline.txt.j2")}


def _boot_reference(plan: DiskPlan) -> str:
    if plan.board.layout.value == "uefi":
        return f"PARTUUID={plan.ids.boot_partition}"
    return f"PARTUUID={plan.ids.mbr_id[2:]}-01"
