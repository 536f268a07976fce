"""Boot a disk image under qemu with UEFI firmware (x86-64: q35 + OVMF; arm64: virt + AAVMF), software emulation
(the CPU of EMULATED_CPU) unless CORTEX_QEMU_ACCEL says otherwise, guest ports forwarded to loopback ports; or a
Raspberry Pi image on qemu's emulated Pi 3 board, through its own U-Boot. The serial console goes to a file. Always
stopped by the context manager.

A UEFI guest's reboot is a power cycle: qemu exits at the guest's reset (-no-reboot) and a fresh qemu starts on the
same disk and firmware variables. qemu 7.2's warm reset of q35 + OVMF under TCG hangs now and then (no firmware
output, a vCPU spinning; two CI runs of the boot test stopped there for good), as OVMF's warm resets do elsewhere
(tianocore/edk2#12441), while its cold start has never failed here. What the device keeps across a reboot lives on
its disk and in its firmware variables, which a power cycle keeps as well."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ...processes import stop

FIRMWARE = {
    "amd64": (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
    "arm64": (Path("/usr/share/AAVMF/AAVMF_CODE.fd"), Path("/usr/share/AAVMF/AAVMF_VARS.fd")),
}
MACHINE = {
    "amd64": ["qemu-system-x86_64", "-machine", "q35"],
    "arm64": ["qemu-system-aarch64", "-machine", "virt"],
}
# Under software emulation, an x86-64 guest is a Westmere (SSE4.2, AES-NI, no AVX): qemu runs AVX2 code through a
# helper call per instruction, so under `-cpu max` the guest's llama.cpp (its haswell variant) took 6.5 s a token
# (8 prompt tokens: 17.3 s), its sse42 variant 0.7 s (2.2 s), measured in qemu-x86_64 on the same host. Which
# variant a CPU gets is tested on the host's real CPU and under qemu-user (test_llama_backends.py); the boot test
# is about the device, not the kernels.
EMULATED_CPU = {"amd64": "Westmere", "arm64": "max"}
KEY = re.compile(r"cortex-[0-9a-f]{64}")
KEY_NOTICE = "Cortex made an API key: read it on the device's screen or as root in /etc/cortex/api-keys"


# What the kernel says last before it resets the machine (generic, x86's, after a panic: `panic=N`), or powers it
# off. A reset said by none of them (a triple fault, the firmware's own) ends the machine, and the test says so.
RESTARTING = ("reboot: Restarting system", "reboot: machine restart", "Rebooting in ")
POWERING_OFF = ("reboot: Power down", "reboot: System halted")


class Vm:
    """A machine under qemu: its console file (kept across power cycles) and its forwarded ports. With
    `power_cycles`, a qemu that exits at the guest's reset is started again (see the module's docstring)."""

    def __init__(self, command: list[str], console: Path, ports: Mapping[int, int], power_cycles: bool) -> None:
        self.console = console
        self.ports: Mapping[int, int] = dict(ports)
        self._command = command
        self._lock = threading.Lock()
        self._stopping = False
        console.unlink(missing_ok=True)
        self.process = self._start()
        self._watcher = threading.Thread(target=self._power_cycle, daemon=True) if power_cycles else None
        if self._watcher is not None:
            self._watcher.start()

    def _start(self) -> subprocess.Popen[bytes]:
        self._started_at = self.console.stat().st_size if self.console.exists() else 0
        return subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _power_cycle(self) -> None:
        while self.process.wait() == 0:
            with self._lock:
                if self._stopping or not self._reset_by_guest():
                    return
                _close(self.process)
                self.process = self._start()

    def _reset_by_guest(self) -> bool:
        """Whether the kernel's last words since this qemu started were a restart, a panic's included (not a
        power-off, nor a reset it did not announce)."""
        with self.console.open("rb") as file:
            file.seek(self._started_at)
            said = file.read().decode(errors="replace")
        return max(map(said.rfind, RESTARTING)) > max(map(said.rfind, POWERING_OFF))

    def exited(self) -> int | None:
        """qemu's exit status once it has exited for good (not for a power cycle); None while the machine runs."""
        with self._lock:
            code = self.process.poll()
            cycling = self._watcher is not None and self._watcher.is_alive()
            return None if code is None or cycling else code

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        stop(self.process, grace_s=30)
        if self._watcher is not None:
            self._watcher.join(60)
        _close(self.process)

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def console_tail(self, chars: int = 4000) -> str:
        text = self.console_text()[-chars:]
        if self.exited() is not None and self.process.stderr is not None:
            text += "\nqemu: " + self.process.stderr.read().decode(errors="replace")[-chars:]
        return text

    def api_keys_shown(self) -> list[str]:
        """API keys the serial console showed (it never should: its output may be kept elsewhere)."""
        return KEY.findall(self.console_text())

    def key_notices(self) -> int:
        return self.console_text().count(KEY_NOTICE)

    def wait_for_key_notice(self, timeout_s: float) -> None:
        """Until the serial console says an API key was made (and where to read it)."""
        self.wait_for(KEY_NOTICE, timeout_s)

    def wait_for(self, text: str, timeout_s: float) -> str:
        """Until the serial console shows `text`; the console's line that holds it."""
        deadline = time.monotonic() + timeout_s
        while text not in (shown := self.console_text()):
            assert self.exited() is None, f"qemu exited {self.exited()}: {self.console_tail()}"
            assert time.monotonic() < deadline, f"no {text!r} in {timeout_s:.0f}s: {self.console_tail()}"
            time.sleep(2)
        return next(line for line in shown.splitlines() if text in line)


