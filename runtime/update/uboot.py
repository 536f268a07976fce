"""A Raspberry Pi's slots: the firmware starts U-Boot (Debian's u-boot-rpi), and the boot script the disk builder
writes (boot.scr) picks the slot from two files on the boot partition:

    cortex/slot.txt        cortex_slot=<a|b>: the kept slot (a when the file is missing)
    cortex/try.txt         cortex_try=<a|b>: a new version to boot once (the update agent writes it last)
    cortex/<slot>/boot.txt its kernel command line (bootargs=...) and version, beside its vmlinuz and initrd.img

The script removes try.txt before it boots the slot it names, so the trial is one boot: a version that hangs,
panics or fails its check is never booted again by itself (the next boot, a reset, the check's reboot or a power
cut, is the kept slot's). The check keeps it by writing slot.txt. The firmware's own one-shot flag (tryboot) is set
through the firmware's mailbox at reboot by Raspberry Pi's kernel only: Debian's kernels cannot ask for it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..ops.durable import fsync_dir
from .bootfiles import ESP_FOLDER, SLOTS, Entry, command_line, install_kernel, remove_kernel, write_fat_text

SCRIPT = "boot.scr"
KEPT = f"{ESP_FOLDER}/slot.txt"
TRY = f"{ESP_FOLDER}/try.txt"
ENTRY = "boot.txt"  # in cortex/<slot>/
_VARIABLE = re.compile(r"^(?P<name>cortex_slot|cortex_try|cortex_version)=(?P<value>[0-9A-Za-z.]{1,40})$", re.MULTILINE)


def entry_text(slot: str, version: str, root_partuuid: str, boot_options: str) -> str:
    """cortex/<slot>/boot.txt, as U-Boot's `env import -t` reads it."""
    return (
        f"# Cortex {version} in slot {slot}: read by boot.scr\n"
        f"cortex_version={version}\n"
        f"bootargs={command_line(slot, root_partuuid, boot_options)}\n"
    )


def kept_text(slot: str) -> str:
    return f"cortex_slot={slot}\n"


@dataclass(frozen=True)
class UBootOnce:
    """The files boot.scr reads, on the boot partition mounted at `boot`."""

    boot: Path

    def kept(self) -> str:
        """As boot.scr reads slot.txt: b when it says b, else a."""
        return "b" if _read(self.boot / KEPT).get("cortex_slot") == "b" else "a"

    def armed(self) -> str | None:
        """The slot try.txt names: to boot once at the next boot."""
        slot = _read(self.boot / TRY).get("cortex_try")
        return slot if slot in SLOTS else None

    def entries(self, booted: str | None) -> dict[str, Entry]:
        """A slot with a boot.txt; on trial while armed (one try left) or booted but not kept (its try taken)."""
        kept, armed = self.kept(), self.armed()
        found: dict[str, Entry] = {}
        for slot in SLOTS:
            path = self.boot / ESP_FOLDER / slot / ENTRY
            if not path.is_file() or path.is_symlink():
                continue
            tries = 1 if slot == armed else 0 if slot == booted and slot != kept else None
            found[slot] = Entry(slot, path, tries, _read(path).get("cortex_version", ""))
        return found

    def remove_entry(self, slot: str) -> None:
        if self.armed() == slot:
            self._disarm()
        path = self.boot / ESP_FOLDER / slot / ENTRY
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsync_dir(path.parent)
        remove_kernel(self.boot, slot)

    def install_boot_files(self, slot: str, kernel: Path, initrd: Path) -> None:
        install_kernel(self.boot, slot, kernel, initrd)

    def add_entry(self, slot: str, version: str, root_partuuid: str, boot_options: str) -> None:
        (self.boot / ESP_FOLDER / slot).mkdir(parents=True, exist_ok=True)
        write_fat_text(self.boot / ESP_FOLDER / slot / ENTRY, entry_text(slot, version, root_partuuid, boot_options))
        write_fat_text(self.boot / TRY, f"cortex_try={slot}\n")

    def mark_bad(self, slot: str) -> None:
        """boot.scr took the try before booting it; a try still armed for it is withdrawn."""
        if self.armed() == slot:
            self._disarm()

    def bless(self, slot: str) -> bool:
        if self.kept() == slot:
            return False
        write_fat_text(self.boot / KEPT, kept_text(slot))
        return True

    def _disarm(self) -> None:
        (self.boot / TRY).unlink()
        fsync_dir(self.boot / ESP_FOLDER)


def _read(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return {}
    return {match.group("name"): match.group("value") for match in _VARIABLE.finditer(text)}
