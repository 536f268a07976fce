"""Measure the device image (`cortex build --format disk`) on this machine, for each Debian release side by
side (Debian 13 against 12 by default, with the ratio): its size (raw, in use, compressed), cold build time
(no cached Debian root), warm build time, a config-only rebuild (another host name), and power-on to the
first chat completion under qemu (software emulation).

    .venv/bin/python bench/disk.py [--arch amd64|arm64] [--releases trixie,bookworm] [--no-cold] [--no-boot]
                                   [--json FILE]

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
from tests.images.disk.fixtures import GUEST_PORT, Ssh, disk_copy, ssh_key, write_cortexfile  # noqa: E402
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


def power_on_to_answer(image: Path, architecture: str, ssh: Path, scratch: Path) -> dict[str, float]:
    """The key is read over SSH, as the boot test does: a serial console only says that one was made."""
    disk = disk_copy(image, scratch / "boot.img")
    ports = {GUEST_PORT: find_free_port(), 22: find_free_port()}
    started = time.monotonic()
    with boot(disk, architecture, ports) as vm:
        vm.wait_for_key_notice(KEY_WAIT_S)
        key_s = time.monotonic() - started
        first_chat(vm, Ssh(ssh, ports[22]).api_key(KEY_WAIT_S))
        return {"power_on_to_key_s": key_s, "power_on_to_first_answer_s": time.monotonic() - started}


def measure(architecture: str, release: str, scratch: Path, cold: bool, booted: bool) -> dict[str, Any]:
    scratch.mkdir(parents=True)
    key = ssh_key(scratch)

    def cortexfile(folder: str) -> Path:
        path = write_cortexfile(scratch / folder, key, hardware=BOARDS[architecture])
        path.write_text(path.read_text().replace("target:\n", f"target:\n  release: {release}\n", 1))
        return path

    result: dict[str, Any] = {"architecture": architecture, "board": BOARDS[architecture], "release": release}
    if cold:
        empty = {**os.environ, "CORTEX_ROOT_CACHE": str(scratch / "roots")}
        result["cold_build_s"] = timed_build(cortexfile("a"), scratch / "cold", empty)
    result["warm_build_s"] = timed_build(cortexfile("a"), scratch / "warm")
    image = next((scratch / "warm").glob("*.img"))
    result |= sizes(image)
    edited = cortexfile("b")
    edited.write_text(edited.read_text().replace("hostname: cortex-test", "hostname: cortex-edited"))
    result["config_only_rebuild_s"] = timed_build(edited, scratch / "edited")
    if booted:
        result |= power_on_to_answer(image, architecture, key, scratch)
    return result


FIGURES = ("raw_bytes", "used_bytes", "compressed_bytes", "cold_build_s", "warm_build_s", "config_only_rebuild_s",
           "power_on_to_key_s", "power_on_to_first_answer_s")  # fmt: skip


def report(results: list[dict[str, Any]]) -> None:
    """One column per release; the last column is the first release's figure over the second's."""
    first = results[0]
    print(f"disk image, {first['board']} ({first['architecture']}); sizes in MiB, times in s")
    ratio = f"{'ratio':>12}" if len(results) == 2 else ""
    print(f"  {'':28}" + "".join(f"{r['release']:>12}" for r in results) + ratio)
    for name in FIGURES:
        if all(name in r for r in results):
            values = [r[name] / (1 << 20) if name.endswith("_bytes") else r[name] for r in results]
            ratio = f"{values[0] / values[1]:12.2f}" if len(values) == 2 and values[1] else ""
            print(f"  {name:28}" + "".join(f"{v:12.0f}" for v in values) + ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(BOARDS), default="amd64")
    parser.add_argument("--releases", default="trixie,bookworm", help="Debian releases, compared side by side")
    parser.add_argument("--no-cold", action="store_true", help="skip the build without a cached root")
    parser.add_argument("--no-boot", action="store_true", help="skip power-on to first answer")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cortex-bench-disk-", dir="/var/tmp") as scratch:
        releases = args.releases.split(",")
        results = [measure(args.arch, release, Path(scratch) / release, not args.no_cold, not args.no_boot)
                   for release in releases]  # fmt: skip
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
