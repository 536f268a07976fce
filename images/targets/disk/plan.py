"""The disk plan: what the device image holds around the service, from the resolved Cortexfile alone.

Pure. Every identifier a disk carries (partition table, partitions, file systems) is derived from the
config hash, so the same Cortexfile gives the same image and two Cortexfiles never share ids.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile import format_rules
from menlo_cortex.cortexfile.boards import Board, board_name, load_board
from menlo_cortex.cortexfile.data_folder import sync_dir
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.formats import DATA_DIR, DEVICE_KEY_FILE
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema.device import Updates
from menlo_cortex.cortexfile.schema.sync import Sync

FORMAT = "disk"
BOOT_MIB = 256  # the EFI system partition or the Raspberry Pi's boot partition
ROOT_LABEL = "cortex-root"
ESP_LABEL = "cortex-esp"  # the GPT name of an A/B disk's EFI system partition
DATA_MIB = 256  # the data partition as built; first boot grows it to the disk


@dataclass(frozen=True)
class DiskIds:
    """Every identifier the image holds, derived from one seed (the config hash)."""

    seed: str

    def _uuid(self, what: str) -> str:
        return str(uuid.UUID(bytes=hashlib.sha256(f"{self.seed}|{what}".encode()).digest()[:16], version=4))

    @property
    def disk(self) -> str:
        return self._uuid("disk")

    @property
    def root_partition(self) -> str:
        return self._uuid("root-partition")

    @property
    def other_root_partition(self) -> str:
        """Slot b of an A/B disk (slot a is `root_partition`)."""
        return self._uuid("root-partition-b")

    @property
    def data_partition(self) -> str:
        return self._uuid("data-partition")

    @property
    def data_fs(self) -> str:
        return self._uuid("data-fs")

    @property
    def data_hash_seed(self) -> str:
        return self._uuid("data-hash-seed")

    @property
    def boot_partition(self) -> str:
        return self._uuid("boot-partition")

    @property
    def root_fs(self) -> str:
        return self._uuid("root-fs")

    @property
    def root_hash_seed(self) -> str:
        return self._uuid("root-hash-seed")

    @property
    def boot_volume_id(self) -> str:
        """The FAT volume id: 8 hexadecimal digits."""
        return hashlib.sha256(f"{self.seed}|boot-volume".encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Network:
    address: str | None  # None: DHCP
    gateway: str | None
    dns: tuple[str, ...]


@dataclass(frozen=True)
class DiskPlan:
    name: str  # the image is <name>.img
    board: Board
    architecture: str
    hostname: str
    timezone: str
    ssh_keys: tuple[str, ...]  # empty: no SSH server
    network: Network
    wifi_ssid: str | None
    wifi_country: str | None
    generate_key: bool  # first boot makes an API key: the Cortexfile declares none
    key_file: str
    port: int
    tls: bool
    size_mib: int | None
    ids: DiskIds
    sync_packages: tuple[str, ...] = ()  # what `cortex sync` and the update agent run
    release: str = "trixie"  # the Debian release the root comes from
    mirror: str | None = None  # build.debian_mirror; None: the build host's own
    version: str | None = None  # build.version: the image's IMAGE_VERSION
    updates: bool = False  # device.updates.url is set: the update timer runs
    update_interval_s: int = 3600
    update_ready_timeout_s: int = 900
    data_path: str = DATA_DIR  # the service's data folder (data.path)

    @property
    def image_id(self) -> str:
        """os-release's IMAGE_ID: the kind of image, so an update is for this board and no other."""
        return f"cortex-{self.board.name}"

    @property
    def uefi(self) -> bool:
        """systemd-boot on an EFI system partition; else a Raspberry Pi's firmware and U-Boot."""
        return self.board.layout.value == "uefi"

    @property
    def sync_path(self) -> str:
        return str(sync_dir(Path(self.data_path)))

    @property
    def boot_options(self) -> str:
        """The kernel options besides the root: the same on every slot, so an update carries them."""
        # The screen first, the serial console last: the last one is /dev/console (boot status, prompts).
        # panic=30: a kernel that panics (or cannot find its root) restarts, so a new version that cannot boot
        # returns to the one before it without a hand on the power switch.
        return f"rw rootwait fsck.repair=yes panic=30 console=tty0 console={self.board.serial_console},115200"

    @property
    def boot_mount(self) -> str:
        return "/boot/efi" if self.uefi else "/boot/firmware"


def sync_packages(sync: Sync) -> tuple[str, ...]:
    """git to fetch, ssh for ssh:// remotes and SSH signatures (ssh-keygen), gpg for OpenPGP key files."""
    if sync.repository is None:
        return ()
    pgp = any(key.startswith("/") for key in sync.trusted_keys)
    return ("git", "openssh-client", *(("gpg",) if pgp else ()))


def update_packages(updates: Updates) -> tuple[str, ...]:
    """zstd unpacks an update into the idle slot; ssh-keygen or gpg checks its signature."""
    pgp = any(key.startswith("/") for key in updates.trusted_keys)
    return ("zstd", "openssh-client", *(("gpg",) if pgp else ()))


def make_plan(resolved: Resolved, config_hash: str) -> DiskPlan:
    """`resolved` was loaded with the disk format's defaults layer; ConfigError lists every problem."""
    problems = format_rules.problems(resolved, FORMAT)
    if problems:
        raise ConfigError(problems)
    config = resolved.config
    device, target = config.device, config.target
    name = board_name(target.hardware, target.architecture.value)
    board = load_board(name)
    auth = config.server.auth
    return DiskPlan(
        name=f"{device.hostname}-{name}",
        board=board,
        architecture=target.architecture.value,
        hostname=device.hostname,
        sync_packages=tuple(sorted({*sync_packages(config.sync), *update_packages(device.updates)})),
        updates=device.updates.url is not None,
        update_interval_s=device.updates.interval_s,
        update_ready_timeout_s=device.updates.ready_timeout_s,
        data_path=str(config.data.path or DATA_DIR),
        release=target.release.value,
        mirror=config.build.debian_mirror,
        version=config.build.version,
        timezone=device.timezone,
        ssh_keys=tuple(device.ssh.authorized_keys) if device.ssh.enabled else (),
        network=Network(device.network.address, device.network.gateway, tuple(device.network.dns)),
        wifi_ssid=device.wifi.ssid,
        wifi_country=device.wifi.country,
        generate_key=not auth.api_keys and auth.api_key_file == Path(DEVICE_KEY_FILE),
        key_file=DEVICE_KEY_FILE,
        port=config.server.port,
        tls=config.server.tls.cert is not None,
        size_mib=device.image_size_mb,
        ids=DiskIds(config_hash),
    )
