"""The Debian userland every device image holds, whatever the board: systemd, the Python the runtime's
venv is built with, networking, time, first-boot growth and an SSH server that stays off unless the
Cortexfile asks for it. The board adds its kernel, boot loader and firmware packages."""

from __future__ import annotations

from menlo_cortex.cortexfile.boards import GENERIC_BOARDS, Board, load_board

from ...debian import SUITE, RootSpec, host_mirror

DEVICE_PACKAGES = (
    "systemd-sysv",
    "udev",
    "initramfs-tools",
    "procps",  # systemctl reload sends SIGHUP with kill
    "python3",
    "libgomp1",  # llama.cpp's OpenMP
    "systemd-timesyncd",  # boards without a clock: TLS needs the right time
    "iproute2",
    "tzdata",
    "ca-certificates",
    "openssh-server",  # disabled unless device.ssh is on; host keys are made at first boot
    "cloud-guest-utils",  # growpart: first boot grows the root partition to the disk
    "fdisk",
    "e2fsprogs",
    "wpasupplicant",  # Wi-Fi on boards that have it
)


# DNS for networkd's leases; its scripts replace /etc/resolv.conf, so it comes after the base system.
LATER_PACKAGES = ("systemd-resolved",)


def root_spec(board: Board, more: tuple[str, ...] = (), release: str = SUITE, mirror: str | None = None) -> RootSpec:
    """The root a board's image is made from: its architecture's generic root of `release` (debootstrap'd,
    shared by every board of the architecture and by the systemd bundle's tests), plus the board's own
    packages and `more` (what cortex sync needs) installed on top when there are any (cached as a layer).
    `mirror`: the Cortexfile's build.debian_mirror, else the build host's own."""
    generic = load_board(GENERIC_BOARDS[board.architecture])
    mirror = mirror or host_mirror()
    packages = tuple(sorted({*DEVICE_PACKAGES, *generic.root_packages(release)}))
    base = RootSpec(board.architecture, packages, LATER_PACKAGES, suite=release, mirror=mirror)
    extra = tuple(sorted({*board.root_packages(release), *more} - set(base.packages)))
    if not extra:
        return base
    components = tuple(dict.fromkeys(("main", *board.components)))
    suites = (f"{release}-backports",) if board.backports else ()
    return RootSpec(board.architecture, extra, components=components, suite=release, mirror=mirror, base=base,
                    extra_suites=suites)  # fmt: skip
