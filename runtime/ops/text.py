"""Text from elsewhere (a server's or git's messages, labels, stored reports) as a user may see it."""

from __future__ import annotations


def printable(text: str, limit: int) -> str:
    """`text` as one line of printable characters (no escape sequences), at most `limit` of them."""
    return "".join(char if char.isprintable() else " " for char in text[:limit])
