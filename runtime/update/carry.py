"""The running system's own identity, written into a freshly unpacked slot before it first boots: the machine id,
the SSH host keys, the API key first boot made, and (when the device follows a Git repository, which then owns
its configuration) the Cortexfile sync applied. Everything else a device keeps lives on the data partition.

debugfs writes into the unmounted file system: nothing is mounted, and no link in the new root is followed."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

WIFI_CONFIG = "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"

# The machine id, the API key first boot made, the env-var secrets put on the device by hand (the units'
# EnvironmentFile), and a Wi-Fi key (an update's root never carries one: see images/targets/update).
CARRIED = ("etc/machine-id", "etc/cortex/api-keys", "etc/cortex/environment", WIFI_CONFIG)
SSH_HOST_KEY = re.compile(r"ssh_host_[a-z0-9]{1,20}_key(\.pub)?")
SYNCED_CORTEXFILE = "etc/cortex/Cortexfile.yaml"
DEBUGFS_S = 300


class CarryError(RuntimeError):
    """The new slot could not receive the device's state; the message names the file."""


def carried_files(root: Path, sync_state: Path | None) -> list[str]:
    """Paths (relative to the root) of the running system's own state that exist, regular files only.
    `sync_state`: cortex sync's state.json; when it exists, the repository owns the Cortexfile."""
    names = [*CARRIED, *(f"etc/ssh/{path.name}" for path in sorted((root / "etc/ssh").glob("ssh_host_*"))
                         if SSH_HOST_KEY.fullmatch(path.name))]  # fmt: skip
    if sync_state is not None and sync_state.is_file():
        names.append(SYNCED_CORTEXFILE)
    return [name for name in names if _regular(root / name)]


def carry_state(root: Path, slot: Path, sync_state: Path | None = None) -> None:
    """Each carried file replaces the slot's own, with its owner and mode."""
    names = carried_files(root, sync_state)
    folders = sorted({str(Path(name).parent) for name in names})
    prepare = "".join(f'mkdir "/{folder}"\n' for folder in folders) + "".join(f'rm "/{name}"\n' for name in names)
    _debugfs(slot, prepare, strict=False)  # a folder the new root has, a file it lacks: no error
    commands = []
    for name in names:
        info = (root / name).lstat()
        commands += [
            f'write "{root / name}" "/{name}"\n',
            f'sif "/{name}" mode 0{stat.S_IFREG | stat.S_IMODE(info.st_mode):o}\n',
            f'sif "/{name}" uid {info.st_uid}\n',
            f'sif "/{name}" gid {info.st_gid}\n',
        ]
    _debugfs(slot, "".join(commands), strict=True)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _debugfs(slot: Path, commands: str, *, strict: bool) -> None:
    if not commands:
        return
    try:
        done = subprocess.run(["debugfs", "-w", "-f", "-", str(slot)], input=commands, capture_output=True, text=True,
                              check=False, timeout=DEBUGFS_S)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        raise CarryError("debugfs could not open the new slot") from None
    complaints = [line for line in done.stderr.splitlines() if line and not line.startswith("debugfs ")]
    if strict and (done.returncode != 0 or complaints):
        raise CarryError(f"the device's state could not be written into the new slot: {' / '.join(complaints[:3])}")