def accelerator() -> str:
    """TCG unless CORTEX_QEMU_ACCEL=kvm: nested KVM on CI machines can abort qemu at start (MSR errors)."""
    return os.environ.get("CORTEX_QEMU_ACCEL", "tcg")


def cpu_model(architecture: str) -> str:
    return EMULATED_CPU[architecture] if accelerator() == "tcg" else "max"


@contextmanager
def boot(disk: Path, architecture: str, ports: Mapping[int, int], memory_mib: int = 2048) -> Iterator[Vm]:
    code, variables_template = FIRMWARE[architecture]
    variables = disk.with_name(f"{disk.name}.vars.fd")
    if not variables.exists():  # kept across reboots of the same disk, as a machine's NVRAM is
        shutil.copyfile(variables_template, variables)
    console = disk.with_name(f"{disk.name}.console.log")
    forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in ports.items())
    command = [
        *MACHINE[architecture],
        "-cpu", cpu_model(architecture),
        "-accel", accelerator(),
        "-smp", "2",
        "-m", str(memory_mib),
        "-display", "none",
        "-chardev", f"file,id=console,path={console},append=on",
        "-serial", "chardev:console",
        "-no-reboot",
        "-drive", f"if=pflash,format=raw,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,file={variables}",
        "-drive", f"if=virtio,format=raw,file={disk}",
        "-netdev", f"user,id=net0,{forwards}",
        "-device", "virtio-net-pci,netdev=net0",
    ]  # fmt: skip
    with _running(command, console, ports, power_cycles=True) as vm:
        yield vm


# What qemu's raspi3b board needs on the kernel command line (the image itself is unchanged):
# - its power-management block resets the board the moment a watchdog is armed (it models the reset, not the
#   timer), so the bcm2835 watchdog's driver stays out;
# - an emulated board takes minutes where systemd allows 90 s (the SD card's partitions appear late).
RASPI3B_KERNEL_ARGS = (
    "modprobe.blacklist=bcm2835_wdt systemd.default_device_timeout_sec=1800 systemd.default_timeout_start_sec=1800"
)


def raspi3b(u_boot: Path, device_tree: Path, sd_card: Path, console: str = "stdio") -> list[str]:
    """qemu's `raspi3b` board (1 GiB, 4 Cortex-A53, software emulation; qemu 7.2 has it), started as a Pi's
    firmware starts an image: its own U-Boot (config.txt's kernel=) with the board's device tree, the SD card
    `sd_card` (its size a power of two, as qemu requires). No network. The console is the mini UART, the
    image's ttyS1. qemu's options after the program, -no-reboot and -nic none."""
    return [
        "-machine", "raspi3b",
        "-kernel", str(u_boot), "-dtb", str(device_tree), "-drive", f"if=sd,file={sd_card},format=raw",
        "-display", "none", "-serial", "null", "-serial", console, "-monitor", "none",
    ]  # fmt: skip


@contextmanager
def boot_raspi3b(u_boot: Path, device_tree: Path, sd_card: Path) -> Iterator[Vm]:
    console = sd_card.with_name(f"{sd_card.name}.console.log")
    command = [
        "qemu-system-aarch64",
        "-no-reboot",
        "-nic",
        "none",
        *raspi3b(u_boot, device_tree, sd_card, f"file:{console}"),
    ]
    with _running(command, console, {}, power_cycles=False) as vm:
        yield vm


@contextmanager
def _running(command: list[str], console: Path, ports: Mapping[int, int], *, power_cycles: bool) -> Iterator[Vm]:
    vm = Vm(command, console, ports, power_cycles)
    try:
        yield vm
    finally:
        vm.stop()


def _close(process: subprocess.Popen[bytes]) -> None:
    if process.stderr is not None:
        process.stderr.close()
