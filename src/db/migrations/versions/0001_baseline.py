"""The schema of the releases before versioned migrations (idempotent: see the .sql)."""

from src.db.migrate import run_sql_file

revision = "0001"
down_revision = None


def upgrade() -> None:
    run_sql_file(__file__)
