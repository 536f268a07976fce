"""Boards as data: the `disk:` section of a hardware recipe (recipes/hardware/*.yaml) says how a disk
image for that hardware boots: its layout, kernel and firmware packages, serial console, radio.

A Cortexfile without `target.hardware` gets its architecture's generic UEFI board.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import recipes
from .errors import ConfigError, Diagnostic, Origin
from .yamlio import parse_file

GENERIC_BOARDS = {"amd64": "x86-64-uefi", "arm64": "arm64-generic"}
Package = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]


class Layout(StrEnum):
    # Both GPT: a FAT boot partition, two ext4 root slots and a data partition. The boot partition holds, besides
    # each slot's kernel and initrd:
    uefi = "uefi"  # systemd-boot and its entries (an EFI system partition)
    raspberry_pi = "raspberry-pi"  # the firmware, device trees, config.txt, U-Boot and its boot.scr


class Board(BaseModel):
    """How a disk image for one kind of hardware boots."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = ""
    architecture: str = ""  # the recipe's target.architecture
    layout: Layout
    kernel: Package
    packages: tuple[Package, ...] = ()
    components: tuple[Annotated[str, Field(pattern=r"^[a-z-]+$")], ...] = ("main",)
    serial_console: str = Field(pattern=r"tty[A-Za-z]+[0-9]+")
    wifi: bool = False
    device_trees: tuple[str, ...] = ()  # Raspberry Pi: the .dtb files (paths below the kernel's dtb folder)
    firmware: str | None = Field(None, pattern=r"/usr/[a-z0-9/._-]+")  # Raspberry Pi: folder of the boot firmware
    config_txt: tuple[str, ...] = ()  # Raspberry Pi: lines of config.txt
    u_boot: str | None = Field(None, pattern=r"/usr/[a-z0-9/._-]+")  # Raspberry Pi: the U-Boot the firmware starts
    releases: tuple[Annotated[str, Field(pattern=r"^[a-z]+$")], ...] = ("bookworm", "trixie")  # Debian's that boot it
    backports: bool = False  # its kernel comes from the release's backports
    initramfs_modules: tuple[Annotated[str, Field(pattern=r"^[a-z0-9_-]+$")], ...] = ()  # loaded before the root

    def root_packages(self, release: str) -> tuple[str, ...]:
        kernel = f"{self.kernel}/{release}-backports" if self.backports else self.kernel
        return (kernel, *self.packages)


def board_name(hardware: str | None, architecture: str) -> str:
    return hardware or GENERIC_BOARDS[architecture]


def load_board(name: str) -> Board:
    """The `disk:` section of recipes/hardware/<name>.yaml; ConfigError naming the recipe when it has
    none or it is malformed."""
    try:
        recipe = recipes.load("hardware", name, "config")
    except KeyError:
        raise ConfigError([recipes.unknown("hardware", name, None, "target.hardware")]) from None
    data = parse_file(recipe.path).data
    section = data.get("disk") if isinstance(data, dict) else None
    if section is None:
        boards = ", ".join(n for n in recipes.names("hardware") if has_disk_layout(n))
        message = f"hardware recipe `{name}` has no disk layout (`disk:`): it cannot make a disk image"
        raise ConfigError([Diagnostic(Origin(str(recipe.path), 1, 1), "disk", message, f"boards with one: {boards}")])
    try:
        target = recipe.body.get("target", {}) if isinstance(recipe.body, dict) else {}
        board = Board.model_validate({**section, "name": name, "architecture": target.get("architecture", "")})
    except ValidationError as exc:
        found = [
            Diagnostic(Origin(str(recipe.path)), "disk." + ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()
        ]
        raise ConfigError(found) from None
    return board


def has_disk_layout(name: str) -> bool:
    data = parse_file(recipes.RECIPES_DIR / "hardware" / f"{name}.yaml").data
    return isinstance(data, dict) and "disk" in data
