"""Render the device's own files from the disk plan: pure, the same plan gives the same bytes.

Files go either into the root file system (`root`) or onto the boot partition (`boot`), each with its
mode. The Wi-Fi key arrives already derived (a PSK), never as the passphrase.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from menlo_cortex.cortexfile.formats import DEVICE_DATA
from menlo_cortex.runtime.update import uboot
from menlo_cortex.runtime.update.bootfiles import ESP_FOLDER
from menlo_cortex.runtime.update.slots import DATA_LABEL, ENTRIES, entry_text

from ...templating import environment
from .plan import ESP_LABEL, DiskPlan

FIRSTBOOT = "usr/lib/cortex-device/firstboot"
DATA_MOUNT = DEVICE_DATA
RUNTIME_PYTHON = "/opt/cortex/current/bin/python"  # the live version's, where the bundle's install.sh links it
UPDATE_EXEC = (RUNTIME_PYTHON, "-m", "menlo_cortex", "update")
SELFCHECK = "usr/lib/cortex-device/selfcheck"


@dataclass(frozen=True)
class Rendered:
    root: dict[str, tuple[str, int]]  # path in the root file system -> (text, mode)
    boot: dict[str, str]  # path on the boot partition -> text (U-Boot's boot.cmd: the source of boot.scr)


INITRAMFS_MODULES = "etc/initramfs-tools/modules"
BOOT_SCRIPT_SOURCE = "boot.cmd"  # U-Boot's script, kept beside the boot.scr made from it


def render(plan: DiskPlan, psk: str | None = None) -> Rendered:
    env = environment(__package__)
    context = {
        "plan": plan,
        "generate_key": "yes" if plan.generate_key else "no",
        "ssh": "yes" if plan.ssh_keys else "no",
        "ssid_hex": (plan.wifi_ssid or "").encode().hex(),
        "psk": psk or "",
        "consoles": f"tty0 {plan.board.serial_console},115200",
        "url": f"{'https' if plan.tls else 'http'}://127.0.0.1:{plan.port}",
        "esp_label": ESP_LABEL,
        "data_label": DATA_LABEL,
        "data_mount": DATA_MOUNT,
        "kept_file": uboot.KEPT,
        "try_file": uboot.TRY,
        "entry_file": uboot.ENTRY,
        "slot_folder": ESP_FOLDER,
        "update_exec": UPDATE_EXEC,
        "runtime_python": RUNTIME_PYTHON,
        "first_check_s": min(120, plan.update_interval_s),
        "spread_s": min(300, plan.update_interval_s // 10),
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
    if plan.board.initramfs_modules:
        root[INITRAMFS_MODULES] = (text("initramfs-modules.j2"), 0o644)
    if not plan.uefi:  # a Pi's bcm2835 watchdog: see the template (UEFI boards' vary; qemu's ICH9 one hung a reboot)
        root["etc/systemd/system.conf.d/cortex-watchdog.conf"] = (text("watchdog.conf.j2"), 0o644)
    root["etc/systemd/system/cortex-update-check.service"] = (text("cortex-update-check.service.j2"), 0o644)
    if plan.updates:
        root["etc/systemd/system/cortex-update.service"] = (text("cortex-update.service.j2"), 0o644)
        root["etc/systemd/system/cortex-update.timer"] = (text("cortex-update.timer.j2"), 0o644)
    return Rendered(root, _boot_files(plan, text))


def enabled_units(plan: DiskPlan) -> tuple[list[str], list[str]]:
    """Units to enable and to disable in the image (`systemctl --root`)."""
    enable = ["systemd-networkd.service", "systemd-resolved.service", "systemd-timesyncd.service"]
    enable += ["cortex-firstboot.service", "cortex.service", "cortex-selfcheck.service"]
    disable: list[str] = []
    if plan.wifi_ssid is not None:
        enable.append("wpa_supplicant@wlan0.service")
    (enable if plan.ssh_keys else disable).append("ssh.service")
    enable.append("cortex-update-check.service")
    enable += ["cortex-update.timer"] if plan.updates else []
    return enable, disable


def _boot_files(plan: DiskPlan, text: Callable[[str], str]) -> dict[str, str]:
    """Slot a's entry, and what picks a slot: systemd-boot's settings, or the Pi firmware's config and U-Boot's
    script."""
    version, root = plan.version or "0", plan.ids.root_partition
    if plan.uefi:
        entry = entry_text("a", version, root, plan.boot_options)
        return {"loader/loader.conf": text("loader.conf.j2"), f"{ENTRIES}/cortex-a.conf": entry}
    return {
        "config.txt": text("config.txt.j2"),
        BOOT_SCRIPT_SOURCE: text("boot.cmd.j2"),
        uboot.KEPT: uboot.kept_text("a"),
        f"{kernel_folder(plan)}{uboot.ENTRY}": uboot.entry_text("a", version, root, plan.boot_options),
    }


def kernel_folder(plan: DiskPlan) -> str:
    """Where the boot partition holds slot a's kernel and initrd."""
    return f"{ESP_FOLDER}/a/"
