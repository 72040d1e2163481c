"""A SKU moved to another product (plain SQL; the API cannot move one) is recorded as its
departure from the old product and its arrival at the new one, so both products' listeners
and cached answers learn of it."""

from src.db.migrate import run_sql_file

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    run_sql_file(__file__)
