"""GET /products' filters served by indexes for every value: each name's characters and
pairs of characters for the q pg_trgm cannot serve (one or two characters, text without a
word); in-stock SKUs by product and price, so a price range with in_stock is index-only."""

from src.db.migrate import run_sql_file

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    run_sql_file(__file__)
