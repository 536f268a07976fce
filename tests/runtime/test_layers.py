"""The runtime's layers (runtime/__init__.py): no import runs back up, and no module imports itself through
others, typing-only imports included."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
LAYERS = (
    {"main", "app", "wiring", "pull"},
    {"v1", "update"},
    {"http"},
    {"sync"},
    {"models"},
    {"reload"},
    {"fetch"},
    {"conversations"},
    {"ops"},
)
DEPTH = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def module_of(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(RUNTIME).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports() -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    """Each runtime module -> the runtime modules it imports (a package import names its __init__)."""
    modules = {module_of(path): path for path in RUNTIME.rglob("*.py")}
    found: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            named = tuple(node.module.split(".")) if node.module else ()
            if node.level:
                base = package[: len(package) - node.level + 1] + named
            elif named[:2] == ("menlo_cortex", "runtime"):
                base = named[2:]
            else:
                continue
            for alias in node.names:
                target = (*base, alias.name) if (*base, alias.name) in modules else base
                if target in modules and target != module:
                    found[module].add(target)
    return found


def layer(module: tuple[str, ...]) -> str:
    return module[0] if module else "__init__"


def test_every_runtime_folder_and_top_module_has_a_layer() -> None:
    tops = {
        path.stem if path.is_file() else path.name
        for path in RUNTIME.iterdir()
        if path.suffix == ".py" or path.is_dir()
    }
    assert tops - {"__init__", "__pycache__", "static"} == set(DEPTH)


def test_no_import_runs_back_up() -> None:
    upward = [
        f"{'/'.join(module)} -> {'/'.join(target)}"
        for module, targets in imports().items()
        for target in targets
        if layer(module) != layer(target)
        and DEPTH[layer(target)] <= DEPTH[layer(module)]
        and not DEPTH[layer(target)] == DEPTH[layer(module)] == 0
    ]
    assert upward == []


def test_no_module_imports_itself_through_others() -> None:
    graph = imports()
    circles = []
    state: dict[tuple[str, ...], int] = {}  # 1 on the path, 2 done

    def visit(module: tuple[str, ...], path: list[tuple[str, ...]]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join("/".join(m) for m in [*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []
