"""Located diagnostics: `FILE:LINE:COL: dotted.key: message` (1-based), or the env/flag source."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

Path_ = tuple[str | int, ...]


def dotted(path: Path_) -> str:
    """('models', 0, 'sha256') -> 'models[0].sha256'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file position, an env var, a flag, a recipe or a default."""

    source: str  # a file path, "env CORTEX_X", "flag --x", "default", "format docker"
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    @property
    def is_file(self) -> bool:
        return self.line is not None

    def __str__(self) -> str:
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}:{self.column}"


class Severity(StrEnum):
    error = "error"
    warning = "warning"


@dataclass(frozen=True)
class Diagnostic:
    origin: Origin
    key: str
    message: str
    hint: str | None = None
    severity: Severity = Severity.error

    def __str__(self) -> str:
        text = f"{self.origin}: {self.key}: " if self.key else f"{self.origin}: "
        if self.severity is Severity.warning:
            text += "warning: "
        text += self.message
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(Exception):
    """One or more errors a user can fix in their Cortexfile, env or flags. Exit code 2."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


def errors_only(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity is Severity.error]


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """File positions in reading order first, then env vars, then flags."""

    def order(d: Diagnostic) -> tuple[int, str, int, int]:
        o = d.origin
        rank = 0 if o.is_file else 1 if o.source.startswith("env ") else 2
        return rank, o.source if rank else "", o.line or 0, o.column or 0

    return sorted(diagnostics, key=order)
