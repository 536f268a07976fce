"""boot.scr: U-Boot's script in its legacy image format (what `mkimage -T script` makes), written here so the build
host needs no u-boot-tools and the bytes follow the source epoch.

A 64-byte big-endian header (magic, header CRC, time, size, load and entry address, data CRC, OS, architecture,
type, compression, name), then the data: the script's length, a zero that ends the length list, the script."""

from __future__ import annotations

import struct
import zlib

MAGIC = 0x27051956
OS_LINUX, ARCH_ARM64, TYPE_SCRIPT, COMPRESSION_NONE = 5, 22, 6, 0
_HEADER = struct.Struct(">7I4B32s")


def script_image(script: str, epoch: int, name: str = "cortex boot script") -> bytes:
    body = script.encode("ascii")
    data = struct.pack(">2I", len(body), 0) + body
    fields = [MAGIC, 0, epoch, len(data), 0, 0, zlib.crc32(data), OS_LINUX, ARCH_ARM64, TYPE_SCRIPT, COMPRESSION_NONE]
    header = _HEADER.pack(*fields, name.encode("ascii")[:32])
    fields[1] = zlib.crc32(header)
    return _HEADER.pack(*fields, name.encode("ascii")[:32]) + data
