"""A catalog a shop can run: SKU price, currency and stock; search and filter indexes;
SKU changes in the feed, and feed rows tagged with their product and brands."""

from src.db.migrate import run_sql_file

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    run_sql_file(__file__)
