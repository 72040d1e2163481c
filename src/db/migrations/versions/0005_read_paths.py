"""Indexes for two read paths: products by id with name and brand (index-only ?q= walks),
and a product's SKUs by id (SKU pages without a sort)."""

from src.db.migrate import run_sql_file

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    run_sql_file(__file__)
