"""The schema's versions: alembic scripts in `versions/`, each running the .sql file of the
same name. A version's id is its file name's first four digits ("0002_shop.py" is 0002),
so the newest is known without importing alembic (`src.db.migrate` runs them)."""

from pathlib import Path

VERSIONS = Path(__file__).parent / "versions"


def newest_version() -> str:
    return max(path.name[:4] for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
