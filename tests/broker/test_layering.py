"""The broker is infrastructure: no module of src/broker imports a feature or the app."""

import ast
from pathlib import Path

import src.broker

BROKER = Path(src.broker.__file__).parent
ABOVE = ("src.app", "src.main", "src.edge", "src.metrics", "src.realtime", "src.catalog", "src.web")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_broker_imports_nothing_from_a_higher_floor() -> None:
    """Features depend on the broker, never the other way round."""
    upward = {
        f"{path.name}: {name}"
        for path in BROKER.glob("*.py")
        for name in imported(path)
        if any(name == above or name.startswith(f"{above}.") for above in ABOVE)
    }
    assert upward == set()
