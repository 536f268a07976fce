"""Durations as people write them: `90s`, `15m`, `24h`, `1h30m`, `2d`."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
LONGEST_S = 30 * 86400


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError with the accepted forms when it is not a duration."""
    compact = text.strip().lower()
    parts = PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"`{text[:40]}` is not a duration (write e.g. 90s, 15m, 24h or 1h30m)")
    seconds = sum(float(number) * UNITS[unit] for number, unit in parts)
    if not 1 <= seconds <= LONGEST_S:
        raise ValueError(f"`{text[:40]}`: a duration between 1s and 30d")
    return seconds
