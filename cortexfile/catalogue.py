"""The model catalogue: every preset in recipes/models with the facts a user picks by (kind, family, size,
parameters, quantisation, trained context, license). `cortex models list`, `cortex models fit` and
`cortex init` read it; a preset's `model:` mapping is what `preset:` fills into a Cortexfile.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import recipes
from .errors import ConfigError, Diagnostic, Origin
from .layers import Merged
from .schema import Model
from .validate import schema_diagnostics
from .yamlio import parse_file


class ModelKind(StrEnum):
    chat = "chat"
    embedding = "embedding"
    rerank = "rerank"


# llama.cpp's file types (llama_ftype), by the names its quantize tool and the hub's file names use.
QUANTIZATIONS = (
    *("F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1", "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1"),
    *("Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS", "IQ3_M", "IQ3_S", "IQ3_XS", "IQ3_XXS", "IQ2_M"),
    *("IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S", "TQ1_0", "TQ2_0", "MXFP4"),
)


class Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,39}$")
    kind: ModelKind
    parameters: int = Field(ge=1, le=10**13)
    quantization: str
    size_bytes: int = Field(ge=1, le=1 << 42)
    context_length: int = Field(ge=1, le=1 << 24)
    license: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$")

    @field_validator("quantization")
    @classmethod
    def _known_quantization(cls, value: str) -> str:
        if value not in QUANTIZATIONS:
            close = difflib.get_close_matches(value.upper(), QUANTIZATIONS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(QUANTIZATIONS)}"
            raise ValueError(f"unknown quantisation `{value}` ({hint})")
        return value


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str
    facts: Facts
    model: dict[str, Any]


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    facts: Facts
    model: Model  # the preset as a model whose id is its name

    @property
    def kind(self) -> ModelKind:
        return self.facts.kind


def entries() -> list[Entry]:
    """Every catalogue entry; ConfigError listing every problem of every entry (located in its file)."""
    found, problems = [], []
    for name in recipes.names("models"):
        try:
            found.append(entry(name))
        except ConfigError as exc:
            problems += exc.diagnostics
    if problems:
        raise ConfigError(problems)
    return found


def entry(name: str) -> Entry:
    path = recipes.RECIPES_DIR / "models" / f"{name}.yaml"
    parsed = parse_file(path)
    data = parsed.data if isinstance(parsed.data, dict) else {}
    merged = Merged(data, parsed.positions.values, parsed.positions.keys)
    try:
        raw = _Entry.model_validate(parsed.data)
        model = Model.model_validate({"id": name, **raw.model})
    except ValidationError as exc:
        raise ConfigError(_located(schema_diagnostics(exc, merged), path)) from None
    problems = list(_disagreements(raw.facts, model, merged))
    if problems:
        raise ConfigError(problems)
    return Entry(name, " ".join(raw.description.split()), raw.facts, model)


def _located(found: list[Diagnostic], path: Path) -> list[Diagnostic]:
    """Pydantic's errors of the `model:` mapping come without its prefix: at least name the file."""
    return [d if d.origin.source == str(path) else Diagnostic(Origin(str(path), 1, 1), d.key, d.message) for d in found]


def _disagreements(facts: Facts, model: Model, merged: Merged) -> list[Diagnostic]:
    def at(key: tuple[str, ...], message: str) -> Diagnostic:
        return Diagnostic(merged.origin_of(key) or Origin("?"), ".".join(key), message)

    found = []
    kind = ModelKind.embedding if model.embeddings else ModelKind.rerank if model.rerank else ModelKind.chat
    if kind is not facts.kind:
        found.append(at(("facts", "kind"), f"the model mapping makes it a {kind} model, the facts say {facts.kind}"))
    if model.context_size > facts.context_length:
        message = f"{model.context_size} is more than the {facts.context_length} tokens the model was trained for"
        found.append(at(("model", "context_size"), message))
    return found
