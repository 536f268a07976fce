"""What a new config changes compared with the running one, and what each change needs.

Pure: two Cortexfiles in, a `Plan` out. Each changed setting falls in one `Kind`; models are
compared by id, so reordering them changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from menlo_cortex.cortexfile.schema import Cortexfile, Model
from menlo_cortex.cortexfile.schema.base import Applies
from menlo_cortex.cortexfile.table import by_path, model_settings
from pydantic import BaseModel

# How each setting applies is declared with the setting in the schema (`Applies`); this module only reads it.
Kind = Applies
# Model fields whose change needs a new copy of the model loaded; the others (`load`, `preset`) apply as they are.
RELOADING_FIELDS = frozenset(name for name, s in model_settings().items() if s.applies is Applies.models)


def kind_of(path: tuple[str, ...]) -> Applies:
    return by_path()[path].applies


@dataclass(frozen=True)
class ModelChanges:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()  # file, sha256 or load parameters: a new copy is loaded
    updated: tuple[str, ...] = ()  # only fields that apply without loading again

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.replaced or self.updated)


@dataclass(frozen=True)
class Plan:
    """Changed settings (dotted keys) by kind, and the model changes."""

    settings: Mapping[Kind, tuple[str, ...]] = field(default_factory=dict)
    models: ModelChanges = ModelChanges()
    files: tuple[Kind, ...] = ()  # kinds touched by a referenced file's new content (key file, TLS)

    def touches(self, kind: Kind) -> bool:
        return bool(self.settings.get(kind)) or kind in self.files or (kind is Kind.models and bool(self.models))

    @property
    def empty(self) -> bool:
        return not any(self.settings.values()) and not self.models and not self.files


def plan_changes(old: Cortexfile, new: Cortexfile, files: tuple[Kind, ...] = ()) -> Plan:
    by_kind: dict[Kind, list[str]] = {}
    for path in changed_settings(old, new):
        by_kind.setdefault(kind_of(path), []).append(".".join(path))
    engines_changed = bool(by_kind.get(Kind.models))
    models = model_changes(old.models, new.models, reload_all=engines_changed)
    return Plan({kind: tuple(keys) for kind, keys in by_kind.items()}, models, files)


def changed_settings(old: Cortexfile, new: Cortexfile) -> list[tuple[str, ...]]:
    """Paths of the settings (models aside) whose value differs; secrets compare by value, not as printed."""
    before, after = _flatten(old), _flatten(new)
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def _flatten(section: BaseModel, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        if prefix == () and name == "models":
            continue
        if isinstance(value, BaseModel):
            flat.update(_flatten(value, (*prefix, name)))
        else:
            flat[(*prefix, name)] = value
    return flat


def model_changes(old: list[Model], new: list[Model], *, reload_all: bool = False) -> ModelChanges:
    before, after = {m.id: m for m in old}, {m.id: m for m in new}
    kept = [model_id for model_id in after if model_id in before]
    differing = {model_id: _changed_fields(before[model_id], after[model_id]) for model_id in kept}
    replaced = [i for i in kept if reload_all or differing[i] & RELOADING_FIELDS]
    return ModelChanges(
        added=tuple(i for i in after if i not in before),
        removed=tuple(i for i in before if i not in after),
        replaced=tuple(replaced),
        updated=tuple(i for i in kept if differing[i] and i not in replaced),
    )


def _changed_fields(old: Model, new: Model) -> set[str]:
    return {name for name in Model.model_fields if getattr(old, name) != getattr(new, name)}
