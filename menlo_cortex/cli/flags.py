"""CLI options derived from the settings table: the roadmap's flag names, never hand-listed."""

from __future__ import annotations

import argparse

from menlo_cortex.cortexfile.schema.base import FALSE_WORDS, TRUE_WORDS
from menlo_cortex.cortexfile.table import settings

BOOL_WORDS = TRUE_WORDS | FALSE_WORDS


def _bool_text(text: str) -> str:
    if text.strip().lower() not in BOOL_WORDS:
        raise argparse.ArgumentTypeError(f"expected 1 or 0 (or true/false), got `{text}`")
    return text


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override the Cortexfile and CORTEX_* env vars)")
    for setting in settings():
        if setting.flag is None:
            continue
        metavar = "1|0" if setting.is_bool else ("A,B,..." if setting.is_list else "VALUE")
        help_text = f"{setting.key}: {setting.description}"
        if setting.is_secret:
            metavar, help_text = "@FILE|${env:NAME}", help_text + " Prefer @FILE: command lines leak."
        group.add_argument(
            setting.flag,
            dest=_dest(setting.flag),
            metavar=metavar,
            type=_bool_text if setting.is_bool else str,
            default=None,
            help=help_text,
        )


def given_flags(args: argparse.Namespace) -> dict[str, str]:
    """The setting flags the user actually passed, as {flag: text}."""
    found = {}
    for setting in settings():
        if setting.flag is not None:
            value = getattr(args, _dest(setting.flag), None)
            if value is not None:
                found[setting.flag] = value
    return found


def _dest(flag: str) -> str:
    return "setting_" + flag.lstrip("-").replace("-", "_")
