"""Boot a disk image under qemu (q35, OVMF, -cpu max; KVM when the machine has it, else TCG) with
the guest's port forwarded to a free loopback port; always stopped by the context manager."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ....processes import stop

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


@dataclass(frozen=True)
class Vm:
    process: subprocess.Popen[bytes]
    console: Path
    host_port: int

    def console_tail(self, chars: int = 4000) -> str:
        text = self.console.read_text(errors="replace")[-chars:] if self.console.exists() else ""
        if self.process.poll() is not None and self.process.stderr is not None:
            text += "\nqemu: " + self.process.stderr.read().decode(errors="replace")[-chars:]
        return text


def accelerators() -> list[str]:
    """TCG unless CORTEX_QEMU_ACCEL=kvm: nested KVM on CI machines can abort qemu at start (MSR errors)."""
    return ["-accel", os.environ.get("CORTEX_QEMU_ACCEL", "tcg")]


@contextmanager
def boot(disk: Path, host_port: int, guest_port: int, memory_mib: int = 2048) -> Iterator[Vm]:
    variables = disk.with_name("OVMF_VARS.fd")
    shutil.copyfile(OVMF_VARS, variables)
    console = disk.with_name("console.log")
    command = [
        "qemu-system-x86_64",
        "-machine", "q35",
        "-cpu", "max",
        *accelerators(),
        "-smp", "2",
        "-m", str(memory_mib),
        "-display", "none",
        "-serial", f"file:{console}",
        "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,file={variables}",
        "-drive", f"if=virtio,format=raw,file={disk}",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{host_port}-:{guest_port}",
        "-device", "virtio-net-pci,netdev=net0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield Vm(process, console, host_port)
    finally:
        stop(process, grace_s=30)
        if process.stderr is not None:
            process.stderr.close()
