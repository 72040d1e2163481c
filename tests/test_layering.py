"""The house's floors (README "Layout"): features stand above the infrastructure, and no
module imports from a floor above its own. Read from the code's own imports."""

import ast
from pathlib import Path

from src.config import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"

# Top floor first. A module belongs to the first floor that names it or its package.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("composition", ("src.main", "src.app")),
    ("features", ("src.service", "src.web", "src.realtime", "src.catalog")),
    ("components", ("src.component",)),
    (
        "infrastructure",
        ("src.edge", "src.server", "src.db", "src.broker", "src.metrics", "src.auth"),
    ),
    (
        "ground",
        ("src.compat", "src.config", "src.errors", "src.logs", "src.limits", "src.asgi"),
    ),
    ("tools", ("src.folder_lock",)),
]


def module_of(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_of(module: str) -> int:
    for level, (_, prefixes) in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{module} is on no floor: add it to FLOORS (and the README)")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {name for name in names if name.startswith("src.")}


def test_no_module_imports_from_a_floor_above_its_own() -> None:
    upward = []
    for path in SRC.rglob("*.py"):
        module = module_of(path)
        if module == "src":
            continue
        for name in imports(path):
            if floor_of(name) < floor_of(module):
                upward.append(f"{module} ({FLOORS[floor_of(module)][0]}) imports {name}")
    assert upward == []


def test_every_module_is_on_a_floor() -> None:
    for path in SRC.rglob("*.py"):
        if module_of(path) != "src":
            floor_of(module_of(path))
