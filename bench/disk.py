"""Measure the device image (`cortex build --format disk`) on this machine: its size (raw, in use,
compressed), cold build time (no cached Debian root), warm build time, a config-only rebuild (another
host name), and power-on to the first chat completion under qemu (software emulation).

    .venv/bin/python bench/disk.py [--arch amd64|arm64] [--no-cold] [--no-boot] [--json FILE]

Uses the same real parts as the tests (tests/images/disk): the test model baked in, the cached
llama-cpp-python wheel of the architecture, qemu with UEFI firmware. A cold arm64 build runs the
root's package scripts under emulation (about 20 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import cache_dir, find_free_port  # noqa: E402
from tests.images.disk.fixtures import GUEST_PORT, disk_copy, ssh_key, write_cortexfile  # noqa: E402
from tests.images.disk.qemu import boot  # noqa: E402
from tests.images.disk.test_boot import first_chat  # noqa: E402

BOARDS = {"amd64": "x86-64-uefi", "arm64": "arm64-generic"}
KEY_WAIT_S = 3600


def timed_build(cortexfile: Path, output: Path, environ: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    command = [sys.executable, "-m", "menlo_cortex", "build", "-f", str(cortexfile), "--format", "disk"]
    command += ["-o", str(output), "--datapath", str(cache_dir() / "test-data")]
    done = subprocess.run(command, capture_output=True, text=True, env=environ, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cortex build failed:\n{done.stderr}")
    return time.monotonic() - started


def sizes(image: Path) -> dict[str, int]:
    compressed = image.with_name(image.name + ".zst")
    return {"raw_bytes": image.stat().st_size, "used_bytes": image.stat().st_blocks * 512,
            "compressed_bytes": compressed.stat().st_size}  # fmt: skip


def power_on_to_answer(image: Path, architecture: str, scratch: Path) -> dict[str, float]:
    disk = disk_copy(image, scratch / "boot.img")
    started = time.monotonic()
    with boot(disk, architecture, {GUEST_PORT: find_free_port()}) as vm:
        key = vm.wait_for_key(KEY_WAIT_S)
        key_s = time.monotonic() - started
        first_chat(vm, key)
        return {"power_on_to_key_s": key_s, "power_on_to_first_answer_s": time.monotonic() - started}


def measure(architecture: str, scratch: Path, cold: bool, booted: bool) -> dict[str, Any]:
    key = ssh_key(scratch)
    cortexfile = write_cortexfile(scratch / "a", key, hardware=BOARDS[architecture])
    result: dict[str, Any] = {"architecture": architecture, "board": BOARDS[architecture]}
    if cold:
        empty = {**os.environ, "CORTEX_ROOT_CACHE": str(scratch / "roots")}
        result["cold_build_s"] = timed_build(cortexfile, scratch / "cold", empty)
    result["warm_build_s"] = timed_build(cortexfile, scratch / "warm")
    image = next((scratch / "warm").glob("*.img"))
    result |= sizes(image)
    edited = write_cortexfile(scratch / "b", key, hardware=BOARDS[architecture])
    edited.write_text(edited.read_text().replace("hostname: cortex-test", "hostname: cortex-edited"))
    result["config_only_rebuild_s"] = timed_build(edited, scratch / "edited")
    if booted:
        result |= power_on_to_answer(image, architecture, scratch)
    return result


def report(result: dict[str, Any]) -> None:
    mib = 1 << 20
    print(f"disk image, {result['board']} ({result['architecture']}):")
    print(f"  size: {result['raw_bytes'] / mib:.0f} MiB raw, {result['used_bytes'] / mib:.0f} MiB in use, "
          f"{result['compressed_bytes'] / mib:.0f} MiB compressed (zstd -10)")  # fmt: skip
    for name in ("cold_build_s", "warm_build_s", "config_only_rebuild_s", "power_on_to_key_s",
                 "power_on_to_first_answer_s"):  # fmt: skip
        if name in result:
            print(f"  {name.removesuffix('_s').replace('_', ' ')}: {result[name]:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(BOARDS), default="amd64")
    parser.add_argument("--no-cold", action="store_true", help="skip the build without a cached root")
    parser.add_argument("--no-boot", action="store_true", help="skip power-on to first answer")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cortex-bench-disk-", dir="/var/tmp") as scratch:
        result = measure(args.arch, Path(scratch), not args.no_cold, not args.no_boot)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
