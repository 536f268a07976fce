"""recipes/: hardware presets (a partial Cortexfile) and model presets (model fields)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError, Diagnostic, Origin, Path_
from .layers import Layer
from .yamlio import Positions, parse_file

# Installed unpacked (pip never installs this project zipped), so the package data is a real folder.
RECIPES_DIR = Path(str(resources.files("menlo_cortex.recipes")))


@dataclass
class Recipe:
    name: str
    path: Path
    description: str
    body: Any  # the `config:` mapping of a hardware recipe, the `model:` mapping of a model preset
    positions: Positions  # re-rooted at the body


def names(kind: str) -> list[str]:
    return sorted(p.stem for p in (RECIPES_DIR / kind).glob("*.yaml"))


def load(kind: str, name: str, body_key: str) -> Recipe:
    """Load recipes/<kind>/<name>.yaml; KeyError with close names when there is none."""
    path = RECIPES_DIR / kind / f"{name}.yaml"
    if not name or "/" in name or not path.is_file():
        raise KeyError(name)
    parsed = parse_file(path)
    data = parsed.data if isinstance(parsed.data, dict) else {}
    if not isinstance(data.get(body_key), dict) or not isinstance(data.get("description"), str):
        raise ConfigError([Diagnostic(Origin(str(path), 1, 1), "", f"a recipe needs `description` and `{body_key}`")])
    return Recipe(name, path, data["description"], data[body_key], _reroot(parsed.positions, (body_key,)))


def unknown(kind: str, name: str, origin: Origin | None, key: str) -> Diagnostic:
    close = difflib.get_close_matches(name, names(kind), n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"known: {', '.join(names(kind))}"
    what = "model preset" if kind == "models" else f"{kind} recipe"
    return Diagnostic(origin or Origin("?"), key, f"no {what} named `{name}`", hint)


def hardware_layer(name: str) -> Layer:
    recipe = load("hardware", name, "config")
    return Layer(f"recipe {name}", recipe.body, recipe.positions.values, recipe.positions.keys)


def _reroot(positions: Positions, prefix: Path_) -> Positions:
    cut = len(prefix)
    return Positions(
        {p[cut:]: o for p, o in positions.values.items() if p[:cut] == prefix},
        {p[cut:]: o for p, o in positions.keys.items() if p[:cut] == prefix},
    )
